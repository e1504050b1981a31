//! Data rights: exports paged by keyset as JSON objects, erasure of a contact, a workspace or
//! a user, Meta's data deletion requests, retention, and the audit log's browser.
//!
//! Exports read rows generically (every column, as JSON) from a fixed list of tables, leaving
//! out the columns that hold secrets, so a column added later is exported without a change
//! here and a secret is never.

use serde_json::{Map, Value};
use sqlx::{Column, Row};

use super::{Db, DbError};
use crate::server::now_ms;

/// Columns never exported: encrypted tokens and secrets, hashes of tokens and sessions.
pub const SECRET_COLUMNS: &[&str] = &[
    "access_token_enc",
    "key_id",
    "token_hash",
    "secret_enc",
    "id_hash",
    "request_hash",
    "locked_by",
];

/// Columns holding JSON text, exported as JSON.
const JSON_COLUMNS: &[&str] = &[
    "content",
    "attributes",
    "components",
    "status_timestamps",
    "detail",
    "reactions",
    "history",
    "context",
    "settings",
    "events",
    "data",
    "payload",
];

/// A table of a workspace's data, paged by its primary key.
#[derive(Debug, Clone, Copy)]
pub struct ExportTable {
    pub name: &'static str,
    /// The key in the export.
    pub key: &'static str,
    /// Integer ids (the audit log) page by number, the others by text.
    pub integer_id: bool,
}

/// The workspace's paged tables, in export order.
pub const WORKSPACE_TABLES: &[ExportTable] = &[
    ExportTable {
        name: "contacts",
        key: "contacts",
        integer_id: false,
    },
    ExportTable {
        name: "conversations",
        key: "conversations",
        integer_id: false,
    },
    ExportTable {
        name: "messages",
        key: "messages",
        integer_id: false,
    },
    ExportTable {
        name: "templates",
        key: "templates",
        integer_id: false,
    },
    ExportTable {
        name: "media",
        key: "media",
        integer_id: false,
    },
    ExportTable {
        name: "webhook_endpoints",
        key: "webhook_endpoints",
        integer_id: false,
    },
    ExportTable {
        name: "audit_log",
        key: "audit_log",
        integer_id: true,
    },
];

/// Which rows of a paged table: the whole workspace, or what belongs to one contact.
#[derive(Debug, Clone)]
pub enum Scope {
    Workspace,
    Contact(String),
}

/// A keyset position: the last id of the page before.
#[derive(Debug, Clone)]
pub enum Cursor {
    Text(String),
    Int(i64),
}

impl Cursor {
    pub fn start(table: &ExportTable) -> Cursor {
        if table.integer_id {
            Cursor::Int(i64::MIN)
        } else {
            Cursor::Text(String::new())
        }
    }
}

fn json_of(name: &str, value: Value) -> Value {
    match value {
        Value::String(s) if JSON_COLUMNS.contains(&name) => {
            serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s))
        }
        v => v,
    }
}

macro_rules! row_json_fn {
    ($name:ident, $row:ty) => {
        /// One row as a JSON object, secrets left out. Each column is read as the first type
        /// that fits (SQLite types values; Postgres types columns).
        fn $name(row: &$row, keep_secrets: bool) -> Map<String, Value> {
            let mut out = Map::new();
            for (i, col) in row.columns().iter().enumerate() {
                let name = col.name();
                if !keep_secrets && SECRET_COLUMNS.contains(&name) {
                    continue;
                }
                let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                    v.map(Value::from).unwrap_or(Value::Null)
                } else if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                    v.map(Value::from).unwrap_or(Value::Null)
                } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                    v.map(Value::String).unwrap_or(Value::Null)
                } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                    v.map(Value::Bool).unwrap_or(Value::Null)
                } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                    v.map(Value::from).unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                out.insert(name.to_string(), json_of(name, value));
            }
            out
        }
    };
}
row_json_fn!(sqlite_row_json, sqlx::sqlite::SqliteRow);
row_json_fn!(pg_row_json, sqlx::postgres::PgRow);

