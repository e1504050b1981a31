//! Template management: what a sync from Meta, a create and a delete write, and which
//! WhatsApp Business Accounts are due for a sync. Every change appends a `template.updated`
//! event in the same transaction, so open pages and integrators see it.

use super::{Db, DbError};
#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use crate::server::{new_id, now_ms};

/// A template as Meta's list (or create answer) describes it, flattened for storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaTemplate {
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: Option<String>,
    pub status: String,
    pub parameter_format: Option<String>,
    /// JSON text of Meta's `components`.
    pub components: String,
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
}

/// A WhatsApp Business Account connection, for Graph calls about its templates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WabaConnection {
    pub workspace_id: String,
    pub waba_id: String,
    pub access_token_enc: String,
}

type Stored = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

fn same(row: &Stored, t: &MetaTemplate) -> bool {
    row.1 == t.meta_id
        && row.4 == t.category
        && row.5 == t.status
        && row.6 == t.parameter_format
        && row.7 == t.components
        && row.8 == t.quality_score
        && row.9 == t.rejected_reason
}

const EVENT_SQL: &str =
    "INSERT INTO events (workspace_id, type, data, created_at) VALUES ($1, 'template.updated', $2, $3)";
/// Serialises event-writing transactions across Postgres instances (the ingest path takes the
/// same lock), so event ids commit in order.
const EVENT_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(7301)";

fn event_data(id: &str) -> String {
    serde_json::json!({ "id": id }).to_string()
}

