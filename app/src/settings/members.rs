//! Members and invitations (admins): roles, removal, invitation links.

use leptos::prelude::*;
use serde_json::{json, Value};

use super::client::{rows, text};
use super::{list_resource, loaded, outcome_view, run, Outcome};

#[component]
pub fn Members() -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let members = list_resource("/api/v1/members", reload);
    let invitations = list_resource("/api/v1/members/invitations", reload);
    let email = RwSignal::new(String::new());
    let role = RwSignal::new("agent".to_string());
    let link = RwSignal::new(None::<String>);

    let on_invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        link.set(None);
        let body = json!({"email": email.get_untracked(), "role": role.get_untracked()});
        run(
            "POST",
            "/api/v1/members/invitations".into(),
            Some(body),
            outcome,
            reload,
            move |v| {
                link.set(Some(text(&v, "url")));
                email.set(String::new());
            },
        );
    };

    let member_row = move |m: Value| {
        let user_id = text(&m, "user_id");
        let current = text(&m, "role");
        let (id_role, id_remove) = (user_id.clone(), user_id.clone());
        let on_role = move |ev: leptos::ev::Event| {
            let body = json!({"role": event_target_value(&ev)});
            run(
                "PATCH",
                format!("/api/v1/members/{id_role}"),
                Some(body),
                outcome,
                reload,
                move |_| outcome.set(Some(Outcome::Done("Role changed.".into()))),
            );
        };
        let on_remove = move |_| {
            run(
                "DELETE",
                format!("/api/v1/members/{id_remove}"),
                None,
                outcome,
                reload,
                move |_| outcome.set(Some(Outcome::Done("Member removed.".into()))),
            );
        };
        view! {
            <tr>
                <td>{text(&m, "email")}</td>
                <td>{text(&m, "name")}</td>
                <td>
                    <select aria-label="Role" on:change=on_role>
                        <option value="admin" selected={current == "admin"}>"admin"</option>
                        <option value="agent" selected={current == "agent"}>"agent"</option>
                    </select>
                </td>
                <td><button type="button" class="link danger" on:click=on_remove>"Remove"</button></td>
            </tr>
        }
    };

    let invitation_row = move |i: Value| {
        let id = text(&i, "id");
        let on_revoke = move |_| {
            run(
                "DELETE",
                format!("/api/v1/members/invitations/{id}"),
                None,
                outcome,
                reload,
                move |_| outcome.set(Some(Outcome::Done("Invitation withdrawn.".into()))),
            );
        };
        let expired = i.get("expired").and_then(Value::as_bool).unwrap_or(false);
        view! {
            <tr>
                <td>{text(&i, "email")}</td>
                <td>{text(&i, "role")}</td>
                <td>{if expired { "expired".to_string() } else { format!("until {}", text(&i, "expires_at")) }}</td>
                <td><button type="button" class="link danger" on:click=on_revoke>"Withdraw"</button></td>
            </tr>
        }
    };

    view! {
        {outcome_view(outcome)}
        <table class="data">
            <thead><tr><th>"E-mail"</th><th>"Name"</th><th>"Role"</th><th></th></tr></thead>
            <tbody>
                {loaded(members, move |v| rows(&v).into_iter().map(member_row).collect_view())}
            </tbody>
        </table>
        <p class="muted">"Admins manage numbers, templates, members, tokens and data; agents work the inbox and contacts. A workspace always keeps one admin."</p>

        <h2>"Invite someone"</h2>
        <form class="inline-form" on:submit=on_invite>
            <label for="invite-email">"E-mail"</label>
            <input id="invite-email" type="email" required prop:value=move || email.get()
                on:input=move |ev| email.set(event_target_value(&ev)) />
            <label for="invite-role">"Role"</label>
            <select id="invite-role" on:change=move |ev| role.set(event_target_value(&ev))>
                <option value="agent" selected=true>"agent"</option>
                <option value="admin">"admin"</option>
            </select>
            <button type="submit" class="primary">"Create invitation link"</button>
        </form>
        {move || link.get().map(|url| view! {
            <div class="secret-once" role="status">
                <p>"Send this link to the person. It works once, for that e-mail address, for 7 days:"</p>
                <input readonly class="invite-link" prop:value=url />
            </div>
        })}

        <h2>"Open invitations"</h2>
        <table class="data">
            <thead><tr><th>"E-mail"</th><th>"Role"</th><th>"Valid"</th><th></th></tr></thead>
            <tbody>
                {loaded(invitations, move |v| rows(&v).into_iter().map(invitation_row).collect_view())}
            </tbody>
        </table>
    }
}
