//! The inbox: where agents work their conversations. The list, the thread and the composer
//! share one reactive store ([`Inbox`]); the workspace's event stream keeps it current, so
//! customers' messages, delivery ticks and other agents' work appear without a reload.

mod canned;
pub mod client;
mod composer;
pub mod format;
mod live;
pub mod model;
mod thread;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde_json::json;

pub use canned::CannedResponsesPage;

use crate::auth::{RequireSession, SessionInfo};
use crate::layout::AppLayout;
use crate::live_load::LiveDuringLoad;
use model::{
    list_time, merge_loaded_list, merge_loaded_page, preview, upsert_conversation, Conversation,
    Filter, Message, Note, Number, Page, Person, SearchResults,
};

/// Whether the live stream is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    Connecting,
    Live,
    Reconnecting,
}

/// The inbox's state, shared by its parts through context.
#[derive(Clone, Copy)]
pub struct Inbox {
    pub me: StoredValue<String>,
    pub conversations: RwSignal<Vec<Conversation>>,
    pub list_cursor: RwSignal<Option<String>>,
    pub list_loading: RwSignal<bool>,
    pub filter: RwSignal<Filter>,
    /// The open conversation's id (from `?c=`).
    pub selected: RwSignal<Option<String>>,
    /// The open conversation as last seen (it may be outside the filtered list).
    pub current: RwSignal<Option<Conversation>>,
    pub thread: RwSignal<Vec<Message>>,
    pub thread_cursor: RwSignal<Option<String>>,
    pub thread_loading: RwSignal<bool>,
    pub notes: RwSignal<Vec<Note>>,
    pub live: RwSignal<LiveState>,
    pub toasts: RwSignal<Vec<(u32, String)>>,
    pub numbers: RwSignal<Vec<Number>>,
    pub members: RwSignal<Vec<Person>>,
    pub reply_to: RwSignal<Option<Message>>,
    /// The clock, ticking every second (for the window countdown).
    pub now: RwSignal<i64>,
    /// A message to scroll to and highlight (from search or a quoted reply).
    pub focus_message: RwSignal<Option<String>>,
    pub help_open: RwSignal<bool>,
    /// Bumped when new messages arrive, so the thread can follow them.
    pub arrivals: RwSignal<u32>,
    /// First-page loads of the list under way, and the conversation changes received
    /// meanwhile (applied again on top of the loaded page).
    list_live: StoredValue<LiveDuringLoad<Conversation>>,
}

impl Inbox {
    fn new(me: String) -> Self {
        Inbox {
            me: StoredValue::new(me),
            conversations: RwSignal::new(vec![]),
            list_cursor: RwSignal::new(None),
            list_loading: RwSignal::new(true),
            filter: RwSignal::new(Filter::default()),
            selected: RwSignal::new(None),
            current: RwSignal::new(None),
            thread: RwSignal::new(vec![]),
            thread_cursor: RwSignal::new(None),
            thread_loading: RwSignal::new(false),
            notes: RwSignal::new(vec![]),
            live: RwSignal::new(LiveState::Connecting),
            toasts: RwSignal::new(vec![]),
            numbers: RwSignal::new(vec![]),
            members: RwSignal::new(vec![]),
            reply_to: RwSignal::new(None),
            now: RwSignal::new(0),
            focus_message: RwSignal::new(None),
            help_open: RwSignal::new(false),
            arrivals: RwSignal::new(0),
            list_live: StoredValue::new(LiveDuringLoad::default()),
        }
    }

    /// Shows an error (the server's plain explanation) for a few seconds.
    pub fn toast(self, message: impl Into<String>) {
        let message = message.into();
        let id = self
            .toasts
            .with_untracked(|t| t.last().map(|x| x.0 + 1).unwrap_or(1));
        self.toasts.update(|t| t.push((id, message)));
        #[cfg(feature = "hydrate")]
        set_timeout(
            move || self.toasts.update(|t| t.retain(|x| x.0 != id)),
            std::time::Duration::from_secs(6),
        );
    }

