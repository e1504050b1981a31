//! Settings → Canned responses: the replies agents insert with `/shortcut` in the composer.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use serde_json::json;

use super::client;
use super::model::{Canned, Page};
use crate::auth::RequireSession;
use crate::layout::AppLayout;

#[component]
pub fn CannedResponsesPage() -> impl IntoView {
    view! {
        <Title text="Canned responses" />
        <RequireSession children=|session| {
            let admin = session
                .current_workspace
                .as_ref()
                .and_then(|w| session.workspaces.iter().find(|x| &x.id == w))
                .is_some_and(|w| w.role == "admin");
            view! {
                <AppLayout session>
                    <CannedResponses admin />
                </AppLayout>
            }
        } />
    }
}

#[component]
fn CannedResponses(admin: bool) -> impl IntoView {
    let list = RwSignal::new(Vec::<Canned>::new());
    let shortcut = RwSignal::new(String::new());
    let body = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let load = move || {
        spawn_local(async move {
            match client::get::<Page<Canned>>("/api/v1/canned-responses").await {
                Ok(p) => list.set(p.data),
                Err(e) => error.set(Some(e.message)),
            }
        })
    };
    Effect::new(move |_| load());
    let add = move || {
        let payload = json!({ "shortcut": shortcut.get_untracked(), "body": body.get_untracked() });
        spawn_local(async move {
            match client::post::<Canned>("/api/v1/canned-responses", &payload).await {
                Ok(_) => {
                    shortcut.set(String::new());
                    body.set(String::new());
                    error.set(None);
                    load();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let remove = move |id: String| {
        spawn_local(async move {
            match client::call::<serde_json::Value>(
                "DELETE",
                &format!("/api/v1/canned-responses/{id}"),
                None,
            )
            .await
            {
                Ok(_) => load(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    view! {
        <section class="card settings-page">
            <h1>"Canned responses"</h1>
            <p class="muted">"Type " <kbd>"/"</kbd> " and the shortcut in the composer to insert one."</p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <ul class="canned-list">
                // A short list, redrawn whole when it changes: no keyed list (each keyed item
                // type costs the client kilobytes).
                {move || list.get().into_iter().map(|c| {
                    let id = c.id;
                    view! {
                        <li>
                            <strong>"/"{c.shortcut}</strong>
                            <span>{c.body}</span>
                            {admin.then(|| view! {
                                <button type="button" class="link" on:click=move |_| remove(id.clone())>"Delete"</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {if admin {
                view! {
                    <form on:submit=move |e| { e.prevent_default(); add(); }>
                        <label for="canned-shortcut">"Shortcut"</label>
                        <input id="canned-shortcut" required maxlength="32" placeholder="thanks"
                            prop:value=move || shortcut.get() on:input=move |e| shortcut.set(event_target_value(&e)) />
                        <label for="canned-body">"Text"</label>
                        <textarea id="canned-body" required rows="3"
                            prop:value=move || body.get() on:input=move |e| body.set(event_target_value(&e))></textarea>
                        <button type="submit" class="primary">"Add"</button>
                    </form>
                }.into_any()
            } else {
                view! { <p class="muted">"Only admins can add or remove canned responses."</p> }.into_any()
            }}
        </section>
    }
}
