//! API tokens (admins): create (shown once), list with last use, revoke.

use leptos::prelude::*;
use serde_json::{json, Value};

use super::client::{rows, text};
use super::{list_resource, loaded, outcome_view, run, Outcome};

#[component]
pub fn Tokens() -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let tokens = list_resource("/api/v1/tokens", reload);
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<String>);

    let on_create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        created.set(None);
        let body = json!({"name": name.get_untracked()});
        run(
            "POST",
            "/api/v1/tokens".into(),
            Some(body),
            outcome,
            reload,
            move |v| {
                created.set(Some(text(&v, "token")));
                name.set(String::new());
            },
        );
    };

    let token_row = move |t: Value| {
        let id = text(&t, "id");
        let on_revoke = move |_| {
            run(
                "DELETE",
                format!("/api/v1/tokens/{id}"),
                None,
                outcome,
                reload,
                move |_| {
                    outcome.set(Some(Outcome::Done(
                        "Token revoked: it no longer works.".into(),
                    )))
                },
            );
        };
        let last = match text(&t, "last_used_at") {
            s if s.is_empty() => "never".to_string(),
            s => s,
        };
        view! {
            <tr>
                <td>{text(&t, "name")}</td>
                <td><code>{text(&t, "prefix")} "…"</code></td>
                <td>{text(&t, "created_by")}</td>
                <td>{text(&t, "created_at")}</td>
                <td>{last}</td>
                <td><button type="button" class="link danger" on:click=on_revoke>"Revoke"</button></td>
            </tr>
        }
    };

    view! {
        <p class="muted">"A token acts as the member who made it, in this workspace: send it as "
            <code>"Authorization: Bearer <token>"</code> " to " <a href="/api/v1/openapi.json">"the API"</a> "."</p>
        {outcome_view(outcome)}
        <form class="inline-form" on:submit=on_create>
            <label for="token-name">"Name"</label>
            <input id="token-name" required maxlength="100" placeholder="e.g. CRM sync" prop:value=move || name.get()
                on:input=move |ev| name.set(event_target_value(&ev)) />
            <button type="submit" class="primary">"Create token"</button>
        </form>
        {move || created.get().map(|token| view! {
            <div class="secret-once" role="status">
                <p>"Copy the token now: it is shown only this once."</p>
                <input readonly class="new-token" prop:value=token />
            </div>
        })}
        <table class="data">
            <thead><tr><th>"Name"</th><th>"Token"</th><th>"Acts as"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
            <tbody>
                {loaded(tokens, move |v| rows(&v).into_iter().map(token_row).collect_view())}
            </tbody>
        </table>
    }
}
