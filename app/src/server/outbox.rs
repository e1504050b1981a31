//! The outbox worker: claims due jobs, paces each number with a token bucket, calls Graph,
//! and records the outcome. Meta's send API has no idempotency key, so a send whose outcome
//! is unknown is never blindly retried: our message id travels as `biz_opaque_callback_data`,
//! the first status webhook that echoes it resolves the send, and only when none arrives
//! within the configured wait is it retried (or failed, by setting). See docs/delivery.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};

use super::crypto::SecretKey;
use super::db::outbox::JobRow;
use super::db::Db;
use super::graph::{Graph, GraphError};
use super::metrics::metrics;
use super::now_ms;

/// How the outbox behaves.
#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// How long a send of unknown outcome waits for a status webhook before it is resolved.
    pub unknown_wait_ms: i64,
    /// After that wait: `true` marks it failed ("delivery unknown"), `false` sends again.
    pub fail_unknown: bool,
    /// The first retry's delay; each further retry doubles it (with jitter), up to 5 minutes.
    pub backoff_base_ms: i64,
    /// Attempts before a retryable error becomes final.
    pub max_attempts: i64,
    /// How long a claimed job is a worker's before others may treat it as abandoned; longer
    /// than Graph's request timeout.
    pub lease_ms: i64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            unknown_wait_ms: 10 * 60 * 1000,
            fail_unknown: false,
            backoff_base_ms: 1000,
            max_attempts: 12,
            lease_ms: 60_000,
        }
    }
}

/// A handle to wake the worker after enqueuing.
#[derive(Clone)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// Starts the worker on the current runtime.
    pub fn start(db: Db, graph: Graph, key: Arc<SecretKey>, settings: OutboxSettings) -> Outbox {
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            db,
            graph,
            key,
            settings,
            id: format!("worker-{}", super::new_id()),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        };
        tokio::spawn(worker.run(wake.clone()));
        Outbox { wake }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// A job's place among the IN_FLIGHT; giving it back wakes the worker to claim the next job.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit first, so the worker woken below finds it free.
        drop(self.permit.take());
        self.freed.notify_one();
    }
}

/// How many jobs the worker has in hand at once (each waits for its number's pace, then calls
/// Graph).
const IN_FLIGHT: usize = 64;

/// The largest burst a bucket allows: a tenth of a second's worth, at least one message.
fn burst(rate: f64) -> f64 {
    (rate / 10.0).max(1.0)
}

