//! One's own profile: see and correct name and e-mail (the privacy policy's right to
//! correction).

use leptos::prelude::*;
use serde_json::json;

use super::client::text;
use super::{list_resource, loaded, outcome_view, run, Outcome};

#[component]
pub fn Profile() -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let me = list_resource("/api/v1/me", reload);
    view! {
        {outcome_view(outcome)}
        {loaded(me, move |v| {
            let name = RwSignal::new(text(&v, "name"));
            let email = RwSignal::new(text(&v, "email"));
            let on_save = move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let body = json!({"name": name.get_untracked(), "email": email.get_untracked()});
                run("PATCH", "/api/v1/me".into(), Some(body), outcome, reload, move |_| {
                    outcome.set(Some(Outcome::Done("Saved.".into())))
                });
            };
            view! {
                <form class="inline-form" on:submit=on_save>
                    <label for="profile-name">"Name"</label>
                    <input id="profile-name" maxlength="200" prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev)) />
                    <label for="profile-email">"E-mail"</label>
                    <input id="profile-email" type="email" required prop:value=move || email.get()
                        on:input=move |ev| email.set(event_target_value(&ev)) />
                    <p class="muted">"Sign-in with Google keeps working after an e-mail change: accounts are tied to the Google account, not the address."</p>
                    <button type="submit" class="primary">"Save"</button>
                </form>
            }
        })}
    }
}
