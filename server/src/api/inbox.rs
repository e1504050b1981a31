//! What agents do to conversations: assign, set the status and labels, mark unread, write
//! internal notes, use canned responses, and search messages and contacts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use app::server::db::inbox::{
    search_terms, AssigneeFilter, CannedRow, ContactHit, ConversationFilter, ConversationPatch,
    MessageHit, NoteRow,
};
use app::server::rfc3339;

use super::conversations::{conversation_dto, ConversationDto};
use super::{ApiCaller, ApiError, ApiJson};
use crate::AppState;

/// The longest note, canned response or search.
const MAX_NOTE_CHARS: usize = 4096;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(update, mark_unread, list_notes, add_note, list_canned, create_canned, delete_canned, search),
    components(schemas(ConversationChange, NoteDto, NoteList, NewNote, CannedDto, CannedList, NewCanned,
        SearchResults, MessageHitDto, ContactHitDto)),
    tags((name = "inbox", description = "Working conversations: assignment, status, labels, notes, canned responses, search"))
)]
pub struct InboxDoc;

/// The list's filters: `status`, `assignee` (`me`, `unassigned` or a user id) and `number_id`.
#[derive(Debug, Deserialize, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub number_id: Option<String>,
}

impl ListFilter {
    pub fn resolve(&self, caller: &ApiCaller) -> Result<ConversationFilter, ApiError> {
        let status = match self.status.as_deref() {
            None | Some("") | Some("all") => None,
            Some(s @ ("open" | "pending" | "resolved")) => Some(s.to_string()),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "status must be open, pending, resolved or all, got `{other}`"
                )))
            }
        };
        let assignee = match self.assignee.as_deref() {
            None | Some("") | Some("all") | Some("anyone") => AssigneeFilter::Anyone,
            Some("me") => AssigneeFilter::User(caller.user_id.clone()),
            Some("unassigned") | Some("none") => AssigneeFilter::Unassigned,
            Some(id) => AssigneeFilter::User(id.to_string()),
        };
        Ok(ConversationFilter {
            status,
            assignee,
            number_id: self.number_id.clone().filter(|n| !n.is_empty()),
        })
    }
}

/// `PATCH /api/v1/conversations/{id}`: any of `status`, `assignee_id` (a member's id, or null
/// to unassign) and `labels`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConversationChange {
    /// `open`, `pending` or `resolved`.
    pub status: Option<String>,
    /// A member's user id, or null to unassign; leave it out to keep the assignee.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    pub assignee_id: Option<Value>,
    pub labels: Option<Vec<String>>,
}

/// A field that is there, even as `null` (which unassigns), is `Some`; a missing one is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Changes a conversation's status, assignee or labels; everyone watching sees it live.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ConversationChange,
    responses((status = 200, body = ConversationDto), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<ConversationChange>,
) -> Result<Json<ConversationDto>, ApiError> {
    let invalid = |field: &str, message: &str| ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    };
    if let Some(s) = &change.status {
        if !matches!(s.as_str(), "open" | "pending" | "resolved") {
            return Err(invalid(
                "status",
                "status must be open, pending or resolved",
            ));
        }
    }
    let assignee_id = match change.assignee_id {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if !s.is_empty() => Some(Some(s)),
        Some(_) => {
            return Err(invalid(
                "assignee_id",
                "assignee_id must be a member's id, or null to unassign",
            ))
        }
    };
    let labels = match change.labels {
        None => None,
        Some(list) => Some(clean_labels(list).map_err(|m| invalid("labels", &m))?),
    };
    let patch = ConversationPatch {
        status: change.status,
        assignee_id,
        labels,
    };
    let found = match state
        .db
        .update_conversation(&caller.workspace_id, &id, &patch)
        .await
    {
        Err(app::server::db::DbError::NotFound(_)) => {
            return Err(ApiError::NotFound(
                "no such member in this workspace".into(),
            ))
        }
        other => other?,
    };
    if !found {
        return Err(ApiError::NotFound("no such conversation".into()));
    }
    announce(&state, &caller.workspace_id).await;
    current(&state, &caller, &id).await.map(Json)
}