    /// Applies a changed conversation to the list and the open thread's header.
    pub fn conversation_changed(self, c: Conversation) {
        let keep = self
            .filter
            .with_untracked(|f| f.matches(&c, &self.me.get_value()));
        if self.selected.get_untracked().as_deref() == Some(c.id.as_str()) {
            self.current.set(Some(c.clone()));
        }
        self.list_live.update_value(|l| l.record(&c));
        self.conversations
            .update(|list| upsert_conversation(list, c, keep));
    }

    /// (Re)loads the first page of the list for the current filter.
    pub fn reload_list(self) {
        let query = self.filter.get_untracked().query();
        self.list_loading.set(true);
        self.list_live.update_value(LiveDuringLoad::start);
        spawn_local(async move {
            let page = client::get::<Page<Conversation>>(&format!(
                "/api/v1/conversations?limit=50&{query}"
            ))
            .await;
            let live = self
                .list_live
                .try_update_value(LiveDuringLoad::finish)
                .unwrap_or_default();
            match page {
                Ok(page) => {
                    // A filter change while this loaded: the newer request wins.
                    if self.filter.get_untracked().query() == query {
                        let me = self.me.get_value();
                        let filter = self.filter.get_untracked();
                        self.conversations
                            .set(merge_loaded_list(page.data, &live, |c| {
                                filter.matches(c, &me)
                            }));
                        self.list_cursor.set(page.next_cursor);
                    }
                }
                Err(e) => self.toast(e.message),
            }
            self.list_loading.set(false);
        });
    }

    /// Loads the next page of the list (infinite scroll).
    pub fn load_more(self) {
        let Some(cursor) = self.list_cursor.get_untracked() else {
            return;
        };
        if self.list_loading.get_untracked() {
            return;
        }
        let query = self.filter.get_untracked().query();
        self.list_loading.set(true);
        spawn_local(async move {
            let path = format!(
                "/api/v1/conversations?limit=50&{query}&cursor={}",
                client::encode(&cursor)
            );
            match client::get::<Page<Conversation>>(&path).await {
                Ok(page) => {
                    self.conversations.update(|list| {
                        for c in page.data {
                            if !list.iter().any(|x| x.id == c.id) {
                                list.push(c);
                            }
                        }
                    });
                    self.list_cursor.set(page.next_cursor);
                }
                Err(e) => self.toast(e.message),
            }
            self.list_loading.set(false);
        });
    }

    /// Opens a conversation: its header, newest messages and notes; marks it read.
    pub fn open(self, id: String) {
        self.thread.set(vec![]);
        self.notes.set(vec![]);
        self.thread_cursor.set(None);
        self.reply_to.set(None);
        self.current.set(
            self.conversations
                .with_untracked(|l| l.iter().find(|c| c.id == id).cloned()),
        );
        self.thread_loading.set(true);
        spawn_local(async move {
            let page = client::get::<Page<Message>>(&format!(
                "/api/v1/conversations/{id}/messages?limit=50"
            ))
            .await;
            if self.selected.get_untracked().as_deref() != Some(id.as_str()) {
                return;
            }
            match page {
                Ok(page) => {
                    self.thread.update(|t| merge_loaded_page(t, page.data));
                    self.thread_cursor.set(page.next_cursor);
                    self.arrivals.update(|n| *n += 1);
                }
                Err(e) => self.toast(e.message),
            }
            self.thread_loading.set(false);
            if let Ok(c) = client::get::<Conversation>(&format!("/api/v1/conversations/{id}")).await
            {
                let unread = c.unread_count > 0;
                self.conversation_changed(c);
                if unread {
                    self.mark_read(id.clone());
                }
            }
            if let Ok(notes) =
                client::get::<Page<Note>>(&format!("/api/v1/conversations/{id}/notes")).await
            {
                if self.selected.get_untracked().as_deref() == Some(id.as_str()) {
                    self.notes.set(notes.data);
                }
            }
        });
    }

    /// Tells the server (and Meta) that the agent has read the conversation.
    pub fn mark_read(self, id: String) {
        spawn_local(async move {
            match client::post::<Conversation>(
                &format!("/api/v1/conversations/{id}/read"),
                &json!({}),
            )
            .await
            {
                Ok(c) => self.conversation_changed(c),
                Err(e) => self.toast(e.message),
            }
        });
    }

