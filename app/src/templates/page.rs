//! `/templates` (admins): the list per WhatsApp Business Account with filters and live status,
//! "Sync now", edit (within Meta's limits) and delete with confirmation, and the builder with
//! Meta's rules checked while typing and a live preview.

use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::{json, Value};

use super::api::{self, TemplateItem};
use super::preview::TemplatePreview;
use super::validate::{
    self, is_named, variables, Button, Component, Example, NamedExample, TemplateDraft,
};
use crate::auth::{RequireSession, SessionInfo};
use crate::layout::AppLayout;
use crate::live_load::LiveDuringLoad;

#[component]
pub fn TemplatesPage() -> impl IntoView {
    view! {
        <Title text="Templates" />
        <RequireSession children=|session: SessionInfo| {
            let admin = session
                .current_workspace
                .as_ref()
                .and_then(|w| session.workspaces.iter().find(|x| &x.id == w))
                .or(session.workspaces.first())
                .is_some_and(|w| w.role == "admin");
            view! {
                <AppLayout session>
                    {if admin {
                        view! { <TemplatesAdmin /> }.into_any()
                    } else {
                        view! {
                            <section class="card">
                                <h1>"Templates"</h1>
                                <p class="muted">"Only workspace admins manage message templates."</p>
                            </section>
                        }
                            .into_any()
                    }}
                </AppLayout>
            }
        } />
    }
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn apply_event(rows: RwSignal<Vec<TemplateItem>>, data: Value) {
    let Some(id) = data.get("id").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    match serde_json::from_value::<TemplateItem>(data) {
        Ok(item) => rows.update(|r| match r.iter_mut().find(|x| x.id == id) {
            Some(existing) => *existing = item,
            None => r.push(item),
        }),
        // Only the id: the template is gone.
        Err(_) => rows.update(|r| r.retain(|x| x.id != id)),
    }
}

#[component]
fn TemplatesAdmin() -> impl IntoView {
    let rows = RwSignal::new(Vec::<TemplateItem>::new());
    let loaded = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let status_filter = RwSignal::new(String::new());
    let category_filter = RwSignal::new(String::new());
    let language_filter = RwSignal::new(String::new());
    let show_samples = RwSignal::new(false);
    let syncing = RwSignal::new(false);
    // The template the builder is editing (None: the builder creates a new one).
    let editing = RwSignal::new(None::<TemplateItem>);

    // Live events that arrived while a list was on its way: the list may predate them (its
    // query ran before Meta's change), so they are applied again on top of it (else an
    // approval arriving during the reload after a submit would show PENDING until the next).
    let in_flight = StoredValue::new(LiveDuringLoad::<Value>::default());
    let reload = move || {
        in_flight.update_value(LiveDuringLoad::start);
        leptos::task::spawn_local(async move {
            let result = api::list().await;
            let replay = in_flight
                .try_update_value(LiveDuringLoad::finish)
                .unwrap_or_default();
            match result {
                Ok(list) => {
                    rows.set(list);
                    for data in replay {
                        apply_event(rows, data);
                    }
                    loaded.set(true);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    Effect::new(move |_| reload());
    // Live status: each template.updated replaces (or removes) its row. Browser only: the
    // stream's handle is bound to the thread that made it, and on the server the page's
    // cleanup may run on another worker thread, where touching it panicked mid-response
    // (seen in `./x test`: the page cut off with ERR_INCOMPLETE_CHUNKED_ENCODING).
    #[cfg(feature = "hydrate")]
    {
        let source = StoredValue::new_local(None::<web_sys::EventSource>);
        Effect::new(move |_| {
            if source.with_value(Option::is_some) {
                return;
            }
            source.set_value(api::listen(move |data| {
                in_flight.update_value(|f| f.record(&data));
                apply_event(rows, data)
            }));
        });
        on_cleanup(move || {
            if let Some(s) = source.try_get_value().flatten() {
                s.close();
            }
        });
    }

    let sync_now = move |_| {
        syncing.set(true);
        notice.set(None);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::call("POST", "/api/v1/templates/sync", None).await {
                Ok(v) => {
                    notice.set(Some(format!(
                        "Synced {} templates from Meta.",
                        v.get("synced").and_then(Value::as_u64).unwrap_or(0)
                    )));
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
            syncing.set(false);
        });
    };

    let visible = Memo::new(move |_| {
        let (status, category, language) = (
            status_filter.get(),
            category_filter.get(),
            language_filter.get(),
        );
        let mut list: Vec<TemplateItem> = rows
            .get()
            .into_iter()
            .filter(|t| show_samples.get() || !t.sample)
            .filter(|t| status.is_empty() || t.status == status)
            .filter(|t| category.is_empty() || t.category.as_deref() == Some(category.as_str()))
            .filter(|t| language.is_empty() || t.language.starts_with(language.trim()))
            .collect();
        list.sort_by(|a, b| {
            (&a.waba_id, &a.name, &a.language).cmp(&(&b.waba_id, &b.name, &b.language))
        });
        list
    });
    let wabas = Memo::new(move |_| {
        let mut w: Vec<String> = visible.get().iter().map(|t| t.waba_id.clone()).collect();
        w.dedup();
        w
    });

    let delete = move |name: String, language: Option<String>| {
        let question = match &language {
            Some(l) => format!("Delete the {l} version of “{name}” at Meta? Its name cannot be reused for 30 days."),
            None => format!("Delete “{name}” in every language at Meta? Its name cannot be reused for 30 days."),
        };
        let confirmed = web_sys::window()
            .and_then(|w| w.confirm_with_message(&question).ok())
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        leptos::task::spawn_local(async move {
            let mut path = format!("/api/v1/templates/{name}");
            if let Some(l) = &language {
                path.push_str(&format!("?language={l}"));
            }
            match api::call("DELETE", &path, None).await {
                Ok(_) => {
                    notice.set(Some(format!("Deleted “{name}”.")));
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="templates">
            <header class="templates-head">
                <h1>"Message templates"</h1>
                <span class="spacer"></span>
                <button type="button" class="primary" on:click=sync_now disabled=move || syncing.get()>
                    {move || if syncing.get() { "Syncing…" } else { "Sync now" }}
                </button>
            </header>
            {move || notice.get().map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="templates-filters">
                <label>
                    "Status "
                    <select on:change=move |ev| status_filter.set(event_target_value(&ev))>
                        <option value="">"All"</option>
                        {["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "PENDING_DELETION"]
                            .into_iter()
                            .map(|s| view! { <option value=s>{s}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Category "
                    <select on:change=move |ev| category_filter.set(event_target_value(&ev))>
                        <option value="">"All"</option>
                        {validate::CATEGORIES
                            .into_iter()
                            .map(|c| view! { <option value=c>{c}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Language "
                    <input type="text" size="6" placeholder="en_US"
                        on:input=move |ev| language_filter.set(event_target_value(&ev)) />
                </label>
                <label>
                    <input type="checkbox" on:change=move |ev| show_samples.set(event_target_checked(&ev)) />
                    " Show Meta's samples"
                </label>
            </div>
            <Show when=move || loaded.get() fallback=|| view! { <p class="muted">"Loading templates…"</p> }>
                <Show when=move || !visible.get().is_empty()
                    fallback=|| view! { <p class="muted">"No templates match. Create one below, or sync from Meta."</p> }>
                    {move || wabas.get().into_iter().map(|waba| {
                        let items: Vec<TemplateItem> = visible.get().into_iter().filter(|t| t.waba_id == waba).collect();
                        view! {
                            <h2 class="waba-title">"WhatsApp Business Account " {waba.clone()}</h2>
                            <table class="templates-table">
                                <thead><tr>
                                    <th>"Name"</th><th>"Language"</th><th>"Category"</th><th>"Status"</th>
                                    <th>"Quality"</th><th>"Updated"</th><th></th>
                                </tr></thead>
                                <tbody>
                                    {items.into_iter().map(|t| {
                                        let (name, language) = (t.name.clone(), t.language.clone());
                                        let (name_all, status_class) = (t.name.clone(), format!("status status-{}", t.status.to_lowercase()));
                                        view! {
                                            <tr data-template=t.name.clone() data-language=t.language.clone()>
                                                <td>{t.name.clone()}</td>
                                                <td>{t.language.clone()}</td>
                                                <td>{t.category.clone().unwrap_or_default()}</td>
                                                <td>
                                                    <span class=status_class data-status=t.status.clone()>{t.status.clone()}</span>
                                                    {t.rejected_reason.clone().map(|r| view! { <div class="reason">{r}</div> })}
                                                    {t.rejection_recommendation.clone().map(|r| view! { <div class="muted">{r}</div> })}
                                                </td>
                                                <td>{t.quality_score.clone().unwrap_or_else(|| "—".into())}</td>
                                                <td><time>{t.updated_at.replace('T', " ").chars().take(16).collect::<String>()}</time></td>
                                                <td class="row-actions">
                                                    {editable(&t.status).then(|| {
                                                        let item = t.clone();
                                                        view! {
                                                            <button type="button" class="link" title=EDIT_RULES
                                                                on:click=move |_| {
                                                                    editing.set(Some(item.clone()));
                                                                    scroll_to_builder();
                                                                }>"Edit"</button>
                                                        }
                                                    })}
                                                    <button type="button" class="link" on:click=move |_| delete(name.clone(), Some(language.clone()))>"Delete"</button>
                                                    <button type="button" class="link" on:click=move |_| delete(name_all.clone(), None)>"Delete all languages"</button>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                    }).collect_view()}
                </Show>
            </Show>
            <Builder editing on_created=Callback::new(move |name: String| {
                notice.set(Some(format!("“{name}” was sent to Meta for review.")));
                reload();
            }) />
        </section>
    }
    .into_any()
}

/// Meta lets approved, rejected and paused templates be edited.
fn editable(status: &str) -> bool {
    matches!(status, "APPROVED" | "REJECTED" | "PAUSED")
}

const EDIT_RULES: &str = "Meta reviews an edited template again. An approved template keeps its category and can be edited once in 24 hours and ten times in 30 days; rejected and paused ones without limit.";

fn scroll_to_builder() {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("template-builder"))
    {
        el.scroll_into_view();
    }
}

/// Example values of a stored component, by variable name (positional: `1`, `2`, …).
fn stored_examples(c: &Component, header: bool) -> Vec<(String, String)> {
    let Some(e) = &c.example else {
        return Vec::new();
    };
    let (named, positional) = if header {
        (&e.header_text_named_params, e.header_text.clone())
    } else {
        (
            &e.body_text_named_params,
            e.body_text.as_ref().and_then(|rows| rows.first().cloned()),
        )
    };
    match named {
        Some(n) => n
            .iter()
            .map(|x| (x.param_name.clone(), x.example.clone()))
            .collect(),
        None => positional
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, v)| ((i + 1).to_string(), v))
            .collect(),
    }
}

impl ButtonDraft {
    fn from_meta(b: &Button) -> ButtonDraft {
        let example = match &b.example {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        ButtonDraft {
            kind: b.kind.clone(),
            text: b.text.clone().unwrap_or_default(),
            url: b.url.clone().unwrap_or_default(),
            phone: b.phone_number.clone().unwrap_or_default(),
            example,
        }
    }
}

/// One button being edited.
#[derive(Clone, Debug, Default, PartialEq)]
struct ButtonDraft {
    kind: String,
    text: String,
    url: String,
    phone: String,
    example: String,
}

impl ButtonDraft {
    fn to_meta(&self) -> Button {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
        let example = match self.kind.as_str() {
            "URL" if self.url.contains("{{") => some(&self.example).map(|e| json!([e])),
            "COPY_CODE" => some(&self.example).map(Value::String),
            _ => None,
        };
        Button {
            kind: self.kind.clone(),
            text: if self.kind == "COPY_CODE" {
                None
            } else {
                some(&self.text)
            },
            url: (self.kind == "URL").then(|| self.url.clone()),
            phone_number: (self.kind == "PHONE_NUMBER").then(|| self.phone.clone()),
            example,
            otp_type: None,
        }
    }
}

/// Example values for each variable of a text, kept by variable name.
fn example_inputs(
    label: &'static str,
    text: Signal<String>,
    values: RwSignal<Vec<(String, String)>>,
) -> impl IntoView {
    let names = Memo::new(move |_| {
        let mut names: Vec<String> = Vec::new();
        for v in variables(&text.get()).0 {
            if !names.contains(&v.name) {
                names.push(v.name);
            }
        }
        names
    });
    view! {
        {move || names.get().into_iter().map(|n| {
            let key = n.clone();
            let key2 = n.clone();
            view! {
                <label class="example">
                    {format!("{label} example for {{{{{n}}}}} ")}
                    <input type="text" aria-label=format!("{label} example {n}")
                        prop:value=move || values.get().iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap_or_default()
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            values.update(|all| match all.iter_mut().find(|(k, _)| *k == key2) {
                                Some(e) => e.1 = v,
                                None => all.push((key2.clone(), v)),
                            });
                        } />
                </label>
            }
        }).collect_view()}
    }
}

fn examples_for(text: &str, values: &[(String, String)]) -> Vec<(String, String)> {
    let mut names: Vec<String> = Vec::new();
    for v in variables(text).0 {
        if !names.contains(&v.name) {
            names.push(v.name);
        }
    }
    names
        .into_iter()
        .map(|n| {
            let value = values
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (n, value)
        })
        .collect()
}

#[component]
fn Builder(editing: RwSignal<Option<TemplateItem>>, on_created: Callback<String>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let language = RwSignal::new("en_US".to_string());
    let category = RwSignal::new("UTILITY".to_string());
    let format = RwSignal::new("positional".to_string());
    let header_kind = RwSignal::new(String::new());
    let header_text = RwSignal::new(String::new());
    let header_values = RwSignal::new(Vec::<(String, String)>::new());
    let header_handle = RwSignal::new(String::new());
    let body = RwSignal::new(String::new());
    let body_values = RwSignal::new(Vec::<(String, String)>::new());
    let footer = RwSignal::new(String::new());
    let buttons = RwSignal::new(Vec::<ButtonDraft>::new());
    let submitting = RwSignal::new(false);
    let uploading = RwSignal::new(false);
    let result = RwSignal::new(None::<Result<String, String>>);

    // Editing: the builder takes the stored template's content.
    Effect::new(move |_| {
        let Some(t) = editing.get() else {
            return;
        };
        let components: Vec<Component> =
            serde_json::from_value(t.components.clone()).unwrap_or_default();
        name.set(t.name.clone());
        language.set(t.language.clone());
        category.set(t.category.clone().unwrap_or_else(|| "UTILITY".into()));
        let named = components.iter().any(|c| {
            c.example.as_ref().is_some_and(|e| {
                e.body_text_named_params.is_some() || e.header_text_named_params.is_some()
            })
        });
        format.set(if named { "named" } else { "positional" }.into());
        header_kind.set(String::new());
        header_text.set(String::new());
        header_handle.set(String::new());
        footer.set(String::new());
        buttons.set(Vec::new());
        for c in &components {
            match c.kind.as_str() {
                "HEADER" => {
                    header_kind.set(c.format.clone().unwrap_or_default());
                    header_text.set(c.text.clone().unwrap_or_default());
                    header_values.set(stored_examples(c, true));
                    if let Some(h) = c
                        .example
                        .as_ref()
                        .and_then(|e| e.header_handle.as_ref())
                        .and_then(|h| h.first())
                    {
                        header_handle.set(h.clone());
                    }
                }
                "BODY" => {
                    body.set(c.text.clone().unwrap_or_default());
                    body_values.set(stored_examples(c, false));
                }
                "FOOTER" => footer.set(c.text.clone().unwrap_or_default()),
                "BUTTONS" => buttons.set(c.buttons.iter().map(ButtonDraft::from_meta).collect()),
                _ => {}
            }
        }
        result.set(None);
    });
    let approved = move || editing.with(|e| e.as_ref().is_some_and(|t| t.status == "APPROVED"));

    let draft = Memo::new(move |_| {
        let named = format.get() == "named";
        let mut components = Vec::new();
        let kind = header_kind.get();
        if !kind.is_empty() {
            let mut c = Component {
                kind: "HEADER".into(),
                format: Some(kind.clone()),
                ..Default::default()
            };
            if kind == "TEXT" {
                let text = header_text.get();
                let ex = examples_for(&text, &header_values.get());
                if !ex.is_empty() {
                    c.example = Some(if named {
                        Example {
                            header_text_named_params: Some(
                                ex.into_iter()
                                    .map(|(param_name, example)| NamedExample {
                                        param_name,
                                        example,
                                    })
                                    .collect(),
                            ),
                            ..Default::default()
                        }
                    } else {
                        Example {
                            header_text: Some(ex.into_iter().map(|(_, v)| v).collect()),
                            ..Default::default()
                        }
                    });
                }
                c.text = Some(text);
            } else if kind != "LOCATION" && !header_handle.get().is_empty() {
                c.example = Some(Example {
                    header_handle: Some(vec![header_handle.get()]),
                    ..Default::default()
                });
            }
            components.push(c);
        }
        let text = body.get();
        let ex = examples_for(&text, &body_values.get());
        let mut b = Component {
            kind: "BODY".into(),
            text: Some(text),
            ..Default::default()
        };
        if !ex.is_empty() {
            b.example = Some(if named {
                Example {
                    body_text_named_params: Some(
                        ex.into_iter()
                            .map(|(param_name, example)| NamedExample {
                                param_name,
                                example,
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }
            } else {
                // Positional examples go in {{1}}, {{2}}, … order.
                let mut ex = ex;
                ex.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
                Example {
                    body_text: Some(vec![ex.into_iter().map(|(_, v)| v).collect()]),
                    ..Default::default()
                }
            });
        }
        components.push(b);
        if !footer.get().is_empty() {
            components.push(Component {
                kind: "FOOTER".into(),
                text: Some(footer.get()),
                ..Default::default()
            });
        }
        let bs = buttons.get();
        if !bs.is_empty() {
            components.push(Component {
                kind: "BUTTONS".into(),
                buttons: bs.iter().map(ButtonDraft::to_meta).collect(),
                ..Default::default()
            });
        }
        TemplateDraft {
            name: name.get(),
            language: language.get(),
            category: category.get(),
            parameter_format: Some(format.get()),
            components,
        }
    });
    let issues = Memo::new(move |_| validate::validate(&draft.get()));
    let components = Signal::derive(move || draft.get().components);
    let touched = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if !issues.get_untracked().is_empty() {
            return;
        }
        let d = draft.get_untracked();
        let edit = editing.get_untracked();
        let (method, path, body) = match &edit {
            None => (
                "POST",
                "/api/v1/templates".to_string(),
                serde_json::to_value(&d).unwrap_or_default(),
            ),
            Some(t) => (
                "PATCH",
                format!("/api/v1/templates/{}", t.name),
                json!({"language": t.language, "waba_id": t.waba_id, "category": d.category, "components": d.components}),
            ),
        };
        submitting.set(true);
        result.set(None);
        leptos::task::spawn_local(async move {
            match api::call(method, &path, Some(&body)).await {
                Ok(_) => {
                    let n = name.get_untracked();
                    let done = if edit.is_some() { "edited" } else { "created" };
                    result.set(Some(Ok(format!(
                        "“{n}” was {done} and is waiting for Meta's review."
                    ))));
                    editing.set(None);
                    on_created.run(n);
                }
                Err(e) => result.set(Some(Err(e))),
            }
            submitting.set(false);
        });
    };

    let on_file = move |ev: leptos::ev::Event| {
        use wasm_bindgen::JsCast;
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        uploading.set(true);
        leptos::task::spawn_local(async move {
            match api::upload_sample(file).await {
                Ok(h) => header_handle.set(h),
                Err(e) => result.set(Some(Err(e))),
            }
            uploading.set(false);
        });
    };

    let add_button = move |kind: &'static str| {
        buttons.update(|b| {
            b.push(ButtonDraft {
                kind: kind.into(),
                ..Default::default()
            })
        });
    };
    let edit_button = move |i: usize, f: fn(&mut ButtonDraft, String), v: String| {
        buttons.update(|b| {
            if let Some(x) = b.get_mut(i) {
                f(x, v)
            }
        });
    };

    view! {
        <section class="card template-builder" id="template-builder">
            {move || match editing.get() {
                None => view! { <h2>"New template"</h2> }.into_any(),
                Some(t) => view! {
                    <h2>{format!("Edit “{}” ({})", t.name, t.language)}</h2>
                    <p class="muted edit-rules">{EDIT_RULES}</p>
                    <button type="button" class="link" on:click=move |_| editing.set(None)>"Cancel the edit"</button>
                }.into_any(),
            }}
            <div class="builder-grid">
                <form class="builder-form" on:submit=submit novalidate>
                    <label>"Name" <input type="text" name="name" placeholder="order_update"
                        readonly=move || editing.with(Option::is_some)
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) /></label>
                    <label>"Language" <input type="text" name="language"
                        readonly=move || editing.with(Option::is_some)
                        prop:value=move || language.get() on:input=move |ev| language.set(event_target_value(&ev)) /></label>
                    <label>"Category"
                        <select name="category" prop:value=move || category.get() disabled=approved
                            on:change=move |ev| category.set(event_target_value(&ev))>
                            <option value="UTILITY">"Utility"</option>
                            <option value="MARKETING">"Marketing"</option>
                            <option value="AUTHENTICATION">"Authentication"</option>
                        </select>
                    </label>
                    <label>"Variables"
                        <select name="parameter_format" prop:value=move || format.get()
                            disabled=move || editing.with(Option::is_some)
                            on:change=move |ev| format.set(event_target_value(&ev))>
                            <option value="positional">"Numbered ({{1}})"</option>
                            <option value="named">"Named ({{first_name}})"</option>
                        </select>
                    </label>
                    <label>"Header"
                        <select name="header" prop:value=move || header_kind.get() on:change=move |ev| header_kind.set(event_target_value(&ev))>
                            <option value="">"None"</option>
                            <option value="TEXT">"Text"</option>
                            <option value="IMAGE">"Image"</option>
                            <option value="VIDEO">"Video"</option>
                            <option value="DOCUMENT">"Document"</option>
                            <option value="LOCATION">"Location"</option>
                        </select>
                    </label>
                    <Show when=move || header_kind.get() == "TEXT">
                        <label>"Header text" <input type="text" name="header_text"
                            prop:value=move || header_text.get() on:input=move |ev| header_text.set(event_target_value(&ev)) /></label>
                        {example_inputs("Header", header_text.into(), header_values)}
                    </Show>
                    <Show when=move || matches!(header_kind.get().as_str(), "IMAGE" | "VIDEO" | "DOCUMENT")>
                        <label>"Sample file (Meta reviews it)"
                            <input type="file" accept="image/jpeg,image/png,video/mp4,application/pdf" on:change=on_file /></label>
                        {move || if uploading.get() { Some(view! { <p class="muted">"Uploading…"</p> }) } else { None }}
                        {move || (!header_handle.get().is_empty()).then(|| view! { <p class="muted">"Sample uploaded."</p> })}
                    </Show>
                    <label>"Body" <textarea name="body" rows="5"
                        prop:value=move || body.get() on:input=move |ev| body.set(event_target_value(&ev))></textarea></label>
                    {example_inputs("Body", body.into(), body_values)}
                    <label>"Footer (optional)" <input type="text" name="footer"
                        prop:value=move || footer.get() on:input=move |ev| footer.set(event_target_value(&ev)) /></label>
                    <fieldset class="builder-buttons">
                        <legend>"Buttons"</legend>
                        {move || buttons.get().into_iter().enumerate().map(|(i, b)| {
                            let kind = b.kind.clone();
                            view! {
                                <div class="button-row">
                                    <strong>{kind.replace('_', " ").to_lowercase()}</strong>
                                    {(kind != "COPY_CODE").then(|| view! {
                                        <input type="text" placeholder="Label" aria-label=format!("Button {} label", i + 1)
                                            prop:value=b.text.clone()
                                            on:change=move |ev| edit_button(i, |x, v| x.text = v, event_target_value(&ev)) />
                                    })}
                                    {(kind == "URL").then(|| view! {
                                        <input type="url" placeholder="https://example.com/{{1}}" aria-label=format!("Button {} address", i + 1)
                                            prop:value=b.url.clone()
                                            on:change=move |ev| edit_button(i, |x, v| x.url = v, event_target_value(&ev)) />
                                    })}
                                    {(kind == "PHONE_NUMBER").then(|| view! {
                                        <input type="tel" placeholder="15550051310" aria-label=format!("Button {} phone", i + 1)
                                            prop:value=b.phone.clone()
                                            on:change=move |ev| edit_button(i, |x, v| x.phone = v, event_target_value(&ev)) />
                                    })}
                                    {(kind == "URL" || kind == "COPY_CODE").then(|| view! {
                                        <input type="text" placeholder="Example" aria-label=format!("Button {} example", i + 1)
                                            prop:value=b.example.clone()
                                            on:change=move |ev| edit_button(i, |x, v| x.example = v, event_target_value(&ev)) />
                                    })}
                                    <button type="button" class="link" on:click=move |_| buttons.update(|b| { b.remove(i); })>"Remove"</button>
                                </div>
                            }
                        }).collect_view()}
                        <div class="button-adders">
                            <button type="button" on:click=move |_| add_button("QUICK_REPLY")>"+ Quick reply"</button>
                            <button type="button" on:click=move |_| add_button("URL")>"+ Website"</button>
                            <button type="button" on:click=move |_| add_button("PHONE_NUMBER")>"+ Call"</button>
                            <button type="button" on:click=move |_| add_button("COPY_CODE")>"+ Copy code"</button>
                        </div>
                    </fieldset>
                    <ul class="issues" aria-live="polite">
                        {move || {
                            // Rules show once the admin started writing (or tried to submit).
                            let started = touched.get() || !body.get().is_empty() || !name.get().is_empty();
                            if !started {
                                return Vec::new();
                            }
                            issues.get().into_iter().map(|i| view! { <li class="error" data-field=i.field.clone()>{i.message}</li> }).collect::<Vec<_>>()
                        }}
                    </ul>
                    {move || result.get().map(|r| match r {
                        Ok(m) => view! { <p class="notice" role="status">{m}</p> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                    })}
                    <button type="submit" class="primary" disabled=move || submitting.get()>
                        {move || match (submitting.get(), editing.with(Option::is_some)) {
                            (true, _) => "Submitting…",
                            (false, true) => "Submit the edit for review",
                            (false, false) => "Submit for review",
                        }}
                    </button>
                </form>
                <div class="builder-preview">
                    <h3>"Preview"</h3>
                    <TemplatePreview components />
                    {move || is_named(&draft.get()).then(|| view! { <p class="muted">"Named variables: {{first_name}}."</p> })}
                </div>
            </div>
        </section>
    }
    .into_any()
}
