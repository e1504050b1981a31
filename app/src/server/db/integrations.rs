//! Outgoing webhooks: endpoints, the fan-out from the event log, and deliveries.

use super::{Db, DbError};
#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use crate::server::{new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub secret_enc: String,
    pub events: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub workspace_id: String,
    pub event_id: i64,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! delivery_select {
    () => {
        "SELECT id, endpoint_id, workspace_id, event_id, event_type, state, attempts, last_status, last_error, created_at, updated_at FROM webhook_deliveries "
    };
}

impl Db {
    /// Registers an endpoint; it receives events from now on (its cursor starts at the newest).
    pub async fn create_endpoint(
        &self,
        workspace_id: &str,
        url: &str,
        secret_enc: &str,
        events: &str,
    ) -> Result<EndpointRow, DbError> {
        let id = new_id();
        let now = now_ms();
        let cursor = self.last_event_id(workspace_id).await?;
        let sql = "INSERT INTO webhook_endpoints (id, workspace_id, url, secret_enc, events, cursor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on!(self, p => sqlx::query(sql).bind(&id).bind(workspace_id).bind(url).bind(secret_enc).bind(events).bind(cursor).bind(now).execute(p).await.map(|_| ()))?;
        Ok(EndpointRow {
            id,
            workspace_id: workspace_id.into(),
            url: url.into(),
            secret_enc: secret_enc.into(),
            events: events.into(),
            created_at: now,
        })
    }

    pub async fn endpoints(&self, workspace_id: &str) -> Result<Vec<EndpointRow>, DbError> {
        let sql = "SELECT id, workspace_id, url, secret_enc, events, created_at FROM webhook_endpoints WHERE workspace_id = $1 AND disabled_at IS NULL ORDER BY created_at";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    pub async fn endpoint(&self, id: &str) -> Result<Option<EndpointRow>, DbError> {
        let sql = "SELECT id, workspace_id, url, secret_enc, events, created_at FROM webhook_endpoints WHERE id = $1 AND disabled_at IS NULL";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    /// Removes an endpoint (and its delivery log). False when the workspace has no such endpoint.
    pub async fn delete_endpoint(&self, workspace_id: &str, id: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2";
        Ok(
            on!(self, p => sqlx::query(sql).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?
                == 1,
        )
    }

    /// Turns new events into pending deliveries for every endpoint, advancing each cursor in
    /// the same transaction (Postgres locks the endpoint row, so instances never fan out twice).
    pub async fn fan_out_events(&self) -> Result<u64, DbError> {
        let now = now_ms();
        let mut created = 0;
        macro_rules! run {
            ($p:ident, $lock:expr) => {{
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT w.id FROM webhook_endpoints w WHERE w.disabled_at IS NULL AND EXISTS (SELECT 1 FROM events e WHERE e.workspace_id = w.workspace_id AND e.id > w.cursor)")
                    .fetch_all($p).await?;
                for endpoint in ids {
                    let mut tx = $p.begin_write().await?;
                    let row: Option<(String, i64, String)> = sqlx::query_as($lock).bind(&endpoint).fetch_optional(&mut *tx).await?;
                    let Some((workspace_id, cursor, events)) = row else { continue };
                    let wanted: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
                    let new: Vec<(i64, String)> = sqlx::query_as("SELECT id, type FROM events WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT 1000")
                        .bind(&workspace_id).bind(cursor).fetch_all(&mut *tx).await?;
                    let Some(last) = new.last().map(|e| e.0) else { continue };
                    for (event_id, kind) in new {
                        if !wanted.is_empty() && !wanted.iter().any(|w| w == &kind) {
                            continue;
                        }
                        created += sqlx::query(
                            "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event_id, event_type, state, next_attempt_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                        )
                        .bind(new_id()).bind(&endpoint).bind(&workspace_id).bind(event_id).bind(&kind).bind(now)
                        .execute(&mut *tx).await?.rows_affected();
                    }
                    sqlx::query("UPDATE webhook_endpoints SET cursor = $1 WHERE id = $2").bind(last).bind(&endpoint).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
            }};
        }
        match self {
            Db::Sqlite(p) => run!(p, "SELECT workspace_id, cursor, events FROM webhook_endpoints WHERE id = $1 AND disabled_at IS NULL"),
            Db::Postgres(p) => run!(p, "SELECT workspace_id, cursor, events FROM webhook_endpoints WHERE id = $1 AND disabled_at IS NULL FOR UPDATE"),
        }
        Ok(created)
    }

    /// Claims due deliveries, leased for a minute.
    pub async fn claim_deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, DbError> {
        let now = now_ms();
        // A read first: on SQLite an UPDATE takes the one write lock even when nothing is due.
        let due: i64 = on!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE (state = 'pending' AND next_attempt_at <= $1) OR (state = 'in_flight' AND locked_until < $1)")
            .bind(now).fetch_one(p).await)?;
        if due == 0 {
            return Ok(Vec::new());
        }
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_as(
                "UPDATE webhook_deliveries SET state = 'in_flight', locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id IN \
                 (SELECT id FROM webhook_deliveries WHERE (state = 'pending' AND next_attempt_at <= $2) OR (state = 'in_flight' AND locked_until < $2) ORDER BY next_attempt_at LIMIT $3) \
                 RETURNING id, endpoint_id, workspace_id, event_id, event_type, state, attempts, last_status, last_error, created_at, updated_at",
            )
            .bind(now + 60_000).bind(now).bind(limit).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_as(
                "UPDATE webhook_deliveries SET state = 'in_flight', locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id IN \
                 (SELECT id FROM webhook_deliveries WHERE (state = 'pending' AND next_attempt_at <= $2) OR (state = 'in_flight' AND locked_until < $2) ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, endpoint_id, workspace_id, event_id, event_type, state, attempts, last_status, last_error, created_at, updated_at",
            )
            .bind(now + 60_000).bind(now).bind(limit).fetch_all(p).await?,
        })
    }

    /// Records a delivery attempt: delivered, retried at `retry_at`, or failed for good.
    pub async fn delivery_outcome(
        &self,
        id: &str,
        state: &str,
        status: Option<i64>,
        error: Option<&str>,
        retry_at: i64,
    ) -> Result<(), DbError> {
        let sql = "UPDATE webhook_deliveries SET state = $1, last_status = $2, last_error = $3, next_attempt_at = $4, locked_until = NULL, updated_at = $5 WHERE id = $6";
        on!(self, p => sqlx::query(sql).bind(state).bind(status).bind(error).bind(retry_at).bind(now_ms()).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The newest deliveries of an endpoint (its delivery log).
    pub async fn deliveries(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, DbError> {
        let sql = concat!(delivery_select!(), "WHERE workspace_id = $1 AND endpoint_id = $2 ORDER BY created_at DESC, event_id DESC LIMIT $3");
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(endpoint_id).bind(limit).fetch_all(p).await)?,
        )
    }

    /// One event row (for rendering a delivery's body).
    pub async fn event(
        &self,
        workspace_id: &str,
        id: i64,
    ) -> Result<Option<super::read::EventRow>, DbError> {
        let sql = "SELECT id, type, data FROM events WHERE workspace_id = $1 AND id = $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }
}
