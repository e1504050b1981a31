//! Webhook storage and application: the raw bodies (group-committed) and the transaction
//! that turns one stored body into contacts, conversations, messages and statuses.
//!
//! The transactional code is written once in `engine_impl!` and expanded per engine, so
//! helpers can pass one concrete `Transaction` around.

use serde_json::{json, Value};

use super::{Db, DbError};
use crate::domain::MessageStatus;
use crate::server::db::BeginWrite;
use crate::server::webhook::{self, ContactInfo, InboundMessage, MessagesValue, StatusUpdate};
use crate::server::{new_id, now_ms};

/// What applying one stored webhook body did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub messages_created: u32,
    pub statuses_applied: u32,
    pub statuses_pending: u32,
    /// Changes for a phone number id no workspace has connected.
    pub unrouted: u32,
    /// Workspaces touched (for live updates).
    pub workspaces: Vec<String>,
}

impl Applied {
    fn add(&mut self, a: Applied) {
        self.messages_created += a.messages_created;
        self.statuses_applied += a.statuses_applied;
        self.statuses_pending += a.statuses_pending;
        self.unrouted += a.unrouted;
        for w in a.workspaces {
            if !self.workspaces.contains(&w) {
                self.workspaces.push(w);
            }
        }
    }
}

/// What one apply transaction gathers as it goes: each phone number looked up once, and the
/// live events, written with one statement at the end rather than one statement each (every
/// statement is a round trip to sqlx's SQLite thread or to the Postgres server, and those
/// round trips, not the writes, bounded the processing rate).
#[derive(Default)]
pub(super) struct Scratch {
    numbers: std::collections::HashMap<String, Option<(String, String)>>,
    events: Vec<(String, String, String)>,
}

impl Scratch {
    fn event(&mut self, workspace_id: &str, kind: &str, object_id: &str) {
        self.events.push((
            workspace_id.to_string(),
            kind.to_string(),
            object_id.to_string(),
        ));
    }
}

/// Rows per multi-row INSERT on SQLite (well under its 32,766 parameters).
const SQLITE_ROWS_PER_INSERT: usize = 256;