/// A token bucket per number: `rate` messages a second, bursts up to a tenth of a second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token, answering how long to wait for it (reservations may go negative).
    fn take(&mut self, rate: f64) -> Duration {
        let now = Instant::now();
        if (rate - self.rate).abs() > f64::EPSILON {
            self.rate = rate;
        }
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate)
            // Bursts up to a tenth of a second's worth: the average over a second stays at the rate.
            .min(burst(self.rate));
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[derive(Clone)]
struct Worker {
    db: Db,
    graph: Graph,
    key: Arc<SecretKey>,
    settings: OutboxSettings,
    id: String,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl Worker {
    async fn run(self, wake: Arc<Notify>) {
        match self.db.recover_jobs_after_crash(self.settings.unknown_wait_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "jobs were in flight when the server stopped; waiting for Meta's statuses to resolve them"),
            Err(e) => tracing::warn!(error = %e, "recovering in-flight jobs failed"),
        }
        // Up to IN_FLIGHT jobs at once, claimed as slots free up. (Claiming a batch and waiting
        // for all of it paused every paced broadcast at the end of each batch for its slowest
        // send: 1,000 messages at 80/s took 17-18 s instead of 12.5.)
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let finished = Arc::new(Notify::new());
        let mut last_sweep = Instant::now() - Duration::from_secs(10);
        loop {
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                if let Err(e) = self
                    .db
                    .sweep_jobs(self.settings.unknown_wait_ms, self.settings.fail_unknown)
                    .await
                {
                    tracing::warn!(error = %e, "outbox sweep failed");
                }
            }
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match self
                    .db
                    .claim_jobs(&self.id, free as i64, self.settings.lease_ms)
                    .await
                {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            // Only this loop takes slots, so the `free` counted above are there.
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let slot = Slot {
                                permit: Some(permit),
                                freed: finished.clone(),
                            };
                            tokio::spawn(self.clone().handle(job, slot));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming outbox jobs failed"),
                }
            }
            if claimed > 0 && slots.available_permits() > 0 {
                // More may be due already.
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Runs a job; its slot is given back when it ends. (Giving it back as soon as Meta answered
    /// a send was tried: more bookkeeping at once made the pace less even, not more.)
    async fn handle(self, job: JobRow, _slot: Slot) {
        let result = match job.kind.as_str() {
            "send" => self.send(&job).await,
            "mark_read" => self.mark_read(&job).await,
            other => {
                self.db
                    .finish_job(
                        &job.id,
                        "failed",
                        Some(&format!("unknown job kind {other}")),
                    )
                    .await
            }
        };
        if let Err(e) = result {
            // The lease expires and the sweep takes the job up again.
            tracing::error!(job = %job.id, error = %e, "recording an outbox outcome failed");
        }
    }

    /// Takes the number's next turn: how long to wait for it.
    async fn reserve(&self, number_id: &str, rate: i64) -> Duration {
        let mut buckets = self.buckets.lock().await;
        let rate = rate.max(1) as f64;
        buckets
            .entry(number_id.to_string())
            .or_insert(Bucket {
                rate,
                tokens: burst(rate),
                at: Instant::now(),
            })
            .take(rate)
    }

    fn backoff(&self, attempts: i64, error: &GraphError) -> i64 {
        let base = self.settings.backoff_base_ms.max(1);
        let exp = base
            .saturating_mul(1 << (attempts - 1).clamp(0, 16))
            .min(300_000);
        // The pair rate is one message per 6 s to the same user.
        let floor = if error.code() == Some(131056) {
            6_000.min(base * 6)
        } else {
            0
        };
        let jitter = rand::rng().random_range(0.75..1.25);
        ((exp as f64 * jitter) as i64).max(floor)
    }

    async fn send(&self, job: &JobRow) -> Result<(), super::db::DbError> {
        let Some(message_id) = job.message_id.as_deref() else {
            return self
                .db
                .finish_job(&job.id, "failed", Some("a send job without a message"))
                .await;
        };
        let Some(target) = self.db.job_target(message_id).await? else {
            return self
                .db
                .finish_job(&job.id, "failed", Some("the message or its number is gone"))
                .await;
        };
        let token = match self.key.decrypt(&target.access_token_enc) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .db
                    .fail_send(
                        &job.id,
                        message_id,
                        None,
                        "Cannot use the stored access token",
                        &format!("{e}: reconnect the number"),
                    )
                    .await
            }
        };
        // Up to IN_FLIGHT sends wait their turn here at once: at a slow pace (a number set to
        // 1 message a second) the last would outwait its lease, and the sweep would take a send
        // still to be made for one cut off mid-flight (marked unknown, then sent again).
        // A quarter of the lease: the Graph request after the wait must fit in what is left.
        let wait = self.reserve(&target.number_id, target.throughput_mps).await;
        if wait.as_millis() as i64 > self.settings.lease_ms / 4 {
            let until = now_ms() + wait.as_millis() as i64 + self.settings.lease_ms;
            match self.db.extend_job_lease(&job.id, &self.id, until).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = %job.id, "an outbox job was taken over while it waited its turn");
                    return Ok(());
                }
                // Best effort: the send goes ahead as it did before leases were extended.
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "extending an outbox lease failed")
                }
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let mut body: Value = serde_json::from_str(&job.payload).unwrap_or_default();
        body["biz_opaque_callback_data"] = Value::String(message_id.to_string());
        let outcome = self
            .graph
            .send_message(&token, &target.phone_number_id, &body)
            .await;
        match &outcome {
            Ok(_) => metrics().messages_sent.inc(),
            Err(e) => metrics().send_error(e.code()),
        }
        match outcome {
            Ok(wamid) => self.db.complete_send(&job.id, message_id, &wamid).await,
            Err(e) if e.retryable() && job.attempts < self.settings.max_attempts => {
                let at = now_ms() + self.backoff(job.attempts, &e);
                tracing::info!(job = %job.id, attempts = job.attempts, error = %e, "send will be retried");
                self.db.retry_job(&job.id, at, &e.to_string()).await
            }
            Err(e @ GraphError::Unknown(_)) | Err(e @ GraphError::Decode(_)) => {
                tracing::warn!(job = %job.id, error = %e, "send outcome unknown; waiting for Meta's status webhook");
                self.db
                    .job_outcome_unknown(
                        &job.id,
                        now_ms() + self.settings.unknown_wait_ms,
                        &e.to_string(),
                    )
                    .await
            }
            Err(e) => {
                if e.code() == Some(190) {
                    self.db.flag_token_invalid(&target.connection_id).await?;
                }
                let title = match &e {
                    GraphError::Meta { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                tracing::info!(job = %job.id, code = ?e.code(), "send refused by Meta");
                self.db
                    .fail_send(&job.id, message_id, e.code(), &title, &e.advice())
                    .await
            }
        }
    }

    async fn mark_read(&self, job: &JobRow) -> Result<(), super::db::DbError> {
        let Some(message_id) = job.message_id.as_deref() else {
            return self.db.finish_job(&job.id, "failed", None).await;
        };
        let (Some((Some(wamid), phone_number_id)), Some(target)) = (
            self.db.message_wamid(message_id).await?,
            self.db.job_target(message_id).await?,
        ) else {
            return self
                .db
                .finish_job(&job.id, "failed", Some("message gone"))
                .await;
        };
        let Ok(token) = self.key.decrypt(&target.access_token_enc) else {
            return self
                .db
                .finish_job(&job.id, "failed", Some("token cannot be decrypted"))
                .await;
        };
        match self
            .graph
            .mark_read(&token, &phone_number_id, &wamid, false)
            .await
        {
            Ok(()) => self.db.finish_job(&job.id, "done", None).await,
            Err(e) if e.retryable() && job.attempts < 5 => {
                self.db
                    .retry_job(
                        &job.id,
                        now_ms() + self.backoff(job.attempts, &e),
                        &e.to_string(),
                    )
                    .await
            }
            // A read receipt is a courtesy: give up quietly rather than pile up.
            Err(e) => {
                self.db
                    .finish_job(&job.id, "failed", Some(&e.to_string()))
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_short_burst_then_paces_at_its_rate() {
        let mut b = Bucket {
            rate: 100.0,
            tokens: burst(100.0),
            at: Instant::now(),
        };
        for _ in 0..10 {
            assert_eq!(
                b.take(100.0),
                Duration::ZERO,
                "a tenth of a second's worth at once"
            );
        }
        let wait = b.take(100.0);
        assert!(
            wait > Duration::from_millis(8) && wait <= Duration::from_millis(11),
            "{wait:?}"
        );
        let wait2 = b.take(100.0);
        assert!(wait2 > wait, "reservations queue up");
        let mut slow = Bucket {
            rate: 5.0,
            tokens: burst(5.0),
            at: Instant::now(),
        };
        assert_eq!(slow.take(5.0), Duration::ZERO, "at least one message");
        assert!(slow.take(5.0) > Duration::from_millis(150));
    }
}
