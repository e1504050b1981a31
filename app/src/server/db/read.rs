//! Reads for the inbox and the integration API, always scoped to one workspace, paged by
//! keyset cursors (no OFFSET: a page costs the same at the end of a long history).

use super::{Db, DbError};

/// A conversation with its contact, assignee and last message, as the list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub number_id: String,
    pub status: String,
    pub unread_count: i64,
    pub last_inbound_at: Option<i64>,
    pub last_message_at: i64,
    pub contact_id: String,
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub phone: Option<String>,
    pub contact_name: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    pub assignee_id: Option<String>,
    pub assignee_email: Option<String>,
    pub assignee_name: Option<String>,
    pub last_message_id: Option<String>,
    /// A JSON array of label strings.
    pub labels: String,
}

/// A message as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub wamid: Option<String>,
    pub conversation_id: String,
    pub direction: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub content: String,
    pub context: Option<String>,
    pub reply_to_id: Option<String>,
    pub reactions: String,
    pub status: String,
    pub status_timestamps: String,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub history: Option<String>,
    pub edited_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub timestamp: i64,
    /// `pending`, `ready` or `failed` for a message with an attachment.
    pub media_state: Option<String>,
    /// The sender's key for an outbound message sent through the API (kept 24 hours).
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: String,
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    pub attributes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A keyset position: (time, id), newest first.
pub type Position = (i64, String);

/// Before any real position: the first page.
pub fn start() -> Position {
    (i64::MAX, "~".to_string())
}

macro_rules! conversation_select {
    () => {
        "SELECT c.id, c.number_id, c.status, c.unread_count, c.last_inbound_at, c.last_message_at, \
         k.id AS contact_id, k.wa_id, k.bsuid, k.phone, k.name AS contact_name, k.profile_name, k.username, \
         u.id AS assignee_id, u.email AS assignee_email, u.name AS assignee_name, c.last_message_id, c.labels \
         FROM conversations c JOIN contacts k ON k.id = c.contact_id LEFT JOIN users u ON u.id = c.assignee_id "
    };
}

macro_rules! message_select {
    () => {
        "SELECT id, wamid, conversation_id, direction, type, content, context, reply_to_id, reactions, status, \
         status_timestamps, error_code, error_title, error_detail, history, edited_at, revoked_at, timestamp, \
         idempotency_key, (SELECT state FROM media WHERE media.message_id = messages.id) AS media_state FROM messages "
    };
}

impl Db {
    /// A page of conversations, newest activity first, after `after`.
    pub async fn conversations(
        &self,
        workspace_id: &str,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, DbError> {
        let sql = concat!(
            conversation_select!(),
            "WHERE c.workspace_id = $1 AND (c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3)) \
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT $4"
        );
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(after.0).bind(&after.1).bind(limit).fetch_all(p).await)?,
        )
    }

    pub async fn conversation(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ConversationRow>, DbError> {
        let sql = concat!(
            conversation_select!(),
            "WHERE c.workspace_id = $1 AND c.id = $2"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// A page of a conversation's messages, newest first, before `before`.
    pub async fn messages(
        &self,
        workspace_id: &str,
        conversation_id: &str,
        before: &Position,
        limit: i64,
    ) -> Result<Vec<MessageRow>, DbError> {
        let sql = concat!(
            message_select!(),
            "WHERE workspace_id = $1 AND conversation_id = $2 AND type <> 'reaction' AND (timestamp < $3 OR (timestamp = $3 AND id < $4)) \
             ORDER BY timestamp DESC, id DESC LIMIT $5"
        );
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(conversation_id).bind(before.0).bind(&before.1).bind(limit).fetch_all(p).await)?,
        )
    }

    /// Messages by id, scoped to the workspace (for last messages and replies).
    pub async fn message(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<MessageRow>, DbError> {
        let sql = concat!(message_select!(), "WHERE workspace_id = $1 AND id = $2");
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// A page of contacts, newest first.
    pub async fn contacts(
        &self,
        workspace_id: &str,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<ContactRow>, DbError> {
        let sql = "SELECT id, wa_id, bsuid, phone, name, profile_name, username, attributes, created_at, updated_at FROM contacts \
                   WHERE workspace_id = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(after.0).bind(&after.1).bind(limit).fetch_all(p).await)?,
        )
    }

    pub async fn contact(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<ContactRow>, DbError> {
        let sql = "SELECT id, wa_id, bsuid, phone, name, profile_name, username, attributes, created_at, updated_at FROM contacts \
                   WHERE workspace_id = $1 AND id = $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// Stored webhook bodies: how many, for tests and the operator's inspector.
    pub async fn webhook_event_count(&self) -> Result<i64, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events").fetch_one(p).await)?,
        )
    }
}

impl Db {
    /// How many stored messages carry each wamid (crash tests check for exactly one).
    pub async fn wamid_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let sql = "SELECT wamid, COUNT(*) FROM messages WHERE wamid IS NOT NULL GROUP BY wamid";
        Ok(on!(self, p => sqlx::query_as(sql).fetch_all(p).await)?)
    }
}

/// One entry of the live-event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub data: String,
}

impl Db {
    /// A workspace's events after `after`, oldest first.
    pub async fn events_after(
        &self,
        workspace_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        let sql = "SELECT id, type, data FROM events WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(after).bind(limit).fetch_all(p).await)?,
        )
    }

    /// The newest event id of a workspace (0 when none): where a new stream starts.
    pub async fn last_event_id(&self, workspace_id: &str) -> Result<i64, DbError> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM events WHERE workspace_id = $1";
        Ok(on!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(workspace_id).fetch_one(p).await)?)
    }

    /// The oldest event id still kept for a workspace, if any.
    pub async fn first_event_id(&self, workspace_id: &str) -> Result<Option<i64>, DbError> {
        let sql = "SELECT MIN(id) FROM events WHERE workspace_id = $1";
        Ok(
            on!(self, p => sqlx::query_scalar::<_, Option<i64>>(sql).bind(workspace_id).fetch_one(p).await)?,
        )
    }

    /// Wakes other instances' event streams (Postgres only; one call per applied batch).
    pub async fn notify_events(&self, workspace_id: &str) -> Result<(), DbError> {
        if let Db::Postgres(p) = self {
            sqlx::query("SELECT pg_notify('qontak_events', $1)")
                .bind(workspace_id)
                .execute(p)
                .await?;
        }
        Ok(())
    }
}

/// A message template as stored (Meta's fields).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: String,
    pub waba_id: String,
    pub meta_template_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: Option<String>,
    pub status: String,
    pub parameter_format: Option<String>,
    pub components: String,
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    pub rejection_recommendation: Option<String>,
    pub updated_at: i64,
}

macro_rules! template_select {
    () => {
        "SELECT id, waba_id, meta_template_id, name, language, category, status, parameter_format, components, \
         quality_score, rejected_reason, rejection_recommendation, updated_at FROM templates "
    };
}

impl Db {
    /// A workspace's templates by name and language.
    pub async fn templates(&self, workspace_id: &str) -> Result<Vec<TemplateRow>, DbError> {
        let sql = concat!(
            template_select!(),
            "WHERE workspace_id = $1 ORDER BY name, language"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    pub async fn template(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<TemplateRow>, DbError> {
        let sql = concat!(template_select!(), "WHERE workspace_id = $1 AND id = $2");
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// The newest alerts of a workspace: (kind, detail JSON, time).
    pub async fn alerts(&self, workspace_id: &str) -> Result<Vec<(String, String, i64)>, DbError> {
        let sql = "SELECT kind, detail, created_at FROM alerts WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }
}