/// Labels: trimmed, 1–40 characters, at most 20, no duplicates.
fn clean_labels(list: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for l in list {
        let l = l.trim().to_string();
        if l.is_empty() || l.chars().count() > 40 {
            return Err("each label must have 1 to 40 characters".into());
        }
        if !out.iter().any(|x| x.eq_ignore_ascii_case(&l)) {
            out.push(l);
        }
    }
    if out.len() > 20 {
        return Err("a conversation has at most 20 labels".into());
    }
    Ok(out)
}

/// Marks a conversation unread again (for the team; Meta is not told).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/unread", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn mark_unread(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ConversationDto>, ApiError> {
    if !state
        .db
        .mark_conversation_unread(&caller.workspace_id, &id)
        .await?
    {
        return Err(ApiError::NotFound("no such conversation".into()));
    }
    announce(&state, &caller.workspace_id).await;
    current(&state, &caller, &id).await.map(Json)
}

async fn current(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<ConversationDto, ApiError> {
    let row = state
        .db
        .conversation(&caller.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    conversation_dto(state, &caller.workspace_id, row).await
}

/// Wakes this instance's event streams, and the other instances' through Postgres.
async fn announce(state: &AppState, workspace_id: &str) {
    state.events.wake(workspace_id);
    if let Err(e) = state.db.notify_events(workspace_id).await {
        tracing::warn!(error = %e, "could not notify other instances");
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NoteDto {
    pub id: String,
    pub conversation_id: String,
    pub author: Option<super::conversations::AssigneeDto>,
    pub body: String,
    pub created_at: String,
}

impl From<NoteRow> for NoteDto {
    fn from(n: NoteRow) -> Self {
        NoteDto {
            author: match (n.author_id, n.author_email) {
                (Some(id), Some(email)) => Some(super::conversations::AssigneeDto {
                    id,
                    email,
                    name: n.author_name.unwrap_or_default(),
                }),
                _ => None,
            },
            id: n.id,
            conversation_id: n.conversation_id,
            body: n.body,
            created_at: rfc3339(n.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NoteList {
    pub data: Vec<NoteDto>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewNote {
    pub body: String,
}

/// A conversation's internal notes, oldest first (never sent to the customer).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/notes", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = NoteList), (status = 404, body = super::error::ErrorBody)))]
pub async fn list_notes(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<NoteList>, ApiError> {
    if state
        .db
        .conversation(&caller.workspace_id, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("no such conversation".into()));
    }
    let data = state
        .db
        .notes(&caller.workspace_id, &id)
        .await?
        .into_iter()
        .map(NoteDto::from)
        .collect();
    Ok(Json(NoteList { data }))
}

/// Adds an internal note, seen by the team only.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NewNote,
    responses((status = 201, body = NoteDto), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(note): ApiJson<NewNote>,
) -> Result<(StatusCode, Json<NoteDto>), ApiError> {
    let body = note.body.trim();
    if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::Unprocessable {
            code: "validation_failed",
            field: "body".into(),
            message: format!("a note has 1 to {MAX_NOTE_CHARS} characters"),
        });
    }
    let row = state
        .db
        .add_note(&caller.workspace_id, &id, &caller.user_id, body)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    announce(&state, &caller.workspace_id).await;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CannedDto {
    pub id: String,
    /// Typed after `/` in the composer.
    pub shortcut: String,
    pub body: String,
    pub updated_at: String,
}

impl From<CannedRow> for CannedDto {
    fn from(c: CannedRow) -> Self {
        CannedDto {
            id: c.id,
            shortcut: c.shortcut,
            body: c.body,
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CannedList {
    pub data: Vec<CannedDto>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewCanned {
    pub shortcut: String,
    pub body: String,
}

/// The workspace's canned responses.
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = CannedList), (status = 401, body = super::error::ErrorBody)))]
pub async fn list_canned(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<CannedList>, ApiError> {
    let data = state
        .db
        .canned_responses(&caller.workspace_id)
        .await?
        .into_iter()
        .map(CannedDto::from)
        .collect();
    Ok(Json(CannedList { data }))
}

/// Adds a canned response (admins).
#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    request_body = NewCanned,
    responses((status = 201, body = CannedDto), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_canned(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(new): ApiJson<NewCanned>,
) -> Result<(StatusCode, Json<CannedDto>), ApiError> {
    caller.require_admin()?;
    let shortcut = new.shortcut.trim().trim_start_matches('/').to_lowercase();
    if shortcut.is_empty()
        || shortcut.len() > 32
        || !shortcut
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::Unprocessable {
            code: "validation_failed",
            field: "shortcut".into(),
            message: "a shortcut has 1 to 32 letters, digits, `_` or `-`".into(),
        });
    }
    let body = new.body.trim();
    if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::Unprocessable {
            code: "validation_failed",
            field: "body".into(),
            message: format!("a canned response has 1 to {MAX_NOTE_CHARS} characters"),
        });
    }
    let row = state
        .db
        .create_canned_response(&caller.workspace_id, &shortcut, body)
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Removes a canned response (admins).
#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_canned(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if state
        .db
        .delete_canned_response(&caller.workspace_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such canned response".into()))
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    pub q: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageHitDto {
    pub message_id: String,
    pub conversation_id: String,
    pub direction: String,
    /// The matching text, shortened around the first matching word.
    pub snippet: String,
    pub timestamp: String,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactHitDto {
    pub contact_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    /// Their newest conversation, if any.
    pub conversation_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub messages: Vec<MessageHitDto>,
    pub contacts: Vec<ContactHitDto>,
}

/// Full-text search over the workspace's messages (every word, as a prefix) and its contacts.
#[utoipa::path(get, path = "/api/v1/search", tag = "inbox", security(("bearer" = [])),
    params(("q" = String, Query, description = "words to find")),
    responses((status = 200, body = SearchResults), (status = 400, body = super::error::ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let q = query.q.unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "a search has at most 200 characters".into(),
        ));
    }
    let words = search_terms(&q);
    let messages = state
        .db
        .search_messages(&caller.workspace_id, &q, 30)
        .await?
        .into_iter()
        .map(|h: MessageHit| MessageHitDto {
            snippet: snippet(&h.content, &words),
            message_id: h.message_id,
            conversation_id: h.conversation_id,
            direction: h.direction,
            timestamp: rfc3339(h.timestamp),
            contact_name: h.contact_name,
            phone: h.phone,
        })
        .collect();
    let contacts = state
        .db
        .search_contacts(&caller.workspace_id, &q, 10)
        .await?
        .into_iter()
        .map(|c: ContactHit| ContactHitDto {
            contact_id: c.contact_id,
            name: c.name,
            phone: c.phone,
            username: c.username,
            conversation_id: c.conversation_id,
        })
        .collect();
    Ok(Json(SearchResults { messages, contacts }))
}

/// The message's searchable text, cut to about 120 characters around the first word found.
pub fn snippet(content: &str, words: &[String]) -> String {
    let v: Value = serde_json::from_str(content).unwrap_or_default();
    let text = ["body", "caption", "filename", "name", "address", "text"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let at = words
        .iter()
        .filter_map(|w| {
            let w: Vec<char> = w.chars().collect();
            lower
                .windows(w.len().max(1))
                .position(|win| win == w.as_slice())
        })
        .min()
        .unwrap_or(0);
    let start = at.saturating_sub(40);
    let end = (start + 120).min(chars.len());
    let mut out: String = chars[start..end].iter().collect();
    if start > 0 {
        out.insert(0, '…');
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_cut_around_the_first_match() {
        let long = format!(
            "{{\"body\": \"{} the invoice number is 42 {}\"}}",
            "a".repeat(100),
            "b".repeat(100)
        );
        let s = snippet(&long, &["invoice".into()]);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("the invoice number"), "{s}");
        assert_eq!(snippet("{\"caption\": \"Menu\"}", &["menu".into()]), "Menu");
        assert_eq!(snippet("not json", &["x".into()]), "");
    }

    #[test]
    fn labels_are_trimmed_deduplicated_and_bounded() {
        assert_eq!(
            clean_labels(vec![" VIP ".into(), "vip".into(), "refund".into()]).unwrap(),
            vec!["VIP", "refund"]
        );
        assert!(clean_labels(vec!["".into()]).is_err());
        assert!(clean_labels(vec!["x".repeat(41)]).is_err());
        assert!(clean_labels((0..21).map(|i| i.to_string()).collect()).is_err());
    }
}
