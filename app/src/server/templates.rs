//! Template sync: pages through Meta's `GET /{waba_id}/message_templates` and makes the stored
//! templates match, on demand (`POST /api/v1/templates/sync`, "Sync now") and from a
//! scheduler that syncs a newly connected account on its next pass and every account again
//! after an interval, as a fallback for missed webhooks (webhooks drive the status).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::crypto::SecretKey;
use super::db::templates::{MetaTemplate, WabaConnection};
use super::db::{Db, DbError};
use super::events::EventBus;
use super::graph::{Graph, GraphError};

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the account's access token cannot be decrypted")]
    Token,
}

/// Meta's template object (list or create answer) as stored. `rejected_reason: "NONE"` means
/// none; `quality_score` is `{"score": "GREEN", …}` in lists and a string in webhooks.
pub fn from_meta(t: &Value) -> Option<MetaTemplate> {
    let text = |k: &str| {
        t.get(k).and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
    };
    Some(MetaTemplate {
        meta_id: text("id"),
        name: text("name")?,
        language: text("language")?,
        category: text("category"),
        status: text("status").unwrap_or_else(|| "PENDING".into()),
        parameter_format: text("parameter_format"),
        components: t
            .get("components")
            .filter(|c| c.is_array())
            .map(Value::to_string)
            .unwrap_or_else(|| "[]".into()),
        quality_score: t
            .get("quality_score")
            .and_then(|q| q.get("score").or(Some(q)))
            .and_then(Value::as_str)
            .map(str::to_string),
        rejected_reason: text("rejected_reason").filter(|r| r != "NONE"),
    })
}

/// Meta's sample templates (present in every new account): hidden from the list by default.
pub fn is_sample(name: &str) -> bool {
    name == "hello_world" || name.starts_with("sample_")
}

/// Syncs one account; answers how many templates Meta listed.
pub async fn sync_connection(
    db: &Db,
    graph: &Graph,
    key: &SecretKey,
    events: &EventBus,
    c: &WabaConnection,
) -> Result<usize, SyncError> {
    let token = key
        .decrypt(&c.access_token_enc)
        .map_err(|_| SyncError::Token)?;
    let listed: Vec<MetaTemplate> = graph
        .templates(&token, &c.waba_id)
        .await?
        .iter()
        .filter_map(from_meta)
        .collect();
    let changed = db
        .replace_templates(&c.workspace_id, &c.waba_id, &listed)
        .await?;
    db.mark_templates_synced(&c.workspace_id, &c.waba_id)
        .await?;
    if changed > 0 {
        wake(db, events, &c.workspace_id).await;
    }
    Ok(listed.len())
}

/// Wakes the workspace's event streams here and, with Postgres, on other instances.
pub async fn wake(db: &Db, events: &EventBus, workspace_id: &str) {
    events.wake(workspace_id);
    if let Err(e) = db.notify_events(workspace_id).await {
        tracing::warn!(error = %e, "NOTIFY failed; other instances will poll");
    }
}

/// Every `tick`, syncs the accounts never synced or last synced more than `interval` ago.
/// The first pass comes one tick after start.
pub fn start_scheduler(
    db: Db,
    graph: Graph,
    key: Arc<SecretKey>,
    events: EventBus,
    interval: Duration,
    tick: Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            let before = super::now_ms() - interval.as_millis() as i64;
            let due = match db.connections_due_for_template_sync(before).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "listing accounts due for a template sync failed");
                    continue;
                }
            };
            for c in due {
                match sync_connection(&db, &graph, &key, &events, &c).await {
                    Ok(n) => {
                        tracing::info!(waba_id = %c.waba_id, templates = n, "templates synced")
                    }
                    Err(e) => {
                        tracing::warn!(waba_id = %c.waba_id, error = %e, "template sync failed; retrying next interval");
                        let _ = db.mark_templates_synced(&c.workspace_id, &c.waba_id).await;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metas_list_objects_are_read_with_their_quality_and_reason() {
        let t = from_meta(&json!({"id": "1", "name": "a", "language": "en_US", "status": "APPROVED",
            "category": "UTILITY", "quality_score": {"score": "GREEN", "date": 1}, "rejected_reason": "NONE",
            "components": [{"type": "BODY", "text": "Hi"}]}))
        .unwrap();
        assert_eq!(t.quality_score.as_deref(), Some("GREEN"));
        assert_eq!(t.rejected_reason, None);
        assert_eq!(
            t.components,
            json!([{"type": "BODY", "text": "Hi"}]).to_string()
        );
        assert!(from_meta(&json!({"id": "1"})).is_none());
        assert!(
            is_sample("sample_flight_confirmation")
                && is_sample("hello_world")
                && !is_sample("order_update")
        );
    }
}