    /// Loads older messages above the thread; `then` runs once they are in.
    pub fn load_older(self, then: impl FnOnce(bool) + 'static) {
        let (Some(id), Some(cursor)) = (
            self.selected.get_untracked(),
            self.thread_cursor.get_untracked(),
        ) else {
            then(false);
            return;
        };
        if self.thread_loading.get_untracked() {
            then(false);
            return;
        }
        self.thread_loading.set(true);
        spawn_local(async move {
            let path = format!(
                "/api/v1/conversations/{id}/messages?limit=50&cursor={}",
                client::encode(&cursor)
            );
            let mut loaded = false;
            match client::get::<Page<Message>>(&path).await {
                Ok(page) if self.selected.get_untracked().as_deref() == Some(id.as_str()) => {
                    self.thread.update(|t| {
                        let mut older: Vec<Message> = page
                            .data
                            .into_iter()
                            .filter(|m| !t.iter().any(|x| x.id == m.id))
                            .collect();
                        older.append(t);
                        *t = older;
                    });
                    self.thread_cursor.set(page.next_cursor);
                    loaded = true;
                }
                Ok(_) => {}
                Err(e) => self.toast(e.message),
            }
            self.thread_loading.set(false);
            then(loaded);
        });
    }

    /// Changes the open conversation (status, assignee, labels) and shows the result.
    pub fn change(self, body: serde_json::Value) {
        let Some(id) = self.selected.get_untracked() else {
            return;
        };
        spawn_local(async move {
            match client::patch::<Conversation>(&format!("/api/v1/conversations/{id}"), &body).await
            {
                Ok(c) => self.conversation_changed(c),
                Err(e) => self.toast(e.message),
            }
        });
    }
}

#[component]
pub fn InboxPage() -> impl IntoView {
    view! {
        <RequireSession children=|session| view! {
            <AppLayout session=session.clone()>
                <InboxScreen session />
            </AppLayout>
        } />
    }
}

#[component]
fn InboxScreen(session: SessionInfo) -> impl IntoView {
    let inbox = Inbox::new(session.user.id.clone());
    provide_context(inbox);
    let query = use_query_map();

    // The open conversation follows the address (`?c=`), so links, back and search work.
    Effect::new(move |_| {
        let wanted = query.with(|q| q.get("c"));
        let focus = query.with(|q| q.get("m"));
        if wanted != inbox.selected.get_untracked() {
            inbox.selected.set(wanted.clone());
            if let Some(id) = wanted {
                inbox.open(id);
            } else {
                inbox.current.set(None);
            }
        }
        if focus.is_some() {
            inbox.focus_message.set(focus);
        }
    });

    // Browser-only start: the live stream (which loads the list once connected), the clock,
    // the numbers and members, and the keyboard.
    Effect::new(move |started: Option<()>| {
        if started.is_some() {
            return;
        }
        live::start(inbox);
        #[cfg(feature = "hydrate")]
        {
            inbox.now.set(js_sys::Date::now() as i64);
            set_interval(
                move || inbox.now.set(js_sys::Date::now() as i64),
                std::time::Duration::from_secs(1),
            );
            keyboard(inbox, leptos_router::hooks::use_navigate());
        }
        spawn_local(async move {
            if let Ok(page) = client::get::<Page<Number>>("/api/v1/numbers").await {
                inbox.numbers.set(page.data);
            }
            if let Ok(page) = client::get::<Page<Person>>("/api/v1/members").await {
                inbox.members.set(page.data);
            }
        });
    });

    let unread = Memo::new(move |_| {
        inbox
            .conversations
            .with(|l| l.iter().filter(|c| c.unread_count > 0).count())
    });
    let title = move || match unread.get() {
        0 => "Inbox".to_string(),
        n => format!("({n}) Inbox"),
    };

    view! {
        <Title text=title />
        <div class="inbox" class:has-selection=move || inbox.selected.with(Option::is_some)>
            <LiveBanner />
            <ConversationList />
            <thread::ThreadPane />
            <Toasts />
            <Help />
        </div>
    }
}

/// "Reconnecting…" while the live stream is down.
#[component]
fn LiveBanner() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    view! {
        <div
            class="live-state"
            data-live=move || match inbox.live.get() {
                LiveState::Live => "on",
                LiveState::Connecting => "connecting",
                LiveState::Reconnecting => "off",
            }
            role="status"
        >
            {move || match inbox.live.get() {
                LiveState::Reconnecting => view! {
                    <span class="banner warn">"Connection lost — reconnecting… New messages will appear when it is back."</span>
                }.into_any(),
                _ => ().into_any(),
            }}
        </div>
    }
}

