//! Contacts: filtered lists, create/edit/delete, labels, merging duplicates, and the CSV import
//! jobs (batched upserts whose progress is committed with each batch).

#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use serde_json::{Map, Value};

use super::read::{ContactRow, Position};
use super::{conflict, Db, DbError};
use crate::server::{new_id, now_ms};

/// A bound value of a statement built at run time.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// Binds `$args` in order to a query built with `sqlx::query` or `sqlx::query_as`.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

macro_rules! contact_select {
    () => {
        "SELECT k.id, k.wa_id, k.bsuid, k.phone, k.name, k.profile_name, k.username, k.attributes, k.created_at, k.updated_at FROM contacts k "
    };
}

/// Which contacts a list, an export or a broadcast audience takes.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Part of the name, the WhatsApp profile name or the phone number.
    pub q: Option<String>,
    pub label: Option<String>,
    /// An attribute that is set, or set to this value.
    pub attribute: Option<(String, Option<String>)>,
    /// Whether the contact has a conversation that is not resolved.
    pub has_open_conversation: Option<bool>,
    /// Only these contacts.
    pub ids: Option<Vec<String>>,
}

/// A new contact: the phone number arrives normalised (E.164 and Meta's digits).
pub struct NewContact<'a> {
    pub wa_id: &'a str,
    pub phone: &'a str,
    pub name: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
    pub labels: &'a [String],
}

