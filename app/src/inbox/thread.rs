//! The open conversation: its header and actions, the window banner, the bubbles of every
//! message type with day separators and ticks, and the composer below.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::format::{parse, Span};
use super::model::{
    clock, day_label, local_day, parse_rfc3339_ms, reply_title, tick, window_countdown,
    window_left_ms, Message, Note,
};
use super::{client, composer::Composer, local_offset_min, Inbox};

/// One row of the thread: a day separator, a message or an internal note.
#[derive(Clone, PartialEq)]
enum Row {
    Day(String),
    Message(Box<Message>),
    Note(Note),
}

fn rows(messages: &[Message], notes: &[Note], now: i64, offset: i64) -> Vec<Row> {
    let mut items: Vec<(i64, Row)> = messages
        .iter()
        .map(|m| {
            (
                parse_rfc3339_ms(&m.timestamp).unwrap_or(0),
                Row::Message(Box::new(m.clone())),
            )
        })
        .chain(notes.iter().map(|n| {
            (
                parse_rfc3339_ms(&n.created_at).unwrap_or(0),
                Row::Note(n.clone()),
            )
        }))
        .collect();
    items.sort_by_key(|(t, _)| *t);
    let mut out = Vec::with_capacity(items.len() + 4);
    let mut day = None;
    for (t, row) in items {
        let d = local_day(t, offset);
        if day != Some(d) {
            day = Some(d);
            out.push(Row::Day(day_label(t, now.max(t), offset)));
        }
        out.push(row);
    }
    out
}

