//! `GET /api/v1/events`: the workspace's live changes as Server-Sent Events.
//!
//! The stream reads the `events` table after the client's position (`Last-Event-ID`, or the
//! newest event for a new connection), so a reconnect gets exactly what it missed; wake-ups
//! from the event bus (and Postgres `NOTIFY`) make it prompt, a poll every second makes it
//! certain, and a keep-alive comment goes out every 15 seconds.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::conversations::{conversation_dto, MessageDto};
use super::{ApiCaller, ApiError};
use crate::AppState;

struct Cursor {
    state: AppState,
    workspace_id: String,
    position: i64,
    pending: VecDeque<Event>,
    wake: broadcast::Receiver<String>,
    /// Counts this stream in `qontak_sse_clients` while it is open.
    _open: app::server::metrics::SseGuard,
}

#[derive(serde::Deserialize)]
pub struct Resume {
    last_event_id: Option<String>,
}

/// Live events of the caller's workspace.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id"),
        ("last_event_id" = Option<String>, Query, description = "the same, for a client that cannot set headers")),
    responses((status = 200, description = "text/event-stream of `message.created`, `message.updated`, `conversation.updated`, `template.updated`; each `data:` is `{type, workspace_id, data}`", content_type = "text/event-stream"),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    axum::extract::Query(resume): axum::extract::Query<Resume>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let workspace_id = caller.workspace_id;
    let wake = state.events.subscribe();
    let mut pending = VecDeque::new();
    // The header is what EventSource sends when it reconnects by itself; the query parameter
    // is for a client that opens a new stream after noticing a drop.
    let resume_from = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .or(resume.last_event_id);
    let position =
        match resume_from {
            Some(v) => {
                let id: i64 = Some(v.as_str())
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|n: &i64| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(
                            "Last-Event-ID must be an event id this stream sent".into(),
                        )
                    })?;
                // Older than what is kept: say so, so the client refetches instead of trusting a gap.
                if let Some(first) = state.db.first_event_id(&workspace_id).await? {
                    if id + 1 < first {
                        pending.push_back(Event::default().event("resync").data(
                            json!({"type": "resync", "workspace_id": workspace_id}).to_string(),
                        ));
                    }
                }
                id
            }
            None => state.db.last_event_id(&workspace_id).await?,
        };
    let cursor = Cursor {
        state,
        workspace_id,
        position,
        pending,
        wake,
        _open: app::server::metrics::SseGuard::open(),
    };
    let stream = stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok(event), c));
            }
            match c
                .state
                .db
                .events_after(&c.workspace_id, c.position, 200)
                .await
            {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        c.position = row.id;
                        let data = render(&c.state, &c.workspace_id, &row.kind, &row.data).await;
                        let body =
                            json!({"type": row.kind, "workspace_id": c.workspace_id, "data": data});
                        c.pending.push_back(
                            Event::default()
                                .id(row.id.to_string())
                                .event(row.kind)
                                .data(body.to_string()),
                        );
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading events failed; retrying"),
            }
            // Sleep until this workspace is woken, or a second passes.
            let deadline = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    woke = c.wake.recv() => match woke {
                        Ok(w) if w != c.workspace_id => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                        _ => break,
                    },
                    _ = &mut deadline => break,
                }
            }
        }
    });
    // Fused: a finished `unfold` panics if polled again (the compression layer may).
    let stream = futures_util::StreamExt::fuse(stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The event's object as the API shows it now (the id alone if it is gone).
pub(crate) async fn render(state: &AppState, workspace_id: &str, kind: &str, data: &str) -> Value {
    let raw: Value = serde_json::from_str(data).unwrap_or_default();
    let id = raw.get("id").and_then(Value::as_str).unwrap_or_default();
    let object = if kind.starts_with("message.") {
        match state.db.message(workspace_id, id).await {
            Ok(Some(m)) => serde_json::to_value(MessageDto::from(m)).ok(),
            _ => None,
        }
    } else if kind.starts_with("conversation.") {
        match state.db.conversation(workspace_id, id).await {
            Ok(Some(row)) => match conversation_dto(state, workspace_id, row).await {
                Ok(dto) => serde_json::to_value(dto).ok(),
                Err(_) => None,
            },
            _ => None,
        }
    } else if kind.starts_with("note.") {
        match state.db.note(workspace_id, id).await {
            Ok(Some(n)) => serde_json::to_value(super::inbox::NoteDto::from(n)).ok(),
            _ => None,
        }
    } else if kind.starts_with("template.") {
        match state.db.template(workspace_id, id).await {
            Ok(Some(t)) => serde_json::to_value(super::templates::TemplateDto::from(t)).ok(),
            _ => None,
        }
    } else {
        None
    };
    object.unwrap_or(raw)
}
