//! WhatsApp numbers (admins): connect by WABA id, phone number id and access token; display
//! number, quality and messaging tier; the webhook settings for Meta's dashboard; a health
//! check; replacing a token.

use leptos::prelude::*;
use serde_json::{json, Value};

use super::client::{rows, text};
use super::{list_resource, loaded, outcome_view, run, Outcome};

#[component]
pub fn Numbers() -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let numbers = list_resource("/api/v1/numbers", reload);
    let setup = list_resource("/api/v1/numbers/setup", reload);
    let waba = RwSignal::new(String::new());
    let pnid = RwSignal::new(String::new());
    let token = RwSignal::new(String::new());

    let on_connect = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({
            "waba_id": waba.get_untracked(),
            "phone_number_id": pnid.get_untracked(),
            "access_token": token.get_untracked(),
        });
        run(
            "POST",
            "/api/v1/numbers".into(),
            Some(body),
            outcome,
            reload,
            move |v| {
                token.set(String::new());
                let note = if v.get("subscribed").and_then(Value::as_bool) == Some(true) {
                    "Number connected, and the app subscribed to its account's webhooks."
                } else {
                    "Number connected, but subscribing the app to its account's webhooks failed: run the health check."
                };
                outcome.set(Some(Outcome::Done(note.into())));
            },
        );
    };

    view! {
        {outcome_view(outcome)}
        <table class="data numbers">
            <thead><tr><th>"Number"</th><th>"Name"</th><th>"Quality"</th><th>"Messaging tier"</th><th>"Ids"</th><th></th></tr></thead>
            <tbody>
                {loaded(numbers, move |v| rows(&v).into_iter().map(|n| view! { <NumberRow n outcome reload /> }).collect_view())}
            </tbody>
        </table>

        <h2>"Webhook settings for Meta"</h2>
        {loaded(setup, |s| {
            let verify = match text(&s, "verify_token") {
                t if t.is_empty() => "(not set: set META_VERIFY_TOKEN and restart)".to_string(),
                t => t,
            };
            view! {
                <p class="muted">"In Meta's App Dashboard → WhatsApp → Configuration, paste:"</p>
                <dl class="facts">
                    <dt>"Callback URL"</dt><dd><code class="webhook-url">{text(&s, "webhook_url")}</code></dd>
                    <dt>"Verify token"</dt><dd><code class="verify-token">{verify}</code></dd>
                </dl>
            }
        })}

        <h2>"Connect a number"</h2>
        <form class="inline-form" on:submit=on_connect>
            <label for="waba-id">"WhatsApp Business Account id"</label>
            <input id="waba-id" required inputmode="numeric" prop:value=move || waba.get()
                on:input=move |ev| waba.set(event_target_value(&ev)) />
            <label for="phone-number-id">"Phone number id"</label>
            <input id="phone-number-id" required inputmode="numeric" prop:value=move || pnid.get()
                on:input=move |ev| pnid.set(event_target_value(&ev)) />
            <label for="access-token">"Access token"</label>
            <input id="access-token" type="password" required autocomplete="off" prop:value=move || token.get()
                on:input=move |ev| token.set(event_target_value(&ev)) />
            <p class="muted">"A System User token with whatsapp_business_messaging and whatsapp_business_management. It is checked with Meta, stored encrypted and never shown again."</p>
            <button type="submit" class="primary">"Connect"</button>
        </form>
    }
}

/// One number: its facts, a health check and a token replacement.
#[component]
fn NumberRow(n: Value, outcome: RwSignal<Option<Outcome>>, reload: RwSignal<u32>) -> impl IntoView {
    let id = text(&n, "id");
    let health = RwSignal::new(None::<Value>);
    let new_token = RwSignal::new(String::new());
    let (id_health, id_token) = (id.clone(), id.clone());
    // Not through `run`: a reload would redraw this row and drop the answer.
    let on_health = move |_| {
        let path = format!("/api/v1/numbers/{id_health}/health");
        leptos::task::spawn_local(async move {
            match super::client::get(&path).await {
                Ok(v) => health.set(Some(v)),
                Err(e) => outcome.set(Some(Outcome::Failed(e))),
            }
        });
    };
    let on_replace = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"access_token": new_token.get_untracked()});
        run(
            "PATCH",
            format!("/api/v1/numbers/{id_token}"),
            Some(body),
            outcome,
            reload,
            move |_| {
                new_token.set(String::new());
                outcome.set(Some(Outcome::Done("Access token replaced.".into())));
            },
        );
    };
    let or_dash = |s: String| if s.is_empty() { "—".to_string() } else { s };
    view! {
        <tr>
            <td class="display-phone">{or_dash(text(&n, "display_phone"))}</td>
            <td>{or_dash(text(&n, "verified_name"))}</td>
            <td class="quality">{or_dash(text(&n, "quality_rating"))}</td>
            <td class="tier">{or_dash(text(&n, "messaging_tier"))}</td>
            <td class="muted">"WABA " {text(&n, "waba_id")} <br /> "number " {text(&n, "phone_number_id")}</td>
            <td><button type="button" on:click=on_health>"Check health"</button></td>
        </tr>
        <tr class="number-details">
            <td colspan="6">
                {move || health.get().map(|h| view! {
                    <ul class="health">
                        {rows(&json!({"data": h.get("checks").cloned().unwrap_or_default()})).into_iter().map(|c| {
                            let ok = c.get("ok").and_then(Value::as_bool).unwrap_or(false);
                            view! {
                                <li class={if ok { "check ok" } else { "check failed" }}>
                                    <strong>{if ok { "✓ " } else { "✗ " }} {text(&c, "name")}</strong> ": " {text(&c, "message")}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                })}
                <form class="inline-form replace-token" on:submit=on_replace>
                    <label>"Replace access token"
                        <input type="password" required autocomplete="off" prop:value=move || new_token.get()
                            on:input=move |ev| new_token.set(event_target_value(&ev)) />
                    </label>
                    <button type="submit">"Replace"</button>
                </form>
            </td>
        </tr>
    }
}
