//! The live event stream: `EventSource` on `/api/v1/events`, applied to the inbox's store.
//! The browser reconnects by itself after a drop (sending `Last-Event-ID`); when the network
//! goes away we close the stream ourselves and, once it is back, open a new one that resumes
//! after the last event we applied, so nothing sent meanwhile is missed.

use leptos::prelude::*;

use super::model::{is_shown, upsert_message, Conversation, LiveEvent, Message, Note};
use super::Inbox;

/// Applies one event to the store.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn apply(inbox: Inbox, event: LiveEvent) {
    match event.kind.as_str() {
        "message.created" | "message.updated" => {
            let Ok(m) = serde_json::from_value::<Message>(event.data) else {
                return;
            };
            if m.kind == "reaction" {
                return;
            }
            if inbox.selected.get_untracked().as_deref() == Some(m.conversation_id.as_str()) {
                let new = inbox.thread.with_untracked(|t| !is_shown(t, &m));
                inbox.thread.update(|t| upsert_message(t, m));
                if new {
                    inbox.arrivals.update(|n| *n += 1);
                }
            }
        }
        "conversation.updated" => {
            let Ok(c) = serde_json::from_value::<Conversation>(event.data) else {
                return;
            };
            let open_here = inbox.selected.get_untracked().as_deref() == Some(c.id.as_str());
            let unread = c.unread_count > 0;
            let id = c.id.clone();
            inbox.conversation_changed(c);
            // The agent is looking at it: what arrives is read.
            if open_here && unread && document_visible() {
                inbox.mark_read(id);
            }
        }
        "note.created" => {
            let Ok(n) = serde_json::from_value::<Note>(event.data) else {
                return;
            };
            if inbox.selected.get_untracked().as_deref() == Some(n.conversation_id.as_str()) {
                inbox.notes.update(|l| {
                    if !l.iter().any(|x| x.id == n.id) {
                        l.push(n);
                    }
                });
                inbox.arrivals.update(|x| *x += 1);
            }
        }
        "resync" => refresh(inbox),
        _ => {}
    }
}

/// Reloads what is on screen (after a gap the stream could not replay).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn refresh(inbox: Inbox) {
    inbox.reload_list();
    if let Some(id) = inbox.selected.get_untracked() {
        inbox.open(id);
    }
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn document_visible() -> bool {
    #[cfg(feature = "hydrate")]
    {
        !document().hidden()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

#[cfg(not(feature = "hydrate"))]
pub fn start(_inbox: Inbox) {}

#[cfg(feature = "hydrate")]
pub use browser::start;

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::RefCell;
    use std::rc::Rc;

    use leptos::prelude::*;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    use super::{apply, refresh};
    use crate::inbox::{model::LiveEvent, Inbox, LiveState};

    const KINDS: [&str; 6] = [
        "message.created",
        "message.updated",
        "conversation.updated",
        "note.created",
        "template.updated",
        "resync",
    ];

    #[derive(Default)]
    struct Stream {
        source: Option<web_sys::EventSource>,
        last_id: Option<String>,
        /// Bumped on every (re)open, so a stale stream's callbacks do nothing.
        generation: u32,
        loaded: bool,
    }

    /// Opens the stream and watches the network.
    pub fn start(inbox: Inbox) {
        let stream = Rc::new(RefCell::new(Stream::default()));
        open(inbox, stream.clone());
        let s = stream.clone();
        let offline = window_event_listener_untyped("offline", move |_| {
            close(&s);
            inbox.live.set(LiveState::Reconnecting);
        });
        let s = stream.clone();
        let online = window_event_listener_untyped("online", move |_| open(inbox, s.clone()));
        // Leaving the inbox closes the stream and forgets the listeners (all in this thread).
        let held = send_wrapper::SendWrapper::new((stream, offline, online));
        on_cleanup(move || {
            let (s, offline, online) = held.take();
            offline.remove();
            online.remove();
            close(&s);
        });
    }

    fn close(stream: &Rc<RefCell<Stream>>) {
        let mut st = stream.borrow_mut();
        st.generation += 1;
        if let Some(es) = st.source.take() {
            es.close();
        }
    }

    fn open(inbox: Inbox, stream: Rc<RefCell<Stream>>) {
        close(&stream);
        let (url, generation) = {
            let st = stream.borrow();
            let url = match &st.last_id {
                Some(id) => format!("/api/v1/events?last_event_id={id}"),
                None => "/api/v1/events".to_string(),
            };
            (url, st.generation)
        };
        let Ok(es) = web_sys::EventSource::new(&url) else {
            inbox.live.set(LiveState::Reconnecting);
            return;
        };
        for kind in KINDS {
            let s = stream.clone();
            let on_event = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                move |e: web_sys::MessageEvent| {
                    if s.borrow().generation != generation {
                        return;
                    }
                    let id = e.last_event_id();
                    if !id.is_empty() {
                        s.borrow_mut().last_id = Some(id);
                    }
                    if let Some(text) = e.data().as_string() {
                        if let Ok(event) = serde_json::from_str(&text)
                            .and_then(serde_json::from_value::<LiveEvent>)
                        {
                            apply(inbox, event);
                        }
                    }
                },
            );
            let _ = es.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
            on_event.forget();
        }
        let s = stream.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if s.borrow().generation != generation {
                return;
            }
            inbox.live.set(LiveState::Live);
            // The first connection fixes the stream's starting point; loading after it means
            // nothing falls between the page and the stream.
            let first = !s.borrow().loaded;
            s.borrow_mut().loaded = true;
            if first {
                refresh(inbox);
            }
        });
        es.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();
        let s = stream.clone();
        let on_error = Closure::<dyn FnMut()>::new(move || {
            if s.borrow().generation != generation {
                return;
            }
            inbox.live.set(LiveState::Reconnecting);
            if !s.borrow().loaded {
                // Never connected: show what we can anyway.
                s.borrow_mut().loaded = true;
                refresh(inbox);
            }
            let closed = s
                .borrow()
                .source
                .as_ref()
                .is_some_and(|es| es.ready_state() == web_sys::EventSource::CLOSED);
            if closed {
                // The browser gave up (an error answer): try again ourselves shortly.
                let again = s.clone();
                set_timeout(
                    move || {
                        if again.borrow().generation == generation {
                            open(inbox, again.clone());
                        }
                    },
                    std::time::Duration::from_secs(3),
                );
            }
        });
        es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        stream.borrow_mut().source = Some(es);
    }
}