#[component]
fn Toasts() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    view! {
        <div class="toasts" role="alert" aria-live="assertive">
            <For each=move || inbox.toasts.get() key=|t| t.0 let:t>
                <div class="toast">
                    <span>{t.1.clone()}</span>
                    <button type="button" class="link" aria-label="Dismiss"
                        on:click=move |_| inbox.toasts.update(|l| l.retain(|x| x.0 != t.0))>"×"</button>
                </div>
            </For>
        </div>
    }
}

/// The keyboard shortcuts, shown with `?`.
#[component]
fn Help() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    view! {
        <Show when=move || inbox.help_open.get()>
            <div class="help-overlay" role="dialog" aria-modal="true" aria-labelledby="help-title"
                on:click=move |_| inbox.help_open.set(false)>
                <div class="card help" on:click=|e| e.stop_propagation()>
                    <h2 id="help-title">"Keyboard shortcuts"</h2>
                    <dl>
                        <dt><kbd>"j"</kbd>" / "<kbd>"k"</kbd></dt><dd>"Next / previous conversation"</dd>
                        <dt><kbd>"r"</kbd></dt><dd>"Reply (focus the composer)"</dd>
                        <dt><kbd>"e"</kbd></dt><dd>"Resolve the conversation"</dd>
                        <dt><kbd>"/"</kbd></dt><dd>"Search"</dd>
                        <dt><kbd>"Enter"</kbd></dt><dd>"Send; Shift+Enter for a new line"</dd>
                        <dt><kbd>"Esc"</kbd></dt><dd>"Close this, or cancel a reply"</dd>
                        <dt><kbd>"?"</kbd></dt><dd>"This help"</dd>
                    </dl>
                    <button type="button" class="primary" on:click=move |_| inbox.help_open.set(false)>"Close"</button>
                </div>
            </div>
        </Show>
    }
}

#[cfg(feature = "hydrate")]
fn keyboard(inbox: Inbox, navigate: impl Fn(&str, leptos_router::NavigateOptions) + 'static) {
    use wasm_bindgen::JsCast;
    let handle = window_event_listener(leptos::ev::keydown, move |e: web_sys::KeyboardEvent| {
        let typing = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
            .unwrap_or(false);
        if e.key() == "Escape" {
            inbox.help_open.set(false);
            inbox.reply_to.set(None);
            return;
        }
        if typing || e.ctrl_key() || e.meta_key() || e.alt_key() {
            return;
        }
        let focus = |id: &str| {
            if let Some(el) = document()
                .get_element_by_id(id)
                .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = el.focus();
            }
        };
        match e.key().as_str() {
            "j" | "k" => {
                let ids: Vec<String> = inbox
                    .conversations
                    .with_untracked(|l| l.iter().map(|c| c.id.clone()).collect());
                if ids.is_empty() {
                    return;
                }
                let at = inbox
                    .selected
                    .get_untracked()
                    .and_then(|s| ids.iter().position(|x| *x == s));
                let next = match (e.key().as_str(), at) {
                    (_, None) => 0,
                    ("j", Some(i)) => (i + 1).min(ids.len() - 1),
                    (_, Some(i)) => i.saturating_sub(1),
                };
                navigate(&format!("/inbox?c={}", ids[next]), Default::default());
                focus(&format!("conv-{}", ids[next]));
            }
            "r" => {
                e.prevent_default();
                focus("composer-text");
            }
            "e" if inbox.selected.get_untracked().is_some() => {
                inbox.change(json!({"status": "resolved"}));
            }
            "/" => {
                e.prevent_default();
                focus("inbox-search");
            }
            "?" => inbox.help_open.update(|h| *h = !*h),
            _ => {}
        }
    });
    on_cleanup(move || handle.remove());
}

