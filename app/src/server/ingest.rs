//! Webhook ingestion: one writer group-commits raw bodies (each request is answered only
//! after the transaction holding its body commits), and one processor applies the stored
//! bodies in order, each in its own transaction that also marks it processed.
//!
//! On SQLite the writer and the processor take turns through one in-process gate (a fair
//! async mutex) instead of meeting at SQLite's write lock: a writer that finds the lock taken
//! sleeps in SQLite's busy handler for 1, 2, 5, 10… ms however soon the lock frees, which cost
//! acknowledgements tens of milliseconds. With the gate a waiting commit starts the moment the
//! apply before it ends, and applies are kept short so an acknowledgement waits for at most one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::db::Db;
use super::events::EventBus;

/// The most bodies one commit takes.
const MAX_BATCH: usize = 512;
/// Bodies applied per transaction on SQLite: enough to share one commit, few enough that an
/// acknowledgement waiting behind the apply on SQLite's single write lock waits briefly.
const APPLY_BATCH_SQLITE: i64 = 16;
/// On Postgres the writer never waits for the apply (row locks, not one write lock), so a
/// transaction takes more bodies: its round trips and its commit are shared by more messages.
const APPLY_BATCH_POSTGRES: i64 = 128;

/// Taken around every ingest write transaction on SQLite (one writer at a time, woken in
/// order); absent on Postgres, whose row locks let both run at once.
type Gate = Option<Arc<Mutex<()>>>;

struct Job {
    body: String,
    done: oneshot::Sender<Result<(), String>>,
}

/// Why a body was not stored.
#[derive(Debug, thiserror::Error)]
#[error("webhook storage failed: {0}")]
pub struct StoreError(pub String);

/// The handle handlers use; cloning shares the one writer and processor.
#[derive(Clone)]
pub struct Ingest {
    jobs: mpsc::Sender<Job>,
    wake: Arc<Notify>,
}

impl Ingest {
    /// Starts the writer and the processor on the current runtime.
    pub fn start(db: Db, bus: EventBus) -> Ingest {
        let (jobs, rx) = mpsc::channel(8192);
        let wake = Arc::new(Notify::new());
        let gate: Gate = matches!(db, Db::Sqlite(_)).then(|| Arc::new(Mutex::new(())));
        tokio::spawn(writer(db.clone(), rx, wake.clone(), gate.clone()));
        if let Db::Sqlite(pool) = &db {
            tokio::spawn(checkpointer(pool.clone()));
        }
        tokio::spawn(processor(db, bus, wake.clone(), gate));
        Ingest { jobs, wake }
    }

    /// Stores a verified body durably; returns once it is committed.
    pub async fn store(&self, body: String) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { body, done })
            .await
            .map_err(|_| StoreError("the writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError("the writer stopped".into()))?
            .map_err(StoreError)
    }

    /// Asks the processor to look for stored bodies now (after a replay, say).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn enter(gate: &Gate) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    match gate {
        Some(g) => Some(g.lock().await),
        None => None,
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Job>, wake: Arc<Notify>, gate: Gate) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let turn = enter(&gate).await;
        // Requests that arrived while this one waited for its turn share its commit.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let bodies: Vec<&str> = batch.iter().map(|j| j.body.as_str()).collect();
        let result = db.insert_webhook_events(&bodies).await.map_err(|e| {
            tracing::error!(error = %e, count = bodies.len(), "storing webhooks failed");
            "the database refused the write".to_string()
        });
        drop(turn);
        for job in batch {
            let _ = job.done.send(result.clone());
        }
        // One wake-up per batch, never one per request.
        wake.notify_one();
    }
}

/// Copies the SQLite write-ahead log into the database every second, off the commit path: a
/// commit that crosses the auto-checkpoint size otherwise does it (and its fsync of the
/// database file) while the acknowledgements of its batch wait. PASSIVE never blocks writers.
async fn checkpointer(pool: sqlx::SqlitePool) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "a background checkpoint failed; the next one retries");
        }
    }
}

async fn processor(db: Db, bus: EventBus, wake: Arc<Notify>, gate: Gate) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drain_gated(&db, &bus, &gate).await;
    }
}

/// Applies every stored body not applied yet, oldest first.
pub async fn drain(db: &Db, bus: &EventBus) {
    drain_gated(db, bus, &None).await
}

async fn drain_gated(db: &Db, bus: &EventBus, gate: &Gate) {
    let size = match db {
        Db::Sqlite(_) => APPLY_BATCH_SQLITE,
        Db::Postgres(_) => APPLY_BATCH_POSTGRES,
    };
    loop {
        let batch = match db.unprocessed_webhook_events(size).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading stored webhooks failed; retrying");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        let mut touched: Vec<String> = Vec::new();
        let mut note = |workspaces: Vec<String>| {
            for w in workspaces {
                if !touched.contains(&w) {
                    touched.push(w);
                }
            }
        };
        // One transaction for the whole batch; a failure falls back to one body at a time so a
        // single bad body cannot hold the others back.
        let count = batch.len() as u64;
        let turn = enter(gate).await;
        let outcome = db.apply_webhook_events(&batch).await;
        drop(turn);
        match outcome {
            Ok(applied) => {
                super::metrics::metrics().webhooks_applied.inc_by(count);
                note(applied.workspaces)
            }
            Err(batch_error) => {
                tracing::warn!(error = %batch_error, "applying a batch failed; applying one by one");
                for (id, body) in batch {
                    let turn = enter(gate).await;
                    let outcome = db.apply_webhook_event(id, &body).await;
                    drop(turn);
                    match outcome {
                        Ok(applied) => {
                            super::metrics::metrics().webhooks_applied.inc();
                            note(applied.workspaces)
                        }
                        Err(e) => {
                            // The raw body stays stored; `qontak webhooks replay` can apply it again.
                            tracing::error!(event_id = id, error = %e, "applying a stored webhook failed");
                            if let Err(e) = db.mark_webhook_failed(id, &e.to_string()).await {
                                tracing::warn!(event_id = id, error = %e, "marking a failed webhook failed; retrying later");
                                return;
                            }
                        }
                    }
                }
            }
        }
        // Events go out only once their applies are on disk (SQLite applies commit at
        // NORMAL); a failed sync publishes nothing now: the events stay in the log, and the
        // next wake-up or a reconnect's replay sends them.
        if let Err(e) = db.sync_applied().await {
            tracing::warn!(error = %e, "syncing applied webhooks failed; their events wait");
            continue;
        }
        // Wake-ups once per batch and workspace, after the commits, never inside them.
        for w in touched {
            bus.wake(&w);
            if let Err(e) = db.notify_events(&w).await {
                tracing::warn!(error = %e, "NOTIFY failed; other instances will poll");
            }
        }
    }
}
