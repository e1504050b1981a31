//! The durable outbox: a message and its send job are written in one transaction; workers
//! claim due jobs (Postgres: `FOR UPDATE SKIP LOCKED`, so two instances never take one job;
//! SQLite: one claimer per database), and the outcome is stored in the step that completes it.

use serde_json::{json, Value};

use super::{Db, DbError};
use crate::domain::MessageStatus;
use crate::server::{new_id, now_ms, rfc3339};

/// An outbound message to store and queue.
pub struct NewOutbound<'a> {
    pub workspace_id: &'a str,
    pub number_id: &'a str,
    pub contact_id: &'a str,
    pub kind: &'a str,
    /// The type's object as stored and shown (Meta's shape).
    pub content: &'a Value,
    /// The Graph request body, without `biz_opaque_callback_data` (the worker adds our id).
    pub graph_body: &'a Value,
    pub reply_to_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: &'a str,
    pub sent_by: Option<&'a str>,
    /// For a reaction: the message it is on, whose reactions list shows it at once.
    pub reaction_target: Option<(&'a str, &'a str)>,
}

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub workspace_id: String,
    pub message_id: Option<String>,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

/// Where a job's message goes: Meta's phone number id, our number id, the encrypted token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobTarget {
    pub phone_number_id: String,
    pub number_id: String,
    pub connection_id: String,
    pub access_token_enc: String,
    pub throughput_mps: i64,
}

impl Db {
    /// The contact with this wa_id in the workspace, created when new.
    pub async fn contact_for_wa_id(
        &self,
        workspace_id: &str,
        wa_id: &str,
    ) -> Result<String, DbError> {
        let now = now_ms();
        let insert = "INSERT INTO contacts (id, workspace_id, wa_id, phone, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                      ON CONFLICT (workspace_id, wa_id) DO NOTHING";
        let phone = format!("+{wa_id}");
        on!(self, p => sqlx::query(insert).bind(new_id()).bind(workspace_id).bind(wa_id).bind(&phone).bind(now).execute(p).await.map(|_| ()))?;
        let select = "SELECT id FROM contacts WHERE workspace_id = $1 AND wa_id = $2";
        Ok(
            on!(self, p => sqlx::query_scalar(select).bind(workspace_id).bind(wa_id).fetch_one(p).await)?,
        )
    }

    /// The Meta time of the customer's last message to this number, if any.
    pub async fn last_inbound_at(
        &self,
        number_id: &str,
        contact_id: &str,
    ) -> Result<Option<i64>, DbError> {
        let sql =
            "SELECT last_inbound_at FROM conversations WHERE number_id = $1 AND contact_id = $2";
        let v: Option<Option<i64>> = on!(self, p => sqlx::query_scalar(sql).bind(number_id).bind(contact_id).fetch_optional(p).await)?;
        Ok(v.flatten())
    }

