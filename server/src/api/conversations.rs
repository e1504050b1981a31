//! Conversations, their messages, and contacts (read side of the integration API).

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use app::server::db::read::{ContactRow, ConversationRow, MessageRow};
use app::server::{now_ms, rfc3339};

use super::paging::{encode, PageQuery};
use super::{ApiCaller, ApiError};
use crate::AppState;

/// The customer-service window: 24 hours from the customer's last message (Meta's time).
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WindowDto {
    pub open: bool,
    /// RFC 3339, or null when the customer never wrote.
    pub expires_at: Option<String>,
}

/// Whether free-form messages may be sent, given the last inbound time and the clock.
pub fn window(last_inbound_at: Option<i64>, now: i64) -> WindowDto {
    match last_inbound_at {
        Some(t) => WindowDto {
            open: now < t + WINDOW_MS,
            expires_at: Some(rfc3339(t + WINDOW_MS)),
        },
        None => WindowDto {
            open: false,
            expires_at: None,
        },
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactDto {
    pub id: String,
    /// Digits only, as Meta writes it; null when Meta gave only a BSUID.
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Lower-case labels, sorted.
    pub labels: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ContactRow> for ContactDto {
    fn from(c: ContactRow) -> Self {
        ContactDto {
            id: c.id,
            wa_id: c.wa_id,
            bsuid: c.bsuid,
            phone: c.phone,
            name: c.name,
            profile_name: c.profile_name,
            username: c.username,
            attributes: serde_json::from_str(&c.attributes).unwrap_or_default(),
            labels: Vec::new(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationContactDto {
    pub id: String,
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub phone: Option<String>,
    /// Our name for the contact, else their WhatsApp profile name.
    pub name: Option<String>,
    pub username: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AssigneeDto {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorInfoDto {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub detail: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageDto {
    pub id: String,
    pub wamid: Option<String>,
    pub conversation_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Meta's type name: `text`, `image`, `location`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's object in Meta's shape.
    #[schema(value_type = Object)]
    pub content: Value,
    /// Meta's reply context (`from`, `id`, `forwarded`…), when any.
    #[schema(value_type = Object)]
    pub context: Option<Value>,
    /// The Qontak id of the message this one replies to.
    pub reply_to: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub reactions: Value,
    pub status: String,
    pub error: Option<ErrorInfoDto>,
    /// RFC 3339; Meta's time for inbound messages.
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub status_timestamps: Value,
    pub edited: bool,
    pub deleted: bool,
    /// Earlier versions after an edit or a revoke, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Value,
    /// The `idempotency_key` the sender gave, for an outbound message sent through the API, so
    /// the client that sent it can match the event to its own copy; null after 24 hours.
    pub idempotency_key: Option<String>,
}

impl From<MessageRow> for MessageDto {
    fn from(m: MessageRow) -> Self {
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        let mut content = json(&m.content);
        if let (Some(state), Some(obj)) = (&m.media_state, content.as_object_mut()) {
            // Inbound: Meta's media id; outbound: the id our upload answered.
            if !obj.contains_key("media_id") {
                obj.insert(
                    "media_id".into(),
                    obj.get("id").cloned().unwrap_or(Value::Null),
                );
            }
            obj.insert("url".into(), Value::String(format!("/media/{}", m.id)));
            obj.insert("download_state".into(), Value::String(state.clone()));
        }
        MessageDto {
            error: (m.error_code.is_some() || m.error_title.is_some()).then(|| ErrorInfoDto {
                code: m.error_code,
                title: m.error_title.clone(),
                detail: m.error_detail.clone(),
            }),
            content,
            context: m.context.as_deref().map(json),
            reactions: json(&m.reactions),
            status_timestamps: json(&m.status_timestamps),
            history: m
                .history
                .as_deref()
                .map(json)
                .unwrap_or_else(|| Value::Array(vec![])),
            edited: m.edited_at.is_some(),
            deleted: m.revoked_at.is_some(),
            timestamp: rfc3339(m.timestamp),
            id: m.id,
            wamid: m.wamid,
            conversation_id: m.conversation_id,
            direction: m.direction,
            kind: m.kind,
            reply_to: m.reply_to_id,
            status: m.status,
            idempotency_key: m.idempotency_key,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationDto {
    pub id: String,
    pub number_id: String,
    pub contact: ConversationContactDto,
    /// `open`, `pending` or `resolved`.
    pub status: String,
    pub assignee: Option<AssigneeDto>,
    pub unread_count: i64,
    pub last_message: Option<MessageDto>,
    pub last_activity_at: String,
    pub window: WindowDto,
    /// The team's labels.
    pub labels: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub data: Vec<ConversationDto>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageList {
    /// Oldest to newest within the page.
    pub data: Vec<MessageDto>,
    /// Older messages.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactList {
    pub data: Vec<ContactDto>,
    pub next_cursor: Option<String>,
}

pub(crate) async fn conversation_dto(
    state: &AppState,
    workspace_id: &str,
    c: ConversationRow,
) -> Result<ConversationDto, ApiError> {
    let last_message = match &c.last_message_id {
        Some(id) => state
            .db
            .message(workspace_id, id)
            .await?
            .map(MessageDto::from),
        None => None,
    };
    Ok(ConversationDto {
        labels: serde_json::from_str(&c.labels).unwrap_or_default(),
        window: window(c.last_inbound_at, now_ms()),
        last_activity_at: rfc3339(c.last_message_at),
        assignee: match (c.assignee_id, c.assignee_email) {
            (Some(id), Some(email)) => Some(AssigneeDto {
                id,
                email,
                name: c.assignee_name.unwrap_or_default(),
            }),
            _ => None,
        },
        contact: ConversationContactDto {
            id: c.contact_id,
            wa_id: c.wa_id,
            bsuid: c.bsuid,
            phone: c.phone,
            name: c.contact_name.or(c.profile_name),
            username: c.username,
        },
        id: c.id,
        number_id: c.number_id,
        status: c.status,
        unread_count: c.unread_count,
        last_message,
    })
}

/// Conversations, newest activity first, optionally filtered.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, description = "1–200, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("status" = Option<String>, Query, description = "open, pending, resolved or all"),
        ("assignee" = Option<String>, Query, description = "me, unassigned, or a member's id"),
        ("number_id" = Option<String>, Query, description = "one connected number")),
    responses((status = 200, body = ConversationList), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<PageQuery>,
    Query(filter): Query<super::inbox::ListFilter>,
) -> Result<Json<ConversationList>, ApiError> {
    let limit = q.limit()?;
    let filter = filter.resolve(&caller)?;
    let rows = state
        .db
        .inbox_conversations(&caller.workspace_id, &filter, &q.position()?, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    let mut data = Vec::new();
    for c in rows.into_iter().take(limit as usize) {
        data.push(conversation_dto(&state, &caller.workspace_id, c).await?);
    }
    let next_cursor = more
        .then(|| {
            data.last()
                .map(|c| encode(&(last_ms(&c.last_activity_at), c.id.clone())))
        })
        .flatten();
    Ok(Json(ConversationList { data, next_cursor }))
}

fn last_ms(rfc: &str) -> i64 {
    time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_default()
}

/// One conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ConversationDto>, ApiError> {
    let c = state
        .db
        .conversation(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    Ok(Json(
        conversation_dto(&state, &caller.workspace_id, c).await?,
    ))
}

/// A conversation's messages; the first page is the newest, oldest→newest within a page.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = MessageList), (status = 404, body = super::error::ErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = q.limit()?;
    let position = q.position()?;
    if state
        .db
        .conversation(&caller.workspace_id, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("no such conversation".into()));
    }
    let rows = state
        .db
        .messages(&caller.workspace_id, &id, &position, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<MessageRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        page.last().map(|m| encode(&(m.timestamp, m.id.clone())))
    } else {
        None
    };
    let data = page.into_iter().rev().map(MessageDto::from).collect();
    Ok(Json(MessageList { data, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_for_24_hours_after_the_customers_last_message() {
        let t = 1_700_000_000_000;
        assert!(window(Some(t), t + WINDOW_MS - 1).open);
        assert!(!window(Some(t), t + WINDOW_MS).open);
        assert_eq!(
            window(Some(t), t).expires_at.as_deref(),
            Some(rfc3339(t + WINDOW_MS).as_str())
        );
        let never = window(None, t);
        assert!(!never.open && never.expires_at.is_none());
    }
}