/// A change to a contact; `None` leaves a field as it is.
#[derive(Default)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    /// (wa_id, E.164 phone).
    pub phone: Option<(String, String)>,
    /// Merged into the stored attributes; a `null` value removes the key.
    pub attributes: Option<Map<String, Value>>,
    /// Replaces the labels.
    pub labels: Option<Vec<String>>,
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Db {
    /// The `WHERE` conditions of a filter over `contacts k`; `args` receives the values,
    /// starting with the workspace id as `$1`.
    fn contact_conditions(
        &self,
        workspace_id: &str,
        f: &ContactFilter,
        args: &mut Vec<Arg>,
    ) -> String {
        fn next(args: &mut Vec<Arg>, a: Arg) -> String {
            args.push(a);
            format!("${}", args.len())
        }
        let mut sql = format!(
            "k.workspace_id = {}",
            next(args, Arg::Text(workspace_id.into()))
        );
        if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let text = next(args, Arg::Text(like_pattern(&q.to_lowercase())));
            let mut cond = format!(
                "lower(COALESCE(k.name, '')) LIKE {text} ESCAPE '\\' OR lower(COALESCE(k.profile_name, '')) LIKE {text} ESCAPE '\\'"
            );
            // A query that looks like a phone number also searches the numbers.
            let phoneish = q
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            let digits: String = q.chars().filter(char::is_ascii_digit).collect();
            if phoneish && !digits.is_empty() {
                let d = next(args, Arg::Text(like_pattern(&digits)));
                cond.push_str(&format!(" OR COALESCE(k.wa_id, '') LIKE {d} ESCAPE '\\'"));
            }
            sql.push_str(&format!(" AND ({cond})"));
        }
        if let Some(label) = &f.label {
            let l = next(args, Arg::Text(normalize_label(label)));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = k.id AND l.label = {l})"
            ));
        }
        if let Some((key, value)) = &f.attribute {
            let extract = match self {
                Db::Sqlite(_) => {
                    let p = next(args, Arg::Text(format!("$.\"{}\"", key.replace('"', ""))));
                    format!("CAST(json_extract(k.attributes, {p}) AS TEXT)")
                }
                Db::Postgres(_) => {
                    let p = next(args, Arg::Text(key.clone()));
                    format!("(k.attributes::jsonb ->> {p})")
                }
            };
            match value {
                Some(v) => {
                    let v = next(args, Arg::Text(v.clone()));
                    sql.push_str(&format!(" AND {extract} = {v}"));
                }
                None => sql.push_str(&format!(" AND {extract} IS NOT NULL")),
            }
        }
        if let Some(open) = f.has_open_conversation {
            sql.push_str(&format!(
                " AND {}EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = k.id AND c.status <> 'resolved')",
                if open { "" } else { "NOT " }
            ));
        }
        if let Some(ids) = &f.ids {
            if ids.is_empty() {
                sql.push_str(" AND 1 = 0");
            } else {
                let list: Vec<String> = ids
                    .iter()
                    .map(|id| next(args, Arg::Text(id.clone())))
                    .collect();
                sql.push_str(&format!(" AND k.id IN ({})", list.join(", ")));
            }
        }
        sql
    }

    /// A page of the workspace's contacts matching `f`, newest first, after `after`.
    pub async fn list_contacts(
        &self,
        workspace_id: &str,
        f: &ContactFilter,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<ContactRow>, DbError> {
        let mut args = Vec::new();
        let cond = self.contact_conditions(workspace_id, f, &mut args);
        let n = args.len();
        args.push(Arg::Int(after.0));
        args.push(Arg::Text(after.1.clone()));
        args.push(Arg::Int(limit));
        let sql = format!(
            concat!(
                contact_select!(),
                "WHERE {} AND (k.created_at < ${} OR (k.created_at = ${} AND k.id < ${})) ORDER BY k.created_at DESC, k.id DESC LIMIT ${}"
            ),
            cond,
            n + 1,
            n + 1,
            n + 2,
            n + 3
        );
        Ok(
            on!(self, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch_all(p).await)?,
        )
    }

    /// Contacts matching `f` with ids after `after_id`, created before `created_before`, in id
    /// order (UUIDv7: creation order): the pages a broadcast audience is expanded in.
    pub async fn contacts_in_id_order(
        &self,
        workspace_id: &str,
        f: &ContactFilter,
        after_id: &str,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<ContactRow>, DbError> {
        let mut args = Vec::new();
        let cond = self.contact_conditions(workspace_id, f, &mut args);
        let n = args.len();
        args.push(Arg::Text(after_id.into()));
        args.push(Arg::Int(created_before));
        args.push(Arg::Int(limit));
        let sql = format!(
            concat!(
                contact_select!(),
                "WHERE {} AND k.id > ${} AND k.created_at <= ${} ORDER BY k.id LIMIT ${}"
            ),
            cond,
            n + 1,
            n + 2,
            n + 3
        );
        Ok(
            on!(self, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch_all(p).await)?,
        )
    }

    /// How many contacts match `f`.
    pub async fn count_contacts(
        &self,
        workspace_id: &str,
        f: &ContactFilter,
    ) -> Result<i64, DbError> {
        let mut args = Vec::new();
        let cond = self.contact_conditions(workspace_id, f, &mut args);
        let sql = format!("SELECT COUNT(*) FROM contacts k WHERE {cond}");
        Ok(
            on!(self, p => bind_all!(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)), &args).fetch_one(p).await)?,
        )
    }

    /// The labels of these contacts: (contact id, label), by label.
    pub async fn labels_of(&self, ids: &[String]) -> Result<Vec<(String, String)>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let args: Vec<Arg> = ids.iter().map(|i| Arg::Text(i.clone())).collect();
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT contact_id, label FROM contact_labels WHERE contact_id IN ({}) ORDER BY label",
            list.join(", ")
        );
        Ok(
            on!(self, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch_all(p).await)?,
        )
    }

    /// The workspace's labels with how many contacts carry each.
    pub async fn workspace_labels(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<(String, i64)>, DbError> {
        let sql = "SELECT label, COUNT(*) FROM contact_labels WHERE workspace_id = $1 GROUP BY label ORDER BY label";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// Every attribute key in use in the workspace (at most `limit`), sorted: the export's columns.
    pub async fn attribute_keys(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> Result<Vec<String>, DbError> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_scalar(
                "SELECT DISTINCT j.key FROM contacts k, json_each(k.attributes) j WHERE k.workspace_id = $1 AND k.attributes <> '{}' ORDER BY j.key LIMIT $2",
            )
            .bind(workspace_id).bind(limit).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(
                "SELECT key FROM (SELECT DISTINCT jsonb_object_keys(attributes::jsonb) AS key FROM contacts WHERE workspace_id = $1 AND attributes <> '{}') x ORDER BY key LIMIT $2",
            )
            .bind(workspace_id).bind(limit).fetch_all(p).await?,
        })
    }

    /// Creates a contact; `Conflict` when the workspace has one with this number.
    pub async fn create_contact(
        &self,
        workspace_id: &str,
        c: &NewContact<'_>,
    ) -> Result<String, DbError> {
        let id = new_id();
        let now = now_ms();
        let attributes = Value::Object(c.attributes.clone()).to_string();
        let insert = "INSERT INTO contacts (id, workspace_id, wa_id, phone, name, attributes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
        let label_sql = "INSERT INTO contact_labels (workspace_id, contact_id, label) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(insert).bind(&id).bind(workspace_id).bind(c.wa_id).bind(c.phone).bind(c.name).bind(&attributes).bind(now)
                .execute(&mut *tx).await.map_err(conflict("a contact with this phone number"))?;
            for l in c.labels {
                sqlx::query(label_sql).bind(workspace_id).bind(&id).bind(l).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Applies a patch; false when the workspace has no such contact. `Conflict` when the new
    /// phone number belongs to another contact.
    pub async fn update_contact(
        &self,
        workspace_id: &str,
        id: &str,
        patch: &ContactPatch,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            let current: Option<(Option<String>, String)> = sqlx::query_as("SELECT name, attributes FROM contacts WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id).bind(id).fetch_optional(&mut *tx).await?;
            let Some((name, attributes)) = current else { return Ok(false) };
            let name = patch.name.clone().unwrap_or(name);
            let mut attrs: Map<String, Value> = serde_json::from_str(&attributes).unwrap_or_default();
            if let Some(changes) = &patch.attributes {
                merge_attributes(&mut attrs, changes);
            }
            sqlx::query("UPDATE contacts SET name = $1, attributes = $2, updated_at = $3 WHERE id = $4")
                .bind(&name).bind(Value::Object(attrs).to_string()).bind(now).bind(id)
                .execute(&mut *tx).await?;
            if let Some((wa_id, phone)) = &patch.phone {
                sqlx::query("UPDATE contacts SET wa_id = $1, phone = $2 WHERE id = $3")
                    .bind(wa_id).bind(phone).bind(id)
                    .execute(&mut *tx).await.map_err(conflict("a contact with this phone number"))?;
            }
            if let Some(labels) = &patch.labels {
                sqlx::query("DELETE FROM contact_labels WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                for l in labels {
                    sqlx::query("INSERT INTO contact_labels (workspace_id, contact_id, label) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(workspace_id).bind(id).bind(l).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Deletes a contact with its conversations, messages and labels; false when not found.
    pub async fn delete_contact(&self, workspace_id: &str, id: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2";
        Ok(
            on!(self, p => sqlx::query(sql).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?
                == 1,
        )
    }

    /// Merges contact `from` into `into`: conversations move (a thread with the same number is
    /// joined, its messages moved), labels are united, attributes and missing fields filled
    /// from `from` where `into` has none; then `from` is deleted. Answers the conversations that
    /// changed, or `NotFound` when either contact is not in the workspace.
    pub async fn merge_contacts(
        &self,
        workspace_id: &str,
        into: &str,
        from: &str,
    ) -> Result<Vec<String>, DbError> {
        type Full = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        );
        let select = "SELECT wa_id, bsuid, phone, name, profile_name, username, attributes FROM contacts WHERE workspace_id = $1 AND id = $2";
        let now = now_ms();
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            let a: Option<Full> = sqlx::query_as(select).bind(workspace_id).bind(into).fetch_optional(&mut *tx).await?;
            let b: Option<Full> = sqlx::query_as(select).bind(workspace_id).bind(from).fetch_optional(&mut *tx).await?;
            let (Some(a), Some(b)) = (a, b) else { return Err(DbError::NotFound("contact".into())) };
            let mut changed = Vec::new();
            let theirs: Vec<(String, String)> = sqlx::query_as("SELECT id, number_id FROM conversations WHERE contact_id = $1")
                .bind(from).fetch_all(&mut *tx).await?;
            for (conv, number) in theirs {
                let ours: Option<String> = sqlx::query_scalar("SELECT id FROM conversations WHERE contact_id = $1 AND number_id = $2")
                    .bind(into).bind(&number).fetch_optional(&mut *tx).await?;
                match ours {
                    None => {
                        sqlx::query("UPDATE conversations SET contact_id = $1, updated_at = $2 WHERE id = $3")
                            .bind(into).bind(now).bind(&conv).execute(&mut *tx).await?;
                        changed.push(conv);
                    }
                    Some(target) => {
                        sqlx::query("UPDATE messages SET conversation_id = $1 WHERE conversation_id = $2")
                            .bind(&target).bind(&conv).execute(&mut *tx).await?;
                        // The joined thread keeps the newer activity, both unread counts and
                        // stays open when either was.
                        sqlx::query(
                            "UPDATE conversations SET \
                             last_message_id = CASE WHEN s.last_message_at > conversations.last_message_at THEN s.last_message_id ELSE conversations.last_message_id END, \
                             last_message_at = CASE WHEN s.last_message_at > conversations.last_message_at THEN s.last_message_at ELSE conversations.last_message_at END, \
                             last_inbound_at = CASE WHEN conversations.last_inbound_at IS NULL OR s.last_inbound_at > conversations.last_inbound_at THEN s.last_inbound_at ELSE conversations.last_inbound_at END, \
                             unread_count = conversations.unread_count + s.unread_count, \
                             status = CASE WHEN s.status = 'open' THEN 'open' ELSE conversations.status END, updated_at = $1 \
                             FROM (SELECT last_message_id, last_message_at, last_inbound_at, unread_count, status FROM conversations WHERE id = $2) s WHERE conversations.id = $3")
                            .bind(now).bind(&conv).bind(&target).execute(&mut *tx).await?;
                        sqlx::query("DELETE FROM conversations WHERE id = $1").bind(&conv).execute(&mut *tx).await?;
                        changed.push(target);
                    }
                }
            }
            sqlx::query("INSERT INTO contact_labels (workspace_id, contact_id, label) SELECT workspace_id, $1, label FROM contact_labels WHERE contact_id = $2 ON CONFLICT DO NOTHING")
                .bind(into).bind(from).execute(&mut *tx).await?;
            sqlx::query("UPDATE broadcast_recipients SET contact_id = $1 WHERE contact_id = $2 AND broadcast_id NOT IN (SELECT broadcast_id FROM broadcast_recipients WHERE contact_id = $1)")
                .bind(into).bind(from).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM contacts WHERE id = $1").bind(from).execute(&mut *tx).await?;
            let mut attrs: Map<String, Value> = serde_json::from_str(&b.6).unwrap_or_default();
            attrs.extend(serde_json::from_str::<Map<String, Value>>(&a.6).unwrap_or_default());
            sqlx::query("UPDATE contacts SET wa_id = $1, bsuid = $2, phone = $3, name = $4, profile_name = $5, username = $6, attributes = $7, updated_at = $8 WHERE id = $9")
                .bind(a.0.or(b.0)).bind(a.1.or(b.1)).bind(a.2.or(b.2)).bind(a.3.or(b.3)).bind(a.4.or(b.4)).bind(a.5.or(b.5))
                .bind(Value::Object(attrs).to_string()).bind(now).bind(into)
                .execute(&mut *tx).await?;
            if matches!(self, Db::Postgres(_)) && !changed.is_empty() {
                // Event ids commit in order across instances (see ingest's `event`).
                sqlx::query("SELECT pg_advisory_xact_lock(7301)").execute(&mut *tx).await?;
            }
            for c in &changed {
                sqlx::query("INSERT INTO events (workspace_id, type, data, created_at) VALUES ($1, 'conversation.updated', $2, $3)")
                    .bind(workspace_id).bind(serde_json::json!({"id": c}).to_string()).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(changed)
        })
    }
}

/// Merges attribute changes: a `null` removes the key.
pub fn merge_attributes(attrs: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            attrs.remove(k);
        } else {
            attrs.insert(k.clone(), v.clone());
        }
    }
}

/// Labels are trimmed, lower-cased, inner whitespace collapsed.
pub fn normalize_label(label: &str) -> String {
    label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

// ---- CSV imports ------------------------------------------------------------------------

/// An import job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRow {
    pub id: String,
    pub workspace_id: String,
    pub filename: Option<String>,
    pub storage_key: String,
    pub headers: String,
    pub mapping: String,
    pub options: String,
    pub state: String,
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub failed: i64,
    pub byte_offset: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

macro_rules! import_select {
    () => {
        "SELECT id, workspace_id, filename, storage_key, headers, mapping, options, state, total, processed, created, updated, failed, \
         byte_offset, error, created_at, updated_at, finished_at FROM contact_imports "
    };
}

/// What a new import job starts with.
pub struct NewImport<'a> {
    pub workspace_id: &'a str,
    pub user_id: &'a str,
    pub filename: Option<&'a str>,
    pub storage_key: &'a str,
    pub headers: &'a str,
    pub mapping: &'a str,
    pub options: &'a str,
    /// Estimated from the file's line count; exact once the import is done.
    pub total: i64,
    /// Where the first data row starts (after the header line).
    pub byte_offset: i64,
}

/// One valid row, normalised.
#[derive(Debug, Clone)]
pub struct ImportContact {
    pub wa_id: String,
    pub phone: String,
    pub name: Option<String>,
    pub attributes: Map<String, Value>,
    pub labels: Vec<String>,
}

/// One refused row: its number in the file (the header is row 1), why, and its fields.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub row: i64,
    pub error: String,
    pub fields: Vec<String>,
}

/// A parsed batch and where the file stands after it.
#[derive(Debug, Default)]
pub struct ImportBatch {
    pub contacts: Vec<ImportContact>,
    pub errors: Vec<ImportError>,
    /// Rows read in this batch (valid or not).
    pub rows: i64,
    pub end_offset: i64,
}

impl Db {
    pub async fn create_import(&self, n: &NewImport<'_>) -> Result<String, DbError> {
        let id = new_id();
        let now = now_ms();
        let sql = "INSERT INTO contact_imports (id, workspace_id, user_id, filename, storage_key, headers, mapping, options, state, total, byte_offset, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $11)";
        on!(self, p => sqlx::query(sql).bind(&id).bind(n.workspace_id).bind(n.user_id).bind(n.filename).bind(n.storage_key)
            .bind(n.headers).bind(n.mapping).bind(n.options).bind(n.total).bind(n.byte_offset).bind(now)
            .execute(p).await.map(|_| ()))?;
        Ok(id)
    }

    pub async fn import(&self, workspace_id: &str, id: &str) -> Result<Option<ImportRow>, DbError> {
        let sql = concat!(import_select!(), "WHERE workspace_id = $1 AND id = $2");
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// The workspace's newest imports.
    pub async fn imports(&self, workspace_id: &str, limit: i64) -> Result<Vec<ImportRow>, DbError> {
        let sql = concat!(
            import_select!(),
            "WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(limit).fetch_all(p).await)?)
    }

    /// Takes the oldest import that is queued, or running with an expired lease (its server
    /// stopped), for `worker` until `now + lease_ms`.
    pub async fn claim_import(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<ImportRow>, DbError> {
        let now = now_ms();
        let candidate: Option<String> = on!(self, p => sqlx::query_scalar(
            "SELECT id FROM contact_imports WHERE state IN ('queued', 'running') AND (locked_until IS NULL OR locked_until < $1) ORDER BY created_at, id LIMIT 1")
            .bind(now).fetch_optional(p).await)?;
        let Some(id) = candidate else { return Ok(None) };
        let sql = "UPDATE contact_imports SET state = 'running', locked_by = $1, locked_until = $2, updated_at = $3 \
                   WHERE id = $4 AND state IN ('queued', 'running') AND (locked_until IS NULL OR locked_until < $3)";
        let n = on!(self, p => sqlx::query(sql).bind(worker).bind(now + lease_ms).bind(now).bind(&id).execute(p).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(None);
        }
        let sql = concat!(import_select!(), "WHERE id = $1");
        Ok(on!(self, p => sqlx::query_as(sql).bind(&id).fetch_optional(p).await)?)
    }

    /// Ends a job: `done` (the total becomes the rows read) or `failed` with a reason.
    pub async fn finish_import(
        &self,
        id: &str,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let sql = "UPDATE contact_imports SET state = $1, error = $2, total = CASE WHEN $1 = 'done' THEN processed ELSE total END, \
                   locked_by = NULL, locked_until = NULL, finished_at = $3, updated_at = $3 WHERE id = $4";
        on!(self, p => sqlx::query(sql).bind(state).bind(error).bind(now).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Upserts a batch by phone number, stores its refused rows and advances the job, all in
    /// one transaction, while `worker` still holds the job. Answers (created, updated), or
    /// `NotFound` when the job was taken over.
    pub async fn apply_import_batch(
        &self,
        import: &ImportRow,
        worker: &str,
        lease_ms: i64,
        batch: &ImportBatch,
    ) -> Result<(i64, i64), DbError> {
        let ws = import.workspace_id.as_str();
        let now = now_ms();
        // Within a batch a later row with the same number updates the earlier one.
        let mut rows: Vec<ImportContact> = Vec::with_capacity(batch.contacts.len());
        let mut index = std::collections::HashMap::new();
        let mut repeats = 0i64;
        for c in &batch.contacts {
            match index.get(&c.wa_id) {
                Some(&i) => {
                    let r: &mut ImportContact = &mut rows[i];
                    if c.name.is_some() {
                        r.name = c.name.clone();
                    }
                    r.attributes.extend(c.attributes.clone());
                    r.labels.extend(c.labels.iter().cloned());
                    repeats += 1;
                }
                None => {
                    index.insert(c.wa_id.clone(), rows.len());
                    rows.push(c.clone());
                }
            }
        }
        let merge = match self {
            Db::Sqlite(_) => "json_patch(contacts.attributes, excluded.attributes)",
            Db::Postgres(_) => "(contacts.attributes::jsonb || excluded.attributes::jsonb)::text",
        };
        // Which rows existed: Postgres tells from the upsert itself (a row it inserted has no
        // xmax); a separate count went through whichever index the plan cached while the table
        // was still small, reading every contact of the workspace per chunk (100k rows: 2 min).
        // SQLite cannot tell, so it counts first (through the unique index: its plans follow
        // the table).
        let postgres = matches!(self, Db::Postgres(_));
        let existed = if postgres {
            "CASE WHEN contacts.xmax = 0 THEN 0 ELSE 1 END"
        } else {
            "0"
        };
        on!(self, p => {
            let mut tx = p.begin_write().await?;
            let held = sqlx::query("UPDATE contact_imports SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND state = 'running'")
                .bind(now + lease_ms).bind(&import.id).bind(worker).execute(&mut *tx).await?.rows_affected();
            if held == 0 {
                return Err(DbError::NotFound("import job".into()));
            }
            let mut existing = 0i64;
            let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            // Statements of at most ~700 parameters: sqlx looks each numbered parameter up by
            // name, and SQLite finds a name by walking the statement's list of them, so binding
            // costs the square of their number (500 rows × 7 spent 42% of an import there).
            for chunk in rows.chunks(100) {
                if !postgres {
                    let mut args = vec![Arg::Text(ws.to_string())];
                    let list: Vec<String> = chunk.iter().map(|c| { args.push(Arg::Text(c.wa_id.clone())); format!("${}", args.len()) }).collect();
                    let sql = format!("SELECT COUNT(*) FROM contacts WHERE workspace_id = $1 AND wa_id IN ({})", list.join(", "));
                    existing += bind_all!(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)), &args).fetch_one(&mut *tx).await?;
                }
                let mut args = vec![Arg::Text(ws.to_string()), Arg::Int(now)];
                let mut values = Vec::with_capacity(chunk.len());
                for c in chunk {
                    let base = args.len();
                    args.push(Arg::Text(new_id()));
                    args.push(Arg::Text(c.wa_id.clone()));
                    args.push(Arg::Text(c.phone.clone()));
                    args.push(Arg::Text(c.name.clone().unwrap_or_default()));
                    args.push(Arg::Text(Value::Object(c.attributes.clone()).to_string()));
                    values.push(format!("(${}, $1, ${}, ${}, NULLIF(${}, ''), ${}, $2, $2)", base + 1, base + 2, base + 3, base + 4, base + 5));
                }
                let sql = format!(
                    "INSERT INTO contacts (id, workspace_id, wa_id, phone, name, attributes, created_at, updated_at) VALUES {} \
                     ON CONFLICT (workspace_id, wa_id) DO UPDATE SET name = COALESCE(excluded.name, contacts.name), \
                     phone = COALESCE(contacts.phone, excluded.phone), attributes = {merge}, updated_at = excluded.updated_at RETURNING id, wa_id, {existed}",
                    values.join(", ")
                );
                let returned: Vec<(String, String, i32)> = bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args).fetch_all(&mut *tx).await?;
                existing += returned.iter().map(|r| i64::from(r.2)).sum::<i64>();
                ids.extend(returned.into_iter().map(|(id, wa, _)| (wa, id)));
            }
            let labels: Vec<(&str, &str)> = rows.iter()
                .flat_map(|c| c.labels.iter().filter_map(|l| ids.get(&c.wa_id).map(|id| (id.as_str(), l.as_str()))))
                .collect();
            for chunk in labels.chunks(300) {
                let mut args = vec![Arg::Text(ws.to_string())];
                let values: Vec<String> = chunk.iter().map(|(id, l)| {
                    args.push(Arg::Text(id.to_string()));
                    args.push(Arg::Text(l.to_string()));
                    format!("($1, ${}, ${})", args.len() - 1, args.len())
                }).collect();
                let sql = format!("INSERT INTO contact_labels (workspace_id, contact_id, label) VALUES {} ON CONFLICT DO NOTHING", values.join(", "));
                bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), &args).execute(&mut *tx).await?;
            }
            for chunk in batch.errors.chunks(200) {
                let mut args = vec![Arg::Text(import.id.clone())];
                let values: Vec<String> = chunk.iter().map(|e| {
                    args.push(Arg::Int(e.row));
                    args.push(Arg::Text(e.error.clone()));
                    args.push(Arg::Text(serde_json::to_string(&e.fields).unwrap_or_default()));
                    format!("($1, ${}, ${}, ${})", args.len() - 2, args.len() - 1, args.len())
                }).collect();
                let sql = format!("INSERT INTO contact_import_errors (import_id, row_number, error, fields) VALUES {} ON CONFLICT DO NOTHING", values.join(", "));
                bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), &args).execute(&mut *tx).await?;
            }
            let created = rows.len() as i64 - existing;
            let updated = existing + repeats;
            sqlx::query("UPDATE contact_imports SET processed = processed + $1, created = created + $2, updated = updated + $3, failed = failed + $4, \
                         byte_offset = $5, total = CASE WHEN total < processed + $1 THEN processed + $1 ELSE total END, updated_at = $6 WHERE id = $7")
                .bind(batch.rows).bind(created).bind(updated).bind(batch.errors.len() as i64).bind(batch.end_offset).bind(now).bind(&import.id)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok((created, updated))
        })
    }

    /// A page of an import's refused rows after row `after`: (row, error, fields JSON).
    pub async fn import_errors(
        &self,
        import_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String)>, DbError> {
        let sql = "SELECT row_number, error, fields FROM contact_import_errors WHERE import_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(import_id).bind(after).bind(limit).fetch_all(p).await)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn labels_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_label("  VIP   Jakarta "), "vip jakarta");
    }

    #[test]
    fn attribute_changes_merge_and_null_removes() {
        let mut a: Map<String, Value> =
            serde_json::from_str(r#"{"city":"Jakarta","tier":"gold"}"#).unwrap();
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"city":"Bandung","tier":null,"x":1}"#).unwrap();
        merge_attributes(&mut a, &c);
        assert_eq!(
            Value::Object(a),
            serde_json::json!({"city":"Bandung","x":1})
        );
    }
}