impl Db {
    /// The workspace's WABA connections, oldest first.
    pub async fn waba_connections(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WabaConnection>, DbError> {
        let sql = "SELECT workspace_id, waba_id, access_token_enc FROM meta_connections \
                   WHERE workspace_id = $1 ORDER BY created_at, id";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// Connections never synced, or last synced before `synced_before` (ms).
    pub async fn connections_due_for_template_sync(
        &self,
        synced_before: i64,
    ) -> Result<Vec<WabaConnection>, DbError> {
        let sql = "SELECT workspace_id, waba_id, access_token_enc FROM meta_connections \
                   WHERE token_invalid_at IS NULL AND (templates_synced_at IS NULL OR templates_synced_at < $1) \
                   ORDER BY templates_synced_at, created_at LIMIT 100";
        Ok(on!(self, p => sqlx::query_as(sql).bind(synced_before).fetch_all(p).await)?)
    }

    /// Records a sync attempt, so the scheduler leaves the account alone for an interval.
    pub async fn mark_templates_synced(
        &self,
        workspace_id: &str,
        waba_id: &str,
    ) -> Result<(), DbError> {
        let sql = "UPDATE meta_connections SET templates_synced_at = $1 WHERE workspace_id = $2 AND waba_id = $3";
        on!(self, p => sqlx::query(sql).bind(now_ms()).bind(workspace_id).bind(waba_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Makes the stored templates of one WABA what Meta listed: new ones inserted, changed ones
    /// updated, ones Meta no longer has removed; answers how many rows changed.
    pub async fn replace_templates(
        &self,
        workspace_id: &str,
        waba_id: &str,
        listed: &[MetaTemplate],
    ) -> Result<u64, DbError> {
        let select = "SELECT id, meta_template_id, name, language, category, status, parameter_format, \
                      components, quality_score, rejected_reason FROM templates WHERE workspace_id = $1 AND waba_id = $2";
        let insert = "INSERT INTO templates (id, workspace_id, waba_id, meta_template_id, name, language, category, status, \
                      parameter_format, components, quality_score, rejected_reason, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
        let update = "UPDATE templates SET meta_template_id = $1, category = $2, status = $3, parameter_format = $4, \
                      components = $5, quality_score = $6, rejected_reason = $7, updated_at = $8, \
                      rejection_recommendation = CASE WHEN $3 = 'REJECTED' THEN rejection_recommendation END \
                      WHERE id = $9";
        let delete = "DELETE FROM templates WHERE id = $1";
        let postgres = matches!(self, Db::Postgres(_));
        let now = now_ms();
        let changed: u64 = on!(self, p => {
            let mut tx = p.begin_write().await?;
            if postgres {
                sqlx::query(EVENT_LOCK_SQL).execute(&mut *tx).await?;
            }
            let stored: Vec<Stored> = sqlx::query_as(select)
                .bind(workspace_id)
                .bind(waba_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut touched: Vec<String> = Vec::new();
            for t in listed {
                let existing = stored.iter().find(|r| r.2 == t.name && r.3 == t.language);
                let id = match existing {
                    Some(r) if same(r, t) => continue,
                    Some(r) => {
                        sqlx::query(update)
                            .bind(&t.meta_id).bind(&t.category).bind(&t.status).bind(&t.parameter_format)
                            .bind(&t.components).bind(&t.quality_score).bind(&t.rejected_reason).bind(now).bind(&r.0)
                            .execute(&mut *tx).await?;
                        r.0.clone()
                    }
                    None => {
                        let id = new_id();
                        sqlx::query(insert)
                            .bind(&id).bind(workspace_id).bind(waba_id).bind(&t.meta_id).bind(&t.name).bind(&t.language)
                            .bind(&t.category).bind(&t.status).bind(&t.parameter_format).bind(&t.components)
                            .bind(&t.quality_score).bind(&t.rejected_reason).bind(now)
                            .execute(&mut *tx).await?;
                        id
                    }
                };
                touched.push(id);
            }
            for r in &stored {
                if !listed.iter().any(|t| t.name == r.2 && t.language == r.3) {
                    sqlx::query(delete).bind(&r.0).execute(&mut *tx).await?;
                    touched.push(r.0.clone());
                }
            }
            for id in &touched {
                sqlx::query(EVENT_SQL).bind(workspace_id).bind(event_data(id)).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            touched.len() as u64
        });
        Ok(changed)
    }

    /// Stores a template Meta just accepted (or replaces the row of the same name and
    /// language); answers its id.
    pub async fn upsert_template(
        &self,
        workspace_id: &str,
        waba_id: &str,
        t: &MetaTemplate,
    ) -> Result<String, DbError> {
        let sql = "INSERT INTO templates (id, workspace_id, waba_id, meta_template_id, name, language, category, status, \
                   parameter_format, components, quality_score, rejected_reason, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
                   ON CONFLICT (workspace_id, waba_id, name, language) DO UPDATE SET \
                   meta_template_id = excluded.meta_template_id, category = excluded.category, status = excluded.status, \
                   parameter_format = excluded.parameter_format, components = excluded.components, \
                   rejected_reason = NULL, rejection_recommendation = NULL, updated_at = excluded.updated_at \
                   RETURNING id";
        let postgres = matches!(self, Db::Postgres(_));
        let now = now_ms();
        let id: String = on!(self, p => {
            let mut tx = p.begin_write().await?;
            if postgres {
                sqlx::query(EVENT_LOCK_SQL).execute(&mut *tx).await?;
            }
            let id: String = sqlx::query_scalar(sql)
                .bind(new_id()).bind(workspace_id).bind(waba_id).bind(&t.meta_id).bind(&t.name).bind(&t.language)
                .bind(&t.category).bind(&t.status).bind(&t.parameter_format).bind(&t.components)
                .bind(&t.quality_score).bind(&t.rejected_reason).bind(now)
                .fetch_one(&mut *tx).await?;
            sqlx::query(EVENT_SQL).bind(workspace_id).bind(event_data(&id)).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// The stored templates of a name (one language when given), across the workspace's WABAs.
    pub async fn templates_named(
        &self,
        workspace_id: &str,
        name: &str,
        language: Option<&str>,
    ) -> Result<Vec<super::read::TemplateRow>, DbError> {
        Ok(self
            .templates(workspace_id)
            .await?
            .into_iter()
            .filter(|t| t.name == name && language.is_none_or(|l| t.language == l))
            .collect())
    }

    /// Removes stored templates by id (after Meta deleted them), with their events.
    pub async fn delete_templates(
        &self,
        workspace_id: &str,
        ids: &[String],
    ) -> Result<(), DbError> {
        let postgres = matches!(self, Db::Postgres(_));
        let now = now_ms();
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            if postgres {
                sqlx::query(EVENT_LOCK_SQL).execute(&mut *tx).await?;
            }
            for id in ids {
                sqlx::query("DELETE FROM templates WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id).bind(id).execute(&mut *tx).await?;
                sqlx::query(EVENT_SQL).bind(workspace_id).bind(event_data(id)).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

impl Db {
    /// When the template was edited at or after `since` (ms) while approved: the edits Meta's
    /// limits count (one per 24 hours, ten per 30 days).
    pub async fn approved_template_edits_since(
        &self,
        workspace_id: &str,
        template_id: &str,
        since: i64,
    ) -> Result<Vec<i64>, DbError> {
        let sql =
            "SELECT edited_at FROM template_edits WHERE workspace_id = $1 AND template_id = $2 \
                   AND status_before = 'APPROVED' AND edited_at >= $3 ORDER BY edited_at";
        Ok(
            on!(self, p => sqlx::query_scalar(sql).bind(workspace_id).bind(template_id).bind(since).fetch_all(p).await)?,
        )
    }

    /// Stores an edit Meta accepted: the new category and components, back to `PENDING`
    /// (Meta reviews it again), the edit counted, and a `template.updated` event.
    pub async fn record_template_edit(
        &self,
        workspace_id: &str,
        template_id: &str,
        status_before: &str,
        category: Option<&str>,
        components: &str,
    ) -> Result<(), DbError> {
        let postgres = matches!(self, Db::Postgres(_));
        let now = now_ms();
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            if postgres {
                sqlx::query(EVENT_LOCK_SQL).execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE templates SET category = COALESCE($1, category), components = $2, status = 'PENDING', \
                         rejected_reason = NULL, rejection_recommendation = NULL, updated_at = $3 \
                         WHERE workspace_id = $4 AND id = $5")
                .bind(category).bind(components).bind(now).bind(workspace_id).bind(template_id)
                .execute(&mut *tx).await?;
            sqlx::query("INSERT INTO template_edits (template_id, workspace_id, edited_at, status_before) VALUES ($1, $2, $3, $4)")
                .bind(template_id).bind(workspace_id).bind(now).bind(status_before)
                .execute(&mut *tx).await?;
            sqlx::query(EVENT_SQL).bind(workspace_id).bind(event_data(template_id)).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
