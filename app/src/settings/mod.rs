//! Settings: members and invitations, API tokens, WhatsApp numbers, one's profile. The pages
//! call the JSON API (`/api/v1`) from the browser with the session cookie; the server renders
//! the frame, and an agent on an admin page is told plainly that it needs an admin.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::{RequireSession, SessionInfo};
use crate::layout::AppLayout;

pub mod client;
mod members;
mod numbers;
mod profile;
mod tokens;

/// Whether the session's user administers the workspace they are in.
pub fn is_admin(session: &SessionInfo) -> bool {
    session
        .workspaces
        .iter()
        .find(|w| session.current_workspace.as_ref() == Some(&w.id))
        .is_some_and(|w| w.role == "admin")
}

/// A settings page: the app shell, the settings menu, and the body (or, on an admin page for
/// an agent, why it is not shown).
fn settings_page(title: &'static str, admin_only: bool, body: fn() -> AnyView) -> impl IntoView {
    view! {
        <Title text=title />
        <RequireSession children=move |session: SessionInfo| {
            let allowed = !admin_only || is_admin(&session);
            view! {
                <AppLayout session>
                    <div class="settings">
                        <nav class="settings-nav" aria-label="Settings">
                            <a href="/settings/members">"Members"</a>
                            <a href="/settings/tokens">"API tokens"</a>
                            <a href="/settings/whatsapp">"WhatsApp"</a>
                            <a href="/settings/profile">"Profile"</a>
                        </nav>
                        <section class="settings-body">
                            <h1>{title}</h1>
                            {if allowed {
                                body()
                            } else {
                                view! {
                                    <p class="notice need-admin" role="alert">
                                        "You need to be an admin of this workspace to manage "
                                        {title.to_lowercase()}
                                        ". Ask an admin of the workspace to do it, or to make you an admin."
                                    </p>
                                }
                                    .into_any()
                            }}
                        </section>
                    </div>
                </AppLayout>
            }
        } />
    }
}

/// `/settings`: the menu.
#[component]
pub fn SettingsPage() -> impl IntoView {
    settings_page("Settings", false, || {
        view! {
            <ul class="settings-index">
                <li><a href="/settings/members">"Members and invitations"</a> " — who is on the team, and their roles (admins)"</li>
                <li><a href="/settings/tokens">"API tokens"</a> " — for scripts and integrations (admins)"</li>
                <li><a href="/settings/whatsapp">"WhatsApp numbers"</a> " — connect a number, its health, the webhook settings (admins)"</li>
                <li><a href="/settings/profile">"Your profile"</a> " — your name and e-mail"</li>
            </ul>
        }
        .into_any()
    })
}

/// `/settings/members`.
#[component]
pub fn MembersPage() -> impl IntoView {
    settings_page("Members", true, || {
        view! { <members::Members /> }.into_any()
    })
}

/// `/settings/tokens`.
#[component]
pub fn TokensPage() -> impl IntoView {
    settings_page("API tokens", true, || {
        view! { <tokens::Tokens /> }.into_any()
    })
}

/// `/settings/whatsapp`.
#[component]
pub fn NumbersPage() -> impl IntoView {
    settings_page("WhatsApp numbers", true, || {
        view! { <numbers::Numbers /> }.into_any()
    })
}

/// `/settings/profile`.
#[component]
pub fn ProfilePage() -> impl IntoView {
    settings_page("Profile", false, || {
        view! { <profile::Profile /> }.into_any()
    })
}

/// A message line under a form: an error, or what was done.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done(String),
    Failed(String),
}

/// Shows an [`Outcome`].
pub fn outcome_view(outcome: RwSignal<Option<Outcome>>) -> impl IntoView {
    move || match outcome.get() {
        Some(Outcome::Done(m)) => view! { <p class="ok" role="status">{m}</p> }.into_any(),
        Some(Outcome::Failed(m)) => view! { <p class="error" role="alert">{m}</p> }.into_any(),
        None => ().into_any(),
    }
}

/// Runs an API call in the browser: on success `then` gets the answer and the data reloads;
/// a failure is shown.
pub fn run(
    method: &'static str,
    path: String,
    body: Option<serde_json::Value>,
    outcome: RwSignal<Option<Outcome>>,
    reload: RwSignal<u32>,
    then: impl FnOnce(serde_json::Value) + 'static,
) {
    outcome.set(None);
    leptos::task::spawn_local(async move {
        match client::call(method, &path, body).await {
            Ok(v) => {
                then(v);
                reload.update(|n| *n += 1);
            }
            Err(e) => outcome.set(Some(Outcome::Failed(e))),
        }
    });
}

/// A list from the API, reloaded whenever `reload` changes (in the browser only).
pub fn list_resource(
    path: &'static str,
    reload: RwSignal<u32>,
) -> LocalResource<Result<serde_json::Value, String>> {
    LocalResource::new(move || {
        reload.track();
        client::get(path)
    })
}

/// Renders a resource: loading, its error, or `f` of its value.
pub fn loaded<F, V>(
    resource: LocalResource<Result<serde_json::Value, String>>,
    f: F,
) -> impl IntoView
where
    F: Fn(serde_json::Value) -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    move || match resource.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
        Some(Ok(v)) => f(v).into_any(),
    }
}