/// Runs a statement with text parameters and answers its rows as JSON objects.
async fn rows_json(db: &Db, sql: String, params: &[&str]) -> Result<Vec<Value>, DbError> {
    rows_json_with(db, sql, params, false).await
}

async fn rows_json_with(
    db: &Db,
    sql: String,
    params: &[&str],
    keep_secrets: bool,
) -> Result<Vec<Value>, DbError> {
    let sql = sqlx::AssertSqlSafe(sql);
    Ok(match db {
        Db::Sqlite(p) => {
            let mut q = sqlx::query(sql);
            for v in params {
                q = q.bind(v.to_string());
            }
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| Value::Object(sqlite_row_json(r, keep_secrets)))
                .collect()
        }
        Db::Postgres(p) => {
            let mut q = sqlx::query(sql);
            for v in params {
                q = q.bind(v.to_string());
            }
            q.fetch_all(p)
                .await?
                .iter()
                .map(|r| Value::Object(pg_row_json(r, keep_secrets)))
                .collect()
        }
    })
}

/// What a data deletion request row shows on its status page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeletionRequestRow {
    pub code: String,
    pub status: String,
    pub erased: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// A workspace's retention settings; `None` days keep forever.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    pub messages_days: Option<i64>,
    pub media_days: Option<i64>,
    pub webhook_events_days: i64,
    pub audit_days: i64,
    pub audit_ip_days: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            messages_days: None,
            media_days: None,
            webhook_events_days: 7,
            audit_days: 90,
            audit_ip_days: 30,
        }
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub messages: u64,
    pub media: u64,
    pub webhook_events: u64,
    pub audit: u64,
    pub audit_ips: u64,
    /// Messages whose idempotency key (kept 24 hours) was freed.
    pub idempotency_keys: u64,
    /// Media files to remove from the store (their rows are gone).
    #[serde(skip)]
    pub files: Vec<String>,
}

/// An audit entry as the audit browser shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditView {
    pub id: i64,
    pub user_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
}

/// Filters of the audit browser.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Entries with a smaller id (the page before).
    pub before_id: Option<i64>,
    pub limit: i64,
}

const MS_PER_DAY: i64 = 86_400_000;
/// Rows removed per statement: small, so the inbox's writes never wait long.
pub const SWEEP_BATCH: i64 = 500;

impl Db {
    // ---- export -------------------------------------------------------------------------

    /// The application's tables (migrations' bookkeeping left out).
    pub async fn table_names(&self) -> Result<Vec<String>, DbError> {
        let mut names: Vec<String> = self
            .schema_columns()
            .await?
            .into_iter()
            .map(|(t, _, _)| t)
            .collect();
        names.dedup();
        Ok(names)
    }

    /// Every row of a table, every column, as JSON: for tests that prove a deletion.
    pub async fn table_rows(&self, table: &str) -> Result<Vec<Value>, DbError> {
        if !self.table_names().await?.iter().any(|t| t == table) {
            return Err(DbError::NotFound(format!("table {table}")));
        }
        rows_json_with(self, format!("SELECT * FROM {table}"), &[], true).await
    }

    /// The workspace row.
    pub async fn export_workspace(&self, workspace_id: &str) -> Result<Option<Value>, DbError> {
        let rows = rows_json(
            self,
            "SELECT id, name, settings, created_at FROM workspaces WHERE id = $1".into(),
            &[workspace_id],
        )
        .await?;
        Ok(rows.into_iter().next())
    }

    /// Members: who they are and their role (no identity-provider ids, no sessions).
    pub async fn export_members(&self, workspace_id: &str) -> Result<Vec<Value>, DbError> {
        rows_json(self, "SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.workspace_id = $1 ORDER BY m.created_at, u.id".into(), &[workspace_id]).await
    }

