//! Broadcasts: a template to an audience. The audience is expanded in batches, each batch's
//! messages and outbox jobs written in one transaction with the broadcast's cursor, so the
//! outbox sends them at the number's pace and a restart resumes after the last batch.

#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use serde_json::{json, Value};

use super::outbox::NewOutbound;
use super::read::Position;
use super::{Db, DbError};
use crate::server::{new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BroadcastRow {
    pub id: String,
    pub workspace_id: String,
    pub number_id: String,
    pub created_by: Option<String>,
    pub name: String,
    pub template_name: String,
    pub template_language: String,
    pub variables: String,
    pub audience: String,
    pub state: String,
    pub scheduled_at: i64,
    pub cursor: Option<String>,
    pub expanded: i64,
    pub total: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub cancelled_at: Option<i64>,
}

macro_rules! broadcast_select {
    () => {
        "SELECT id, workspace_id, number_id, created_by, name, template_name, template_language, variables, audience, state, \
         scheduled_at, cursor, expanded, total, error, created_at, updated_at, cancelled_at FROM broadcasts "
    };
}

pub struct NewBroadcast<'a> {
    pub workspace_id: &'a str,
    pub number_id: &'a str,
    pub created_by: &'a str,
    pub name: &'a str,
    pub template_name: &'a str,
    pub template_language: &'a str,
    pub variables: &'a str,
    pub audience: &'a str,
    pub scheduled_at: i64,
    pub total: i64,
}

/// One contact of a batch: the Graph body to send, or why it is skipped.
pub struct Recipient {
    pub contact_id: String,
    pub send: Result<(Value, Value), String>,
}

/// Counts of a broadcast's recipients by outcome, and failure reasons.
#[derive(Debug, Default, Clone)]
pub struct BroadcastProgress {
    pub recipients: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
    pub cancelled: i64,
    /// (reason, Meta's code, count), most frequent first.
    pub reasons: Vec<(String, Option<i64>, i64)>,
}

impl Db {
    pub async fn create_broadcast(&self, b: &NewBroadcast<'_>) -> Result<String, DbError> {
        let id = new_id();
        let now = now_ms();
        let state = if b.scheduled_at > now {
            "scheduled"
        } else {
            "sending"
        };
        let sql = "INSERT INTO broadcasts (id, workspace_id, number_id, created_by, name, template_name, template_language, variables, audience, \
                   state, scheduled_at, total, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
        on!(self, p => sqlx::query(sql).bind(&id).bind(b.workspace_id).bind(b.number_id).bind(b.created_by).bind(b.name)
            .bind(b.template_name).bind(b.template_language).bind(b.variables).bind(b.audience).bind(state)
            .bind(b.scheduled_at.max(now)).bind(b.total).bind(now)
            .execute(p).await.map(|_| ()))?;
        Ok(id)
    }

