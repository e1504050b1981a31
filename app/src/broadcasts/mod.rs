//! `/broadcasts`: the list with live progress, a form for a new broadcast (number, approved
//! template, a source per variable, audience, time), and cancel. Admin only.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use serde_json::{json, Map, Value};

use crate::api_client::{self as api, text, Body};
use crate::auth::RequireSession;
use crate::contacts::is_admin;
use crate::layout::AppLayout;

#[component]
pub fn BroadcastsPage() -> impl IntoView {
    view! {
        <Title text="Broadcasts" />
        <RequireSession children=|session| {
            let admin = is_admin(&session);
            view! {
                <AppLayout session>
                    {if admin {
                        view! { <Broadcasts /> }.into_any()
                    } else {
                        view! { <p class="notice">"Only workspace admins send broadcasts."</p> }.into_any()
                    }}
                </AppLayout>
            }
        } />
    }
}

/// The `{{…}}` variables of a template's body (and `header:` ones of a text header).
fn template_variables(t: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in t["components"].as_array().cloned().unwrap_or_default() {
        let kind = text(&c, "type").to_ascii_lowercase();
        let prefix = match kind.as_str() {
            "body" => "",
            "header"
                if c["format"]
                    .as_str()
                    .is_none_or(|f| f.eq_ignore_ascii_case("text")) =>
            {
                "header:"
            }
            _ => continue,
        };
        let body = text(&c, "text");
        let mut rest = body.as_str();
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else { break };
            let v = format!("{prefix}{}", after[..j].trim());
            if !out.contains(&v) {
                out.push(v);
            }
            rest = &after[j + 2..];
        }
    }
    out
}

#[component]
fn Broadcasts() -> impl IntoView {
    let list = RwSignal::new(Vec::<Value>::new());
    let error = RwSignal::new(None::<String>);
    let creating = RwSignal::new(false);
    let refresh = move || {
        spawn_local(async move {
            match api::get("/api/v1/broadcasts?limit=20").await {
                Ok(v) => list.set(v["data"].as_array().cloned().unwrap_or_default()),
                Err(e) => error.set(Some(e)),
            }
        })
    };
    Effect::new(move |_| refresh());
    let poll = set_interval_with_handle(
        move || {
            if list.with_untracked(|l| {
                l.iter()
                    .any(|b| b["state"] == "sending" || b["state"] == "scheduled")
            }) {
                refresh();
            }
        },
        std::time::Duration::from_millis(1000),
    )
    .ok();
    on_cleanup(move || {
        if let Some(p) = poll {
            p.clear();
        }
    });
    let cancel = move |id: String| {
        let ok = web_sys::window()
            .and_then(|w| {
                w.confirm_with_message(
                    "Cancel this broadcast? Messages not sent yet will not be sent.",
                )
                .ok()
            })
            .unwrap_or(false);
        if ok {
            spawn_local(async move {
                if let Err(e) = api::call(
                    "POST",
                    &format!("/api/v1/broadcasts/{id}/cancel"),
                    Body::Json(json!({})),
                )
                .await
                {
                    error.set(Some(e));
                }
                refresh();
            });
        }
    };
    view! {
        <section class="broadcasts">
            <header class="page-head">
                <h1>"Broadcasts"</h1>
                <span class="spacer"></span>
                <button type="button" class="primary" on:click=move |_| creating.set(true)>"New broadcast"</button>
            </header>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || creating.get().then(|| view! { <NewBroadcast on_done=move || { creating.set(false); refresh(); } /> })}
            {move || list.get().into_iter().map(|b| {
                let p = b["progress"].clone();
                let n = |k: &str| p[k].as_i64().unwrap_or(0);
                let total = b["total"].as_i64().unwrap_or(0).max(1);
                let out = n("sent") + n("delivered") + n("read");
                let done = out + n("failed") + n("skipped") + n("cancelled");
                let id = text(&b, "id");
                let live = b["state"] == "sending" || b["state"] == "scheduled";
                view! {
                    <article class="card broadcast">
                        <h2>{text(&b, "name")} " " <span class="tag">{text(&b, "state")}</span></h2>
                        <p class="muted">{format!("{} contacts · template {} ({}) · {}", b["total"], text(&b["template"], "name"), text(&b["template"], "language"), text(&b, "scheduled_at"))}</p>
                        <progress max=total.to_string() value=done.to_string() aria-label="Broadcast progress"></progress>
                        <p>{format!("queued {} · sent {} · delivered {} · read {} · failed {} · skipped {} · cancelled {}",
                            n("queued"), n("sent"), n("delivered"), n("read"), n("failed"), n("skipped"), n("cancelled"))}</p>
                        <ul class="failures">{b["failures"].as_array().cloned().unwrap_or_default().into_iter().map(|f| view! {
                            <li>{format!("{} × {}", f["count"], text(&f, "reason"))}</li>
                        }).collect_view()}</ul>
                        {live.then(|| view! { <button type="button" on:click=move |_| cancel(id.clone())>"Cancel"</button> })}
                    </article>
                }
                .into_any()
            }).collect_view()}
        </section>
    }
    .into_any()
}