    /// Connected numbers, without their access tokens.
    pub async fn export_numbers(&self, workspace_id: &str) -> Result<Vec<Value>, DbError> {
        rows_json(self, "SELECT n.id, n.phone_number_id, c.waba_id, n.display_phone, n.verified_name, n.quality_rating, \
             n.messaging_tier, n.throughput_mps, n.created_at, n.updated_at FROM phone_numbers n \
             JOIN meta_connections c ON c.id = n.connection_id WHERE n.workspace_id = $1 ORDER BY n.id".into(), &[workspace_id]).await
    }

    /// One page of a workspace table after `after`, with the cursor of the next page.
    pub async fn export_page(
        &self,
        table: &ExportTable,
        workspace_id: &str,
        scope: &Scope,
        after: &Cursor,
        limit: i64,
    ) -> Result<(Vec<Value>, Option<Cursor>), DbError> {
        let filter = match (scope, table.name) {
            (Scope::Workspace, _) => "",
            (Scope::Contact(_), "contacts") => " AND id = $3",
            (Scope::Contact(_), "conversations") => " AND contact_id = $3",
            (Scope::Contact(_), "messages") => {
                " AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)"
            }
            (Scope::Contact(_), "media") => {
                " AND message_id IN (SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.contact_id = $3)"
            }
            (Scope::Contact(_), _) => return Ok((Vec::new(), None)),
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT * FROM {} WHERE workspace_id = $1 AND id > $2{filter} ORDER BY id LIMIT {}",
            table.name,
            limit.clamp(1, 5000)
        ));
        let contact = match scope {
            Scope::Contact(c) => Some(c.clone()),
            Scope::Workspace => None,
        };
        macro_rules! page {
            ($p:expr, $to_json:ident) => {{
                let mut q = sqlx::query(sql).bind(workspace_id.to_string());
                q = match after {
                    Cursor::Text(t) => q.bind(t.clone()),
                    Cursor::Int(n) => q.bind(*n),
                };
                if let Some(c) = contact {
                    q = q.bind(c);
                }
                q.fetch_all($p)
                    .await?
                    .iter()
                    .map(|r| $to_json(r, false))
                    .collect::<Vec<_>>()
            }};
        }
        let rows = match self {
            Db::Sqlite(p) => page!(p, sqlite_row_json),
            Db::Postgres(p) => page!(p, pg_row_json),
        };
        let next = if (rows.len() as i64) < limit {
            None
        } else {
            rows.last().and_then(|r| match r.get("id") {
                Some(Value::String(s)) => Some(Cursor::Text(s.clone())),
                Some(Value::Number(n)) => n.as_i64().map(Cursor::Int),
                _ => None,
            })
        };
        Ok((rows.into_iter().map(Value::Object).collect(), next))
    }

    /// What the user's own account holds: the user, memberships, sessions (without ids),
    /// API tokens (without hashes), and the audit entries about them.
    pub async fn export_user(&self, user_id: &str) -> Result<Value, DbError> {
        let user = rows_json(self, "SELECT id, email, name, google_sub, firebase_uid, created_at, updated_at FROM users WHERE id = $1".into(), &[user_id]).await?;
        let memberships = rows_json(self, "SELECT m.workspace_id, w.name AS workspace_name, m.role, m.created_at FROM memberships m \
             JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY m.created_at".into(), &[user_id]).await?;
        let sessions = rows_json(self, "SELECT workspace_id, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions WHERE user_id = $1 ORDER BY created_at".into(), &[user_id]).await?;
        let tokens = rows_json(self, "SELECT id, workspace_id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at".into(), &[user_id]).await?;
        let audit = rows_json(self, "SELECT id, workspace_id, actor, action, target, detail, ip, user_agent, created_at FROM audit_log WHERE user_id = $1 ORDER BY id".into(), &[user_id]).await?;
        Ok(serde_json::json!({
            "user": user.into_iter().next(),
            "memberships": memberships,
            "sessions": sessions,
            "api_tokens": tokens,
            "audit_log": audit,
        }))
    }

    /// A stored media file of the workspace (for the zip export): (message id, filename, key).
    pub async fn export_media_files(
        &self,
        workspace_id: &str,
        scope: &Scope,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, String, Option<String>, String)>, DbError> {
        let (sql, contact) = match scope {
            Scope::Workspace => ("SELECT id, COALESCE(message_id, ''), filename, storage_key FROM media \
                 WHERE workspace_id = $1 AND id > $2 AND storage_key IS NOT NULL AND state = 'ready' AND $3 = '' ORDER BY id LIMIT $4", String::new()),
            Scope::Contact(c) => ("SELECT id, COALESCE(message_id, ''), filename, storage_key FROM media \
                 WHERE workspace_id = $1 AND id > $2 AND storage_key IS NOT NULL AND state = 'ready' \
                 AND message_id IN (SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.contact_id = $3) ORDER BY id LIMIT $4", c.clone()),
        };
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(after).bind(contact).bind(limit).fetch_all(p).await)?,
        )
    }

    // ---- erasure ------------------------------------------------------------------------

    /// The storage keys of a contact's media (to delete the files), before the rows go.
    async fn contact_media_keys(
        &self,
        workspace_id: &str,
        contact_id: &str,
    ) -> Result<Vec<String>, DbError> {
        let sql = "SELECT storage_key FROM media WHERE workspace_id = $1 AND storage_key IS NOT NULL AND message_id IN \
                   (SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.contact_id = $2)";
        Ok(
            on!(self, p => sqlx::query_scalar(sql).bind(workspace_id).bind(contact_id).fetch_all(p).await)?,
        )
    }

    /// Erases a contact: its conversations, messages (with their outbox jobs and media rows,
    /// by cascade) and the processed raw webhook bodies that name its WhatsApp id. Answers the
    /// media files to remove, or `None` when the contact is not the workspace's.
    pub async fn erase_contact(
        &self,
        workspace_id: &str,
        contact_id: &str,
    ) -> Result<Option<(Vec<String>, u64)>, DbError> {
        let ids: Option<(Option<String>, Option<String>)> = on!(self, p => sqlx::query_as("SELECT wa_id, bsuid FROM contacts WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id).bind(contact_id).fetch_optional(p).await)?;
        let Some((wa_id, bsuid)) = ids else {
            return Ok(None);
        };
        let keys = self.contact_media_keys(workspace_id, contact_id).await?;
        let messages: i64 = on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE workspace_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $2)")
            .bind(workspace_id).bind(contact_id).fetch_one(p).await)?;
        // Events of the workspace's numbers naming the contact: statuses waiting for a message.
        if let Some(w) = &wa_id {
            let sql = "DELETE FROM pending_statuses WHERE number_id IN (SELECT id FROM phone_numbers WHERE workspace_id = $1) AND body LIKE $2";
            on!(self, p => sqlx::query(sql).bind(workspace_id).bind(format!("%\"{w}\"%")).execute(p).await.map(|r| r.rows_affected()))?;
        }
        on!(self, p => sqlx::query("DELETE FROM contacts WHERE workspace_id = $1 AND id = $2").bind(workspace_id).bind(contact_id).execute(p).await.map(|r| r.rows_affected()))?;
        for id in [wa_id, bsuid].into_iter().flatten() {
            self.delete_raw_events_naming(&id).await?;
        }
        Ok(Some((keys, messages as u64)))
    }

    /// Deletes the processed raw webhook bodies that contain `needle` as a JSON string.
    async fn delete_raw_events_naming(&self, needle: &str) -> Result<u64, DbError> {
        if needle.len() < 5 {
            return Ok(0);
        }
        let sql = "DELETE FROM webhook_events WHERE processed_at IS NOT NULL AND body LIKE $1";
        Ok(
            on!(self, p => sqlx::query(sql).bind(format!("%\"{needle}\"%")).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    /// The connections of a workspace (WABA id and encrypted token), to unsubscribe at Meta.
    pub async fn workspace_connections(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<(String, String)>, DbError> {
        let sql = "SELECT waba_id, access_token_enc FROM meta_connections WHERE workspace_id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// Deletes a workspace and everything of it: every table by cascade from the workspace
    /// row, plus the raw webhook bodies of its numbers and WABAs (stored before routing, so
    /// without a workspace id) that no other workspace shares. Answers the media files to
    /// remove and the number of messages.
    pub async fn delete_workspace(
        &self,
        workspace_id: &str,
    ) -> Result<(Vec<String>, u64), DbError> {
        let keys: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT storage_key FROM media WHERE workspace_id = $1 AND storage_key IS NOT NULL")
            .bind(workspace_id).fetch_all(p).await)?;
        let messages: i64 = on!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE workspace_id = $1").bind(workspace_id).fetch_one(p).await)?;
        let pnids: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT phone_number_id FROM phone_numbers WHERE workspace_id = $1").bind(workspace_id).fetch_all(p).await)?;
        let wabas: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT waba_id FROM meta_connections c WHERE workspace_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM meta_connections o WHERE o.waba_id = c.waba_id AND o.workspace_id <> c.workspace_id)")
            .bind(workspace_id).fetch_all(p).await)?;
        let contacts: Vec<(Option<String>, Option<String>)> = on!(self, p => sqlx::query_as("SELECT wa_id, bsuid FROM contacts WHERE workspace_id = $1")
            .bind(workspace_id).fetch_all(p).await)?;
        // In batches, so a large workspace never holds the write lock for long.
        for table in [
            "messages",
            "conversations",
            "contacts",
            "events",
            "audit_log",
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE workspace_id = $1 LIMIT {SWEEP_BATCH})"
            );
            loop {
                let n = on!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(workspace_id).execute(p).await.map(|r| r.rows_affected()))?;
                if n == 0 {
                    break;
                }
            }
        }
        on!(self, p => sqlx::query("DELETE FROM workspaces WHERE id = $1").bind(workspace_id).execute(p).await.map(|r| r.rows_affected()))?;
        for id in pnids.iter().chain(wabas.iter()) {
            let sql = "DELETE FROM webhook_events WHERE body LIKE $1";
            on!(self, p => sqlx::query(sql).bind(format!("%\"{id}\"%")).execute(p).await.map(|r| r.rows_affected()))?;
        }
        for id in contacts.into_iter().flat_map(|(w, b)| [w, b]).flatten() {
            self.delete_raw_events_naming(&id).await?;
        }
        Ok((keys, messages as u64))
    }

    /// The workspaces where the user is the only admin, with their member counts.
    pub async fn sole_admin_workspaces(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, i64)>, DbError> {
        let sql = "SELECT m.workspace_id, (SELECT COUNT(*) FROM memberships o WHERE o.workspace_id = m.workspace_id) \
                   FROM memberships m WHERE m.user_id = $1 AND m.role = 'admin' \
                   AND NOT EXISTS (SELECT 1 FROM memberships a WHERE a.workspace_id = m.workspace_id AND a.role = 'admin' AND a.user_id <> m.user_id)";
        Ok(on!(self, p => sqlx::query_as(sql).bind(user_id).fetch_all(p).await)?)
    }

    /// Deletes a user's account: memberships, sessions and tokens by cascade; the audit log
    /// keeps its entries about them without their e-mail, address or browser.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), DbError> {
        let sql = "UPDATE audit_log SET actor = 'deleted user', ip = NULL, user_agent = NULL, user_id = NULL WHERE user_id = $1";
        on!(self, p => sqlx::query(sql).bind(user_id).execute(p).await.map(|r| r.rows_affected()))?;
        on!(self, p => sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    // ---- Meta's data deletion requests ---------------------------------------------------

    /// Erases the contacts Meta identifies by this id (as their business-scoped user id) in
    /// every workspace; answers the media files to remove and the number of contacts.
    pub async fn erase_meta_user(&self, meta_user_id: &str) -> Result<(Vec<String>, i64), DbError> {
        let contacts: Vec<(String, String)> = on!(self, p => sqlx::query_as("SELECT workspace_id, id FROM contacts WHERE bsuid = $1")
            .bind(meta_user_id).fetch_all(p).await)?;
        let mut files = Vec::new();
        for (ws, id) in &contacts {
            if let Some((keys, _)) = self.erase_contact(ws, id).await? {
                files.extend(keys);
            }
        }
        self.delete_raw_events_naming(meta_user_id).await?;
        Ok((files, contacts.len() as i64))
    }

    pub async fn record_deletion_request(
        &self,
        code: &str,
        user_hash: &str,
        erased: i64,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let sql = "INSERT INTO data_deletion_requests (code, user_hash, status, erased, created_at, completed_at) VALUES ($1, $2, 'completed', $3, $4, $4)";
        on!(self, p => sqlx::query(sql).bind(code).bind(user_hash).bind(erased).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn deletion_request(
        &self,
        code: &str,
    ) -> Result<Option<DeletionRequestRow>, DbError> {
        let sql = "SELECT code, status, erased, created_at, completed_at FROM data_deletion_requests WHERE code = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(code).fetch_optional(p).await)?)
    }

    // ---- retention ----------------------------------------------------------------------

    pub async fn retention(&self, workspace_id: &str) -> Result<Retention, DbError> {
        let sql = "SELECT messages_days, media_days, webhook_events_days, audit_days, audit_ip_days FROM retention_settings WHERE workspace_id = $1";
        let row: Option<Retention> =
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_optional(p).await)?;
        Ok(row.unwrap_or_default())
    }

    pub async fn set_retention(&self, workspace_id: &str, r: &Retention) -> Result<(), DbError> {
        let sql = "INSERT INTO retention_settings (workspace_id, messages_days, media_days, webhook_events_days, audit_days, audit_ip_days, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (workspace_id) DO UPDATE SET messages_days = excluded.messages_days, \
                   media_days = excluded.media_days, webhook_events_days = excluded.webhook_events_days, audit_days = excluded.audit_days, \
                   audit_ip_days = excluded.audit_ip_days, updated_at = excluded.updated_at";
        on!(self, p => sqlx::query(sql).bind(workspace_id).bind(r.messages_days).bind(r.media_days).bind(r.webhook_events_days)
            .bind(r.audit_days).bind(r.audit_ip_days).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes up to `limit` rows of `sql` (which selects ids with `$1` workspace and `$2` time).
    async fn sweep(
        &self,
        table: &str,
        select: &str,
        workspace_id: &str,
        before: i64,
    ) -> Result<u64, DbError> {
        let sql = format!("DELETE FROM {table} WHERE id IN ({select} LIMIT {SWEEP_BATCH})");
        let mut total = 0;
        loop {
            let n = on!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(workspace_id).bind(before).execute(p).await.map(|r| r.rows_affected()))?;
            total += n;
            if n < SWEEP_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// One retention pass at `now`: everything strictly older than each limit goes, in
    /// batches of [`SWEEP_BATCH`] rows.
    pub async fn apply_retention(&self, now: i64) -> Result<Swept, DbError> {
        let mut swept = Swept::default();
        let workspaces: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT id FROM workspaces ORDER BY id").fetch_all(p).await)?;
        let mut webhook_days = Retention::default().webhook_events_days;
        for ws in workspaces {
            let r = self.retention(&ws).await?;
            webhook_days = webhook_days.min(r.webhook_events_days);
            if let Some(days) = r.media_days {
                let before = now - days * MS_PER_DAY;
                let keys: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT storage_key FROM media WHERE workspace_id = $1 AND created_at < $2 AND storage_key IS NOT NULL")
                    .bind(&ws).bind(before).fetch_all(p).await)?;
                swept.files.extend(keys);
                swept.media += self
                    .sweep(
                        "media",
                        "SELECT id FROM media WHERE workspace_id = $1 AND created_at < $2",
                        &ws,
                        before,
                    )
                    .await?;
            }
            if let Some(days) = r.messages_days {
                let before = now - days * MS_PER_DAY;
                let keys: Vec<String> = on!(self, p => sqlx::query_scalar("SELECT storage_key FROM media WHERE workspace_id = $1 AND storage_key IS NOT NULL \
                     AND message_id IN (SELECT id FROM messages WHERE workspace_id = $1 AND timestamp < $2)")
                    .bind(&ws).bind(before).fetch_all(p).await)?;
                swept.files.extend(keys);
                swept.messages += self
                    .sweep(
                        "messages",
                        "SELECT id FROM messages WHERE workspace_id = $1 AND timestamp < $2",
                        &ws,
                        before,
                    )
                    .await?;
            }
            let before = now - r.audit_days * MS_PER_DAY;
            swept.audit += self
                .sweep(
                    "audit_log",
                    "SELECT id FROM audit_log WHERE workspace_id = $1 AND created_at < $2",
                    &ws,
                    before,
                )
                .await?;
            let before = now - r.audit_ip_days * MS_PER_DAY;
            swept.audit_ips += self.truncate_audit_ips(Some(&ws), before).await?;
            swept.idempotency_keys += self.expire_idempotency_keys(&ws, now).await?;
        }
        let before = now - webhook_days * MS_PER_DAY;
        let sql = format!(
            "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE received_at < $1 AND processed_at IS NOT NULL LIMIT {SWEEP_BATCH})"
        );
        loop {
            let n = on!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(before).execute(p).await.map(|r| r.rows_affected()))?;
            swept.webhook_events += n;
            if n < SWEEP_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        // Entries of no workspace (a deleted one's record) follow the defaults.
        let d = Retention::default();
        let sql = format!(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE workspace_id IS NULL AND created_at < $1 LIMIT {SWEEP_BATCH})"
        );
        loop {
            let n = on!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now - d.audit_days * MS_PER_DAY).execute(p).await.map(|r| r.rows_affected()))?;
            swept.audit += n;
            if n < SWEEP_BATCH as u64 {
                break;
            }
        }
        swept.audit_ips += self
            .truncate_audit_ips(None, now - d.audit_ip_days * MS_PER_DAY)
            .await?;
        Ok(swept)
    }

    /// Truncates the IP addresses of audit entries older than `before` (IPv4 to /24, IPv6 to
    /// /48), marking them with a trailing `/24` or `/48` so they are not truncated again.
    async fn truncate_audit_ips(
        &self,
        workspace_id: Option<&str>,
        before: i64,
    ) -> Result<u64, DbError> {
        let sql = "SELECT id, ip FROM audit_log WHERE (workspace_id = $1 OR ($1 IS NULL AND workspace_id IS NULL)) AND created_at < $2 \
                   AND ip IS NOT NULL AND ip NOT LIKE '%/%' ORDER BY id LIMIT 500";
        let mut total = 0;
        loop {
            let rows: Vec<(i64, String)> = on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(before).fetch_all(p).await)?;
            if rows.is_empty() {
                return Ok(total);
            }
            for (id, ip) in &rows {
                let t = truncate_ip(ip);
                on!(self, p => sqlx::query("UPDATE audit_log SET ip = $1 WHERE id = $2").bind(&t).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
                total += 1;
            }
        }
    }

    // ---- audit browser ------------------------------------------------------------------

    /// Audit entries of a workspace, newest first, filtered and paged by id.
    pub async fn audit_search(
        &self,
        workspace_id: &str,
        f: &AuditFilter,
    ) -> Result<Vec<AuditView>, DbError> {
        let sql = "SELECT id, user_id, actor, action, target, detail, ip, user_agent, created_at FROM audit_log \
                   WHERE workspace_id = $1 AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $3 OR action LIKE $4) \
                   AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) AND ($7 IS NULL OR id < $7) \
                   ORDER BY id DESC LIMIT $8";
        let prefix = f.action.as_ref().map(|a| format!("{a}.%"));
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(&f.actor).bind(&f.action).bind(prefix)
            .bind(f.since).bind(f.until).bind(f.before_id).bind(f.limit).fetch_all(p).await)?,
        )
    }
}

/// An address with its host part cut: IPv4 to its /24, IPv6 to its /48.
pub fn truncate_ip(ip: &str) -> String {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => "-/0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_their_network() {
        assert_eq!(truncate_ip("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(truncate_ip("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
        assert_eq!(truncate_ip("garbage"), "-/0");
    }
}