/// The left column: search, filters, and the conversations.
#[component]
fn ConversationList() -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let search = RwSignal::new(String::new());
    let results = RwSignal::new(None::<SearchResults>);
    let run_search = move || {
        let q = search.get_untracked();
        if q.trim().is_empty() {
            results.set(None);
            return;
        }
        spawn_local(async move {
            match client::get::<SearchResults>(&format!("/api/v1/search?q={}", client::encode(&q)))
                .await
            {
                Ok(r) if search.get_untracked() == q => results.set(Some(r)),
                Ok(_) => {}
                Err(e) => inbox.toast(e.message),
            }
        });
    };
    let set_filter = move |f: Filter| {
        inbox.filter.set(f);
        inbox.reload_list();
    };
    let who_button = move |who: &'static str, label: &'static str| {
        view! {
            <button type="button" class="chip"
                aria-pressed=move || (inbox.filter.with(|f| f.who == who)).to_string()
                on:click=move |_| {
                    let mut f = inbox.filter.get_untracked();
                    f.who = who.into();
                    set_filter(f);
                }>{label}</button>
        }
    };
    let on_scroll = move |e: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if let Some(el) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            {
                if el.scroll_top() + el.client_height() + 200 >= el.scroll_height() {
                    inbox.load_more();
                }
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = e;
    };
    view! {
        <section class="conv-list" aria-label="Conversations">
            <h1 class="list-title">"Inbox"</h1>
            <form class="search" role="search" on:submit=move |e| { e.prevent_default(); run_search(); }>
                <label for="inbox-search" class="visually-hidden">"Search messages and contacts"</label>
                <input id="inbox-search" type="search" placeholder="Search messages and contacts  ( / )"
                    prop:value=move || search.get()
                    on:input=move |e| {
                        search.set(event_target_value(&e));
                        if search.with_untracked(|s| s.trim().is_empty()) { results.set(None); }
                    } />
            </form>
            <div class="filters" role="group" aria-label="Whose conversations">
                {who_button("mine", "Mine")}
                {who_button("unassigned", "Unassigned")}
                {who_button("all", "All")}
            </div>
            <div class="filters">
                <label class="visually-hidden" for="status-filter">"Status"</label>
                <select id="status-filter" on:change=move |e| {
                    let mut f = inbox.filter.get_untracked();
                    f.status = event_target_value(&e);
                    set_filter(f);
                }>
                    <option value="open" selected=true>"Open"</option>
                    <option value="pending">"Pending"</option>
                    <option value="resolved">"Resolved"</option>
                    <option value="all">"All statuses"</option>
                </select>
                <Show when=move || inbox.numbers.with(|n| n.len() > 1)>
                    <label class="visually-hidden" for="number-filter">"Number"</label>
                    <select id="number-filter" on:change=move |e| {
                        let mut f = inbox.filter.get_untracked();
                        let v = event_target_value(&e);
                        f.number_id = (!v.is_empty()).then_some(v);
                        set_filter(f);
                    }>
                        <option value="">"All numbers"</option>
                        {move || inbox.numbers.get().into_iter().map(|n| {
                            let label = n.display_phone.or(n.verified_name).unwrap_or(n.id.clone());
                            view! { <option value=n.id>{label}</option> }
                        }).collect_view()}
                    </select>
                </Show>
            </div>
            {move || results.get().map(|r| view! { <SearchResultsView results=r on_close=move || { results.set(None); search.set(String::new()); } /> })}
            <ul class="conversations" role="list" on:scroll=on_scroll>
                <For
                    each=move || inbox.conversations.get()
                    key=|c| (c.id.clone(), c.last_activity_at.clone(), c.unread_count, c.status.clone(),
                        c.assignee.as_ref().map(|a| a.id.clone()), c.last_message.as_ref().map(|m| (m.status.clone(), m.id.clone())))
                    let:c
                >
                    <ConversationRow c />
                </For>
                <Show when=move || inbox.list_loading.get()>
                    <li class="skeleton-row" aria-hidden="true"></li>
                    <li class="skeleton-row" aria-hidden="true"></li>
                    <li class="skeleton-row" aria-hidden="true"></li>
                </Show>
                <Show when=move || !inbox.list_loading.get() && inbox.conversations.with(Vec::is_empty)>
                    <li class="empty muted">"No conversations here. Messages from your customers appear as they arrive."</li>
                </Show>
            </ul>
        </section>
    }
}

