//! The media queue's rows.

use super::{Db, DbError};
use crate::server::now_ms;

/// A media row due for download, with what fetching it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueMedia {
    pub id: String,
    pub workspace_id: String,
    pub message_id: Option<String>,
    pub meta_media_id: String,
    pub sha256: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub access_token_enc: String,
}

/// A file an agent or integrator uploaded.
pub struct UploadedMedia<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub number_id: &'a str,
    pub meta_media_id: &'a str,
    pub sha256: &'a str,
    pub mime_type: &'a str,
    pub size: i64,
    pub filename: Option<&'a str>,
    pub storage_key: &'a str,
}

/// What `GET /media/{message_id}` serves.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub id: String,
    pub state: String,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
    pub storage_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub last_error: Option<String>,
}

impl Db {
    /// Pending media whose next attempt is due, oldest first.
    pub async fn due_media(&self, limit: i64) -> Result<Vec<DueMedia>, DbError> {
        let sql = "SELECT m.id, m.workspace_id, m.message_id, m.meta_media_id, m.sha256, m.attempts, m.created_at, c.access_token_enc \
                   FROM media m JOIN phone_numbers n ON n.id = m.number_id JOIN meta_connections c ON c.id = n.connection_id \
                   WHERE m.state = 'pending' AND m.meta_media_id IS NOT NULL AND m.next_attempt_at <= $1 ORDER BY m.next_attempt_at, m.id LIMIT $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(now_ms()).bind(limit).fetch_all(p).await)?)
    }

    /// The file is stored: `ready`, and a `message.updated` event. Answers the workspace.
    pub async fn media_ready(
        &self,
        id: &str,
        size: i64,
        storage_key: &str,
    ) -> Result<Option<String>, DbError> {
        self.media_outcome(id, "UPDATE media SET state = 'ready', size_bytes = $1, storage_key = $2, attempts = attempts + 1, last_error = NULL, updated_at = $3 WHERE id = $4 AND state = 'pending'",
            Some(size), Some(storage_key), None).await
    }

    /// Given up: `failed` with the reason.
    pub async fn media_failed(&self, id: &str, reason: &str) -> Result<Option<String>, DbError> {
        self.media_outcome(id, "UPDATE media SET state = 'failed', last_error = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3 AND state = 'pending'",
            None, None, Some(reason)).await
    }

    /// Try again at `at`.
    pub async fn media_retry(
        &self,
        id: &str,
        at: i64,
        reason: &str,
    ) -> Result<Option<String>, DbError> {
        let sql = "UPDATE media SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, updated_at = $3 WHERE id = $4";
        let now = now_ms();
        match self {
            // Through the write gate, like the other busy writers: an autocommit write here
            // met the ingest's transactions at SQLite's lock and slept in its busy handler
            // (statements of over a second in the webhook benchmark).
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                let q = sqlx::query(sql).bind(at).bind(reason).bind(now).bind(id);
                q.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let q = sqlx::query(sql).bind(at).bind(reason).bind(now).bind(id);
                q.execute(p).await?;
            }
        }
        Ok(None)
    }

    async fn media_outcome(
        &self,
        id: &str,
        sql: &'static str,
        size: Option<i64>,
        key: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Option<String>, DbError> {
        let now = now_ms();
        let row: Option<(String, Option<String>)> = on!(self, p => sqlx::query_as("SELECT workspace_id, message_id FROM media WHERE id = $1").bind(id).fetch_optional(p).await)?;
        let Some((workspace_id, message_id)) = row else {
            return Ok(None);
        };
        // The state change and its live event commit together.
        macro_rules! run {
            ($tx:ident, $ops:path) => {{
                use $ops as ops;
                let q = sqlx::query(sql);
                let q = match (size, key, reason) {
                    (Some(s), Some(k), _) => q.bind(s).bind(k).bind(now).bind(id),
                    (_, _, Some(r)) => q.bind(r).bind(now).bind(id),
                    _ => q.bind(now).bind(id),
                };
                let changed = q.execute(&mut *$tx).await?.rows_affected();
                if let (1, Some(m)) = (changed, &message_id) {
                    ops::event(&mut $tx, &workspace_id, "message.updated", m).await?;
                }
                $tx.commit().await?;
            }};
        }
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                run!(tx, super::ingest::sqlite_impl)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                run!(tx, super::ingest::pg_impl)
            }
        }
        Ok(Some(workspace_id))
    }

    /// An uploaded file, ready to send: our copy is stored and Meta knows it by `meta_media_id`.
    pub async fn insert_uploaded_media(&self, m: &UploadedMedia<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let sql = "INSERT INTO media (id, workspace_id, number_id, meta_media_id, sha256, mime_type, size_bytes, filename, storage_key, state, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'ready', $10, $10)";
        on!(self, p => sqlx::query(sql).bind(m.id).bind(m.workspace_id).bind(m.number_id).bind(m.meta_media_id).bind(m.sha256).bind(m.mime_type)
            .bind(m.size).bind(m.filename).bind(m.storage_key).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// An uploaded (not yet sent) media row of the workspace: (meta media id, mime, number id).
    pub async fn uploaded_media(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<
        Option<(
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        )>,
        DbError,
    > {
        let sql = "SELECT meta_media_id, mime_type, number_id, filename FROM media WHERE workspace_id = $1 AND id = $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// Links an uploaded file to the message that sends it (the thread shows our copy).
    pub async fn attach_media(&self, media_id: &str, message_id: &str) -> Result<(), DbError> {
        let sql = "UPDATE media SET message_id = $1, updated_at = $2 WHERE id = $3 AND message_id IS NULL";
        on!(self, p => sqlx::query(sql).bind(message_id).bind(now_ms()).bind(media_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The media of a message, scoped to the workspace.
    pub async fn media_of_message(
        &self,
        workspace_id: &str,
        message_id: &str,
    ) -> Result<Option<MediaRow>, DbError> {
        let sql = "SELECT id, state, mime_type, filename, storage_key, size_bytes, last_error FROM media WHERE workspace_id = $1 AND message_id = $2";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(message_id).fetch_optional(p).await)?,
        )
    }
}