fn row_key(r: &Row) -> String {
    match r {
        Row::Day(d) => format!("day:{d}"),
        Row::Note(n) => format!("note:{}", n.id),
        Row::Message(m) => format!(
            "m:{}:{}:{}:{}:{}:{}",
            m.id,
            m.status,
            m.reactions.len(),
            m.edited,
            m.deleted,
            m.content
                .get("download_state")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

#[component]
pub fn ThreadPane() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    view! {
        <section class="thread-pane" aria-label="Conversation">
            {move || match inbox.selected.get() {
                None => view! {
                    <div class="thread-empty muted">
                        <p>"Pick a conversation on the left."</p>
                        <p>"Press "<kbd>"?"</kbd>" for keyboard shortcuts."</p>
                    </div>
                }.into_any(),
                Some(_) => view! { <Thread /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Thread() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let offset = local_offset_min();
    let scroller = NodeRef::<leptos::html::Div>::new();
    let contact_open = RwSignal::new(false);

    // Follow new messages when the agent is at the bottom (or on first load).
    Effect::new(move |_| {
        inbox.arrivals.track();
        #[cfg(feature = "hydrate")]
        if let Some(el) = scroller.get_untracked() {
            let near_bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 240;
            let first = el.scroll_top() == 0;
            if near_bottom || first {
                request_animation_frame(move || el.set_scroll_top(el.scroll_height()));
            }
        }
    });

    // A message to show (from search or a quoted reply): load older pages until it is in,
    // then scroll to it and highlight it.
    Effect::new(move |_| {
        let Some(target) = inbox.focus_message.get() else {
            return;
        };
        let _ = inbox.thread.with(Vec::len);
        if inbox.thread_loading.get() {
            return;
        }
        let present = inbox
            .thread
            .with_untracked(|t| t.iter().any(|m| m.id == target));
        if present {
            #[cfg(feature = "hydrate")]
            request_animation_frame(move || {
                if let Some(el) = document().get_element_by_id(&format!("m-{target}")) {
                    el.scroll_into_view_with_bool(false);
                    let _ = el.class_list().add_1("highlight");
                }
            });
            inbox.focus_message.set(None);
        } else if inbox.thread_cursor.with_untracked(Option::is_some) {
            inbox.load_older(|_| {});
        } else {
            inbox.focus_message.set(None);
        }
    });

    let on_scroll = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = scroller.get_untracked() {
            if el.scroll_top() < 80 && inbox.thread_cursor.with_untracked(Option::is_some) {
                let before = el.scroll_height();
                let el2 = el.clone();
                inbox.load_older(move |loaded| {
                    if loaded {
                        // Keep the agent's place: the new content is above.
                        request_animation_frame(move || {
                            let grown = el2.scroll_height() - before;
                            el2.set_scroll_top(el2.scroll_top() + grown);
                        });
                    }
                });
            }
        }
    };

    let rows = Memo::new(move |_| {
        inbox.thread.with(|m| {
            inbox
                .notes
                .with(|n| rows(m, n, inbox.now.get_untracked().max(1), offset))
        })
    });

    view! {
        <ThreadHeader contact_open />
        <WindowBanner />
        <div class="thread-body">
            <div class="messages" node_ref=scroller on:scroll=on_scroll role="log" aria-live="polite" aria-label="Messages">
                <Show when=move || inbox.thread_loading.get()>
                    <div class="loading-older muted" aria-hidden="true">"Loading…"</div>
                </Show>
                <Show when=move || inbox.thread_cursor.with(Option::is_none) && !inbox.thread_loading.get() && inbox.thread.with(|t| !t.is_empty())>
                    <div class="thread-start muted">"Start of the conversation"</div>
                </Show>
                <For each=move || rows.get() key=row_key let:row>
                    {match row {
                        Row::Day(d) => view! { <div class="day-sep" role="separator"><span>{d}</span></div> }.into_any(),
                        Row::Note(n) => view! { <NoteBubble n /> }.into_any(),
                        Row::Message(m) => view! { <Bubble m=*m offset /> }.into_any(),
                    }}
                </For>
            </div>
            <Show when=move || contact_open.get()>
                <ContactPanel on_close=move || contact_open.set(false) />
            </Show>
        </div>
        <Composer />
    }
}

#[component]
fn ThreadHeader(contact_open: RwSignal<bool>) -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let me = inbox.me.get_value();
    let c = move || inbox.current.get();
    let label_input = RwSignal::new(String::new());
    let add_label = move || {
        let l = label_input.get_untracked().trim().to_string();
        if l.is_empty() {
            return;
        }
        let mut labels = inbox
            .current
            .with_untracked(|c| c.as_ref().map(|c| c.labels.clone()).unwrap_or_default());
        labels.push(l);
        label_input.set(String::new());
        inbox.change(json!({ "labels": labels }));
    };
    view! {
        <header class="thread-head">
            <a class="back" href="/inbox" aria-label="Back to the conversations">"←"</a>
            <button type="button" class="contact-button" on:click=move |_| contact_open.update(|o| *o = !*o)
                aria-expanded=move || contact_open.get().to_string() aria-controls="contact-panel">
                <span class="avatar" aria-hidden="true">{move || c().map(|c| c.contact.initials()).unwrap_or_default()}</span>
                <span>
                    <strong class="thread-name">{move || c().map(|c| c.contact.display()).unwrap_or_else(|| "…".into())}</strong>
                    <span class="muted small">{move || c().and_then(|c| c.contact.phone.clone()).unwrap_or_default()}</span>
                </span>
            </button>
            <div class="thread-actions">
                <label class="visually-hidden" for="assignee-select">"Assignee"</label>
                <select id="assignee-select" on:change=move |e| {
                    let v = event_target_value(&e);
                    inbox.change(json!({ "assignee_id": if v.is_empty() { Value::Null } else { Value::String(v) } }));
                }>
                    {move || {
                        let current = c().and_then(|c| c.assignee);
                        let current_id = current.as_ref().map(|a| a.id.clone()).unwrap_or_default();
                        let mut people = inbox.members.get();
                        if let Some(a) = &current {
                            if !people.iter().any(|p| p.id == a.id) { people.push(a.clone()); }
                        }
                        let me = me.clone();
                        view! {
                            <option value="" selected=current_id.is_empty()>"Unassigned"</option>
                            {(!people.iter().any(|p| p.id == me)).then(|| view! {
                                <option value=me.clone() selected=current_id == me>"Me"</option>
                            })}
                            {people.into_iter().map(|p| {
                                let sel = p.id == current_id;
                                let label = if p.id == me { format!("{} (me)", p.display()) } else { p.display() };
                                view! { <option value=p.id.clone() selected=sel>{label}</option> }
                            }).collect_view()}
                        }
                    }}
                </select>
                <button type="button" class="chip" on:click={
                    let me = inbox.me.get_value();
                    move |_| inbox.change(json!({ "assignee_id": me.clone() }))
                }>"Assign to me"</button>
                <div class="segmented" role="group" aria-label="Status">
                    {["open", "pending", "resolved"].into_iter().map(|s| view! {
                        <button type="button" class="chip"
                            aria-pressed=move || (c().map(|c| c.status == s).unwrap_or(false)).to_string()
                            on:click=move |_| inbox.change(json!({ "status": s }))>
                            {match s { "open" => "Open", "pending" => "Pending", _ => "Resolve" }}
                        </button>
                    }).collect_view()}
                </div>
                <button type="button" class="chip" title="Mark unread" on:click=move |_| {
                    let Some(id) = inbox.selected.get_untracked() else { return };
                    spawn_local(async move {
                        match client::post(&format!("/api/v1/conversations/{id}/unread"), &json!({})).await {
                            Ok(c) => inbox.conversation_changed(c),
                            Err(e) => inbox.toast(e.message),
                        }
                    });
                }>"Mark unread"</button>
            </div>
            <div class="labels">
                {move || c().map(|c| c.labels.into_iter().map(|l| {
                    let remove = l.clone();
                    view! {
                        <span class="label-chip">{l.clone()}
                            <button type="button" class="link" aria-label=format!("Remove label {l}") on:click=move |_| {
                                let labels: Vec<String> = inbox.current.with_untracked(|c| c.as_ref().map(|c| c.labels.iter().filter(|x| **x != remove).cloned().collect()).unwrap_or_default());
                                inbox.change(json!({ "labels": labels }));
                            }>"×"</button>
                        </span>
                    }
                }).collect_view())}
                <form class="label-add" on:submit=move |e| { e.prevent_default(); add_label(); }>
                    <label class="visually-hidden" for="label-input">"Add a label"</label>
                    <input id="label-input" placeholder="+ label" maxlength="40" prop:value=move || label_input.get()
                        on:input=move |e| label_input.set(event_target_value(&e)) />
                </form>
            </div>
        </header>
    }
}

/// The 24-hour customer-service window: time left, live; or closed.
#[component]
fn WindowBanner() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let left = move || {
        inbox.current.with(|c| {
            c.as_ref()
                .map(|c| window_left_ms(&c.window, inbox.now.get()))
        })
    };
    view! {
        {move || left().map(|ms| {
            let closed = ms <= 0;
            view! {
                <div class="window-banner" class:closed=closed role="status" data-window=if closed { "closed" } else { "open" }>
                    {window_countdown(ms)}
                </div>
            }
        })}
    }
}

#[component]
fn NoteBubble(n: Note) -> impl IntoView {
    let offset = local_offset_min();
    let at = parse_rfc3339_ms(&n.created_at).unwrap_or(0);
    view! {
        <div class="note" role="note">
            <span class="note-tag">"Internal note"</span>
            <span class="note-author">{n.author.as_ref().map(|a| a.display()).unwrap_or_default()}</span>
            <div class="note-body">{n.body.clone()}</div>
            <time class="bubble-time">{clock(at, offset)}</time>
        </div>
    }
}

/// Formatted text as views.
pub fn render_spans(spans: Vec<Span>) -> AnyView {
    spans
        .into_iter()
        .map(|s| match s {
            Span::Text(t) => t.into_any(),
            Span::Bold(inner) => view! { <strong>{render_spans(inner)}</strong> }.into_any(),
            Span::Italic(inner) => view! { <em>{render_spans(inner)}</em> }.into_any(),
            Span::Strike(inner) => view! { <s>{render_spans(inner)}</s> }.into_any(),
            Span::Mono(t) => view! { <code>{t}</code> }.into_any(),
            Span::Link { text, href } => {
                view! { <a href=href target="_blank" rel="noopener noreferrer nofollow">{text}</a> }
                    .into_any()
            }
        })
        .collect_view()
        .into_any()
}

fn text(s: &str) -> AnyView {
    view! { <p class="text">{render_spans(parse(s))}</p> }.into_any()
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1_048_576 => format!("{:.1} MB", b as f64 / 1_048_576.0),
        b if b >= 1024 => format!("{} KB", b / 1024),
        b => format!("{b} B"),
    }
}

/// The body of a bubble, by type.
fn content_view(m: &Message) -> AnyView {
    let c = &m.content;
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if m.deleted {
        return view! { <p class="deleted muted">"🚫 This message was deleted"</p> }.into_any();
    }
    let url = s("url");
    let ready = s("download_state") != "pending" && s("download_state") != "failed";
    let failed = s("download_state") == "failed";
    let caption = s("caption");
    let caption_view = (!caption.is_empty()).then(|| text(&caption));
    match m.kind.as_str() {
        "text" => text(&s("body")),
        "image" | "sticker" => {
            let media = if ready && !url.is_empty() {
                let full = url.clone();
                view! {
                    <a href=full target="_blank" class="media-link" aria-label="Open the image">
                        <img src=url class=if m.kind == "sticker" { "sticker" } else { "photo" } alt=if caption.is_empty() { m.kind.clone() } else { caption.clone() } loading="lazy" />
                    </a>
                }
                .into_any()
            } else {
                media_placeholder(failed, if m.kind == "sticker" { "Sticker" } else { "Photo" })
            };
            view! { {media} {caption_view} }.into_any()
        }
        "video" => {
            let media = if ready && !url.is_empty() {
                view! { <video src=url controls preload="metadata" class="video"></video> }.into_any()
            } else {
                media_placeholder(failed, "Video")
            };
            view! { {media} {caption_view} }.into_any()
        }
        "audio" => {
            let voice = c.get("voice").and_then(Value::as_bool).unwrap_or(false);
            let media = if ready && !url.is_empty() {
                view! { <audio src=url controls preload="none" aria-label=if voice { "Voice message" } else { "Audio" }></audio> }.into_any()
            } else {
                media_placeholder(failed, if voice { "Voice message" } else { "Audio" })
            };
            view! { {voice.then(|| view! { <span class="small muted">"🎤 Voice message"</span> })} {media} }.into_any()
        }
        "document" => {
            let name = if s("filename").is_empty() { "Document".to_string() } else { s("filename") };
            let size = c.get("file_size").and_then(Value::as_i64).map(human_size);
            let link = if ready && !url.is_empty() {
                view! { <a class="doc" href=url download=name.clone()>"📄 "{name.clone()}</a> }.into_any()
            } else {
                view! { <span class="doc muted">"📄 "{name.clone()}{if failed { " — download failed" } else { " — downloading…" }}</span> }.into_any()
            };
            view! { {link} {size.map(|s| view! { <span class="small muted">" "{s}</span> })} {caption_view} }.into_any()
        }
        "location" => {
            let lat = c.get("latitude").and_then(Value::as_f64).unwrap_or(0.0);
            let lng = c.get("longitude").and_then(Value::as_f64).unwrap_or(0.0);
            let map = format!("https://www.openstreetmap.org/?mlat={lat}&mlon={lng}#map=16/{lat}/{lng}");
            view! {
                <div class="location">
                    <strong>"📍 "{if s("name").is_empty() { "Location".to_string() } else { s("name") }}</strong>
                    {(!s("address").is_empty()).then(|| view! { <span class="small">{s("address")}</span> })}
                    <span class="small muted">{format!("{lat:.5}, {lng:.5}")}</span>
                    <a href=map target="_blank" rel="noopener noreferrer">"Open the map"</a>
                </div>
            }
            .into_any()
        }
        "contacts" => {
            let cards = c.get("contacts").and_then(Value::as_array).cloned().unwrap_or_default();
            view! {
                <div class="cards">
                    {cards.into_iter().map(|card| {
                        let name = card.pointer("/name/formatted_name").and_then(Value::as_str).unwrap_or("Contact").to_string();
                        let phones: Vec<String> = card.get("phones").and_then(Value::as_array).map(|p| p.iter().filter_map(|x| x.get("phone").and_then(Value::as_str).map(str::to_string)).collect()).unwrap_or_default();
                        view! { <div class="card-contact">"👤 "<strong>{name}</strong>{phones.into_iter().map(|p| view! { <span class="small">" "{p}</span> }).collect_view()}</div> }
                    }).collect_view()}
                </div>
            }
            .into_any()
        }
        "interactive" | "button" => {
            let title = reply_title(c);
            let outbound_buttons: Vec<String> = c
                .pointer("/action/buttons")
                .and_then(Value::as_array)
                .map(|b| b.iter().filter_map(|x| x.pointer("/reply/title").and_then(Value::as_str).map(str::to_string)).collect())
                .unwrap_or_default();
            view! {
                <p class="reply-choice">"🔘 "{title}</p>
                {(!outbound_buttons.is_empty()).then(|| view! {
                    <div class="buttons">{outbound_buttons.into_iter().map(|b| view! { <span class="button-preview">{b}</span> }).collect_view()}</div>
                })}
            }
            .into_any()
        }
        "template" => {
            let name = s("name");
            view! { <p class="template-sent">"📋 Template "<strong>{name}</strong></p> }.into_any()
        }
        "reaction" => view! { <p>{s("emoji")}</p> }.into_any(),
        "order" => {
            let items = c.get("product_items").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            view! { <p>"🛒 Order with "{items}" item(s)"</p> }.into_any()
        }
        "system" => view! { <p class="system">"ℹ "{s("body")}</p> }.into_any(),
        "unsupported" => view! {
            <p class="unsupported muted">"❔ This message type is not supported by WhatsApp's API yet. Ask the customer to send it another way."</p>
        }
        .into_any(),
        other => view! { <p class="muted">{format!("A {other} message")}</p> }.into_any(),
    }
}

fn media_placeholder(failed: bool, what: &'static str) -> AnyView {
    view! {
        <div class="media-placeholder" class:failed=failed aria-busy=(!failed).to_string()>
            {if failed { format!("{what} could not be downloaded") } else { format!("{what} — downloading…") }}
        </div>
    }
    .into_any()
}

const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

#[component]
fn Bubble(m: Message, offset: i64) -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let at = parse_rfc3339_ms(&m.timestamp).unwrap_or(0);
    let out = m.direction == "outbound";
    let t = tick(&m.direction, &m.status, m.error.as_ref());
    let quoted = m.reply_to.clone().map(|target| {
        let preview = inbox.thread.with_untracked(|th| {
            th.iter()
                .find(|x| x.id == target)
                .map(super::model::preview)
        });
        let goto = target.clone();
        view! {
            <button type="button" class="quote" on:click=move |_| inbox.focus_message.set(Some(goto.clone()))>
                {preview.unwrap_or_else(|| "Earlier message".into())}
            </button>
        }
    });
    let forwarded = m
        .context
        .as_ref()
        .is_some_and(|c| c.get("forwarded").and_then(Value::as_bool).unwrap_or(false));
    let reactions = m.reactions.clone();
    let reply_target = m.clone();
    let react_target = m.id.clone();
    let can_react = !m.id.starts_with("tmp-") && m.wamid.is_some();
    let picker = RwSignal::new(false);
    view! {
        <div id=format!("m-{}", m.id) class="bubble-row" class:out=out class:in=!out>
            <div class="bubble" class:failed=m.status == "failed">
                {forwarded.then(|| view! { <span class="small muted">"↪ Forwarded"</span> })}
                {quoted}
                {content_view(&m)}
                {(!reactions.is_empty()).then(|| view! {
                    <div class="reactions" aria-label="Reactions">
                        {reactions.into_iter().map(|r| view! { <span class="reaction" title=if r.direction == "inbound" { "Customer" } else { "You" }>{r.emoji}</span> }).collect_view()}
                    </div>
                })}
                <span class="bubble-meta">
                    {m.edited.then(|| view! { <span class="small muted">"edited "</span> })}
                    <time>{clock(at, offset)}</time>
                    {t.map(|t| view! { <span class=t.class title=t.label.clone() aria-label=t.label.clone() data-status=m.status.clone()>" "{t.glyph}</span> })}
                </span>
            </div>
            <div class="bubble-actions">
                <button type="button" class="link" aria-label="Reply to this message"
                    on:click=move |_| inbox.reply_to.set(Some(reply_target.clone()))>"↩"</button>
                {can_react.then(|| view! {
                    <button type="button" class="link" aria-label="React" aria-expanded=move || picker.get().to_string()
                        on:click=move |_| picker.update(|p| *p = !*p)>"☺"</button>
                })}
                <Show when=move || picker.get()>
                    <span class="quick-reactions" role="group" aria-label="Pick a reaction">
                        {QUICK_REACTIONS.into_iter().map(|emoji| {
                            let target = react_target.clone();
                            view! {
                                <button type="button" class="link" on:click=move |_| {
                                    picker.set(false);
                                    super::composer::react(inbox, target.clone(), emoji);
                                }>{emoji}</button>
                            }
                        }).collect_view()}
                    </span>
                </Show>
            </div>
        </div>
    }
}

/// The contact: name, numbers, username, attributes.
#[component]
fn ContactPanel(on_close: impl Fn() + Send + Sync + 'static) -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let details = RwSignal::new(None::<Value>);
    Effect::new(move |_| {
        let Some(id) = inbox
            .current
            .with(|c| c.as_ref().map(|c| c.contact.id.clone()))
        else {
            return;
        };
        spawn_local(async move {
            match client::get::<Value>(&format!("/api/v1/contacts/{id}")).await {
                Ok(v) => details.set(Some(v)),
                Err(e) => inbox.toast(e.message),
            }
        });
    });
    let field = move |k: &'static str| {
        details.with(|d| {
            d.as_ref()
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    };
    view! {
        <aside id="contact-panel" class="contact-panel" aria-label="Contact">
            <div class="panel-head">
                <strong>"Contact"</strong>
                <button type="button" class="link" on:click=move |_| on_close()>"Close"</button>
            </div>
            <dl>
                <dt>"Name"</dt><dd>{move || field("name").or(field("profile_name")).unwrap_or_else(|| "—".into())}</dd>
                <dt>"WhatsApp profile"</dt><dd>{move || field("profile_name").unwrap_or_else(|| "—".into())}</dd>
                <dt>"Phone"</dt><dd>{move || field("phone").unwrap_or_else(|| "—".into())}</dd>
                <dt>"Username"</dt><dd>{move || field("username").unwrap_or_else(|| "—".into())}</dd>
                <dt>"Business-scoped id"</dt><dd class="small">{move || field("bsuid").unwrap_or_else(|| "—".into())}</dd>
            </dl>
            <h3>"Attributes"</h3>
            {move || {
                let attrs = details.with(|d| d.as_ref().and_then(|d| d.get("attributes")).and_then(Value::as_object).cloned()).unwrap_or_default();
                if attrs.is_empty() {
                    view! { <p class="muted small">"None yet."</p> }.into_any()
                } else {
                    view! { <dl>{attrs.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())}</dd> }).collect_view()}</dl> }.into_any()
                }
            }}
        </aside>
    }
}
