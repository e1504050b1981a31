//! What agents do in the inbox: filtered conversation lists, assignment and status, labels,
//! unread marks, internal notes, canned responses, and full-text search (FTS5 on SQLite, a
//! `tsvector` with a GIN index on Postgres). Every change writes its live event in the same
//! transaction.

use super::read::{ConversationRow, Position};
use super::{conflict, Db, DbError};
#[allow(unused_imports)]
use crate::server::db::BeginWrite;
use crate::server::{new_id, now_ms};

/// Runs `$body` in a transaction of either engine, with `$ev` bound to that engine's event
/// writer; an early `?` drops the transaction, which rolls it back.
macro_rules! in_tx {
    ($db:expr, $tx:ident, $ev:ident => $body:block) => {
        match $db {
            Db::Sqlite(p) => {
                let mut $tx = p.begin_write().await?;
                use crate::server::db::ingest::sqlite_impl::event as $ev;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Db::Postgres(p) => {
                let mut $tx = p.begin_write().await?;
                use crate::server::db::ingest::pg_impl::event as $ev;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Whose conversations a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AssigneeFilter {
    #[default]
    Anyone,
    Unassigned,
    User(String),
}

/// The inbox's filters; the default shows everything.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<String>,
    pub assignee: AssigneeFilter,
    pub number_id: Option<String>,
}

/// What an agent changes on a conversation; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub status: Option<String>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<String>>,
    pub labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRow {
    pub id: String,
    pub conversation_id: String,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CannedRow {
    pub id: String,
    pub shortcut: String,
    pub body: String,
    pub updated_at: i64,
}

/// A message that matched a search, with what the result list shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageHit {
    pub message_id: String,
    pub conversation_id: String,
    pub direction: String,
    pub content: String,
    pub timestamp: i64,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
}

/// A contact that matched a search, with their newest conversation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactHit {
    pub contact_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub conversation_id: Option<String>,
}

/// The words of a search box, cleaned to letters and digits (at most eight), so that neither
/// FTS5's nor `to_tsquery`'s syntax can be injected.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .take(8)
        .collect()
}

/// FTS5: every word as a prefix (`"hel"*`), all of them required.
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Postgres: every word as a prefix (`hel:*`), all of them required.
pub fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

macro_rules! filtered_select {
    () => {
        "SELECT c.id, c.number_id, c.status, c.unread_count, c.last_inbound_at, c.last_message_at, \
         k.id AS contact_id, k.wa_id, k.bsuid, k.phone, k.name AS contact_name, k.profile_name, k.username, \
         u.id AS assignee_id, u.email AS assignee_email, u.name AS assignee_name, c.last_message_id, c.labels \
         FROM conversations c JOIN contacts k ON k.id = c.contact_id LEFT JOIN users u ON u.id = c.assignee_id \
         WHERE c.workspace_id = $1 AND (c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3)) \
         AND (CAST($5 AS TEXT) IS NULL OR c.status = $5) \
         AND (CAST($6 AS TEXT) IS NULL OR c.number_id = $6) \
         AND ($7 = '*' OR ($7 = '-' AND c.assignee_id IS NULL) OR c.assignee_id = $7) \
         ORDER BY c.last_message_at DESC, c.id DESC LIMIT $4"
    };
}

impl Db {
    /// A page of the workspace's conversations that pass `filter`, newest activity first.
    pub async fn inbox_conversations(
        &self,
        workspace_id: &str,
        filter: &ConversationFilter,
        after: &Position,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, DbError> {
        let assignee = match &filter.assignee {
            AssigneeFilter::Anyone => "*",
            AssigneeFilter::Unassigned => "-",
            AssigneeFilter::User(id) => id.as_str(),
        };
        Ok(on!(self, p => sqlx::query_as(filtered_select!())
            .bind(workspace_id).bind(after.0).bind(&after.1).bind(limit)
            .bind(&filter.status).bind(&filter.number_id).bind(assignee)
            .fetch_all(p).await)?)
    }

    /// The labels of a conversation (a JSON array of strings).
    pub async fn conversation_labels(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Vec<String>, DbError> {
        let raw: Option<String> = on!(self, p => sqlx::query_scalar(
            "SELECT labels FROM conversations WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id).bind(id).fetch_optional(p).await)?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// Applies an agent's change; `Ok(false)` when the conversation is not the workspace's.
    /// An assignee must be a member of the workspace.
    pub async fn update_conversation(
        &self,
        workspace_id: &str,
        id: &str,
        patch: &ConversationPatch,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let labels = patch
            .labels
            .as_ref()
            .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()));
        let (set_assignee, assignee) = match &patch.assignee_id {
            Some(a) => (true, a.clone()),
            None => (false, None),
        };
        Ok(in_tx!(self, tx, event => {
            if let Some(user) = &assignee {
                let member: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(workspace_id).bind(user).fetch_optional(&mut *tx).await?;
                if member.is_none() {
                    return Err(DbError::NotFound("member".into()));
                }
            }
            let changed = sqlx::query(
                "UPDATE conversations SET status = COALESCE($1, status), \
                 assignee_id = CASE WHEN $2 THEN $3 ELSE assignee_id END, \
                 labels = COALESCE($4, labels), updated_at = $5 WHERE workspace_id = $6 AND id = $7")
                .bind(&patch.status).bind(set_assignee).bind(&assignee).bind(&labels)
                .bind(now).bind(workspace_id).bind(id)
                .execute(&mut *tx).await?.rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            event(&mut tx, workspace_id, "conversation.updated", id).await?;
            true
        }))
    }

    /// Marks a conversation unread again (at least one unread message).
    pub async fn mark_conversation_unread(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let found = in_tx!(self, tx, event => {
            let n = sqlx::query(
                "UPDATE conversations SET unread_count = CASE WHEN unread_count > 0 THEN unread_count ELSE 1 END, \
                 updated_at = $1 WHERE workspace_id = $2 AND id = $3")
                .bind(now).bind(workspace_id).bind(id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                event(&mut tx, workspace_id, "conversation.updated", id).await?;
            }
            n > 0
        });
        Ok(found)
    }

    /// Adds an internal note (seen by the team only; never sent to WhatsApp).
    pub async fn add_note(
        &self,
        workspace_id: &str,
        conversation_id: &str,
        author_id: &str,
        body: &str,
    ) -> Result<Option<NoteRow>, DbError> {
        let id = new_id();
        let now = now_ms();
        let added = in_tx!(self, tx, event => {
            let n = sqlx::query(
                "INSERT INTO conversation_notes (id, workspace_id, conversation_id, author_id, body, created_at) \
                 SELECT $1, $2, id, $3, $4, $5 FROM conversations WHERE workspace_id = $2 AND id = $6")
                .bind(&id).bind(workspace_id).bind(author_id).bind(body).bind(now).bind(conversation_id)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                event(&mut tx, workspace_id, "note.created", &id).await?;
            }
            n > 0
        });
        if !added {
            return Ok(None);
        }
        self.note(workspace_id, &id).await
    }

    pub async fn note(&self, workspace_id: &str, id: &str) -> Result<Option<NoteRow>, DbError> {
        let sql = "SELECT n.id, n.conversation_id, n.author_id, u.name AS author_name, u.email AS author_email, n.body, n.created_at \
                   FROM conversation_notes n LEFT JOIN users u ON u.id = n.author_id WHERE n.workspace_id = $1 AND n.id = $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// A conversation's notes, oldest first (the most recent 500).
    pub async fn notes(
        &self,
        workspace_id: &str,
        conversation_id: &str,
    ) -> Result<Vec<NoteRow>, DbError> {
        let sql = "SELECT * FROM (SELECT n.id, n.conversation_id, n.author_id, u.name AS author_name, u.email AS author_email, n.body, n.created_at \
                   FROM conversation_notes n LEFT JOIN users u ON u.id = n.author_id \
                   WHERE n.workspace_id = $1 AND n.conversation_id = $2 ORDER BY n.created_at DESC LIMIT 500) t ORDER BY created_at";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(conversation_id).fetch_all(p).await)?,
        )
    }

    pub async fn canned_responses(&self, workspace_id: &str) -> Result<Vec<CannedRow>, DbError> {
        let sql = "SELECT id, shortcut, body, updated_at FROM canned_responses WHERE workspace_id = $1 ORDER BY shortcut";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    pub async fn create_canned_response(
        &self,
        workspace_id: &str,
        shortcut: &str,
        body: &str,
    ) -> Result<CannedRow, DbError> {
        let row = CannedRow {
            id: new_id(),
            shortcut: shortcut.to_string(),
            body: body.to_string(),
            updated_at: now_ms(),
        };
        let sql = "INSERT INTO canned_responses (id, workspace_id, shortcut, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)";
        on!(self, p => sqlx::query(sql).bind(&row.id).bind(workspace_id).bind(&row.shortcut).bind(&row.body)
            .bind(row.updated_at).execute(p).await.map(|_| ()).map_err(conflict("canned response")))?;
        Ok(row)
    }

    pub async fn delete_canned_response(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<bool, DbError> {
        let sql = "DELETE FROM canned_responses WHERE workspace_id = $1 AND id = $2";
        let n = on!(self, p => sqlx::query(sql).bind(workspace_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Messages whose text has every word of `q` (as prefixes), newest first (on SQLite, newest
    /// stored first: the index walks rowids backwards and stops at `limit`).
    pub async fn search_messages(
        &self,
        workspace_id: &str,
        q: &str,
        limit: i64,
    ) -> Result<Vec<MessageHit>, DbError> {
        let terms = search_terms(q);
        if terms.is_empty() {
            return Ok(vec![]);
        }
        let hits = match self {
            Db::Sqlite(p) => {
                sqlx::query_as(
                    "SELECT m.id AS message_id, m.conversation_id, m.direction, m.content, m.timestamp, \
                     COALESCE(k.name, k.profile_name) AS contact_name, k.phone \
                     FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
                     JOIN conversations c ON c.id = m.conversation_id JOIN contacts k ON k.id = c.contact_id \
                     WHERE messages_fts MATCH $1 AND m.workspace_id = $2 AND m.type <> 'reaction' \
                     ORDER BY f.rowid DESC LIMIT $3",
                )
                .bind(fts5_query(&terms))
                .bind(workspace_id)
                .bind(limit)
                .fetch_all(p)
                .await?
            }
            Db::Postgres(p) => {
                sqlx::query_as(
                    "SELECT m.id AS message_id, m.conversation_id, m.direction, m.content, m.timestamp, \
                     COALESCE(k.name, k.profile_name) AS contact_name, k.phone \
                     FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN contacts k ON k.id = c.contact_id \
                     WHERE m.search @@ to_tsquery('simple', $1) AND m.workspace_id = $2 AND m.type <> 'reaction' \
                     ORDER BY m.timestamp DESC LIMIT $3",
                )
                .bind(tsquery(&terms))
                .bind(workspace_id)
                .bind(limit)
                .fetch_all(p)
                .await?
            }
        };
        Ok(hits)
    }

    /// Contacts whose name, profile name, phone or WhatsApp id contains `q`.
    pub async fn search_contacts(
        &self,
        workspace_id: &str,
        q: &str,
        limit: i64,
    ) -> Result<Vec<ContactHit>, DbError> {
        let needle = q.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(vec![]);
        }
        let escaped: String = needle
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let digits: String = needle.chars().filter(char::is_ascii_digit).collect();
        let pattern = format!("%{escaped}%");
        let digit_pattern = if digits.len() >= 3 {
            format!("%{digits}%")
        } else {
            "\u{1}".into()
        };
        let sql = "SELECT k.id AS contact_id, COALESCE(k.name, k.profile_name) AS name, k.phone, k.username, \
                   (SELECT c.id FROM conversations c WHERE c.contact_id = k.id ORDER BY c.last_message_at DESC LIMIT 1) AS conversation_id \
                   FROM contacts k WHERE k.workspace_id = $1 AND (lower(COALESCE(k.name, '')) LIKE $2 ESCAPE '\\' \
                   OR lower(COALESCE(k.profile_name, '')) LIKE $2 ESCAPE '\\' OR lower(COALESCE(k.username, '')) LIKE $2 ESCAPE '\\' \
                   OR COALESCE(k.wa_id, '') LIKE $3 OR COALESCE(k.phone, '') LIKE $3) \
                   ORDER BY COALESCE((SELECT MAX(c.last_message_at) FROM conversations c WHERE c.contact_id = k.id), 0) DESC, k.updated_at DESC LIMIT $4";
        Ok(
            on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(&pattern).bind(&digit_pattern).bind(limit).fetch_all(p).await)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_letters_and_digits_only() {
        assert_eq!(
            search_terms("  Invoice #42, \"urgent\"* OR x:* café "),
            vec!["invoice", "42", "urgent", "or", "x", "café"]
        );
        assert!(search_terms("\"*:&| ").is_empty());
        assert_eq!(search_terms(&"a ".repeat(20)).len(), 8);
    }

    #[test]
    fn both_engines_get_prefix_queries_requiring_every_word() {
        let t = search_terms("order 42");
        assert_eq!(fts5_query(&t), "\"order\"* \"42\"*");
        assert_eq!(tsquery(&t), "order:* & 42:*");
    }
}
