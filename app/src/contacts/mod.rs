//! `/contacts`: search and filters, create and edit, delete after confirmation, the CSV import
//! dialog (preview with column mapping, live progress of the server-side job, errors file) and
//! the export link. The browser calls the JSON API with its session cookie.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use serde_json::{json, Map, Value};

use crate::api_client::{self as api, text, Body};
use crate::auth::{RequireSession, SessionInfo};
use crate::layout::AppLayout;

/// Whether the signed-in member is an admin of the current workspace.
pub fn is_admin(s: &SessionInfo) -> bool {
    let current = s.current_workspace.as_ref();
    s.workspaces
        .iter()
        .find(|w| Some(&w.id) == current)
        .or(s.workspaces.first())
        .is_some_and(|w| w.role == "admin")
}

#[component]
pub fn ContactsPage() -> impl IntoView {
    view! {
        <Title text="Contacts" />
        <RequireSession children=|session| {
            let admin = is_admin(&session);
            view! { <AppLayout session><Contacts admin /></AppLayout> }
        } />
    }
}

#[derive(Clone, Copy)]
struct Filters {
    q: RwSignal<String>,
    label: RwSignal<String>,
    attribute: RwSignal<String>,
    open: RwSignal<String>,
}

impl Filters {
    fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", self.q.get_untracked()),
            ("label", self.label.get_untracked()),
            ("attribute", self.attribute.get_untracked()),
            ("has_open_conversation", self.open.get_untracked()),
        ] {
            if !v.trim().is_empty() {
                parts.push(format!("{k}={}", api::encode(v.trim())));
            }
        }
        parts.join("&")
    }
}

