//! Live updates. The `events` table is the source of truth (ids increase; `Last-Event-ID`
//! replays from it); this bus only wakes the streams of a workspace when something committed.
//! With Postgres, `LISTEN qontak_events` carries the wake-ups of every other instance.

use std::time::Duration;

use tokio::sync::broadcast;

use super::db::Db;

/// Wake-ups by workspace id.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<String>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        EventBus { tx }
    }

    /// Wakes this instance's streams of the workspace.
    pub fn wake(&self, workspace_id: &str) {
        let _ = self.tx.send(workspace_id.to_string());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }

    /// With Postgres: listens for other instances' wake-ups, reconnecting after a drop
    /// (streams also poll, so a wake-up lost while reconnecting only delays, never loses).
    pub fn start_listener(&self, db: &Db) {
        let Db::Postgres(pool) = db.clone() else {
            return;
        };
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen("qontak_events").await {
                            tracing::warn!(error = %e, "LISTEN failed");
                        } else {
                            loop {
                                match listener.recv().await {
                                    Ok(n) => bus.wake(n.payload()),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "event listener dropped; reconnecting");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "event listener cannot connect; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