impl Db {
    /// Stores raw bodies in one transaction; when it returns Ok they are durable.
    pub async fn insert_webhook_events(&self, bodies: &[&str]) -> Result<(), DbError> {
        let now = now_ms();
        match self {
            Db::Sqlite(p) => {
                // Multi-row statements: each statement is a round trip to sqlx's SQLite worker
                // thread, which costs more than the insert itself.
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                for chunk in bodies.chunks(SQLITE_ROWS_PER_INSERT) {
                    let values: Vec<String> = (0..chunk.len())
                        .map(|i| format!("($1, ${})", i + 2))
                        .collect();
                    let sql = format!(
                        "INSERT INTO webhook_events (received_at, body) VALUES {}",
                        values.join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                    for b in chunk {
                        q = q.bind(*b);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                // One multi-row statement: Postgres pays a round trip per statement.
                let mut tx = p.begin().await?;
                sqlx::query("INSERT INTO webhook_events (received_at, body) SELECT $1, b FROM UNNEST($2::text[]) AS b")
                    .bind(now)
                    .bind(bodies)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The oldest stored bodies not applied yet.
    pub async fn unprocessed_webhook_events(
        &self,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, DbError> {
        let sql =
            "SELECT id, body FROM webhook_events WHERE processed_at IS NULL ORDER BY id LIMIT $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(limit).fetch_all(p).await)?)
    }

    /// Whether any stored body waits to be applied: one probe of the pending index, cheap to
    /// poll (counting a large backlog every few milliseconds took a core of the database away
    /// from the processor it was timing).
    pub async fn has_webhook_backlog(&self) -> Result<bool, DbError> {
        let sql = "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE processed_at IS NULL)";
        Ok(on!(self, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }

    /// How many stored bodies wait to be applied.
    pub async fn webhook_backlog(&self) -> Result<i64, DbError> {
        let sql = "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL";
        Ok(on!(self, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }

    /// Stored bodies received at or after `since` (ms), oldest first:
    /// (id, received_at, processed_at, process_error, body).
    #[allow(clippy::type_complexity)]
    pub async fn webhook_events_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Option<i64>, Option<String>, String)>, DbError> {
        let sql = "SELECT id, received_at, processed_at, process_error, body FROM webhook_events WHERE received_at >= $1 ORDER BY id LIMIT $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(since).bind(limit).fetch_all(p).await)?)
    }

    /// One stored body.
    pub async fn webhook_event(
        &self,
        id: i64,
    ) -> Result<Option<(i64, i64, Option<i64>, Option<String>, String)>, DbError> {
        let sql = "SELECT id, received_at, processed_at, process_error, body FROM webhook_events WHERE id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    /// Marks stored bodies for application again (idempotent: what was applied stays once).
    pub async fn requeue_webhook_events(&self, since: i64, ids: &[i64]) -> Result<u64, DbError> {
        let n = if ids.is_empty() {
            let sql = "UPDATE webhook_events SET processed_at = NULL, process_error = NULL WHERE received_at >= $1";
            on!(self, p => sqlx::query(sql).bind(since).execute(p).await.map(|r| r.rows_affected()))?
        } else {
            let mut total = 0;
            for id in ids {
                let sql = "UPDATE webhook_events SET processed_at = NULL, process_error = NULL WHERE id = $1";
                total += on!(self, p => sqlx::query(sql).bind(*id).execute(p).await.map(|r| r.rows_affected()))?;
            }
            total
        };
        Ok(n)
    }

    /// Marks a body whose application failed, so the processor moves on; the body stays.
    pub async fn mark_webhook_failed(&self, id: i64, error: &str) -> Result<(), DbError> {
        let sql = "UPDATE webhook_events SET processed_at = $1, process_error = $2 WHERE id = $3";
        on!(self, p => sqlx::query(sql).bind(now_ms()).bind(error).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Applies several stored bodies in one transaction (one commit, one fsync, for all of
    /// them); on any failure nothing of the batch is applied and the caller retries one by one.
    pub async fn apply_webhook_events(&self, batch: &[(i64, String)]) -> Result<Applied, DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                let total = sqlite_impl::apply_batch(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(total)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin_write().await?;
                let total = pg_impl::apply_batch(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(total)
            }
        }
    }

    /// Applies one stored body in one transaction that also marks it processed, so a crash
    /// applies it wholly or not at all, and a second processor finds nothing left to do.
    pub async fn apply_webhook_event(&self, id: i64, body: &str) -> Result<Applied, DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                let r = sqlite_impl::apply(&mut tx, id, body).await?;
                tx.commit().await?;
                Ok(r)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let r = pg_impl::apply(&mut tx, id, body).await?;
                tx.commit().await?;
                Ok(r)
            }
        }
    }
}

fn ms(ts: Option<i64>) -> i64 {
    ts.unwrap_or_else(now_ms)
}

macro_rules! engine_impl {
    ($module:ident, $db:ty, $postgres:expr) => {
        pub(super) mod $module {
            use super::*;

            type Tx<'a> = sqlx::Transaction<'a, $db>;

            pub async fn apply(tx: &mut Tx<'_>, id: i64, body: &str) -> Result<Applied, DbError> {
                let claimed = sqlx::query("UPDATE webhook_events SET processed_at = $1 WHERE id = $2 AND processed_at IS NULL")
                    .bind(now_ms())
                    .bind(id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(Applied::default());
                }
                let mut scratch = Scratch::default();
                let applied = apply_claimed(tx, id, body, &mut scratch).await?;
                flush(tx, &mut scratch).await?;
                Ok(applied)
            }

            /// Applies stored bodies in one transaction: one statement claims them all (a body
            /// another processor claimed first is skipped), one statement writes their events.
            pub async fn apply_batch(tx: &mut Tx<'_>, batch: &[(i64, String)]) -> Result<Applied, DbError> {
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_string()).collect();
                // Postgres: an id array, which the planner matches against the primary key
                // (a set-returning function over JSON is opaque to its estimates).
                let (sql, ids) = if $postgres {
                    (
                        "UPDATE webhook_events SET processed_at = $1 WHERE processed_at IS NULL \
                         AND id = ANY($2::bigint[]) RETURNING id",
                        format!("{{{}}}", ids.join(",")),
                    )
                } else {
                    (
                        "UPDATE webhook_events SET processed_at = $1 WHERE processed_at IS NULL \
                         AND id IN (SELECT value FROM json_each($2)) RETURNING id",
                        format!("[{}]", ids.join(",")),
                    )
                };
                let claimed: Vec<i64> = sqlx::query_scalar(sql).bind(now_ms()).bind(ids).fetch_all(&mut **tx).await?;
                let mut total = Applied::default();
                let mut scratch = Scratch::default();
                for (id, body) in batch {
                    if claimed.contains(id) {
                        total.add(apply_claimed(tx, *id, body, &mut scratch).await?);
                    }
                }
                flush(tx, &mut scratch).await?;
                Ok(total)
            }

            /// Writes the events a transaction gathered, in order, with one statement. The
            /// live-event log: the SSE stream reads each object when it sends.
            async fn flush(tx: &mut Tx<'_>, scratch: &mut Scratch) -> Result<(), DbError> {
                if scratch.events.is_empty() {
                    return Ok(());
                }
                if $postgres {
                    // Serialise event-writing transactions across instances, so event ids
                    // commit in order and an SSE reader past id N never misses a smaller one.
                    sqlx::query("SELECT pg_advisory_xact_lock(7301)").execute(&mut **tx).await?;
                }
                let rows: Vec<(&str, &str, String)> = scratch
                    .events
                    .iter()
                    .map(|(w, k, id)| (w.as_str(), k.as_str(), json!({"id": id}).to_string()))
                    .collect();
                let sql = if $postgres {
                    "INSERT INTO events (workspace_id, type, data, created_at) \
                     SELECT e->>0, e->>1, e->>2, $1 FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n"
                } else {
                    "INSERT INTO events (workspace_id, type, data, created_at) \
                     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), $1 \
                     FROM json_each($2) ORDER BY key"
                };
                sqlx::query(sql)
                    .bind(now_ms())
                    .bind(serde_json::to_string(&rows).unwrap_or_default())
                    .execute(&mut **tx)
                    .await?;
                scratch.events.clear();
                Ok(())
            }

            async fn apply_claimed(tx: &mut Tx<'_>, id: i64, body: &str, scratch: &mut Scratch) -> Result<Applied, DbError> {
                let mut applied = Applied::default();
                let envelope = match webhook::parse(body.as_bytes()) {
                    Ok(e) => e,
                    Err(e) => {
                        note(tx, id, &format!("not an envelope: {e}")).await?;
                        return Ok(applied);
                    }
                };
                for entry in &envelope.entry {
                    for change in &entry.changes {
                        match change.field.as_str() {
                            "messages" => {
                                match serde_json::from_value::<MessagesValue>(change.value.clone()) {
                                    Ok(v) => messages_change(tx, &v, &mut applied, scratch).await?,
                                    Err(e) => note(tx, id, &format!("unreadable messages change: {e}")).await?,
                                }
                            }
                            "message_template_status_update"
                            | "template_category_update"
                            | "message_template_quality_update"
                            | "message_template_components_update"
                            | "phone_number_quality_update"
                            | "account_update" => waba_change(tx, &entry.id, &change.field, &change.value, &mut applied, scratch).await?,
                            // Kept in webhook_events, unapplied: a field this version does not use.
                            _ => {}
                        }
                    }
                }
                Ok(applied)
            }

            /// Appends to the live-event log; the SSE stream reads the object when it sends.
            pub async fn event(tx: &mut Tx<'_>, workspace_id: &str, kind: &str, object_id: &str) -> Result<(), DbError> {
                let mut one = Scratch::default();
                one.event(workspace_id, kind, object_id);
                flush(tx, &mut one).await
            }

            /// Template, number and account changes, for every workspace that connected the WABA.
            async fn waba_change(tx: &mut Tx<'_>, waba_id: &str, field: &str, v: &Value, applied: &mut Applied, scratch: &mut Scratch) -> Result<(), DbError> {
                let workspaces: Vec<String> = sqlx::query_scalar("SELECT workspace_id FROM meta_connections WHERE waba_id = $1")
                    .bind(waba_id)
                    .fetch_all(&mut **tx)
                    .await?;
                if workspaces.is_empty() {
                    applied.unrouted += 1;
                }
                let text = |k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string())));
                let now = now_ms();
                for ws in workspaces {
                    if !applied.workspaces.contains(&ws) {
                        applied.workspaces.push(ws.clone());
                    }
                    match field {
                        "phone_number_quality_update" => {
                            let display = text("display_phone_number").map(|d| format!("+{}", d.trim_start_matches('+')));
                            let tier = text("max_daily_conversations_per_business").or_else(|| text("current_limit"));
                            let upgrade = text("event").as_deref() == Some("THROUGHPUT_UPGRADE");
                            sqlx::query(
                                "UPDATE phone_numbers SET messaging_tier = COALESCE($1, messaging_tier),                                  throughput_mps = CASE WHEN $2 THEN 1000 ELSE throughput_mps END, updated_at = $3                                  WHERE workspace_id = $4 AND display_phone = $5",
                            )
                            .bind(&tier).bind(upgrade).bind(now).bind(&ws).bind(&display)
                            .execute(&mut **tx).await?;
                            alert(tx, &ws, field, v).await?;
                        }
                        "account_update" => alert(tx, &ws, field, v).await?,
                        _ => template_change(tx, &ws, waba_id, field, v, scratch).await?,
                    }
                }
                Ok(())
            }

            async fn alert(tx: &mut Tx<'_>, workspace_id: &str, kind: &str, v: &Value) -> Result<(), DbError> {
                sqlx::query("INSERT INTO alerts (id, workspace_id, kind, detail, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(new_id()).bind(workspace_id).bind(kind).bind(v.to_string()).bind(now_ms())
                    .execute(&mut **tx).await?;
                Ok(())
            }

            /// Meta's template webhooks drive the stored template's status, category and quality.
            async fn template_change(tx: &mut Tx<'_>, workspace_id: &str, waba_id: &str, field: &str, v: &Value, scratch: &mut Scratch) -> Result<(), DbError> {
                let text = |k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string())));
                let meta_id = text("message_template_id");
                let name = text("message_template_name");
                let language = text("message_template_language");
                let now = now_ms();
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM templates WHERE workspace_id = $1 AND waba_id = $2 AND                      (meta_template_id = $3 OR (name = $4 AND language = $5))",
                )
                .bind(workspace_id).bind(waba_id).bind(&meta_id).bind(&name).bind(&language)
                .fetch_optional(&mut **tx).await?;
                let id = match existing {
                    Some(id) => id,
                    None => {
                        let (Some(name), Some(language)) = (&name, &language) else { return Ok(()) };
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO templates (id, workspace_id, waba_id, meta_template_id, name, language, category, status, created_at, updated_at)                              VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', $8, $8)",
                        )
                        .bind(&id).bind(workspace_id).bind(waba_id).bind(&meta_id).bind(name).bind(language)
                        .bind(text("message_template_category")).bind(now)
                        .execute(&mut **tx).await?;
                        id
                    }
                };
                match field {
                    "message_template_status_update" => {
                        let reason = v.get("rejection_info").and_then(|r| r.get("reason")).and_then(Value::as_str).map(str::to_string)
                            .or_else(|| text("reason").filter(|r| r != "NONE"));
                        let recommendation = v.get("rejection_info").and_then(|r| r.get("recommendation")).and_then(Value::as_str).map(str::to_string);
                        sqlx::query("UPDATE templates SET status = COALESCE($1, status), rejected_reason = $2, meta_template_id = COALESCE(meta_template_id, $3), updated_at = $4, rejection_recommendation = $6 WHERE id = $5")
                            .bind(text("event")).bind(reason).bind(&meta_id).bind(now).bind(&id).bind(recommendation)
                            .execute(&mut **tx).await?;
                    }
                    "template_category_update" => {
                        sqlx::query("UPDATE templates SET category = COALESCE($1, category), updated_at = $2 WHERE id = $3")
                            .bind(text("new_category")).bind(now).bind(&id)
                            .execute(&mut **tx).await?;
                    }
                    "message_template_quality_update" => {
                        sqlx::query("UPDATE templates SET quality_score = COALESCE($1, quality_score), updated_at = $2 WHERE id = $3")
                            .bind(text("new_quality_score")).bind(now).bind(&id)
                            .execute(&mut **tx).await?;
                    }
                    _ => {}
                }
                scratch.event(workspace_id, "template.updated", &id);
                Ok(())
            }

            async fn note(tx: &mut Tx<'_>, id: i64, text: &str) -> Result<(), DbError> {
                sqlx::query("UPDATE webhook_events SET process_error = $1 WHERE id = $2")
                    .bind(text)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn messages_change(tx: &mut Tx<'_>, v: &MessagesValue, applied: &mut Applied, scratch: &mut Scratch) -> Result<(), DbError> {
                let number = match scratch.numbers.get(&v.metadata.phone_number_id) {
                    Some(n) => n.clone(),
                    None => {
                        let n: Option<(String, String)> =
                            sqlx::query_as("SELECT id, workspace_id FROM phone_numbers WHERE phone_number_id = $1")
                                .bind(&v.metadata.phone_number_id)
                                .fetch_optional(&mut **tx)
                                .await?;
                        scratch.numbers.insert(v.metadata.phone_number_id.clone(), n.clone());
                        n
                    }
                };
                let Some((number_id, workspace_id)) = number else {
                    applied.unrouted += 1;
                    return Ok(());
                };
                if !applied.workspaces.contains(&workspace_id) {
                    applied.workspaces.push(workspace_id.clone());
                }
                for m in &v.messages {
                    inbound(tx, &workspace_id, &number_id, v, m, applied, scratch).await?;
                }
                for s in &v.statuses {
                    let body = serde_json::to_string(&status_json(s)).unwrap_or_default();
                    if status_in(tx, &workspace_id, &number_id, &s.id, &body, scratch).await? {
                        applied.statuses_applied += 1;
                    } else {
                        sqlx::query("INSERT INTO pending_statuses (number_id, wamid, body, created_at) VALUES ($1, $2, $3, $4)")
                            .bind(&number_id)
                            .bind(&s.id)
                            .bind(&body)
                            .bind(now_ms())
                            .execute(&mut **tx)
                            .await?;
                        applied.statuses_pending += 1;
                    }
                }
                Ok(())
            }

            /// The contact behind a sender, found by BSUID and/or wa_id, linked when a message
            /// carries both, created when new; the profile name is kept current. Answers the
            /// contact and its conversation on `number_id`, created when new. A known sender
            /// with nothing new costs one query: the contact and its conversation together.
            async fn sender(
                tx: &mut Tx<'_>,
                workspace_id: &str,
                number_id: &str,
                wa_id: Option<&str>,
                bsuid: Option<&str>,
                info: Option<&ContactInfo>,
                at: i64,
            ) -> Result<(String, String), DbError> {
                let profile = info.and_then(|c| c.profile.as_ref());
                let name = profile.and_then(|p| p.name.as_deref());
                let username = profile.and_then(|p| p.username.as_deref());
                type Found = (String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
                // BSUID first, then wa_id: each arm walks its own unique index.
                let found: Option<Found> = sqlx::query_as(
                    "SELECT c.id, c.wa_id, c.bsuid, c.phone, c.profile_name, c.username, v.id FROM ( \
                     SELECT id, 0 AS pri FROM contacts WHERE workspace_id = $1 AND bsuid = $2 \
                     UNION ALL SELECT id, 1 AS pri FROM contacts WHERE workspace_id = $1 AND wa_id = $3) m \
                     JOIN contacts c ON c.id = m.id \
                     LEFT JOIN conversations v ON v.number_id = $4 AND v.contact_id = c.id \
                     ORDER BY m.pri LIMIT 1",
                )
                .bind(workspace_id)
                .bind(bsuid)
                .bind(wa_id)
                .bind(number_id)
                .fetch_optional(&mut **tx)
                .await?;
                let now = now_ms();
                let phone = wa_id.map(|w| format!("+{w}"));
                let contact_id = match found {
                    Some((id, has_wa_id, has_bsuid, has_phone, has_name, has_username, conversation)) => {
                        let changes = (has_wa_id.is_none() && wa_id.is_some())
                            || (has_phone.is_none() && phone.is_some())
                            || (has_bsuid.is_none() && bsuid.is_some())
                            || (name.is_some() && has_name.as_deref() != name)
                            || (username.is_some() && has_username.as_deref() != username);
                        if changes {
                            // Link the identity this message adds, unless another contact holds
                            // it. Only when something changes: a customer's every message
                            // rewriting their row left Postgres walking dead row versions on
                            // each lookup (the processor spent most of its time on this row).
                            sqlx::query(
                                "UPDATE contacts SET \
                                 wa_id = COALESCE(wa_id, CASE WHEN NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = $2 AND c.wa_id = $3) THEN $3 END), \
                                 phone = COALESCE(phone, $4), \
                                 bsuid = COALESCE(bsuid, CASE WHEN NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = $2 AND c.bsuid = $5) THEN $5 END), \
                                 profile_name = COALESCE($6, profile_name), username = COALESCE($7, username), updated_at = $8 \
                                 WHERE id = $1",
                            )
                            .bind(&id)
                            .bind(workspace_id)
                            .bind(wa_id)
                            .bind(&phone)
                            .bind(bsuid)
                            .bind(name)
                            .bind(username)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        if let Some(conversation) = conversation {
                            return Ok((id, conversation));
                        }
                        id
                    }
                    None => {
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO contacts (id, workspace_id, wa_id, bsuid, phone, username, profile_name, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                        )
                        .bind(&id)
                        .bind(workspace_id)
                        .bind(wa_id)
                        .bind(bsuid)
                        .bind(&phone)
                        .bind(username)
                        .bind(name)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        id
                    }
                };
                let conversation = conversation(tx, workspace_id, number_id, &contact_id, at).await?;
                Ok((contact_id, conversation))
            }

            async fn conversation(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, contact_id: &str, at: i64) -> Result<String, DbError> {
                let now = now_ms();
                let id = new_id();
                let created = sqlx::query(
                    "INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $6) ON CONFLICT (number_id, contact_id) DO NOTHING",
                )
                .bind(&id)
                .bind(workspace_id)
                .bind(number_id)
                .bind(contact_id)
                .bind(at)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if created == 1 {
                    return Ok(id);
                }
                Ok(sqlx::query_scalar("SELECT id FROM conversations WHERE number_id = $1 AND contact_id = $2")
                    .bind(number_id)
                    .bind(contact_id)
                    .fetch_one(&mut **tx)
                    .await?)
            }

            async fn message_by_wamid(tx: &mut Tx<'_>, number_id: &str, wamid: &str) -> Result<Option<(String, String, String, String, Option<String>)>, DbError> {
                Ok(sqlx::query_as("SELECT id, type, content, reactions, history FROM messages WHERE number_id = $1 AND wamid = $2")
                    .bind(number_id)
                    .bind(wamid)
                    .fetch_optional(&mut **tx)
                    .await?)
            }

            async fn inbound(
                tx: &mut Tx<'_>,
                workspace_id: &str,
                number_id: &str,
                v: &MessagesValue,
                m: &InboundMessage,
                applied: &mut Applied,
                scratch: &mut Scratch,
            ) -> Result<(), DbError> {
                let info = v.contacts.iter().find(|c| {
                    (m.from.is_some() && c.wa_id == m.from) || (m.from_user_id.is_some() && c.user_id == m.from_user_id)
                }).or_else(|| (v.contacts.len() == 1).then(|| &v.contacts[0]));
                let wa_id = m.from.as_deref().or(info.and_then(|c| c.wa_id.as_deref()));
                let bsuid = m.from_user_id.as_deref().or(info.and_then(|c| c.user_id.as_deref()));
                if wa_id.is_none() && bsuid.is_none() {
                    return Ok(());
                }
                let at = ms(m.timestamp_ms());
                let content = m.content();
                match m.kind.as_str() {
                    "reaction" => {
                        let target = content.get("message_id").and_then(Value::as_str).unwrap_or_default();
                        let emoji = content.get("emoji").and_then(Value::as_str).unwrap_or_default();
                        if let Some((id, _, _, reactions, _)) = message_by_wamid(tx, number_id, target).await? {
                            let mut list: Vec<Value> = serde_json::from_str(&reactions).unwrap_or_default();
                            list.retain(|r| r.get("direction").and_then(Value::as_str) != Some("inbound"));
                            if !emoji.is_empty() {
                                list.push(json!({"emoji": emoji, "direction": "inbound"}));
                            }
                            let list = Value::Array(list).to_string();
                            if list != reactions {
                                sqlx::query("UPDATE messages SET reactions = $1, updated_at = $2 WHERE id = $3")
                                    .bind(&list)
                                    .bind(now_ms())
                                    .bind(&id)
                                    .execute(&mut **tx)
                                    .await?;
                                scratch.event(workspace_id, "message.updated", &id);
                            }
                        }
                        return Ok(());
                    }
                    "edit" | "revoke" => {
                        let original = content.get("original_message_id").and_then(Value::as_str).unwrap_or_default();
                        if let Some((id, kind, old, _, history)) = message_by_wamid(tx, number_id, original).await? {
                            let mut hist: Vec<Value> = history.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
                            // Replays of the same edit change nothing.
                            if hist.iter().any(|h| h.get("wamid").and_then(Value::as_str) == Some(m.id.as_str())) {
                                return Ok(());
                            }
                            hist.push(json!({"wamid": m.id, "action": m.kind, "type": kind, "content": serde_json::from_str::<Value>(&old).unwrap_or_default(), "at": at}));
                            if m.kind == "edit" {
                                let new_msg = content.get("message").cloned().unwrap_or_default();
                                let new_type = new_msg.get("type").and_then(Value::as_str).unwrap_or(&kind).to_string();
                                let new_content = new_msg.get(&new_type).cloned().unwrap_or(new_msg.clone());
                                sqlx::query("UPDATE messages SET type = $1, content = $2, history = $3, edited_at = $4, updated_at = $5 WHERE id = $6")
                                    .bind(&new_type).bind(new_content.to_string()).bind(Value::Array(hist).to_string()).bind(at).bind(now_ms()).bind(&id)
                                    .execute(&mut **tx).await?;
                            } else {
                                sqlx::query("UPDATE messages SET content = '{}', history = $1, revoked_at = $2, updated_at = $3 WHERE id = $4")
                                    .bind(Value::Array(hist).to_string()).bind(at).bind(now_ms()).bind(&id)
                                    .execute(&mut **tx).await?;
                            }
                            scratch.event(workspace_id, "message.updated", &id);
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                let (_contact_id, conversation_id) = sender(tx, workspace_id, number_id, wa_id, bsuid, info, at).await?;
                let id = new_id();
                let now = now_ms();
                let context = m.context.as_ref().map(Value::to_string);
                let reply_to: Option<String> = match m.context.as_ref().and_then(|c| c.get("id")).and_then(Value::as_str) {
                    Some(w) => message_by_wamid(tx, number_id, w).await?.map(|r| r.0),
                    None => None,
                };
                let inserted = sqlx::query(
                    "INSERT INTO messages (id, workspace_id, conversation_id, number_id, wamid, direction, type, content, context, reply_to_id, \
                     status, status_timestamps, error_code, error_title, timestamp, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'inbound', $6, $7, $8, $9, 'received', $10, $11, $12, $13, $14, $14) \
                     ON CONFLICT (number_id, wamid) DO NOTHING",
                )
                .bind(&id)
                .bind(workspace_id)
                .bind(&conversation_id)
                .bind(number_id)
                .bind(&m.id)
                .bind(&m.kind)
                .bind(content.to_string())
                .bind(context)
                .bind(reply_to)
                .bind(json!({"received": crate::server::rfc3339(at)}).to_string())
                .bind(first_error_code(m))
                .bind(first_error_title(m))
                .bind(at)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(());
                }
                applied.messages_created += 1;
                if matches!(m.kind.as_str(), "image" | "video" | "audio" | "document" | "sticker") {
                    if let Some(media_id) = content.get("id").and_then(Value::as_str) {
                        sqlx::query(
                            "INSERT INTO media (id, workspace_id, message_id, number_id, meta_media_id, sha256, mime_type, filename, state, next_attempt_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $9)",
                        )
                        .bind(new_id()).bind(workspace_id).bind(&id).bind(number_id).bind(media_id)
                        .bind(content.get("sha256").and_then(Value::as_str))
                        .bind(content.get("mime_type").and_then(Value::as_str))
                        .bind(content.get("filename").and_then(Value::as_str))
                        .bind(now)
                        .execute(&mut **tx).await?;
                    }
                }
                sqlx::query(
                    "UPDATE conversations SET \
                     last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < $1 THEN $1 ELSE last_inbound_at END, \
                     last_message_id = CASE WHEN last_message_at <= $1 OR last_message_id IS NULL THEN $2 ELSE last_message_id END, \
                     last_message_at = CASE WHEN last_message_at < $1 THEN $1 ELSE last_message_at END, \
                     unread_count = unread_count + 1, \
                     status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END, updated_at = $3 \
                     WHERE id = $4",
                )
                .bind(at)
                .bind(&id)
                .bind(now)
                .bind(&conversation_id)
                .execute(&mut **tx)
                .await?;
                scratch.event(workspace_id, "message.created", &id);
                scratch.event(workspace_id, "conversation.updated", &conversation_id);
                Ok(())
            }

            /// Applies a status to the stored message; false when the wamid is unknown.
            pub async fn status(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, wamid: &str, body: &str) -> Result<bool, DbError> {
                let mut scratch = Scratch::default();
                let known = status_in(tx, workspace_id, number_id, wamid, body, &mut scratch).await?;
                flush(tx, &mut scratch).await?;
                Ok(known)
            }

            async fn status_in(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, wamid: &str, body: &str, scratch: &mut Scratch) -> Result<bool, DbError> {
                let row: Option<(String, String, String)> =
                    sqlx::query_as("SELECT id, status, status_timestamps FROM messages WHERE number_id = $1 AND wamid = $2")
                        .bind(number_id)
                        .bind(wamid)
                        .fetch_optional(&mut **tx)
                        .await?;
                let s: Value = serde_json::from_str(body).unwrap_or_default();
                let row = match row {
                    Some(r) => Some(r),
                    // A send whose answer was lost: Meta echoes our message id, so the first
                    // status resolves it without a second request.
                    None => match s.get("biz_opaque_callback_data").and_then(Value::as_str) {
                        Some(our_id) => {
                            let claimed = sqlx::query("UPDATE messages SET wamid = $1 WHERE id = $2 AND number_id = $3 AND wamid IS NULL AND direction = 'outbound'")
                                .bind(wamid).bind(our_id).bind(number_id)
                                .execute(&mut **tx).await?.rows_affected();
                            if claimed == 1 {
                                sqlx::query("UPDATE outbox_jobs SET state = 'done', locked_by = NULL, updated_at = $1, last_error = 'resolved by status webhook' WHERE message_id = $2 AND state IN ('unknown', 'in_flight', 'queued')")
                                    .bind(now_ms()).bind(our_id)
                                    .execute(&mut **tx).await?;
                                sqlx::query_as("SELECT id, status, status_timestamps FROM messages WHERE id = $1")
                                    .bind(our_id).fetch_optional(&mut **tx).await?
                            } else {
                                None
                            }
                        }
                        None => None,
                    },
                };
                let Some((id, current, stamps)) = row else { return Ok(false) };
                let stamps_before = stamps.clone();
                let Some(next) = s.get("status").and_then(Value::as_str).and_then(MessageStatus::parse) else { return Ok(true) };
                let current = MessageStatus::parse(&current).unwrap_or(MessageStatus::Queued);
                let new = current.advance(next);
                let mut stamps: serde_json::Map<String, Value> = serde_json::from_str(&stamps).unwrap_or_default();
                let at = s.get("timestamp_ms").and_then(Value::as_i64).unwrap_or_else(now_ms);
                stamps.entry(next.as_str().to_string()).or_insert_with(|| json!(crate::server::rfc3339(at)));
                let error = s.get("errors").and_then(|e| e.get(0)).filter(|_| new == MessageStatus::Failed && current != MessageStatus::Failed);
                if let Some(e) = error {
                    sqlx::query("UPDATE messages SET error_code = $1, error_title = $2, error_detail = $3 WHERE id = $4")
                        .bind(e.get("code").and_then(Value::as_i64))
                        .bind(e.get("title").and_then(Value::as_str))
                        .bind(e.get("detail").and_then(Value::as_str))
                        .bind(&id)
                        .execute(&mut **tx)
                        .await?;
                }
                let stamps = Value::Object(stamps).to_string();
                if new == current && error.is_none() && stamps == stamps_before {
                    // A replayed status changes nothing and publishes nothing.
                    return Ok(true);
                }
                sqlx::query("UPDATE messages SET status = $1, status_timestamps = $2, updated_at = $3 WHERE id = $4")
                    .bind(new.as_str())
                    .bind(&stamps)
                    .bind(now_ms())
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                scratch.event(workspace_id, "message.updated", &id);
                Ok(true)
            }
        }
    };
}

fn first_error_code(m: &InboundMessage) -> Option<i64> {
    m.errors.as_ref()?.get(0)?.get("code")?.as_i64()
}

fn first_error_title(m: &InboundMessage) -> Option<String> {
    Some(
        m.errors
            .as_ref()?
            .get(0)?
            .get("title")?
            .as_str()?
            .to_string(),
    )
}

/// What we keep of a status update: enough to apply it now or later.
fn status_json(s: &StatusUpdate) -> Value {
    json!({
        "status": s.status,
        "timestamp_ms": s.timestamp_ms(),
        "recipient_id": s.recipient_id,
        "recipient_user_id": s.recipient_user_id,
        "biz_opaque_callback_data": s.biz_opaque_callback_data,
        "errors": s.errors.iter().map(|e| json!({"code": e.code, "title": e.title, "detail": e.detail()})).collect::<Vec<_>>(),
        "pricing": s.pricing,
        "conversation": s.conversation,
    })
}

engine_impl!(sqlite_impl, sqlx::Sqlite, false);
engine_impl!(pg_impl, sqlx::Postgres, true);
