//! The composer: text (Enter sends, Shift+Enter breaks the line), emoji, attachments, replies,
//! reactions, quick-reply buttons, canned responses (`/`), internal notes — and, when the
//! 24-hour window is closed, a template picker with a form for its variables and a preview.
//! Messages show at once as queued; an idempotency key per message means a double click or a
//! retried request never sends twice.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::model::{
    fill_template, optimistic_id, preview, template_variables, upsert_message, window_left_ms,
    Canned, Message, Page,
};
use super::{client, now_rfc3339, Inbox};
use crate::templates::api::TemplateItem;

const EMOJI: [&str; 32] = [
    "😀", "😁", "😂", "🙂", "😉", "😊", "😍", "🤔", "😅", "😢", "😮", "😡", "👍", "👎", "👏", "🙏",
    "👋", "💪", "❤️", "🔥", "🎉", "✅", "❌", "⭐", "📦", "🚚", "💳", "📞", "⏰", "📍", "🛒", "🎁",
];

/// Sends `body` (a `POST /api/v1/messages` body without the recipient), showing it at once
/// as queued with `optimistic` content.
pub fn send(inbox: Inbox, kind: &str, object: Value, reply_to: Option<String>) {
    let Some(c) = inbox.current.get_untracked() else {
        inbox.toast("Open a conversation first.");
        return;
    };
    let key = client::idempotency_key();
    let tmp_id = optimistic_id(&key);
    let optimistic = Message {
        id: tmp_id.clone(),
        wamid: None,
        conversation_id: c.id.clone(),
        direction: "outbound".into(),
        kind: kind.into(),
        content: object.clone(),
        context: None,
        reply_to: reply_to.clone(),
        reactions: vec![],
        status: "queued".into(),
        error: None,
        timestamp: now_rfc3339(),
        edited: false,
        deleted: false,
        idempotency_key: None,
    };
    if kind != "reaction" {
        inbox.thread.update(|t| t.push(optimistic));
        inbox.arrivals.update(|n| *n += 1);
    }
    let mut body = json!({
        "number_id": c.number_id,
        "contact_id": c.contact.id,
        "type": kind,
        "idempotency_key": key,
    });
    body[kind] = object;
    if let Some(r) = reply_to {
        body["reply_to"] = Value::String(r);
    }
    spawn_local(async move {
        // One retry on a network failure, with the same key: the server sends it once.
        let mut result = client::post::<Message>("/api/v1/messages", &body).await;
        if matches!(&result, Err(e) if e.status == 0) {
            result = client::post::<Message>("/api/v1/messages", &body).await;
        }
        match result {
            Ok(m) => {
                if m.kind != "reaction" {
                    inbox.thread.update(|t| {
                        t.retain(|x| x.id != tmp_id);
                        upsert_message(t, m);
                    });
                }
            }
            Err(e) => {
                inbox.thread.update(|t| {
                    if let Some(x) = t.iter_mut().find(|x| x.id == tmp_id) {
                        x.status = "failed".into();
                        x.error = Some(super::model::ErrorInfo {
                            code: None,
                            title: Some("Not sent".into()),
                            detail: Some(e.message.clone()),
                        });
                    }
                });
                inbox.toast(e.message);
            }
        }
    });
}

/// Reacts to a message (an empty emoji removes the reaction).
pub fn react(inbox: Inbox, message_id: String, emoji: &str) {
    send(
        inbox,
        "reaction",
        json!({ "message_id": message_id, "emoji": emoji }),
        None,
    );
}

/// The browser's check before an upload: WhatsApp's type and size limits.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn check_attachment(mime: &str, size: f64) -> Result<&'static str, String> {
    let Some((kind, max)) = crate::domain::media_limit(mime) else {
        return Err(format!(
            "WhatsApp does not accept {} files. Send a JPEG or PNG image, an MP4 video, an audio file, or a PDF or Office document.",
            if mime.is_empty() { "these" } else { mime }
        ));
    };
    if size > max as f64 {
        return Err(format!(
            "This file is {:.1} MB; WhatsApp takes at most {} MB for a {kind}.",
            size / 1_048_576.0,
            max / 1_048_576
        ));
    }
    Ok(kind)
}