#[component]
fn NewBroadcast(on_done: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let numbers = RwSignal::new(Vec::<Value>::new());
    let templates = RwSignal::new(Vec::<Value>::new());
    let labels = RwSignal::new(Vec::<Value>::new());
    let number = RwSignal::new(String::new());
    let template = RwSignal::new(None::<Value>);
    let sources = RwSignal::new(Map::<String, Value>::new());
    let audience_kind = RwSignal::new("label".to_string());
    let audience_value = RwSignal::new(String::new());
    let when = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    spawn_local(async move {
        if let Ok(v) = api::get("/api/v1/numbers").await {
            let list = v["data"].as_array().cloned().unwrap_or_default();
            if let Some(first) = list.first() {
                number.set(text(first, "id"));
            }
            numbers.set(list);
        }
        if let Ok(v) = api::get("/api/v1/templates").await {
            templates.set(
                v["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| t["status"] == "APPROVED")
                    .collect(),
            );
        }
        if let Ok(v) = api::get("/api/v1/contacts/labels").await {
            labels.set(v["data"].as_array().cloned().unwrap_or_default());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(t) = template.get_untracked() else {
            error.set(Some("Choose a template.".into()));
            return;
        };
        let value = audience_value.get_untracked();
        let audience = match audience_kind.get_untracked().as_str() {
            "all" => json!({"all": true}),
            "attribute" => json!({"attribute": value}),
            _ => json!({"label": value}),
        };
        let mut body = json!({"number_id": number.get_untracked(), "template": {"name": t["name"], "language": t["language"]},
            "variables": Value::Object(sources.get_untracked()), "audience": audience});
        // A local time from the picker, sent as UTC.
        let local = when.get_untracked();
        if !local.is_empty() {
            let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&local)).get_time();
            if ms.is_finite() {
                body["scheduled_at"] =
                    Value::String(js_sys::Date::new(&ms.into()).to_iso_string().into());
            }
        }
        spawn_local(async move {
            match api::call("POST", "/api/v1/broadcasts", Body::Json(body)).await {
                Ok(_) => on_done(),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <form class="card" on:submit=submit>
            <h2>"New broadcast"</h2>
            <label for="b-number">"From number"</label>
            <select id="b-number" on:change=move |ev| number.set(event_target_value(&ev))>
                {move || numbers.get().into_iter().map(|n| view! { <option value=text(&n, "id")>{format!("{} {}", text(&n, "display_phone"), text(&n, "verified_name"))}</option> }).collect_view()}
            </select>
            <label for="b-template">"Approved template"</label>
            <select id="b-template" on:change=move |ev| {
                let i: usize = event_target_value(&ev).parse().unwrap_or(usize::MAX);
                let t = templates.with_untracked(|l| l.get(i).cloned());
                sources.set(t.as_ref().map(|t| template_variables(t).into_iter().map(|v| (v, Value::String("name".into()))).collect()).unwrap_or_default());
                template.set(t);
            }>
                <option value="">"Choose…"</option>
                {move || templates.get().into_iter().enumerate().map(|(i, t)| view! { <option value=i.to_string()>{format!("{} ({})", text(&t, "name"), text(&t, "language"))}</option> }).collect_view()}
            </select>
            {move || sources.get().into_iter().map(|(var, src)| {
                let v2 = var.clone();
                view! {
                    <label>{format!("{{{{{var}}}}} from")}</label>
                    <input type="text" placeholder="name, phone or attr:key" prop:value=src.as_str().unwrap_or_default().to_string()
                        on:change=move |ev| { let value = event_target_value(&ev); sources.update(|s| { s.insert(v2.clone(), Value::String(value)); }); } />
                }
            }).collect_view()}
            <label for="b-audience">"Audience"</label>
            <select id="b-audience" on:change=move |ev| audience_kind.set(event_target_value(&ev))>
                <option value="label">"Contacts with the label"</option>
                <option value="attribute">"Contacts with the attribute (key:value)"</option>
                <option value="all">"All contacts"</option>
            </select>
            {move || (audience_kind.get() != "all").then(|| view! {
                <input type="text" list="b-labels" aria-label="Label or attribute" prop:value=move || audience_value.get() on:input=move |ev| audience_value.set(event_target_value(&ev)) />
                <datalist id="b-labels">{labels.get().into_iter().map(|l| view! { <option value=text(&l, "label") /> }).collect_view()}</datalist>
            })}
            <label for="b-when">"Send at (empty: now)"</label>
            <input id="b-when" type="datetime-local" prop:value=move || when.get() on:input=move |ev| when.set(event_target_value(&ev)) />
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button type="button" on:click=move |_| on_done()>"Cancel"</button>
                <button type="submit" class="primary">"Send"</button>
            </div>
        </form>
    }
    .into_any()
}