#[component]
fn Contacts(admin: bool) -> impl IntoView {
    let filters = Filters {
        q: RwSignal::new(String::new()),
        label: RwSignal::new(String::new()),
        attribute: RwSignal::new(String::new()),
        open: RwSignal::new(String::new()),
    };
    let rows = RwSignal::new(Vec::<Value>::new());
    let next = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let labels = RwSignal::new(Vec::<Value>::new());
    let editing = RwSignal::new(None::<Value>);
    let importing = RwSignal::new(false);

    let load = move |more: bool| {
        let mut path = format!("/api/v1/contacts?limit=50&{}", filters.query());
        if more {
            match next.get_untracked() {
                Some(c) => path.push_str(&format!("&cursor={}", api::encode(&c))),
                None => return,
            }
        }
        spawn_local(async move {
            match api::get(&path).await {
                Ok(v) => {
                    let page = v["data"].as_array().cloned().unwrap_or_default();
                    if more {
                        rows.update(|r| r.extend(page));
                    } else {
                        rows.set(page);
                    }
                    next.set(v["next_cursor"].as_str().map(str::to_string));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
            if let Ok(l) = api::get("/api/v1/contacts/labels").await {
                labels.set(l["data"].as_array().cloned().unwrap_or_default());
            }
        });
    };
    Effect::new(move |_| load(false));

    let delete = move |c: Value| {
        let name = display_name(&c);
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&format!("Delete {name} with all their conversations and messages? This cannot be undone.")).ok())
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        let id = text(&c, "id");
        spawn_local(async move {
            match api::call("DELETE", &format!("/api/v1/contacts/{id}"), Body::None).await {
                Ok(_) => rows.update(|r| r.retain(|x| x["id"] != id.as_str())),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let export_href = move || {
        filters.q.track();
        filters.label.track();
        filters.attribute.track();
        filters.open.track();
        format!("/api/v1/contacts/export.csv?{}", filters.query())
    };

    let head = view! {
            <header class="page-head">
                <h1>"Contacts"</h1>
                <span class="spacer"></span>
                <button type="button" class="primary" on:click=move |_| editing.set(Some(Value::Null))>"New contact"</button>
                {admin.then(|| view! {
                    <button type="button" on:click=move |_| importing.set(true)>"Import CSV"</button>
                    <a class="button" href=export_href download="contacts.csv">"Export CSV"</a>
                })}
            </header>
    }
    .into_any();
    let filter_form = view! {
            <form class="filters" on:submit=move |ev| { ev.prevent_default(); load(false); }>
                <input type="search" placeholder="Search name or phone" aria-label="Search"
                    prop:value=move || filters.q.get() on:input=move |ev| filters.q.set(event_target_value(&ev)) />
                <select aria-label="Label" on:change=move |ev| { filters.label.set(event_target_value(&ev)); load(false); }>
                    <option value="">"Any label"</option>
                    {move || labels.get().into_iter().map(|l| {
                        let name = text(&l, "label");
                        view! { <option value=name.clone()>{format!("{name} ({})", text(&l, "contacts"))}</option> }
                    }).collect_view()}
                </select>
                <input type="text" placeholder="Attribute: key or key:value" aria-label="Attribute"
                    prop:value=move || filters.attribute.get() on:input=move |ev| filters.attribute.set(event_target_value(&ev)) />
                <select aria-label="Open conversation" on:change=move |ev| { filters.open.set(event_target_value(&ev)); load(false); }>
                    <option value="">"Any conversation"</option>
                    <option value="true">"Has an open conversation"</option>
                    <option value="false">"No open conversation"</option>
                </select>
                <button type="submit">"Search"</button>
            </form>
    }
    .into_any();
    let table = view! {
            <table class="list">
                <thead><tr><th>"Name"</th><th>"Phone"</th><th>"Labels"</th><th>"Attributes"</th><th></th></tr></thead>
                <tbody>
                    {move || rows.get().into_iter().map(|c| {
                        let (edit_c, del_c) = (c.clone(), c.clone());
                        let attrs = c["attributes"].as_object().map(|o| o.iter().map(|(k, v)| format!("{k}: {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect::<Vec<_>>().join(", ")).unwrap_or_default();
                        let tags = c["labels"].as_array().cloned().unwrap_or_default();
                        view! {
                            <tr>
                                <td>{display_name(&c)}{c["username"].as_str().map(|u| view! { <span class="muted">{format!(" @{u}")}</span> })}</td>
                                <td>{text(&c, "phone")}{c["bsuid"].as_str().map(|b| view! { <div class="muted small">{format!("BSUID {b}")}</div> })}</td>
                                <td>{tags.into_iter().map(|t| view! { <span class="tag">{t.as_str().unwrap_or_default().to_string()}</span> }).collect_view()}</td>
                                <td class="muted small">{attrs}</td>
                                <td class="actions">
                                    <button type="button" class="link" on:click=move |_| editing.set(Some(edit_c.clone()))>"Edit"</button>
                                    <button type="button" class="link danger" on:click=move |_| delete(del_c.clone())>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
    }
    .into_any();
    view! {
        <section class="contacts">
            {head}
            {filter_form}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {table}
            {move || (rows.with(Vec::is_empty) && error.get().is_none()).then(|| view! { <p class="muted">"No contacts match."</p> })}
            {move || next.get().map(|_| view! { <button type="button" on:click=move |_| load(true)>"Load more"</button> })}
            {move || editing.get().map(|c| view! { <ContactForm contact=c on_done=move |changed| { editing.set(None); if changed { load(false); } } /> })}
            {move || importing.get().then(|| view! { <ImportDialog on_close=move || { importing.set(false); load(false); } /> })}
        </section>
    }
    .into_any()
}

fn display_name(c: &Value) -> String {
    [text(c, "name"), text(c, "profile_name"), text(c, "phone")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "Unnamed".into())
}

/// `key=value` lines ↔ an attributes object.
fn attributes_text(c: &Value) -> String {
    c["attributes"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[component]
fn ContactForm(
    contact: Value,
    on_done: impl Fn(bool) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = contact["id"].as_str().map(str::to_string);
    let phone = RwSignal::new(text(&contact, "phone"));
    let name = RwSignal::new(text(&contact, "name"));
    let labels = RwSignal::new(
        contact["labels"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    );
    let original = attributes_text(&contact);
    let attributes = RwSignal::new(original.clone());
    let error = RwSignal::new(None::<String>);
    let title = if id.is_some() {
        "Edit contact"
    } else {
        "New contact"
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut attrs = Map::new();
        for line in attributes.get_untracked().lines() {
            if let Some((k, v)) = line.split_once('=') {
                attrs.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
        }
        // Keys removed from the text are removed from the contact.
        for line in original.lines() {
            if let Some((k, _)) = line.split_once('=') {
                attrs.entry(k.trim().to_string()).or_insert(Value::Null);
            }
        }
        let tags: Vec<String> = labels
            .get_untracked()
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let name = name.get_untracked();
        let body = json!({"phone": phone.get_untracked(), "name": if name.trim().is_empty() { Value::Null } else { Value::String(name) },
            "labels": tags, "attributes": attrs});
        let id = id.clone();
        spawn_local(async move {
            let result = match &id {
                Some(id) => {
                    api::call("PATCH", &format!("/api/v1/contacts/{id}"), Body::Json(body)).await
                }
                None => {
                    let mut body = body;
                    if let Some(a) = body["attributes"].as_object_mut() {
                        a.retain(|_, v| !v.is_null());
                    }
                    api::call("POST", "/api/v1/contacts", Body::Json(body)).await
                }
            };
            match result {
                Ok(_) => on_done(true),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <div class="modal" role="dialog" aria-modal="true" aria-label=title>
            <form class="card" on:submit=save>
                <h2>{title}</h2>
                <label for="c-phone">"Phone (with country code)"</label>
                <input id="c-phone" type="tel" required placeholder="+62 812 3456 7890" prop:value=move || phone.get() on:input=move |ev| phone.set(event_target_value(&ev)) />
                <label for="c-name">"Name"</label>
                <input id="c-name" type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                <label for="c-labels">"Labels (comma-separated)"</label>
                <input id="c-labels" type="text" prop:value=move || labels.get() on:input=move |ev| labels.set(event_target_value(&ev)) />
                <label for="c-attrs">"Attributes (one key=value a line)"</label>
                <textarea id="c-attrs" rows="4" prop:value=move || attributes.get() on:input=move |ev| attributes.set(event_target_value(&ev))></textarea>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <div class="actions">
                    <button type="button" on:click=move |_| on_done(false)>"Cancel"</button>
                    <button type="submit" class="primary">"Save"</button>
                </div>
            </form>
        </div>
    }
    .into_any()
}

/// Mapping targets offered for a column.
fn target_options(headers: &[String]) -> Vec<(String, String)> {
    let mut out = vec![
        ("".to_string(), "Skip".to_string()),
        ("phone".into(), "Phone".into()),
        ("name".into(), "Name".into()),
        ("labels".into(), "Labels".into()),
    ];
    for h in headers {
        let key: String = h
            .trim_start_matches("attr:")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        out.push((format!("attr:{key}"), format!("Attribute “{key}”")));
    }
    out
}

#[component]
fn ImportDialog(on_close: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let file_input = NodeRef::<leptos::html::Input>::new();
    let preview = RwSignal::new(None::<Value>);
    // Column header → target.
    let columns = RwSignal::new(BTreeMap::<String, String>::new());
    let country = RwSignal::new(String::new());
    let extra_labels = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let jobs = RwSignal::new(Vec::<Value>::new());

    let refresh = move || {
        spawn_local(async move {
            if let Ok(v) = api::get("/api/v1/contacts/imports").await {
                jobs.set(v["data"].as_array().cloned().unwrap_or_default());
            }
        })
    };
    // Jobs run on the server: the list (and each bar) comes back after a reload.
    refresh();
    let poll = set_interval_with_handle(
        move || {
            if jobs.with_untracked(|j| {
                j.iter()
                    .any(|x| x["state"] == "queued" || x["state"] == "running")
            }) {
                refresh();
            }
        },
        std::time::Duration::from_millis(700),
    )
    .ok();
    on_cleanup(move || {
        if let Some(p) = poll {
            p.clear();
        }
    });

    let file = move || -> Option<web_sys::File> { file_input.get_untracked()?.files()?.get(0) };
    let on_file = move |_| {
        let Some(f) = file() else { return };
        let head = f.slice_with_i32_and_i32(0, 256 * 1024);
        spawn_local(async move {
            let Ok(head) = head else { return };
            match api::call("POST", "/api/v1/contacts/imports/preview", Body::Csv(head)).await {
                Ok(p) => {
                    let mut cols = BTreeMap::new();
                    if let Some(m) = p["mapping"].as_object() {
                        for (target, header) in m {
                            cols.insert(
                                header.as_str().unwrap_or_default().to_string(),
                                target.clone(),
                            );
                        }
                    }
                    columns.set(cols);
                    preview.set(Some(p));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let start = move |_| {
        let Some(f) = file() else { return };
        let mapping: Map<String, Value> = columns
            .get_untracked()
            .into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(h, t)| (t, Value::String(h)))
            .collect();
        let Ok(form) = web_sys::FormData::new() else {
            return;
        };
        let _ = form.append_with_blob_and_filename("file", &f, &f.name());
        let _ = form.append_with_str("mapping", &Value::Object(mapping).to_string());
        let _ = form.append_with_str("default_country", &country.get_untracked());
        let _ = form.append_with_str("labels", &extra_labels.get_untracked());
        spawn_local(async move {
            match api::call("POST", "/api/v1/contacts/imports", Body::Form(form)).await {
                Ok(job) => {
                    jobs.update(|j| j.insert(0, job));
                    preview.set(None);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <div class="modal" role="dialog" aria-modal="true" aria-label="Import contacts">
            <div class="card wide">
                <h2>"Import contacts from CSV"</h2>
                <p class="muted">"Rows are matched by phone number: existing contacts are updated, new ones created. Invalid rows are listed in an errors file."</p>
                <input type="file" accept=".csv,text/csv" node_ref=file_input on:change=on_file aria-label="CSV file" />
                {move || preview.get().map(|p| {
                    let headers: Vec<String> = p["headers"].as_array().map(|h| h.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default();
                    let options = target_options(&headers);
                    let rows = p["rows"].as_array().cloned().unwrap_or_default();
                    view! {
                        <div class="preview">
                            <table class="list">
                                <thead>
                                    <tr>{headers.iter().map(|h| {
                                        let h = h.clone();
                                        let current = columns.with_untracked(|c| c.get(&h).cloned().unwrap_or_default());
                                        let (h2, opts) = (h.clone(), options.clone());
                                        view! {
                                            <th>
                                                <div>{h.clone()}</div>
                                                <select aria-label=format!("Column {h}") on:change=move |ev| { let v = event_target_value(&ev); columns.update(|c| { c.insert(h2.clone(), v); }); }>
                                                    {opts.into_iter().map(|(value, label)| {
                                                        let selected = value == current;
                                                        view! { <option value=value selected=selected>{label}</option> }
                                                    }).collect_view()}
                                                </select>
                                            </th>
                                        }
                                    }).collect_view()}</tr>
                                </thead>
                                <tbody>{rows.into_iter().map(|r| view! {
                                    <tr>{r.as_array().cloned().unwrap_or_default().into_iter().map(|c| view! { <td>{c.as_str().unwrap_or_default().to_string()}</td> }).collect_view()}</tr>
                                }).collect_view()}</tbody>
                            </table>
                            <label for="i-country">"Default country for numbers without +code (such as ID)"</label>
                            <input id="i-country" type="text" maxlength="2" prop:value=move || country.get() on:input=move |ev| country.set(event_target_value(&ev)) />
                            <label for="i-labels">"Add labels to every contact (comma-separated)"</label>
                            <input id="i-labels" type="text" prop:value=move || extra_labels.get() on:input=move |ev| extra_labels.set(event_target_value(&ev)) />
                            <div class="actions"><button type="button" class="primary" on:click=start>"Import"</button></div>
                        </div>
                    }
                    .into_any()
                })}
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <h2>"Imports"</h2>
                {move || jobs.get().into_iter().take(5).map(|j| {
                    let total = j["total"].as_i64().unwrap_or(0).max(1);
                    let processed = j["processed"].as_i64().unwrap_or(0);
                    let pct = (processed * 100 / total).min(100);
                    view! {
                        <div class="job">
                            <div>{text(&j, "filename")} " — " {text(&j, "state")} " — "
                                {format!("{processed} of {} rows: {} created, {} updated, {} failed", j["total"], j["created"], j["updated"], j["failed"])}
                            </div>
                            <progress max="100" value=pct.to_string() aria-label="Import progress"></progress>
                            {(j["failed"].as_i64().unwrap_or(0) > 0).then(|| view! { <a href=text(&j, "errors_url") download="import-errors.csv">"Download the rows that failed"</a> })}
                            {j["error"].as_str().map(|e| view! { <p class="error">{e.to_string()}</p> })}
                        </div>
                    }
                }).collect_view()}
                <div class="actions"><button type="button" on:click=move |_| on_close()>"Close"</button></div>
            </div>
        </div>
    }
    .into_any()
}