    /// The message a repeated idempotency key names (kept 24 hours): (id, request hash).
    pub async fn message_by_idempotency_key(
        &self,
        workspace_id: &str,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>, DbError> {
        let sql = "SELECT id, request_hash FROM messages WHERE workspace_id = $1 AND idempotency_key = $2 AND created_at > $3";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(key).bind(now_ms() - 24 * 3600 * 1000).fetch_optional(p).await)?,
        )
    }

    /// Frees the workspace's idempotency keys older than 24 hours at `now` (the retention pass
    /// runs it; the unique index on the key finds the rows that still have one).
    pub async fn expire_idempotency_keys(
        &self,
        workspace_id: &str,
        now: i64,
    ) -> Result<u64, DbError> {
        let sql = "UPDATE messages SET idempotency_key = NULL \
                   WHERE workspace_id = $1 AND idempotency_key IS NOT NULL AND created_at <= $2";
        Ok(
            on!(self, p => sqlx::query(sql).bind(workspace_id).bind(now - 24 * 3600 * 1000).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Stores the message (`queued`) and its send job in one transaction; answers its id.
    /// A concurrent duplicate idempotency key answers `Conflict`.
    pub async fn enqueue_message(&self, n: &NewOutbound<'_>) -> Result<String, DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                let id = sqlite_out::enqueue(&mut tx, n).await?;
                tx.commit().await?;
                Ok(id)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let id = pg_out::enqueue(&mut tx, n).await?;
                tx.commit().await?;
                Ok(id)
            }
        }
    }

    /// Claims up to `limit` due jobs for `worker`, leased for `lease_ms`.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<JobRow>, DbError> {
        let now = now_ms();
        // A read first: on SQLite an UPDATE takes the one write lock even when nothing is due.
        let due: Option<String> = on!(self, p => sqlx::query_scalar("SELECT id FROM outbox_jobs WHERE state = 'queued' AND next_attempt_at <= $1 LIMIT 1")
            .bind(now).fetch_optional(p).await)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        Ok(match self {
            Db::Sqlite(p) => {
                sqlx::query_as(
                    "UPDATE outbox_jobs SET state = 'in_flight', locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
                     WHERE id IN (SELECT id FROM outbox_jobs WHERE state = 'queued' AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4) \
                     RETURNING id, workspace_id, message_id, kind, payload, attempts",
                )
                .bind(worker).bind(now + lease_ms).bind(now).bind(limit)
                .fetch_all(p).await?
            }
            Db::Postgres(p) => {
                sqlx::query_as(
                    "UPDATE outbox_jobs SET state = 'in_flight', locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
                     WHERE id IN (SELECT id FROM outbox_jobs WHERE state = 'queued' AND next_attempt_at <= $3 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, workspace_id, message_id, kind, payload, attempts",
                )
                .bind(worker).bind(now + lease_ms).bind(now).bind(limit)
                .fetch_all(p).await?
            }
        })
    }

    /// Keeps a claimed job this worker's until `until` (ms): a send waiting its turn at a slow
    /// pace must not look abandoned to the sweep. False when the job is no longer ours.
    pub async fn extend_job_lease(
        &self,
        job_id: &str,
        worker: &str,
        until: i64,
    ) -> Result<bool, DbError> {
        let sql = "UPDATE outbox_jobs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND state = 'in_flight'";
        let n = on!(self, p => sqlx::query(sql).bind(until).bind(job_id).bind(worker).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Where a message goes.
    pub async fn job_target(&self, message_id: &str) -> Result<Option<JobTarget>, DbError> {
        let sql = "SELECT n.phone_number_id, n.id AS number_id, c.id AS connection_id, c.access_token_enc, n.throughput_mps \
                   FROM messages m JOIN phone_numbers n ON n.id = m.number_id JOIN meta_connections c ON c.id = n.connection_id WHERE m.id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(message_id).fetch_optional(p).await)?)
    }

    /// Meta accepted the send: store the wamid and `sent` with the job's completion, then apply
    /// any status that arrived before we knew the wamid.
    pub async fn complete_send(
        &self,
        job_id: &str,
        message_id: &str,
        wamid: &str,
    ) -> Result<(), DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                sqlite_out::complete(&mut tx, job_id, message_id, wamid).await?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                pg_out::complete(&mut tx, job_id, message_id, wamid).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// A permanent refusal: the message ends `failed` with Meta's code and our advice.
    pub async fn fail_send(
        &self,
        job_id: &str,
        message_id: &str,
        code: Option<i64>,
        title: &str,
        detail: &str,
    ) -> Result<(), DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                sqlite_out::fail(&mut tx, job_id, message_id, code, title, detail).await?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                pg_out::fail(&mut tx, job_id, message_id, code, title, detail).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Try again at `at`.
    pub async fn retry_job(&self, job_id: &str, at: i64, error: &str) -> Result<(), DbError> {
        let sql = "UPDATE outbox_jobs SET state = 'queued', next_attempt_at = $1, last_error = $2, locked_by = NULL, locked_until = NULL, updated_at = $3 WHERE id = $4 AND state = 'in_flight'";
        on!(self, p => sqlx::query(sql).bind(at).bind(error).bind(now_ms()).bind(job_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The request may have reached Meta: wait for a status webhook to resolve it until `at`.
    pub async fn job_outcome_unknown(
        &self,
        job_id: &str,
        at: i64,
        error: &str,
    ) -> Result<(), DbError> {
        let sql = "UPDATE outbox_jobs SET state = 'unknown', next_attempt_at = $1, last_error = $2, locked_by = NULL, locked_until = NULL, updated_at = $3 WHERE id = $4 AND state = 'in_flight'";
        on!(self, p => sqlx::query(sql).bind(at).bind(error).bind(now_ms()).bind(job_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// A job that is not a message send finished (or gave up).
    pub async fn finish_job(
        &self,
        job_id: &str,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = "UPDATE outbox_jobs SET state = $1, last_error = $2, locked_by = NULL, locked_until = NULL, updated_at = $3 WHERE id = $4";
        on!(self, p => sqlx::query(sql).bind(state).bind(error).bind(now_ms()).bind(job_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Housekeeping: a lease that expired (a crash mid-send) becomes an unknown outcome; an
    /// unknown outcome nobody resolved within its wait is retried, or failed when `fail_unknown`.
    pub async fn sweep_jobs(
        &self,
        unknown_wait_ms: i64,
        fail_unknown: bool,
    ) -> Result<u64, DbError> {
        let now = now_ms();
        let work: Option<String> = on!(self, p => sqlx::query_scalar(
            "SELECT id FROM outbox_jobs WHERE (state = 'in_flight' AND locked_until < $1) OR (state = 'unknown' AND next_attempt_at <= $1) LIMIT 1")
            .bind(now).fetch_optional(p).await)?;
        if work.is_none() {
            return Ok(0);
        }
        let expired = "UPDATE outbox_jobs SET state = 'unknown', next_attempt_at = $1, last_error = 'lease expired: the worker stopped mid-send', \
                       locked_by = NULL, locked_until = NULL, updated_at = $2 WHERE state = 'in_flight' AND locked_until < $2 AND kind = 'send'";
        let mut n = on!(self, p => sqlx::query(expired).bind(now + unknown_wait_ms).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        let requeue_other = "UPDATE outbox_jobs SET state = 'queued', locked_by = NULL, locked_until = NULL, updated_at = $1 \
                             WHERE state = 'in_flight' AND locked_until < $1 AND kind <> 'send'";
        n += on!(self, p => sqlx::query(requeue_other).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        let due: Vec<(String, Option<String>)> = on!(self, p => sqlx::query_as("SELECT id, message_id FROM outbox_jobs WHERE state = 'unknown' AND next_attempt_at <= $1")
            .bind(now).fetch_all(p).await)?;
        for (job_id, message_id) in due {
            n += 1;
            match (fail_unknown, message_id) {
                (true, Some(m)) => {
                    self.fail_send(&job_id, &m, None, "Delivery unknown", "Meta did not confirm this message; check with the customer and resend if needed.").await?
                }
                _ => {
                    let sql = "UPDATE outbox_jobs SET state = 'queued', next_attempt_at = $1, updated_at = $1 WHERE id = $2 AND state = 'unknown'";
                    on!(self, p => sqlx::query(sql).bind(now).bind(&job_id).execute(p).await.map(|_| ()))?;
                }
            }
        }
        Ok(n)
    }

    /// Meta refused the token (190): the number needs a new one.
    pub async fn flag_token_invalid(&self, connection_id: &str) -> Result<(), DbError> {
        let sql = "UPDATE meta_connections SET token_invalid_at = $1 WHERE id = $2";
        on!(self, p => sqlx::query(sql).bind(now_ms()).bind(connection_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Sets a number's allowed messages per second.
    pub async fn set_throughput(&self, number_id: &str, mps: i64) -> Result<(), DbError> {
        let sql = "UPDATE phone_numbers SET throughput_mps = $1, updated_at = $2 WHERE id = $3";
        on!(self, p => sqlx::query(sql).bind(mps).bind(now_ms()).bind(number_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// For benchmarks: the first and last `sent` times (ms) of a workspace's outbound messages
    /// and the p99 of queue→sent latency (ms).
    pub async fn sent_span_ms(&self, workspace_id: &str) -> Result<(i64, i64, i64), DbError> {
        let sql = "SELECT status_timestamps FROM messages WHERE workspace_id = $1 AND direction = 'outbound'";
        let rows: Vec<String> =
            on!(self, p => sqlx::query_scalar(sql).bind(workspace_id).fetch_all(p).await)?;
        let parse = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        };
        let mut sent = Vec::new();
        let mut latency = Vec::new();
        for r in rows {
            let v: Value = serde_json::from_str(&r).unwrap_or_default();
            if let Some(s) = parse(v.get("sent")) {
                sent.push(s);
                if let Some(q) = parse(v.get("queued")) {
                    latency.push(s - q);
                }
            }
        }
        sent.sort_unstable();
        latency.sort_unstable();
        let p99 = latency
            .get(
                latency
                    .len()
                    .saturating_sub(1)
                    .min(latency.len() * 99 / 100),
            )
            .copied()
            .unwrap_or(0);
        Ok((
            sent.first().copied().unwrap_or(0),
            sent.last().copied().unwrap_or(0),
            p99,
        ))
    }

    /// On SQLite one server owns the database, so jobs in flight at start were left by a crash:
    /// their outcome is unknown now, not after the lease.
    pub async fn recover_jobs_after_crash(&self, unknown_wait_ms: i64) -> Result<u64, DbError> {
        let Db::Sqlite(p) = self else { return Ok(0) };
        let now = now_ms();
        let sends = sqlx::query("UPDATE outbox_jobs SET state = 'unknown', next_attempt_at = $1, last_error = 'the server stopped mid-send', \
                                 locked_by = NULL, locked_until = NULL, updated_at = $2 WHERE state = 'in_flight' AND kind = 'send'")
            .bind(now + unknown_wait_ms).bind(now).execute(p).await?.rows_affected();
        let others = sqlx::query("UPDATE outbox_jobs SET state = 'queued', locked_by = NULL, locked_until = NULL, updated_at = $1 WHERE state = 'in_flight'")
            .bind(now).execute(p).await?.rows_affected();
        Ok(sends + others)
    }

    /// Jobs by state, for tests and metrics.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let sql = "SELECT state, COUNT(*) FROM outbox_jobs GROUP BY state ORDER BY state";
        Ok(on!(self, p => sqlx::query_as(sql).fetch_all(p).await)?)
    }

    /// The last error and attempts of a message's send job.
    pub async fn job_of_message(
        &self,
        message_id: &str,
    ) -> Result<Option<(String, i64, Option<String>)>, DbError> {
        let sql = "SELECT state, attempts, last_error FROM outbox_jobs WHERE message_id = $1 AND kind = 'send'";
        Ok(on!(self, p => sqlx::query_as(sql).bind(message_id).fetch_optional(p).await)?)
    }

    /// Marks a conversation read: unread to zero, and a job to tell Meta about the newest
    /// inbound message (when `tell_meta`).
    pub async fn mark_conversation_read(
        &self,
        workspace_id: &str,
        conversation_id: &str,
        tell_meta: bool,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let sql = "UPDATE conversations SET unread_count = 0, updated_at = $1 WHERE workspace_id = $2 AND id = $3";
        let found = on!(self, p => sqlx::query(sql).bind(now).bind(workspace_id).bind(conversation_id).execute(p).await.map(|r| r.rows_affected()))?;
        if found == 0 {
            return Ok(false);
        }
        let newest: Option<String> = on!(self, p => sqlx::query_scalar(
            "SELECT id FROM messages WHERE conversation_id = $1 AND direction = 'inbound' AND wamid IS NOT NULL ORDER BY timestamp DESC, id DESC LIMIT 1")
            .bind(conversation_id).fetch_optional(p).await)?;
        if let (true, Some(message_id)) = (tell_meta, newest) {
            let sql = "INSERT INTO outbox_jobs (id, workspace_id, message_id, kind, payload, state, next_attempt_at, created_at, updated_at) \
                       VALUES ($1, $2, $3, 'mark_read', '{}', 'queued', $4, $4, $4)";
            on!(self, p => sqlx::query(sql).bind(new_id()).bind(workspace_id).bind(&message_id).bind(now).execute(p).await.map(|_| ()))?;
        }
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                crate::server::db::ingest::sqlite_impl::event(
                    &mut tx,
                    workspace_id,
                    "conversation.updated",
                    conversation_id,
                )
                .await?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                crate::server::db::ingest::pg_impl::event(
                    &mut tx,
                    workspace_id,
                    "conversation.updated",
                    conversation_id,
                )
                .await?;
                tx.commit().await?;
            }
        }
        Ok(true)
    }

    /// The newest inbound message of a conversation: (wamid, message id).
    pub async fn newest_inbound(
        &self,
        conversation_id: &str,
    ) -> Result<Option<(String, String)>, DbError> {
        let sql = "SELECT wamid, id FROM messages WHERE conversation_id = $1 AND direction = 'inbound' AND wamid IS NOT NULL ORDER BY timestamp DESC, id DESC LIMIT 1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(conversation_id).fetch_optional(p).await)?)
    }

    /// The wamid and Meta phone number id of a message (for mark-read jobs).
    pub async fn message_wamid(
        &self,
        message_id: &str,
    ) -> Result<Option<(Option<String>, String)>, DbError> {
        let sql = "SELECT m.wamid, n.phone_number_id FROM messages m JOIN phone_numbers n ON n.id = m.number_id WHERE m.id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(message_id).fetch_optional(p).await)?)
    }
}

macro_rules! outbox_impl {
    ($module:ident, $db:ty, $ingest:ident) => {
        pub(super) mod $module {
            use super::*;
            use crate::server::db::ingest::$ingest as tx_ops;

            type Tx<'a> = sqlx::Transaction<'a, $db>;

            pub async fn enqueue(tx: &mut Tx<'_>, n: &NewOutbound<'_>) -> Result<String, DbError> {
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $5, $5) ON CONFLICT (number_id, contact_id) DO NOTHING",
                )
                .bind(new_id()).bind(n.workspace_id).bind(n.number_id).bind(n.contact_id).bind(now)
                .execute(&mut **tx).await?;
                let conversation_id: String = sqlx::query_scalar("SELECT id FROM conversations WHERE number_id = $1 AND contact_id = $2")
                    .bind(n.number_id).bind(n.contact_id).fetch_one(&mut **tx).await?;
                let id = new_id();
                sqlx::query(
                    "INSERT INTO messages (id, workspace_id, conversation_id, number_id, direction, type, content, reply_to_id, status, \
                     status_timestamps, sent_by, idempotency_key, request_hash, timestamp, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'outbound', $5, $6, $7, 'queued', $8, $9, $10, $11, $12, $12, $12)",
                )
                .bind(&id).bind(n.workspace_id).bind(&conversation_id).bind(n.number_id).bind(n.kind)
                .bind(n.content.to_string()).bind(n.reply_to_id)
                .bind(json!({"queued": rfc3339(now)}).to_string())
                .bind(n.sent_by).bind(n.idempotency_key).bind(n.request_hash).bind(now)
                .execute(&mut **tx).await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict("a message with this idempotency key".into()),
                    _ => DbError::Sqlx(e),
                })?;
                if let Some((target, emoji)) = n.reaction_target {
                    let reactions: Option<String> = sqlx::query_scalar("SELECT reactions FROM messages WHERE id = $1 AND workspace_id = $2")
                        .bind(target).bind(n.workspace_id).fetch_optional(&mut **tx).await?;
                    if let Some(r) = reactions {
                        let mut list: Vec<Value> = serde_json::from_str(&r).unwrap_or_default();
                        list.retain(|x| x.get("direction").and_then(Value::as_str) != Some("outbound"));
                        if !emoji.is_empty() {
                            list.push(json!({"emoji": emoji, "direction": "outbound"}));
                        }
                        sqlx::query("UPDATE messages SET reactions = $1, updated_at = $2 WHERE id = $3")
                            .bind(Value::Array(list).to_string()).bind(now).bind(target)
                            .execute(&mut **tx).await?;
                        tx_ops::event(tx, n.workspace_id, "message.updated", target).await?;
                    }
                }
                // Reactions change their target, not the thread's last message.
                if n.kind != "reaction" {
                    sqlx::query("UPDATE conversations SET last_message_id = $1, last_message_at = $2, updated_at = $2 WHERE id = $3")
                        .bind(&id).bind(now).bind(&conversation_id)
                        .execute(&mut **tx).await?;
                }
                sqlx::query(
                    "INSERT INTO outbox_jobs (id, workspace_id, message_id, kind, payload, state, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'send', $4, 'queued', $5, $5, $5)",
                )
                .bind(new_id()).bind(n.workspace_id).bind(&id).bind(n.graph_body.to_string()).bind(now)
                .execute(&mut **tx).await?;
                tx_ops::event(tx, n.workspace_id, "message.created", &id).await?;
                tx_ops::event(tx, n.workspace_id, "conversation.updated", &conversation_id).await?;
                Ok(id)
            }

            pub async fn complete(tx: &mut Tx<'_>, job_id: &str, message_id: &str, wamid: &str) -> Result<(), DbError> {
                let now = now_ms();
                sqlx::query("UPDATE outbox_jobs SET state = 'done', locked_by = NULL, locked_until = NULL, updated_at = $1 WHERE id = $2")
                    .bind(now).bind(job_id).execute(&mut **tx).await?;
                let row: Option<(String, String, Option<String>, String)> =
                    sqlx::query_as("SELECT workspace_id, number_id, wamid, status FROM messages WHERE id = $1")
                        .bind(message_id).fetch_optional(&mut **tx).await?;
                let Some((workspace_id, number_id, stored, _)) = row else { return Ok(()) };
                if stored.is_none() {
                    sqlx::query("UPDATE messages SET wamid = $1 WHERE id = $2").bind(wamid).bind(message_id).execute(&mut **tx).await?;
                }
                let sent = json!({"status": "sent", "timestamp_ms": now}).to_string();
                tx_ops::status(tx, &workspace_id, &number_id, wamid, &sent).await?;
                // Statuses that came before the wamid was known.
                let pending: Vec<(i64, String)> = sqlx::query_as("SELECT id, body FROM pending_statuses WHERE number_id = $1 AND wamid = $2 ORDER BY id")
                    .bind(&number_id).bind(wamid).fetch_all(&mut **tx).await?;
                for (pid, body) in pending {
                    tx_ops::status(tx, &workspace_id, &number_id, wamid, &body).await?;
                    sqlx::query("DELETE FROM pending_statuses WHERE id = $1").bind(pid).execute(&mut **tx).await?;
                }
                Ok(())
            }

            pub async fn fail(tx: &mut Tx<'_>, job_id: &str, message_id: &str, code: Option<i64>, title: &str, detail: &str) -> Result<(), DbError> {
                let now = now_ms();
                sqlx::query("UPDATE outbox_jobs SET state = 'failed', last_error = $1, locked_by = NULL, locked_until = NULL, updated_at = $2 WHERE id = $3")
                    .bind(title).bind(now).bind(job_id).execute(&mut **tx).await?;
                let row: Option<(String, String, String)> = sqlx::query_as("SELECT workspace_id, status, status_timestamps FROM messages WHERE id = $1")
                    .bind(message_id).fetch_optional(&mut **tx).await?;
                let Some((workspace_id, status, stamps)) = row else { return Ok(()) };
                let current = MessageStatus::parse(&status).unwrap_or(MessageStatus::Queued);
                if current.advance(MessageStatus::Failed) != MessageStatus::Failed || current == MessageStatus::Failed {
                    return Ok(());
                }
                let mut stamps: serde_json::Map<String, Value> = serde_json::from_str(&stamps).unwrap_or_default();
                stamps.insert("failed".into(), json!(rfc3339(now)));
                sqlx::query("UPDATE messages SET status = 'failed', status_timestamps = $1, error_code = $2, error_title = $3, error_detail = $4, updated_at = $5 WHERE id = $6")
                    .bind(Value::Object(stamps).to_string()).bind(code).bind(title).bind(detail).bind(now).bind(message_id)
                    .execute(&mut **tx).await?;
                tx_ops::event(tx, &workspace_id, "message.updated", message_id).await?;
                Ok(())
            }
        }
    };
}

outbox_impl!(sqlite_out, sqlx::Sqlite, sqlite_impl);
outbox_impl!(pg_out, sqlx::Postgres, pg_impl);