#[component]
fn ConversationRow(c: Conversation) -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let id = c.id.clone();
    let selected = {
        let id = id.clone();
        Memo::new(move |_| inbox.selected.with(|s| s.as_deref() == Some(id.as_str())))
    };
    let offset = local_offset_min();
    let at = model::parse_rfc3339_ms(&c.last_activity_at).unwrap_or(0);
    let time = move || list_time(at, inbox.now.get().max(at), offset);
    let last = c.last_message.as_ref().map(preview).unwrap_or_default();
    let outbound = c
        .last_message
        .as_ref()
        .is_some_and(|m| m.direction == "outbound");
    let tick = c
        .last_message
        .as_ref()
        .and_then(|m| model::tick(&m.direction, &m.status, m.error.as_ref()));
    let name = c.contact.display();
    let unread = c.unread_count;
    view! {
        <li>
            <a id=format!("conv-{id}") class="conv" class:selected=selected class:unread={unread > 0}
                href=format!("/inbox?c={id}")
                aria-current=move || if selected.get() { "true" } else { "false" }
                aria-label=format!("{name}{}", if unread > 0 { format!(", {unread} unread") } else { String::new() })>
                <span class="avatar" aria-hidden="true">{c.contact.initials()}</span>
                <span class="conv-main">
                    <span class="conv-top">
                        <span class="conv-name">{name.clone()}</span>
                        <time class="conv-time">{time}</time>
                    </span>
                    <span class="conv-bottom">
                        <span class="conv-preview">
                            {tick.filter(|_| outbound).map(|t| view! { <span class=t.class title=t.label.clone()>{t.glyph}" "</span> })}
                            {last}
                        </span>
                        {(unread > 0).then(|| view! { <span class="badge" aria-hidden="true">{unread}</span> })}
                    </span>
                    <span class="conv-meta">
                        <span class=format!("status-pill {}", c.status)>{c.status.clone()}</span>
                        {c.assignee.as_ref().map(|a| view! { <span class="assignee">"→ "{a.display()}</span> })}
                        {c.labels.iter().map(|l| view! { <span class="label-chip">{l.clone()}</span> }).collect_view()}
                    </span>
                </span>
            </a>
        </li>
    }
    .into_any()
}

#[component]
fn SearchResultsView(
    results: SearchResults,
    on_close: impl Fn() + Send + Sync + 'static,
) -> impl IntoView {
    let inbox = expect_context::<Inbox>();
    let offset = local_offset_min();
    let empty = results.messages.is_empty() && results.contacts.is_empty();
    view! {
        <div class="search-results" role="region" aria-label="Search results">
            <div class="search-head">
                <strong>"Results"</strong>
                <button type="button" class="link" on:click=move |_| on_close()>"Close"</button>
            </div>
            {empty.then(|| view! { <p class="muted">"Nothing found."</p> })}
            <ul role="list">
                {results.contacts.into_iter().filter_map(|k| {
                    let conv = k.conversation_id.clone()?;
                    Some(view! {
                        <li><a class="hit" href=format!("/inbox?c={conv}")>
                            "👤 "<strong>{k.name.clone().or(k.phone.clone()).unwrap_or_default()}</strong>
                            " "<span class="muted">{k.phone.clone().unwrap_or_default()}</span>
                        </a></li>
                    })
                }).collect_view()}
                {results.messages.into_iter().map(|h| {
                    let at = model::parse_rfc3339_ms(&h.timestamp).unwrap_or(0);
                    view! {
                        <li><a class="hit" href=format!("/inbox?c={}&m={}", h.conversation_id, h.message_id)>
                            <span class="hit-who">{h.contact_name.clone().or(h.phone.clone()).unwrap_or_default()}</span>
                            <time class="muted">{move || list_time(at, inbox.now.get().max(at), offset)}</time>
                            <span class="hit-text">{h.snippet.clone()}</span>
                        </a></li>
                    }
                }).collect_view()}
            </ul>
        </div>
    }
}

/// Minutes east of UTC of the browser's clock (0 on the server).
pub fn local_offset_min() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        -(js_sys::Date::new_0().get_timezone_offset() as i64)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

/// Now as RFC 3339 (for optimistic messages).
pub fn now_rfc3339() -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::new_0().to_iso_string().into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        "1970-01-01T00:00:00Z".into()
    }
}
