//! Cheap queue figures for `/metrics`: each reads only unfinished rows through an index.

use super::{Db, DbError};

/// The queues at one moment.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    /// Unfinished outbox jobs by state.
    pub outbox: Vec<(String, i64)>,
    /// `created_at` (ms) of the oldest unfinished job.
    pub oldest_job_at: Option<i64>,
    pub webhook_backlog: i64,
    pub media_pending: i64,
}

impl Db {
    pub async fn queue_stats(&self) -> Result<QueueStats, DbError> {
        let outbox = "SELECT state, COUNT(*) FROM outbox_jobs WHERE state IN ('queued', 'in_flight', 'unknown') GROUP BY state";
        let oldest = "SELECT MIN(created_at) FROM outbox_jobs WHERE state IN ('queued', 'in_flight', 'unknown')";
        let backlog = "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL";
        let media = "SELECT COUNT(*) FROM media WHERE state = 'pending'";
        Ok(QueueStats {
            outbox: on!(self, p => sqlx::query_as(outbox).fetch_all(p).await)?,
            oldest_job_at: on!(self, p => sqlx::query_scalar(oldest).fetch_one(p).await)?,
            webhook_backlog: on!(self, p => sqlx::query_scalar(backlog).fetch_one(p).await)?,
            media_pending: on!(self, p => sqlx::query_scalar(media).fetch_one(p).await)?,
        })
    }
}