    pub async fn broadcast(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<BroadcastRow>, DbError> {
        let sql = concat!(broadcast_select!(), "WHERE workspace_id = $1 AND id = $2");
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// A page of broadcasts, newest first.
    pub async fn broadcasts(
        &self,
        workspace_id: &str,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<BroadcastRow>, DbError> {
        let sql = concat!(
            broadcast_select!(),
            "WHERE workspace_id = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(after.0).bind(&after.1).bind(limit).fetch_all(p).await)?,
        )
    }

    /// Recipients planned by this number's broadcasts created since `since` (tier accounting).
    pub async fn broadcast_volume_since(
        &self,
        number_id: &str,
        since: i64,
    ) -> Result<i64, DbError> {
        let sql = "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM broadcasts WHERE number_id = $1 AND created_at >= $2 AND state <> 'cancelled'";
        let n: Option<i64> =
            on!(self, p => sqlx::query_scalar(sql).bind(number_id).bind(since).fetch_one(p).await)?;
        Ok(n.unwrap_or(0))
    }

    /// A broadcast whose audience still has contacts to expand and whose time has come.
    pub async fn due_broadcast(&self) -> Result<Option<BroadcastRow>, DbError> {
        let now = now_ms();
        let sql = concat!(
            broadcast_select!(),
            "WHERE state IN ('scheduled', 'sending') AND expanded = 0 AND scheduled_at <= $1 ORDER BY scheduled_at, id LIMIT 1"
        );
        let row: Option<BroadcastRow> =
            on!(self, p => sqlx::query_as(sql).bind(now).fetch_optional(p).await)?;
        if let Some(b) = &row {
            if b.state == "scheduled" {
                let sql = "UPDATE broadcasts SET state = 'sending', updated_at = $1 WHERE id = $2 AND state = 'scheduled'";
                on!(self, p => sqlx::query(sql).bind(now).bind(&b.id).execute(p).await.map(|_| ()))?;
            }
        }
        Ok(row)
    }

    /// Writes one batch: a queued message and send job per sendable recipient, a skipped row
    /// for the others, and the new cursor (`done` when the audience is exhausted). False when
    /// the broadcast moved on meanwhile (cancelled, or the batch written by another worker).
    pub async fn expand_broadcast(
        &self,
        b: &BroadcastRow,
        recipients: &[Recipient],
        cursor: &str,
        done: bool,
    ) -> Result<bool, DbError> {
        macro_rules! expand_in {
            ($p:expr, $ops:ident) => {{
                let mut tx = $p.begin_write().await?;
                let moved = sqlx::query(
                    "UPDATE broadcasts SET cursor = $1, expanded = $2, updated_at = $3 WHERE id = $4 AND state = 'sending' AND COALESCE(cursor, '') = $5",
                )
                .bind(cursor).bind(i64::from(done)).bind(now_ms()).bind(&b.id).bind(b.cursor.as_deref().unwrap_or(""))
                .execute(&mut *tx).await?.rows_affected();
                if moved == 0 {
                    return Ok(false);
                }
                for r in recipients {
                    let (message_id, state, error) = match &r.send {
                        Ok((content, graph)) => {
                            let id = super::outbox::$ops::enqueue(&mut tx, &NewOutbound {
                                workspace_id: &b.workspace_id,
                                number_id: &b.number_id,
                                contact_id: &r.contact_id,
                                kind: "template",
                                content,
                                graph_body: graph,
                                reply_to_id: None,
                                idempotency_key: None,
                                request_hash: "",
                                sent_by: b.created_by.as_deref(),
                                reaction_target: None,
                            }).await?;
                            (Some(id), "queued", None)
                        }
                        Err(e) => (None, "skipped", Some(e.as_str())),
                    };
                    sqlx::query("INSERT INTO broadcast_recipients (broadcast_id, contact_id, message_id, state, error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                        .bind(&b.id).bind(&r.contact_id).bind(message_id).bind(state).bind(error)
                        .execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }};
        }
        match self {
            Db::Sqlite(p) => expand_in!(p, sqlite_out),
            Db::Postgres(p) => expand_in!(p, pg_out),
        }
        Ok(true)
    }

    /// Ends a broadcast that could not go on (its template or number vanished).
    pub async fn fail_broadcast(&self, id: &str, error: &str) -> Result<(), DbError> {
        let sql =
            "UPDATE broadcasts SET state = 'failed', error = $1, updated_at = $2 WHERE id = $3";
        on!(self, p => sqlx::query(sql).bind(error).bind(now_ms()).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Marks a fully expanded broadcast whose messages all left the queue as done.
    pub async fn settle_broadcast(&self, id: &str) -> Result<(), DbError> {
        let sql = "UPDATE broadcasts SET state = 'done', updated_at = $1 WHERE id = $2 AND state = 'sending' AND expanded = 1 \
                   AND NOT EXISTS (SELECT 1 FROM broadcast_recipients r JOIN messages m ON m.id = r.message_id WHERE r.broadcast_id = $2 AND m.status = 'queued')";
        on!(self, p => sqlx::query(sql).bind(now_ms()).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Cancels a broadcast: no more expansion, and every message still waiting in the outbox
    /// is failed as cancelled (those already handed to Meta go on). Answers how many were
    /// cancelled, or `None` when the workspace has no such broadcast.
    pub async fn cancel_broadcast(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<i64>, DbError> {
        let mut attempt = 0;
        loop {
            match self.cancel_once(workspace_id, id).await {
                // Postgres breaks a deadlock with the status ingest by failing one side: again.
                Err(DbError::Sqlx(sqlx::Error::Database(d)))
                    if d.code().as_deref() == Some("40P01") && attempt < 5 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn cancel_once(&self, workspace_id: &str, id: &str) -> Result<Option<i64>, DbError> {
        let now = now_ms();
        let title = "Broadcast cancelled";
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            if matches!(self, Db::Postgres(_)) {
                // The event lock first, before any row: the ingest takes it while it holds rows.
                sqlx::query("SELECT pg_advisory_xact_lock(7301)").execute(&mut *tx).await?;
            }
            let found: Option<String> = sqlx::query_scalar("SELECT state FROM broadcasts WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id).bind(id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Ok(None);
            }
            sqlx::query("UPDATE broadcasts SET state = 'cancelled', cancelled_at = $1, updated_at = $1 WHERE id = $2 AND state IN ('scheduled', 'sending')")
                .bind(now).bind(id).execute(&mut *tx).await?;
            // The jobs still queued are stopped by the write itself, which names the ones it
            // stopped: on Postgres the outbox may claim a job at any moment, and a job it claimed
            // (no longer queued when this write reaches its row) goes out as usual.
            let stop = "UPDATE outbox_jobs SET state = 'failed', last_error = $1, updated_at = $2 \
                        WHERE kind = 'send' AND state = 'queued' AND message_id IN \
                        (SELECT message_id FROM broadcast_recipients WHERE broadcast_id = $3 AND state = 'queued') \
                        RETURNING message_id";
            let ids: Vec<String> = sqlx::query_scalar(stop).bind("broadcast cancelled").bind(now).bind(id)
                .fetch_all(&mut *tx).await?;
            for m in &ids {
                sqlx::query("UPDATE messages SET status = 'failed', error_title = $1, error_detail = $2, updated_at = $3 WHERE id = $4 AND status = 'queued'")
                    .bind(title).bind("The broadcast was cancelled before this message was sent.").bind(now).bind(m)
                    .execute(&mut *tx).await?;
                sqlx::query("UPDATE broadcast_recipients SET state = 'cancelled' WHERE broadcast_id = $1 AND message_id = $2")
                    .bind(id).bind(m).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO events (workspace_id, type, data, created_at) VALUES ($1, 'message.updated', $2, $3)")
                    .bind(workspace_id).bind(json!({"id": m}).to_string()).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Some(ids.len() as i64))
        })
    }

    /// Recipient counts by outcome, computed from the messages' statuses.
    pub async fn broadcast_progress(&self, id: &str) -> Result<BroadcastProgress, DbError> {
        let counts = "SELECT CASE WHEN r.state <> 'queued' THEN r.state ELSE COALESCE(m.status, 'failed') END AS s, COUNT(*) \
                      FROM broadcast_recipients r LEFT JOIN messages m ON m.id = r.message_id WHERE r.broadcast_id = $1 GROUP BY 1";
        let rows: Vec<(String, i64)> =
            on!(self, p => sqlx::query_as(counts).bind(id).fetch_all(p).await)?;
        let mut out = BroadcastProgress::default();
        for (status, n) in rows {
            out.recipients += n;
            match status.as_str() {
                "queued" => out.queued += n,
                "sent" => out.sent += n,
                "delivered" => out.delivered += n,
                "read" | "played" => out.read += n,
                "skipped" => out.skipped += n,
                "cancelled" => out.cancelled += n,
                _ => out.failed += n,
            }
        }
        let reasons = "SELECT COALESCE(m.error_title, r.error, 'unknown') AS reason, m.error_code, COUNT(*) AS n \
                       FROM broadcast_recipients r LEFT JOIN messages m ON m.id = r.message_id \
                       WHERE r.broadcast_id = $1 AND (r.state = 'skipped' OR (r.state = 'queued' AND m.status = 'failed')) \
                       GROUP BY COALESCE(m.error_title, r.error, 'unknown'), m.error_code ORDER BY n DESC LIMIT 20";
        out.reasons = on!(self, p => sqlx::query_as(reasons).bind(id).fetch_all(p).await)?;
        Ok(out)
    }
}