#[component]
pub fn Composer() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let open = Memo::new(move |_| {
        inbox.current.with(|c| {
            c.as_ref().map(|c| match inbox.now.get() {
                0 => c.window.open,
                now => window_left_ms(&c.window, now) > 0,
            })
        })
    });
    view! {
        {move || match open.get() {
            None => ().into_any(),
            Some(true) => view! { <FreeComposer /> }.into_any(),
            Some(false) => view! { <TemplateComposer /> }.into_any(),
        }}
    }
}

#[component]
fn FreeComposer() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let text = RwSignal::new(String::new());
    let note_mode = RwSignal::new(false);
    let emoji_open = RwSignal::new(false);
    let buttons_open = RwSignal::new(false);
    let buttons = RwSignal::new(String::new());
    let canned = RwSignal::new(Vec::<Canned>::new());
    let uploading = RwSignal::new(false);
    let file_input = NodeRef::<leptos::html::Input>::new();

    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(page) = client::get::<Page<Canned>>("/api/v1/canned-responses").await {
                canned.set(page.data);
            }
        });
    });
    let suggestions = Memo::new(move |_| {
        let t = text.get();
        let Some(q) = t.strip_prefix('/') else {
            return vec![];
        };
        if q.contains(char::is_whitespace) {
            return vec![];
        }
        canned.with(|c| {
            c.iter()
                .filter(|x| x.shortcut.starts_with(&q.to_lowercase()))
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
        })
    });

    let submit = move || {
        let body = text.get_untracked().trim().to_string();
        if body.is_empty() {
            return;
        }
        if note_mode.get_untracked() {
            let Some(id) = inbox.selected.get_untracked() else {
                return;
            };
            text.set(String::new());
            spawn_local(async move {
                match client::post::<super::model::Note>(
                    &format!("/api/v1/conversations/{id}/notes"),
                    &json!({ "body": body }),
                )
                .await
                {
                    Ok(n) => {
                        inbox.notes.update(|l| {
                            if !l.iter().any(|x| x.id == n.id) {
                                l.push(n)
                            }
                        });
                        inbox.arrivals.update(|x| *x += 1);
                    }
                    Err(e) => {
                        text.set(body);
                        inbox.toast(e.message);
                    }
                }
            });
            return;
        }
        let reply = inbox.reply_to.get_untracked().map(|m| m.id);
        inbox.reply_to.set(None);
        text.set(String::new());
        let titles: Vec<String> = buttons
            .get_untracked()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if buttons_open.get_untracked() && !titles.is_empty() {
            buttons.set(String::new());
            buttons_open.set(false);
            let list: Vec<Value> = titles
                .iter()
                .take(3)
                .enumerate()
                .map(|(i, t)| json!({"type": "reply", "reply": {"id": format!("b{}", i + 1), "title": t}}))
                .collect();
            send(
                inbox,
                "interactive",
                json!({"type": "button", "body": {"text": body}, "action": {"buttons": list}}),
                reply,
            );
        } else {
            send(inbox, "text", json!({ "body": body }), reply);
        }
    };

    let on_keydown = move |e: leptos::ev::KeyboardEvent| {
        if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
            e.prevent_default();
            if let Some(first) = suggestions.with_untracked(|s| s.first().cloned()) {
                text.set(first.body);
                return;
            }
            submit();
        }
    };

    let on_file = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let Some(input) = file_input.get_untracked() else {
                return;
            };
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            input.set_value("");
            let kind = match check_attachment(&file.type_(), file.size()) {
                Ok(k) => k,
                Err(message) => {
                    inbox.toast(message);
                    return;
                }
            };
            let Some(c) = inbox.current.get_untracked() else {
                return;
            };
            let name = file.name();
            let caption = text.get_untracked().trim().to_string();
            text.set(String::new());
            let Ok(form) = web_sys::FormData::new() else {
                return;
            };
            let _ = form.append_with_blob_and_filename("file", &file, &name);
            let _ = form.append_with_str("number_id", &c.number_id);
            uploading.set(true);
            spawn_local(async move {
                match client::upload(form, "/api/v1/media").await {
                    Ok(v) => {
                        let id = v
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let mut object = json!({ "media_id": id });
                        if kind == "document" {
                            object["filename"] = Value::String(name);
                        }
                        if !caption.is_empty() && kind != "audio" && kind != "sticker" {
                            object["caption"] = Value::String(caption);
                        }
                        let reply = inbox.reply_to.get_untracked().map(|m| m.id);
                        inbox.reply_to.set(None);
                        send(inbox, kind, object, reply);
                    }
                    Err(e) => inbox.toast(e.message),
                }
                uploading.set(false);
            });
        }
    };

    view! {
        <div class="composer" class:note=move || note_mode.get()>
            {move || inbox.reply_to.get().map(|m| view! {
                <div class="replying">
                    <span>"Replying to: "<em>{preview(&m)}</em></span>
                    <button type="button" class="link" aria-label="Cancel the reply" on:click=move |_| inbox.reply_to.set(None)>"×"</button>
                </div>
            })}
            <Show when=move || !suggestions.with(Vec::is_empty)>
                <ul class="canned" role="listbox" aria-label="Canned responses">
                    // A few short rows, redrawn whole as the shortcut is typed: no keyed list
                    // (each keyed item type costs the client kilobytes).
                    {move || suggestions.get().into_iter().map(|c| {
                        let body = c.body.clone();
                        view! {
                            <li role="option">
                                <button type="button" class="link" on:click=move |_| text.set(body.clone())>
                                    <strong>"/"{c.shortcut}</strong>" "{c.body}
                                </button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </Show>
            <Show when=move || emoji_open.get()>
                <div class="emoji-grid" role="group" aria-label="Emoji">
                    {EMOJI.into_iter().map(|e| view! {
                        <button type="button" class="link" on:click=move |_| {
                            text.update(|t| t.push_str(e));
                            emoji_open.set(false);
                        }>{e}</button>
                    }).collect_view()}
                </div>
            </Show>
            <Show when=move || buttons_open.get()>
                <div class="buttons-editor">
                    <label for="composer-buttons">"Quick-reply buttons (up to 3, separated by commas)"</label>
                    <input id="composer-buttons" maxlength="62" placeholder="Yes, No, Call me"
                        prop:value=move || buttons.get() on:input=move |e| buttons.set(event_target_value(&e)) />
                </div>
            </Show>
            <div class="composer-row">
                <div class="segmented" role="group" aria-label="Reply or internal note">
                    <button type="button" class="chip" aria-pressed=move || (!note_mode.get()).to_string()
                        on:click=move |_| note_mode.set(false)>"Reply"</button>
                    <button type="button" class="chip" aria-pressed=move || note_mode.get().to_string()
                        on:click=move |_| note_mode.set(true)>"Note"</button>
                </div>
                <button type="button" class="icon" aria-label="Emoji" on:click=move |_| emoji_open.update(|o| *o = !*o)>"☺"</button>
                <label class="icon" class:busy=move || uploading.get() title="Attach a file">
                    <span aria-hidden="true">"📎"</span>
                    <span class="visually-hidden">"Attach a file"</span>
                    <input type="file" class="visually-hidden" node_ref=file_input
                        accept="image/jpeg,image/png,image/webp,video/mp4,video/3gpp,audio/aac,audio/amr,audio/mpeg,audio/mp4,audio/ogg,application/pdf,text/plain,.doc,.docx,.xls,.xlsx,.ppt,.pptx"
                        on:change=on_file />
                </label>
                <button type="button" class="icon" aria-label="Add quick-reply buttons" aria-pressed=move || buttons_open.get().to_string()
                    on:click=move |_| buttons_open.update(|o| *o = !*o)>"🔘"</button>
                <label for="composer-text" class="visually-hidden">"Message"</label>
                <textarea id="composer-text" rows="1"
                    placeholder=move || if note_mode.get() { "Internal note — only your team sees it" } else { "Type a message — Enter sends, Shift+Enter for a new line, / for canned responses" }
                    prop:value=move || text.get()
                    on:input=move |e| text.set(event_target_value(&e))
                    on:keydown=on_keydown></textarea>
                <button type="button" class="primary" on:click=move |_| submit()
                    disabled=move || text.with(|t| t.trim().is_empty())>
                    {move || if note_mode.get() { "Add note" } else { "Send" }}
                </button>
            </div>
        </div>
    }
}

/// With the window closed: pick an approved template, fill its variables, preview, send.
#[component]
fn TemplateComposer() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let templates = RwSignal::new(Vec::<TemplateItem>::new());
    let chosen = RwSignal::new(None::<TemplateItem>);
    let values = RwSignal::new(Vec::<(String, String)>::new());
    Effect::new(move |_| {
        spawn_local(async move {
            // The templates page's own list call: one decoder for templates in the client.
            match crate::templates::api::list().await {
                Ok(list) => templates.set(
                    list.into_iter()
                        .filter(|t| t.status.eq_ignore_ascii_case("APPROVED"))
                        .collect(),
                ),
                Err(e) => inbox.toast(e),
            }
        });
    });
    let choose = move |key: String| {
        let t = templates.with_untracked(|l| {
            l.iter()
                .find(|t| format!("{}|{}", t.name, t.language) == key)
                .cloned()
        });
        values.set(
            t.as_ref()
                .map(|t| {
                    template_variables(&t.components)
                        .into_iter()
                        .map(|v| (v, String::new()))
                        .collect()
                })
                .unwrap_or_default(),
        );
        chosen.set(t);
    };
    let submit = move || {
        let Some(t) = chosen.get_untracked() else {
            return;
        };
        let vals = values.get_untracked();
        if let Some((name, _)) = vals.iter().find(|(_, v)| v.trim().is_empty()) {
            inbox.toast(format!("Fill in the variable {{{{{name}}}}} first."));
            return;
        }
        let named = vals.iter().any(|(k, _)| k.parse::<u32>().is_err());
        let parameters: Vec<Value> = vals
            .iter()
            .map(|(k, v)| {
                if named {
                    json!({"type": "text", "parameter_name": k, "text": v})
                } else {
                    json!({"type": "text", "text": v})
                }
            })
            .collect();
        let mut object = json!({ "name": t.name, "language": t.language });
        if !parameters.is_empty() {
            object["components"] = json!([{ "type": "body", "parameters": parameters }]);
        }
        chosen.set(None);
        values.set(vec![]);
        send(inbox, "template", object, None);
    };
    view! {
        <div class="composer template-composer">
            <p class="muted small">"The customer has not written in the last 24 hours, so WhatsApp only allows an approved template."</p>
            <label for="template-select">"Template"</label>
            <select id="template-select" on:change=move |e| choose(event_target_value(&e))>
                <option value="">"Choose a template…"</option>
                {move || templates.get().into_iter().map(|t| view! {
                    <option value=format!("{}|{}", t.name, t.language)>{format!("{} ({})", t.name, t.language)}</option>
                }).collect_view()}
            </select>
            {move || chosen.get().map(|t| {
                let comps = t.components.clone();
                let indices = move || (0..values.with(Vec::len)).collect::<Vec<usize>>();
                view! {
                    <div class="template-form">
                        <For each=indices key=|i| *i let:i>
                            {
                                let k = values.with_untracked(|v| v.get(i).map(|x| x.0.clone()).unwrap_or_default());
                                let id = format!("tpl-var-{i}");
                                view! {
                                    <label for=id.clone()>{format!("{{{{{k}}}}}")}</label>
                                    <input id=id on:input=move |e| {
                                        let v = event_target_value(&e);
                                        values.update(|vals| if let Some(x) = vals.get_mut(i) { x.1 = v; });
                                    } />
                                }
                            }
                        </For>
                        <div class="bubble-row out preview" aria-label="Preview">
                            <div class="bubble"><p class="text">{move || fill_template(&comps, &values.get())}</p></div>
                        </div>
                        <button type="button" class="primary" on:click=move |_| submit()>"Send template"</button>
                    </div>
                }
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_checked_against_whatsapps_limits() {
        assert_eq!(check_attachment("image/png", 1e6), Ok("image"));
        assert_eq!(check_attachment("application/pdf", 50e6), Ok("document"));
        assert!(check_attachment("image/png", 6.0 * 1_048_576.0)
            .unwrap_err()
            .contains("at most 5 MB"));
        assert!(check_attachment("image/gif", 10.0)
            .unwrap_err()
            .contains("does not accept image/gif"));
        assert!(check_attachment("", 10.0).is_err());
    }
}
