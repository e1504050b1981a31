//! Webhook storage and application: the raw bodies (group-committed) and the transaction
//! that turns one stored body into contacts, conversations, messages and statuses.
//!
//! The transactional code is written once in `engine_impl!` and expanded per engine, so
//! helpers can pass one concrete `Transaction` around.

use serde_json::{json, Value};

use super::{Db, DbError};
use crate::domain::MessageStatus;
use crate::server::db::BeginWrite;
use crate::server::webhook::{self, InboundMessage, MessagesValue, StatusUpdate};
use crate::server::{new_id, now_ms};

/// What applying one stored webhook body did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub messages_created: u32,
    pub statuses_applied: u32,
    pub statuses_pending: u32,
    /// Changes for a phone number id no workspace has connected.
    pub unrouted: u32,
    /// Workspaces touched (for live updates).
    pub workspaces: Vec<String>,
}

impl Applied {
    fn add(&mut self, a: Applied) {
        self.messages_created += a.messages_created;
        self.statuses_applied += a.statuses_applied;
        self.statuses_pending += a.statuses_pending;
        self.unrouted += a.unrouted;
        for w in a.workspaces {
            if !self.workspaces.contains(&w) {
                self.workspaces.push(w);
            }
        }
    }
}

/// What one apply transaction gathers as it goes: each phone number looked up once, and the
/// live events, written with one statement at the end rather than one statement each (every
/// statement is a round trip to sqlx's SQLite thread or to the Postgres server, and those
/// round trips, not the writes, bounded the processing rate).
#[derive(Default)]
pub(super) struct Scratch {
    numbers: std::collections::HashMap<String, Option<(String, String)>>,
    events: Vec<(String, String, String)>,
    /// Plain inbound messages and statuses, held for a few set-based statements (see
    /// `plain`): the common traffic costs a handful of statements per batch, not several per
    /// message. Anything that could depend on them writes them out first.
    inbound: Vec<Plain>,
    statuses: Vec<PlainStatus>,
}

/// An inbound message with no reference to another message (not a reaction, edit, revoke or
/// reply): it needs only its sender and conversation.
pub(super) struct Plain {
    workspace_id: String,
    number_id: String,
    wa_id: Option<String>,
    bsuid: Option<String>,
    name: Option<String>,
    username: Option<String>,
    wamid: String,
    kind: String,
    content: String,
    /// Meta's `context` without a message id (a forward, say).
    context: Option<String>,
    at: i64,
    error_code: Option<i64>,
    error_title: Option<String>,
    /// For media messages.
    media: Option<MediaRef>,
}

/// Meta's media id, sha256, MIME type and file name.
type MediaRef = (String, Option<String>, Option<String>, Option<String>);

/// A status update for one of our messages, as `status_json` keeps it.
pub(super) struct PlainStatus {
    workspace_id: String,
    number_id: String,
    wamid: String,
    body: String,
    value: Value,
}

/// A stored contact as the sender lookups return it: id, wa_id, bsuid, phone, profile name,
/// username, and its conversation on the number the message came to (if any).
type Found = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Whether a message tells nothing new about a stored contact (no identity to link, no new
/// profile name or username), so the contact's row needs no write.
fn unchanged(
    f: &Found,
    wa_id: Option<&str>,
    bsuid: Option<&str>,
    name: Option<&str>,
    username: Option<&str>,
) -> bool {
    let (_, has_wa_id, has_bsuid, has_phone, has_name, has_username, _) = f;
    !((has_wa_id.is_none() && wa_id.is_some())
        || (has_phone.is_none() && wa_id.is_some())
        || (has_bsuid.is_none() && bsuid.is_some())
        || (name.is_some() && has_name.as_deref() != name)
        || (username.is_some() && has_username.as_deref() != username))
}

/// What one status update does to a stored message.
struct Advanced {
    status: MessageStatus,
    stamps: String,
    /// The first error, when this update moves the message to `failed`.
    error: Option<(Option<i64>, Option<String>, Option<String>)>,
    /// False for a replay: nothing to write, nothing to publish.
    changed: bool,
}

/// Statuses move forward only (`read` before `delivered` ends as `read`; nothing leaves
/// `failed`); each status keeps the time it first arrived. None when the status is unknown.
fn advance(current: &str, stamps: &str, s: &Value) -> Option<Advanced> {
    let next = s
        .get("status")
        .and_then(Value::as_str)
        .and_then(MessageStatus::parse)?;
    let current = MessageStatus::parse(current).unwrap_or(MessageStatus::Queued);
    let new = current.advance(next);
    let mut map: serde_json::Map<String, Value> = serde_json::from_str(stamps).unwrap_or_default();
    let at = s
        .get("timestamp_ms")
        .and_then(Value::as_i64)
        .unwrap_or_else(now_ms);
    map.entry(next.as_str().to_string())
        .or_insert_with(|| json!(crate::server::rfc3339(at)));
    let error = s
        .get("errors")
        .and_then(|e| e.get(0))
        .filter(|_| new == MessageStatus::Failed && current != MessageStatus::Failed)
        .map(|e| {
            (
                e.get("code").and_then(Value::as_i64),
                e.get("title").and_then(Value::as_str).map(str::to_string),
                e.get("detail").and_then(Value::as_str).map(str::to_string),
            )
        });
    let new_stamps = Value::Object(map).to_string();
    let changed = new != current || error.is_some() || new_stamps != stamps;
    Some(Advanced {
        status: new,
        stamps: new_stamps,
        error,
        changed,
    })
}

impl Scratch {
    fn event(&mut self, workspace_id: &str, kind: &str, object_id: &str) {
        self.events.push((
            workspace_id.to_string(),
            kind.to_string(),
            object_id.to_string(),
        ));
    }
}

/// A JSON array of rows, bound as `$2`, read as a table: `(select list, FROM … ORDER BY …)`
/// with the rows in array order. Column i is element i, named `name` when one is given and
/// cast on Postgres to `cast` when one is given (text otherwise). One statement then writes
/// a whole set, where a statement per row cost a round trip each.
fn json_rows(postgres: bool, cols: &[(&str, &str)]) -> (String, &'static str) {
    let list: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (name, cast))| {
            let expr = match (postgres, *cast) {
                (true, "") => format!("e->>{i}"),
                (true, cast) => format!("(e->>{i})::{cast}"),
                (false, _) => format!("json_extract(value, '$[{i}]')"),
            };
            if name.is_empty() {
                expr
            } else {
                format!("{expr} AS {name}")
            }
        })
        .collect();
    let from = if postgres {
        "FROM json_array_elements($2::json) WITH ORDINALITY AS t(e, n) WHERE true ORDER BY n"
    } else {
        "FROM json_each($2) WHERE true ORDER BY key"
    };
    (list.join(", "), from)
}

/// A condition on a primary key for the rows a set-based UPDATE touches, bound as `$3`:
/// `(condition, value)`. Postgres gets an id array, which it walks in the primary key (joined
/// to a JSON table alone it hashed the whole table); SQLite a JSON array.
fn only_ids<'a>(postgres: bool, ids: impl Iterator<Item = &'a str>) -> (&'static str, String) {
    let ids: Vec<&str> = ids.collect();
    if postgres {
        let quoted: Vec<String> = ids
            .iter()
            .map(|id| format!("\"{}\"", id.replace(['"', '\\'], "")))
            .collect();
        ("= ANY($3::text[])", format!("{{{}}}", quoted.join(",")))
    } else {
        (
            "IN (SELECT value FROM json_each($3))",
            serde_json::to_string(&ids).unwrap_or_default(),
        )
    }
}

/// `json_rows` with text columns, unnamed.
fn json_text_rows(postgres: bool, n: usize) -> (String, &'static str) {
    json_rows(postgres, &vec![("", ""); n])
}

/// Rows per multi-row INSERT on SQLite (well under its 32,766 parameters).
const SQLITE_ROWS_PER_INSERT: usize = 256;

impl Db {
    /// Stores raw bodies in one transaction; when it returns Ok they are durable.
    pub async fn insert_webhook_events(&self, bodies: &[&str]) -> Result<(), DbError> {
        let now = now_ms();
        match self {
            Db::Sqlite(p) => {
                // Multi-row statements: each statement is a round trip to sqlx's SQLite worker
                // thread, which costs more than the insert itself.
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                for chunk in bodies.chunks(SQLITE_ROWS_PER_INSERT) {
                    let values: Vec<String> = (0..chunk.len())
                        .map(|i| format!("($1, ${})", i + 2))
                        .collect();
                    let sql = format!(
                        "INSERT INTO webhook_events (received_at, body) VALUES {}",
                        values.join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                    for b in chunk {
                        q = q.bind(*b);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                // One multi-row statement: Postgres pays a round trip per statement.
                let mut tx = p.begin().await?;
                sqlx::query("INSERT INTO webhook_events (received_at, body) SELECT $1, b FROM UNNEST($2::text[]) AS b")
                    .bind(now)
                    .bind(bodies)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The oldest stored bodies not applied yet.
    pub async fn unprocessed_webhook_events(
        &self,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, DbError> {
        let sql =
            "SELECT id, body FROM webhook_events WHERE processed_at IS NULL ORDER BY id LIMIT $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(limit).fetch_all(p).await)?)
    }

    /// Whether any stored body waits to be applied: one probe of the pending index, cheap to
    /// poll (counting a large backlog every few milliseconds took a core of the database away
    /// from the processor it was timing).
    pub async fn has_webhook_backlog(&self) -> Result<bool, DbError> {
        let sql = "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE processed_at IS NULL)";
        Ok(on!(self, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }

    /// How many stored bodies wait to be applied.
    pub async fn webhook_backlog(&self) -> Result<i64, DbError> {
        let sql = "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL";
        Ok(on!(self, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }

    /// Stored bodies received at or after `since` (ms), oldest first:
    /// (id, received_at, processed_at, process_error, body).
    #[allow(clippy::type_complexity)]
    pub async fn webhook_events_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Option<i64>, Option<String>, String)>, DbError> {
        let sql = "SELECT id, received_at, processed_at, process_error, body FROM webhook_events WHERE received_at >= $1 ORDER BY id LIMIT $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(since).bind(limit).fetch_all(p).await)?)
    }

    /// One stored body.
    pub async fn webhook_event(
        &self,
        id: i64,
    ) -> Result<Option<(i64, i64, Option<i64>, Option<String>, String)>, DbError> {
        let sql = "SELECT id, received_at, processed_at, process_error, body FROM webhook_events WHERE id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    /// Marks stored bodies for application again (idempotent: what was applied stays once).
    pub async fn requeue_webhook_events(&self, since: i64, ids: &[i64]) -> Result<u64, DbError> {
        let n = if ids.is_empty() {
            let sql = "UPDATE webhook_events SET processed_at = NULL, process_error = NULL WHERE received_at >= $1";
            on!(self, p => sqlx::query(sql).bind(since).execute(p).await.map(|r| r.rows_affected()))?
        } else {
            let mut total = 0;
            for id in ids {
                let sql = "UPDATE webhook_events SET processed_at = NULL, process_error = NULL WHERE id = $1";
                total += on!(self, p => sqlx::query(sql).bind(*id).execute(p).await.map(|r| r.rows_affected()))?;
            }
            total
        };
        Ok(n)
    }

    /// Marks a body whose application failed, so the processor moves on; the body stays.
    pub async fn mark_webhook_failed(&self, id: i64, error: &str) -> Result<(), DbError> {
        let sql = "UPDATE webhook_events SET processed_at = $1, process_error = $2 WHERE id = $3";
        on!(self, p => sqlx::query(sql).bind(now_ms()).bind(error).bind(id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Applies several stored bodies in one transaction (one commit, one fsync, for all of
    /// them); on any failure nothing of the batch is applied and the caller retries one by one.
    pub async fn apply_webhook_events(&self, batch: &[(i64, String)]) -> Result<Applied, DbError> {
        match self {
            Db::Sqlite(p) => {
                // Applied with `synchronous=NORMAL`: the commit writes the WAL but does not
                // wait for the disk. The raw bodies it applies were fsynced before they were
                // acknowledged, and the WAL is one file written in order, so the next
                // acknowledging commit's fsync (FULL) makes this one durable too. A power cut
                // before that loses at most this apply together with its `processed_at` marks
                // (SQLite recovers a prefix of the commits), and the bodies are applied again
                // on restart. A process crash loses nothing either way. The fsync of an apply
                // (hundreds of pages of messages, indexes and search terms) held SQLite's one
                // write lock for most of its time, and acknowledgements waited behind it.
                let _gate = super::sqlite_write_gate().await;
                let mut conn = Relaxed {
                    conn: p.acquire().await?,
                    restored: false,
                };
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn.conn)
                    .await?;
                let result = async {
                    let mut tx =
                        sqlx::Connection::begin_with(&mut *conn.conn, "BEGIN IMMEDIATE").await?;
                    let total = sqlite_impl::apply_batch(&mut tx, batch).await?;
                    tx.commit().await?;
                    Ok::<_, DbError>(total)
                }
                .await;
                conn.restored = sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut *conn.conn)
                    .await
                    .is_ok();
                result
            }
            Db::Postgres(p) => {
                let mut tx = p.begin_write().await?;
                let total = pg_impl::apply_batch(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(total)
            }
        }
    }

    /// Applies one stored body in one transaction that also marks it processed, so a crash
    /// applies it wholly or not at all, and a second processor finds nothing left to do.
    pub async fn apply_webhook_event(&self, id: i64, body: &str) -> Result<Applied, DbError> {
        match self {
            Db::Sqlite(p) => {
                let (_gate, mut tx) = super::sqlite_write(p).await?;
                let r = sqlite_impl::apply(&mut tx, id, body).await?;
                tx.commit().await?;
                Ok(r)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let r = pg_impl::apply(&mut tx, id, body).await?;
                tx.commit().await?;
                Ok(r)
            }
        }
    }
}

/// A pooled SQLite connection set to `synchronous=NORMAL` for one apply. Every other write
/// must stay FULL, so unless `restored` says FULL was set again (an error, a panic, or a
/// cancelled future between the two PRAGMAs), the connection is closed, not returned.
struct Relaxed {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    restored: bool,
}

impl Drop for Relaxed {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}

impl Db {
    /// Makes the applies committed so far durable before their events go out: on SQLite one
    /// fsync of the WAL (applies commit at `synchronous=NORMAL`, see `apply_webhook_events`),
    /// taken outside the write lock so acknowledging commits go on meanwhile; on Postgres
    /// nothing (its commits are durable already). Without it a power cut could undo an apply
    /// whose events a browser had already seen, and the re-applied events would reuse their ids.
    pub async fn sync_applied(&self) -> Result<(), DbError> {
        let Db::Sqlite(p) = self else {
            return Ok(());
        };
        let mut wal = p.connect_options().get_filename().as_os_str().to_owned();
        wal.push("-wal");
        tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data(),
            // No WAL file (an in-memory database): nothing to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))
    }
}

fn ms(ts: Option<i64>) -> i64 {
    ts.unwrap_or_else(now_ms)
}

macro_rules! engine_impl {
    ($module:ident, $db:ty, $postgres:expr) => {
        pub(super) mod $module {
            use super::*;

            type Tx<'a> = sqlx::Transaction<'a, $db>;

            pub async fn apply(tx: &mut Tx<'_>, id: i64, body: &str) -> Result<Applied, DbError> {
                let claimed = sqlx::query("UPDATE webhook_events SET processed_at = $1 WHERE id = $2 AND processed_at IS NULL")
                    .bind(now_ms())
                    .bind(id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(Applied::default());
                }
                let mut scratch = Scratch::default();
                let mut applied = apply_claimed(tx, id, body, &mut scratch).await?;
                plain(tx, &mut scratch, &mut applied).await?;
                flush(tx, &mut scratch).await?;
                Ok(applied)
            }

            /// Applies stored bodies in one transaction: one statement claims them all (a body
            /// another processor claimed first is skipped), one statement writes their events.
            pub async fn apply_batch(tx: &mut Tx<'_>, batch: &[(i64, String)]) -> Result<Applied, DbError> {
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_string()).collect();
                // Postgres: an id array, which the planner matches against the primary key
                // (a set-returning function over JSON is opaque to its estimates).
                let (sql, ids) = if $postgres {
                    (
                        "UPDATE webhook_events SET processed_at = $1 WHERE processed_at IS NULL \
                         AND id = ANY($2::bigint[]) RETURNING id",
                        format!("{{{}}}", ids.join(",")),
                    )
                } else {
                    (
                        "UPDATE webhook_events SET processed_at = $1 WHERE processed_at IS NULL \
                         AND id IN (SELECT value FROM json_each($2)) RETURNING id",
                        format!("[{}]", ids.join(",")),
                    )
                };
                let claimed: Vec<i64> = sqlx::query_scalar(sql).bind(now_ms()).bind(ids).fetch_all(&mut **tx).await?;
                let mut total = Applied::default();
                let mut scratch = Scratch::default();
                for (id, body) in batch {
                    if claimed.contains(id) {
                        total.add(apply_claimed(tx, *id, body, &mut scratch).await?);
                    }
                }
                plain(tx, &mut scratch, &mut total).await?;
                flush(tx, &mut scratch).await?;
                Ok(total)
            }

            /// Writes the events a transaction gathered, in order, with one statement. The
            /// live-event log: the SSE stream reads each object when it sends.
            async fn flush(tx: &mut Tx<'_>, scratch: &mut Scratch) -> Result<(), DbError> {
                if scratch.events.is_empty() {
                    return Ok(());
                }
                if $postgres {
                    // Serialise event-writing transactions across instances, so event ids
                    // commit in order and an SSE reader past id N never misses a smaller one.
                    sqlx::query("SELECT pg_advisory_xact_lock(7301)").execute(&mut **tx).await?;
                }
                let rows: Vec<(&str, &str, String)> = scratch
                    .events
                    .iter()
                    .map(|(w, k, id)| (w.as_str(), k.as_str(), json!({"id": id}).to_string()))
                    .collect();
                let (list, from) = json_text_rows($postgres, 3);
                let sql = format!("INSERT INTO events (workspace_id, type, data, created_at) SELECT {list}, $1 {from}");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now_ms())
                    .bind(serde_json::to_string(&rows).unwrap_or_default())
                    .execute(&mut **tx)
                    .await?;
                scratch.events.clear();
                Ok(())
            }

            /// Writes the plain messages and statuses a transaction holds, each kind with a few
            /// statements for the whole set, in the order they arrived.
            async fn plain(tx: &mut Tx<'_>, scratch: &mut Scratch, applied: &mut Applied) -> Result<(), DbError> {
                let messages = std::mem::take(&mut scratch.inbound);
                if !messages.is_empty() {
                    plain_messages(tx, messages, scratch, applied).await?;
                }
                let statuses = std::mem::take(&mut scratch.statuses);
                if !statuses.is_empty() {
                    plain_statuses(tx, statuses, scratch, applied).await?;
                }
                Ok(())
            }

            /// One query finds every sender's contact and conversation; a sender whose contact
            /// needs a write (new, newly linked, renamed, no conversation yet on this number, or
            /// met under two identities in the set) goes through `sender` one message at a time,
            /// in order. Then one statement inserts the messages (a stored wamid is skipped),
            /// one their media, one updates each conversation once.
            async fn plain_messages(tx: &mut Tx<'_>, messages: Vec<Plain>, scratch: &mut Scratch, applied: &mut Applied) -> Result<(), DbError> {
                type Key<'k> = (&'k str, &'k str, Option<&'k str>, Option<&'k str>, Option<&'k str>, Option<&'k str>);
                let mut keys: Vec<Key<'_>> = Vec::new();
                let mut index: std::collections::HashMap<Key<'_>, usize> = std::collections::HashMap::new();
                let key_of: Vec<usize> = messages
                    .iter()
                    .map(|m| {
                        let k = (m.workspace_id.as_str(), m.number_id.as_str(), m.wa_id.as_deref(), m.bsuid.as_deref(), m.name.as_deref(), m.username.as_deref());
                        *index.entry(k).or_insert_with(|| {
                            keys.push(k);
                            keys.len() - 1
                        })
                    })
                    .collect();
                let lookup = Value::Array(keys.iter().map(|k| json!([k.0, k.3, k.2, k.1])).collect()).to_string();
                // A bsuid match first, then the wa_id: each join walks its own unique index.
                let sql = if $postgres {
                    // Lookups per key in subqueries: as joins, the planner hashed whole tables.
                    "SELECT (t.n - 1)::bigint, c.id, c.wa_id, c.bsuid, c.phone, c.profile_name, c.username, v.id, m.b_id \
                     FROM json_array_elements($1::json) WITH ORDINALITY AS t(e, n) \
                     CROSS JOIN LATERAL (SELECT \
                       (SELECT id FROM contacts WHERE workspace_id = t.e->>0 AND bsuid = t.e->>1) AS b_id, \
                       (SELECT id FROM contacts WHERE workspace_id = t.e->>0 AND wa_id = t.e->>2) AS w_id) m \
                     LEFT JOIN contacts c ON c.id = COALESCE(m.b_id, m.w_id) \
                     LEFT JOIN conversations v ON v.number_id = t.e->>3 AND v.contact_id = c.id \
                     WHERE c.id IS NOT NULL"
                } else {
                    "SELECT j.key, c.id, c.wa_id, c.bsuid, c.phone, c.profile_name, c.username, v.id, b.id \
                     FROM json_each($1) j \
                     LEFT JOIN contacts b ON b.workspace_id = json_extract(j.value, '$[0]') AND b.bsuid = json_extract(j.value, '$[1]') \
                     LEFT JOIN contacts w ON w.workspace_id = json_extract(j.value, '$[0]') AND w.wa_id = json_extract(j.value, '$[2]') \
                     LEFT JOIN contacts c ON c.id = COALESCE(b.id, w.id) \
                     LEFT JOIN conversations v ON v.number_id = json_extract(j.value, '$[3]') AND v.contact_id = c.id \
                     WHERE c.id IS NOT NULL"
                };
                type Row = (i64, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
                let rows: Vec<Row> = sqlx::query_as(sql).bind(&lookup).fetch_all(&mut **tx).await?;
                let mut found: Vec<Option<(Found, bool)>> = vec![None; keys.len()];
                let mut holders: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
                for (k, id, wa_id, bsuid, phone, name, username, conversation, by_bsuid) in rows {
                    *holders.entry(id.clone()).or_default() += 1;
                    if let Some(slot) = usize::try_from(k).ok().and_then(|k| found.get_mut(k)) {
                        *slot = Some(((id, wa_id, bsuid, phone, name, username, conversation), by_bsuid.is_some()));
                    }
                }
                // The conversation of each sender that needs no write. A sender with a bsuid
                // found only by its wa_id is not settled: a message before it in this set may
                // give that bsuid to a contact, which `sender` would then find first.
                let settled: Vec<Option<String>> = keys
                    .iter()
                    .zip(&found)
                    .map(|(k, f)| match f {
                        Some((f, by_bsuid))
                            if (*by_bsuid || k.3.is_none())
                                && unchanged(f, k.2, k.3, k.4, k.5)
                                && holders.get(&f.0) == Some(&1) =>
                        {
                            f.6.clone()
                        }
                        _ => None,
                    })
                    .collect();
                let now = now_ms();
                let mut rows = Vec::with_capacity(messages.len());
                let mut conversations = Vec::with_capacity(messages.len());
                let mut ids = Vec::with_capacity(messages.len());
                for (m, k) in messages.iter().zip(&key_of) {
                    let conversation_id = match &settled[*k] {
                        Some(c) => c.clone(),
                        None => sender(tx, &m.workspace_id, &m.number_id, (m.wa_id.as_deref(), m.bsuid.as_deref()), (m.name.as_deref(), m.username.as_deref()), m.at).await?.1,
                    };
                    let id = new_id();
                    rows.push(json!([
                        id, m.workspace_id, conversation_id, m.number_id, m.wamid, m.kind, m.content,
                        json!({"received": crate::server::rfc3339(m.at)}).to_string(),
                        m.error_code, m.error_title, m.at, m.context
                    ]));
                    conversations.push(conversation_id);
                    ids.push(id);
                }
                let (list, from) = json_rows($postgres, &[("", ""), ("", ""), ("", ""), ("", ""), ("", ""), ("", ""), ("", ""), ("", ""), ("", "bigint"), ("", ""), ("", "bigint"), ("", "")]);
                let sql = format!(
                    "INSERT INTO messages (id, workspace_id, conversation_id, number_id, wamid, type, content, status_timestamps, \
                     error_code, error_title, timestamp, context, direction, status, created_at, updated_at) \
                     SELECT {list}, 'inbound', 'received', $1, $1 {from} \
                     ON CONFLICT (number_id, wamid) DO NOTHING RETURNING id"
                );
                let inserted: std::collections::HashSet<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(Value::Array(rows).to_string())
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
                if inserted.is_empty() {
                    return Ok(());
                }
                let mut media = Vec::new();
                // Per conversation: the latest message time, the last message at that time,
                // and how many arrived (the order-by-order update, folded).
                let mut updates: Vec<(String, i64, String, i64)> = Vec::new();
                let mut update_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
                for ((m, id), conversation_id) in messages.iter().zip(&ids).zip(&conversations) {
                    if !inserted.contains(id) {
                        continue;
                    }
                    applied.messages_created += 1;
                    if let Some((media_id, sha256, mime, filename)) = &m.media {
                        media.push(json!([new_id(), m.workspace_id, id, m.number_id, media_id, sha256, mime, filename]));
                    }
                    match update_of.get(conversation_id.as_str()) {
                        Some(&u) => {
                            let u = &mut updates[u];
                            if m.at >= u.1 {
                                u.1 = m.at;
                                u.2 = id.clone();
                            }
                            u.3 += 1;
                        }
                        None => {
                            update_of.insert(conversation_id, updates.len());
                            updates.push((conversation_id.clone(), m.at, id.clone(), 1));
                        }
                    }
                    scratch.event(&m.workspace_id, "message.created", id);
                    scratch.event(&m.workspace_id, "conversation.updated", conversation_id);
                }
                if !media.is_empty() {
                    let (list, from) = json_text_rows($postgres, 8);
                    let sql = format!(
                        "INSERT INTO media (id, workspace_id, message_id, number_id, meta_media_id, sha256, mime_type, filename, \
                         state, next_attempt_at, created_at, updated_at) SELECT {list}, 'pending', $1, $1, $1 {from}"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(Value::Array(media).to_string()).execute(&mut **tx).await?;
                }
                let (only, ids) = only_ids($postgres, updates.iter().map(|u| u.0.as_str()));
                let updates = Value::Array(updates.into_iter().map(|(c, at, id, n)| json!([c, at, id, n])).collect()).to_string();
                let (list, from) = json_rows($postgres, &[("u_id", ""), ("u_at", "bigint"), ("u_mid", ""), ("u_n", "integer")]);
                let sql = format!(
                    "UPDATE conversations SET \
                     last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < u.u_at THEN u.u_at ELSE last_inbound_at END, \
                     last_message_id = CASE WHEN last_message_at <= u.u_at OR last_message_id IS NULL THEN u.u_mid ELSE last_message_id END, \
                     last_message_at = CASE WHEN last_message_at < u.u_at THEN u.u_at ELSE last_message_at END, \
                     unread_count = unread_count + u.u_n, \
                     status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END, updated_at = $1 \
                     FROM (SELECT {list} {from}) AS u WHERE conversations.id = u.u_id AND conversations.id {only}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(updates).bind(ids).execute(&mut **tx).await?;
                Ok(())
            }

            /// One query reads every message the statuses name; each message's statuses are
            /// folded in order (forward only, first time kept) and one statement writes the
            /// messages that changed. A status for a wamid not stored yet is kept for later
            /// (one statement), unless it carries our message id: that one resolves a send
            /// whose answer was lost, through `status_in`.
            async fn plain_statuses(tx: &mut Tx<'_>, statuses: Vec<PlainStatus>, scratch: &mut Scratch, applied: &mut Applied) -> Result<(), DbError> {
                let mut keys: Vec<(&str, &str)> = Vec::new();
                let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
                let key_of: Vec<usize> = statuses
                    .iter()
                    .map(|s| {
                        let k = (s.number_id.as_str(), s.wamid.as_str());
                        *index.entry(k).or_insert_with(|| {
                            keys.push(k);
                            keys.len() - 1
                        })
                    })
                    .collect();
                // A wamid not stored yet that one of its statuses can resolve (it carries our
                // message id): all its statuses go through `status_in`, in order.
                let mut resolvable = vec![false; keys.len()];
                for (s, k) in statuses.iter().zip(&key_of) {
                    if s.value.get("biz_opaque_callback_data").and_then(Value::as_str).is_some() {
                        resolvable[*k] = true;
                    }
                }
                let lookup = Value::Array(keys.iter().map(|k| json!([k.0, k.1])).collect()).to_string();
                let sql = if $postgres {
                    "SELECT (t.n - 1)::bigint, m.id, m.status, m.status_timestamps \
                     FROM json_array_elements($1::json) WITH ORDINALITY AS t(e, n) \
                     CROSS JOIN LATERAL (SELECT id, status, status_timestamps FROM messages \
                     WHERE number_id = t.e->>0 AND wamid = t.e->>1) m"
                } else {
                    "SELECT j.key, m.id, m.status, m.status_timestamps FROM json_each($1) j \
                     LEFT JOIN messages m ON m.number_id = json_extract(j.value, '$[0]') AND m.wamid = json_extract(j.value, '$[1]') \
                     WHERE m.id IS NOT NULL"
                };
                let rows: Vec<(i64, String, String, String)> = sqlx::query_as(sql).bind(&lookup).fetch_all(&mut **tx).await?;
                // Per stored message: its status and times as the fold goes, the error that
                // failed it, and whether anything changed.
                type State = (String, String, String, Option<(Option<i64>, Option<String>, Option<String>)>, bool);
                let mut state: Vec<Option<State>> = vec![None; keys.len()];
                for (k, id, status, stamps) in rows {
                    if let Some(slot) = usize::try_from(k).ok().and_then(|k| state.get_mut(k)) {
                        *slot = Some((id, status, stamps, None, false));
                    }
                }
                let mut pending = Vec::new();
                let mut unresolved = Vec::new();
                for (s, k) in statuses.iter().zip(&key_of) {
                    match state.get_mut(*k).and_then(Option::as_mut) {
                        Some((id, status, stamps, error, changed)) => {
                            applied.statuses_applied += 1;
                            if let Some(a) = advance(status, stamps, &s.value) {
                                if a.changed {
                                    *status = a.status.as_str().to_string();
                                    *stamps = a.stamps;
                                    if a.error.is_some() {
                                        *error = a.error;
                                    }
                                    *changed = true;
                                    scratch.event(&s.workspace_id, "message.updated", id);
                                }
                            }
                        }
                        None if resolvable[*k] => unresolved.push(s),
                        None => {
                            applied.statuses_pending += 1;
                            pending.push(json!([s.number_id, s.wamid, s.body]));
                        }
                    }
                }
                let changes: Vec<Value> = state
                    .into_iter()
                    .flatten()
                    .filter(|s| s.4)
                    .map(|(id, status, stamps, error, _)| {
                        let (code, title, detail) = error.clone().unwrap_or_default();
                        json!([id, status, stamps, i32::from(error.is_some()), code, title, detail])
                    })
                    .collect();
                let now = now_ms();
                if !changes.is_empty() {
                    let (only, ids) = only_ids($postgres, changes.iter().filter_map(|c| c.get(0).and_then(Value::as_str)));
                    let (list, from) = json_rows(
                        $postgres,
                        &[("u_id", ""), ("u_status", ""), ("u_stamps", ""), ("u_failed", "integer"), ("u_code", "bigint"), ("u_title", ""), ("u_detail", "")],
                    );
                    let sql = format!(
                        "UPDATE messages SET status = u.u_status, status_timestamps = u.u_stamps, updated_at = $1, \
                         error_code = CASE WHEN u.u_failed = 1 THEN u.u_code ELSE error_code END, \
                         error_title = CASE WHEN u.u_failed = 1 THEN u.u_title ELSE error_title END, \
                         error_detail = CASE WHEN u.u_failed = 1 THEN u.u_detail ELSE error_detail END \
                         FROM (SELECT {list} {from}) AS u WHERE messages.id = u.u_id AND messages.id {only}"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(Value::Array(changes).to_string()).bind(ids).execute(&mut **tx).await?;
                }
                if !pending.is_empty() {
                    let (list, from) = json_text_rows($postgres, 3);
                    let sql = format!("INSERT INTO pending_statuses (number_id, wamid, body, created_at) SELECT {list}, $1 {from}");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(Value::Array(pending).to_string()).execute(&mut **tx).await?;
                }
                for s in unresolved {
                    if status_in(tx, &s.workspace_id, &s.number_id, &s.wamid, &s.body, scratch).await? {
                        applied.statuses_applied += 1;
                    } else {
                        sqlx::query("INSERT INTO pending_statuses (number_id, wamid, body, created_at) VALUES ($1, $2, $3, $4)")
                            .bind(&s.number_id)
                            .bind(&s.wamid)
                            .bind(&s.body)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        applied.statuses_pending += 1;
                    }
                }
                Ok(())
            }

            async fn apply_claimed(tx: &mut Tx<'_>, id: i64, body: &str, scratch: &mut Scratch) -> Result<Applied, DbError> {
                let mut applied = Applied::default();
                let envelope = match webhook::parse(body.as_bytes()) {
                    Ok(e) => e,
                    Err(e) => {
                        note(tx, id, &format!("not an envelope: {e}")).await?;
                        return Ok(applied);
                    }
                };
                for entry in &envelope.entry {
                    for change in &entry.changes {
                        match change.field.as_str() {
                            "messages" => {
                                match serde_json::from_value::<MessagesValue>(change.value.clone()) {
                                    Ok(v) => messages_change(tx, &v, &mut applied, scratch).await?,
                                    Err(e) => note(tx, id, &format!("unreadable messages change: {e}")).await?,
                                }
                            }
                            "message_template_status_update"
                            | "template_category_update"
                            | "message_template_quality_update"
                            | "message_template_components_update"
                            | "phone_number_quality_update"
                            | "account_update" => {
                                // Keeps the live events in the order Meta sent the changes.
                                plain(tx, scratch, &mut applied).await?;
                                waba_change(tx, &entry.id, &change.field, &change.value, &mut applied, scratch).await?
                            }
                            // Kept in webhook_events, unapplied: a field this version does not use.
                            _ => {}
                        }
                    }
                }
                Ok(applied)
            }

            /// Appends to the live-event log; the SSE stream reads the object when it sends.
            pub async fn event(tx: &mut Tx<'_>, workspace_id: &str, kind: &str, object_id: &str) -> Result<(), DbError> {
                let mut one = Scratch::default();
                one.event(workspace_id, kind, object_id);
                flush(tx, &mut one).await
            }

            /// Template, number and account changes, for every workspace that connected the WABA.
            async fn waba_change(tx: &mut Tx<'_>, waba_id: &str, field: &str, v: &Value, applied: &mut Applied, scratch: &mut Scratch) -> Result<(), DbError> {
                let workspaces: Vec<String> = sqlx::query_scalar("SELECT workspace_id FROM meta_connections WHERE waba_id = $1")
                    .bind(waba_id)
                    .fetch_all(&mut **tx)
                    .await?;
                if workspaces.is_empty() {
                    applied.unrouted += 1;
                }
                let text = |k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string())));
                let now = now_ms();
                for ws in workspaces {
                    if !applied.workspaces.contains(&ws) {
                        applied.workspaces.push(ws.clone());
                    }
                    match field {
                        "phone_number_quality_update" => {
                            let display = text("display_phone_number").map(|d| format!("+{}", d.trim_start_matches('+')));
                            let tier = text("max_daily_conversations_per_business").or_else(|| text("current_limit"));
                            let upgrade = text("event").as_deref() == Some("THROUGHPUT_UPGRADE");
                            sqlx::query(
                                "UPDATE phone_numbers SET messaging_tier = COALESCE($1, messaging_tier),                                  throughput_mps = CASE WHEN $2 THEN 1000 ELSE throughput_mps END, updated_at = $3                                  WHERE workspace_id = $4 AND display_phone = $5",
                            )
                            .bind(&tier).bind(upgrade).bind(now).bind(&ws).bind(&display)
                            .execute(&mut **tx).await?;
                            alert(tx, &ws, field, v).await?;
                        }
                        "account_update" => alert(tx, &ws, field, v).await?,
                        _ => template_change(tx, &ws, waba_id, field, v, scratch).await?,
                    }
                }
                Ok(())
            }

            async fn alert(tx: &mut Tx<'_>, workspace_id: &str, kind: &str, v: &Value) -> Result<(), DbError> {
                sqlx::query("INSERT INTO alerts (id, workspace_id, kind, detail, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(new_id()).bind(workspace_id).bind(kind).bind(v.to_string()).bind(now_ms())
                    .execute(&mut **tx).await?;
                Ok(())
            }

            /// Meta's template webhooks drive the stored template's status, category and quality.
            async fn template_change(tx: &mut Tx<'_>, workspace_id: &str, waba_id: &str, field: &str, v: &Value, scratch: &mut Scratch) -> Result<(), DbError> {
                let text = |k: &str| v.get(k).and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string())));
                let meta_id = text("message_template_id");
                let name = text("message_template_name");
                let language = text("message_template_language");
                let now = now_ms();
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM templates WHERE workspace_id = $1 AND waba_id = $2 AND                      (meta_template_id = $3 OR (name = $4 AND language = $5))",
                )
                .bind(workspace_id).bind(waba_id).bind(&meta_id).bind(&name).bind(&language)
                .fetch_optional(&mut **tx).await?;
                let id = match existing {
                    Some(id) => id,
                    None => {
                        let (Some(name), Some(language)) = (&name, &language) else { return Ok(()) };
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO templates (id, workspace_id, waba_id, meta_template_id, name, language, category, status, created_at, updated_at)                              VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', $8, $8)",
                        )
                        .bind(&id).bind(workspace_id).bind(waba_id).bind(&meta_id).bind(name).bind(language)
                        .bind(text("message_template_category")).bind(now)
                        .execute(&mut **tx).await?;
                        id
                    }
                };
                match field {
                    "message_template_status_update" => {
                        let reason = v.get("rejection_info").and_then(|r| r.get("reason")).and_then(Value::as_str).map(str::to_string)
                            .or_else(|| text("reason").filter(|r| r != "NONE"));
                        let recommendation = v.get("rejection_info").and_then(|r| r.get("recommendation")).and_then(Value::as_str).map(str::to_string);
                        sqlx::query("UPDATE templates SET status = COALESCE($1, status), rejected_reason = $2, meta_template_id = COALESCE(meta_template_id, $3), updated_at = $4, rejection_recommendation = $6 WHERE id = $5")
                            .bind(text("event")).bind(reason).bind(&meta_id).bind(now).bind(&id).bind(recommendation)
                            .execute(&mut **tx).await?;
                    }
                    "template_category_update" => {
                        sqlx::query("UPDATE templates SET category = COALESCE($1, category), updated_at = $2 WHERE id = $3")
                            .bind(text("new_category")).bind(now).bind(&id)
                            .execute(&mut **tx).await?;
                    }
                    "message_template_quality_update" => {
                        sqlx::query("UPDATE templates SET quality_score = COALESCE($1, quality_score), updated_at = $2 WHERE id = $3")
                            .bind(text("new_quality_score")).bind(now).bind(&id)
                            .execute(&mut **tx).await?;
                    }
                    _ => {}
                }
                scratch.event(workspace_id, "template.updated", &id);
                Ok(())
            }

            async fn note(tx: &mut Tx<'_>, id: i64, text: &str) -> Result<(), DbError> {
                sqlx::query("UPDATE webhook_events SET process_error = $1 WHERE id = $2")
                    .bind(text)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn messages_change(tx: &mut Tx<'_>, v: &MessagesValue, applied: &mut Applied, scratch: &mut Scratch) -> Result<(), DbError> {
                let number = match scratch.numbers.get(&v.metadata.phone_number_id) {
                    Some(n) => n.clone(),
                    None => {
                        let n: Option<(String, String)> =
                            sqlx::query_as("SELECT id, workspace_id FROM phone_numbers WHERE phone_number_id = $1")
                                .bind(&v.metadata.phone_number_id)
                                .fetch_optional(&mut **tx)
                                .await?;
                        scratch.numbers.insert(v.metadata.phone_number_id.clone(), n.clone());
                        n
                    }
                };
                let Some((number_id, workspace_id)) = number else {
                    applied.unrouted += 1;
                    return Ok(());
                };
                if !applied.workspaces.contains(&workspace_id) {
                    applied.workspaces.push(workspace_id.clone());
                }
                for m in &v.messages {
                    inbound(tx, &workspace_id, &number_id, v, m, applied, scratch).await?;
                }
                for s in &v.statuses {
                    let value = status_json(s);
                    scratch.statuses.push(PlainStatus {
                        workspace_id: workspace_id.clone(),
                        number_id: number_id.clone(),
                        wamid: s.id.clone(),
                        body: value.to_string(),
                        value,
                    });
                }
                Ok(())
            }

            /// The contact behind a sender, found by BSUID and/or wa_id, linked when a message
            /// carries both, created when new; the profile name is kept current. Answers the
            /// contact and its conversation on `number_id`, created when new. A known sender
            /// with nothing new costs one query: the contact and its conversation together.
            async fn sender(
                tx: &mut Tx<'_>,
                workspace_id: &str,
                number_id: &str,
                (wa_id, bsuid): (Option<&str>, Option<&str>),
                (name, username): (Option<&str>, Option<&str>),
                at: i64,
            ) -> Result<(String, String), DbError> {
                // BSUID first, then wa_id: each arm walks its own unique index.
                let found: Option<Found> = sqlx::query_as(
                    "SELECT c.id, c.wa_id, c.bsuid, c.phone, c.profile_name, c.username, v.id FROM ( \
                     SELECT id, 0 AS pri FROM contacts WHERE workspace_id = $1 AND bsuid = $2 \
                     UNION ALL SELECT id, 1 AS pri FROM contacts WHERE workspace_id = $1 AND wa_id = $3) m \
                     JOIN contacts c ON c.id = m.id \
                     LEFT JOIN conversations v ON v.number_id = $4 AND v.contact_id = c.id \
                     ORDER BY m.pri LIMIT 1",
                )
                .bind(workspace_id)
                .bind(bsuid)
                .bind(wa_id)
                .bind(number_id)
                .fetch_optional(&mut **tx)
                .await?;
                let now = now_ms();
                let phone = wa_id.map(|w| format!("+{w}"));
                let contact_id = match found {
                    Some(f) => {
                        let changes = !unchanged(&f, wa_id, bsuid, name, username);
                        let (id, conversation) = (f.0, f.6);
                        if changes {
                            // Link the identity this message adds, unless another contact holds
                            // it. Only when something changes: a customer's every message
                            // rewriting their row left Postgres walking dead row versions on
                            // each lookup (the processor spent most of its time on this row).
                            sqlx::query(
                                "UPDATE contacts SET \
                                 wa_id = COALESCE(wa_id, CASE WHEN NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = $2 AND c.wa_id = $3) THEN $3 END), \
                                 phone = COALESCE(phone, $4), \
                                 bsuid = COALESCE(bsuid, CASE WHEN NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = $2 AND c.bsuid = $5) THEN $5 END), \
                                 profile_name = COALESCE($6, profile_name), username = COALESCE($7, username), updated_at = $8 \
                                 WHERE id = $1",
                            )
                            .bind(&id)
                            .bind(workspace_id)
                            .bind(wa_id)
                            .bind(&phone)
                            .bind(bsuid)
                            .bind(name)
                            .bind(username)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        if let Some(conversation) = conversation {
                            return Ok((id, conversation));
                        }
                        id
                    }
                    None => {
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO contacts (id, workspace_id, wa_id, bsuid, phone, username, profile_name, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                        )
                        .bind(&id)
                        .bind(workspace_id)
                        .bind(wa_id)
                        .bind(bsuid)
                        .bind(&phone)
                        .bind(username)
                        .bind(name)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        id
                    }
                };
                let conversation = conversation(tx, workspace_id, number_id, &contact_id, at).await?;
                Ok((contact_id, conversation))
            }

            async fn conversation(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, contact_id: &str, at: i64) -> Result<String, DbError> {
                let now = now_ms();
                let id = new_id();
                let created = sqlx::query(
                    "INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $6) ON CONFLICT (number_id, contact_id) DO NOTHING",
                )
                .bind(&id)
                .bind(workspace_id)
                .bind(number_id)
                .bind(contact_id)
                .bind(at)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if created == 1 {
                    return Ok(id);
                }
                Ok(sqlx::query_scalar("SELECT id FROM conversations WHERE number_id = $1 AND contact_id = $2")
                    .bind(number_id)
                    .bind(contact_id)
                    .fetch_one(&mut **tx)
                    .await?)
            }

            async fn message_by_wamid(tx: &mut Tx<'_>, number_id: &str, wamid: &str) -> Result<Option<(String, String, String, String, Option<String>)>, DbError> {
                Ok(sqlx::query_as("SELECT id, type, content, reactions, history FROM messages WHERE number_id = $1 AND wamid = $2")
                    .bind(number_id)
                    .bind(wamid)
                    .fetch_optional(&mut **tx)
                    .await?)
            }

            async fn inbound(
                tx: &mut Tx<'_>,
                workspace_id: &str,
                number_id: &str,
                v: &MessagesValue,
                m: &InboundMessage,
                applied: &mut Applied,
                scratch: &mut Scratch,
            ) -> Result<(), DbError> {
                let info = v.contacts.iter().find(|c| {
                    (m.from.is_some() && c.wa_id == m.from) || (m.from_user_id.is_some() && c.user_id == m.from_user_id)
                }).or_else(|| (v.contacts.len() == 1).then(|| &v.contacts[0]));
                let wa_id = m.from.as_deref().or(info.and_then(|c| c.wa_id.as_deref()));
                let bsuid = m.from_user_id.as_deref().or(info.and_then(|c| c.user_id.as_deref()));
                if wa_id.is_none() && bsuid.is_none() {
                    return Ok(());
                }
                let at = ms(m.timestamp_ms());
                let content = m.content();
                let profile = info.and_then(|c| c.profile.as_ref());
                let name = profile.and_then(|p| p.name.as_deref());
                let username = profile.and_then(|p| p.username.as_deref());
                let refers = matches!(m.kind.as_str(), "reaction" | "edit" | "revoke")
                    || m.context.as_ref().and_then(|c| c.get("id")).is_some();
                if !refers {
                    let media = if matches!(m.kind.as_str(), "image" | "video" | "audio" | "document" | "sticker") {
                        content.get("id").and_then(Value::as_str).map(|media_id| {
                            let text = |k: &str| content.get(k).and_then(Value::as_str).map(str::to_string);
                            (media_id.to_string(), text("sha256"), text("mime_type"), text("filename"))
                        })
                    } else {
                        None
                    };
                    scratch.inbound.push(Plain {
                        workspace_id: workspace_id.to_string(),
                        number_id: number_id.to_string(),
                        wa_id: wa_id.map(str::to_string),
                        bsuid: bsuid.map(str::to_string),
                        name: name.map(str::to_string),
                        username: username.map(str::to_string),
                        wamid: m.id.clone(),
                        kind: m.kind.clone(),
                        content: content.to_string(),
                        context: m.context.as_ref().map(Value::to_string),
                        at,
                        error_code: first_error_code(m),
                        error_title: first_error_title(m),
                        media,
                    });
                    return Ok(());
                }
                // It names another message, which may wait among the plain ones.
                plain(tx, scratch, applied).await?;
                match m.kind.as_str() {
                    "reaction" => {
                        let target = content.get("message_id").and_then(Value::as_str).unwrap_or_default();
                        let emoji = content.get("emoji").and_then(Value::as_str).unwrap_or_default();
                        if let Some((id, _, _, reactions, _)) = message_by_wamid(tx, number_id, target).await? {
                            let mut list: Vec<Value> = serde_json::from_str(&reactions).unwrap_or_default();
                            list.retain(|r| r.get("direction").and_then(Value::as_str) != Some("inbound"));
                            if !emoji.is_empty() {
                                list.push(json!({"emoji": emoji, "direction": "inbound"}));
                            }
                            let list = Value::Array(list).to_string();
                            if list != reactions {
                                sqlx::query("UPDATE messages SET reactions = $1, updated_at = $2 WHERE id = $3")
                                    .bind(&list)
                                    .bind(now_ms())
                                    .bind(&id)
                                    .execute(&mut **tx)
                                    .await?;
                                scratch.event(workspace_id, "message.updated", &id);
                            }
                        }
                        return Ok(());
                    }
                    "edit" | "revoke" => {
                        let original = content.get("original_message_id").and_then(Value::as_str).unwrap_or_default();
                        if let Some((id, kind, old, _, history)) = message_by_wamid(tx, number_id, original).await? {
                            let mut hist: Vec<Value> = history.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default();
                            // Replays of the same edit change nothing.
                            if hist.iter().any(|h| h.get("wamid").and_then(Value::as_str) == Some(m.id.as_str())) {
                                return Ok(());
                            }
                            hist.push(json!({"wamid": m.id, "action": m.kind, "type": kind, "content": serde_json::from_str::<Value>(&old).unwrap_or_default(), "at": at}));
                            if m.kind == "edit" {
                                let new_msg = content.get("message").cloned().unwrap_or_default();
                                let new_type = new_msg.get("type").and_then(Value::as_str).unwrap_or(&kind).to_string();
                                let new_content = new_msg.get(&new_type).cloned().unwrap_or(new_msg.clone());
                                sqlx::query("UPDATE messages SET type = $1, content = $2, history = $3, edited_at = $4, updated_at = $5 WHERE id = $6")
                                    .bind(&new_type).bind(new_content.to_string()).bind(Value::Array(hist).to_string()).bind(at).bind(now_ms()).bind(&id)
                                    .execute(&mut **tx).await?;
                            } else {
                                sqlx::query("UPDATE messages SET content = '{}', history = $1, revoked_at = $2, updated_at = $3 WHERE id = $4")
                                    .bind(Value::Array(hist).to_string()).bind(at).bind(now_ms()).bind(&id)
                                    .execute(&mut **tx).await?;
                            }
                            scratch.event(workspace_id, "message.updated", &id);
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                let (_contact_id, conversation_id) = sender(tx, workspace_id, number_id, (wa_id, bsuid), (name, username), at).await?;
                let id = new_id();
                let now = now_ms();
                let context = m.context.as_ref().map(Value::to_string);
                let reply_to: Option<String> = match m.context.as_ref().and_then(|c| c.get("id")).and_then(Value::as_str) {
                    Some(w) => message_by_wamid(tx, number_id, w).await?.map(|r| r.0),
                    None => None,
                };
                let inserted = sqlx::query(
                    "INSERT INTO messages (id, workspace_id, conversation_id, number_id, wamid, direction, type, content, context, reply_to_id, \
                     status, status_timestamps, error_code, error_title, timestamp, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'inbound', $6, $7, $8, $9, 'received', $10, $11, $12, $13, $14, $14) \
                     ON CONFLICT (number_id, wamid) DO NOTHING",
                )
                .bind(&id)
                .bind(workspace_id)
                .bind(&conversation_id)
                .bind(number_id)
                .bind(&m.id)
                .bind(&m.kind)
                .bind(content.to_string())
                .bind(context)
                .bind(reply_to)
                .bind(json!({"received": crate::server::rfc3339(at)}).to_string())
                .bind(first_error_code(m))
                .bind(first_error_title(m))
                .bind(at)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(());
                }
                applied.messages_created += 1;
                if matches!(m.kind.as_str(), "image" | "video" | "audio" | "document" | "sticker") {
                    if let Some(media_id) = content.get("id").and_then(Value::as_str) {
                        sqlx::query(
                            "INSERT INTO media (id, workspace_id, message_id, number_id, meta_media_id, sha256, mime_type, filename, state, next_attempt_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $9)",
                        )
                        .bind(new_id()).bind(workspace_id).bind(&id).bind(number_id).bind(media_id)
                        .bind(content.get("sha256").and_then(Value::as_str))
                        .bind(content.get("mime_type").and_then(Value::as_str))
                        .bind(content.get("filename").and_then(Value::as_str))
                        .bind(now)
                        .execute(&mut **tx).await?;
                    }
                }
                sqlx::query(
                    "UPDATE conversations SET \
                     last_inbound_at = CASE WHEN last_inbound_at IS NULL OR last_inbound_at < $1 THEN $1 ELSE last_inbound_at END, \
                     last_message_id = CASE WHEN last_message_at <= $1 OR last_message_id IS NULL THEN $2 ELSE last_message_id END, \
                     last_message_at = CASE WHEN last_message_at < $1 THEN $1 ELSE last_message_at END, \
                     unread_count = unread_count + 1, \
                     status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END, updated_at = $3 \
                     WHERE id = $4",
                )
                .bind(at)
                .bind(&id)
                .bind(now)
                .bind(&conversation_id)
                .execute(&mut **tx)
                .await?;
                scratch.event(workspace_id, "message.created", &id);
                scratch.event(workspace_id, "conversation.updated", &conversation_id);
                Ok(())
            }

            /// Applies a status to the stored message; false when the wamid is unknown.
            pub async fn status(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, wamid: &str, body: &str) -> Result<bool, DbError> {
                let mut scratch = Scratch::default();
                let known = status_in(tx, workspace_id, number_id, wamid, body, &mut scratch).await?;
                flush(tx, &mut scratch).await?;
                Ok(known)
            }

            async fn status_in(tx: &mut Tx<'_>, workspace_id: &str, number_id: &str, wamid: &str, body: &str, scratch: &mut Scratch) -> Result<bool, DbError> {
                let row: Option<(String, String, String)> =
                    sqlx::query_as("SELECT id, status, status_timestamps FROM messages WHERE number_id = $1 AND wamid = $2")
                        .bind(number_id)
                        .bind(wamid)
                        .fetch_optional(&mut **tx)
                        .await?;
                let s: Value = serde_json::from_str(body).unwrap_or_default();
                let row = match row {
                    Some(r) => Some(r),
                    // A send whose answer was lost: Meta echoes our message id, so the first
                    // status resolves it without a second request.
                    None => match s.get("biz_opaque_callback_data").and_then(Value::as_str) {
                        Some(our_id) => {
                            let claimed = sqlx::query("UPDATE messages SET wamid = $1 WHERE id = $2 AND number_id = $3 AND wamid IS NULL AND direction = 'outbound'")
                                .bind(wamid).bind(our_id).bind(number_id)
                                .execute(&mut **tx).await?.rows_affected();
                            if claimed == 1 {
                                sqlx::query("UPDATE outbox_jobs SET state = 'done', locked_by = NULL, updated_at = $1, last_error = 'resolved by status webhook' WHERE message_id = $2 AND state IN ('unknown', 'in_flight', 'queued')")
                                    .bind(now_ms()).bind(our_id)
                                    .execute(&mut **tx).await?;
                                sqlx::query_as("SELECT id, status, status_timestamps FROM messages WHERE id = $1")
                                    .bind(our_id).fetch_optional(&mut **tx).await?
                            } else {
                                None
                            }
                        }
                        None => None,
                    },
                };
                let Some((id, current, stamps)) = row else { return Ok(false) };
                let Some(a) = advance(&current, &stamps, &s) else { return Ok(true) };
                if !a.changed {
                    // A replayed status changes nothing and publishes nothing.
                    return Ok(true);
                }
                if let Some((code, title, detail)) = &a.error {
                    sqlx::query("UPDATE messages SET error_code = $1, error_title = $2, error_detail = $3 WHERE id = $4")
                        .bind(code)
                        .bind(title)
                        .bind(detail)
                        .bind(&id)
                        .execute(&mut **tx)
                        .await?;
                }
                sqlx::query("UPDATE messages SET status = $1, status_timestamps = $2, updated_at = $3 WHERE id = $4")
                    .bind(a.status.as_str())
                    .bind(&a.stamps)
                    .bind(now_ms())
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                scratch.event(workspace_id, "message.updated", &id);
                Ok(true)
            }
        }
    };
}

fn first_error_code(m: &InboundMessage) -> Option<i64> {
    m.errors.as_ref()?.get(0)?.get("code")?.as_i64()
}

fn first_error_title(m: &InboundMessage) -> Option<String> {
    Some(
        m.errors
            .as_ref()?
            .get(0)?
            .get("title")?
            .as_str()?
            .to_string(),
    )
}

/// What we keep of a status update: enough to apply it now or later.
fn status_json(s: &StatusUpdate) -> Value {
    json!({
        "status": s.status,
        "timestamp_ms": s.timestamp_ms(),
        "recipient_id": s.recipient_id,
        "recipient_user_id": s.recipient_user_id,
        "biz_opaque_callback_data": s.biz_opaque_callback_data,
        "errors": s.errors.iter().map(|e| json!({"code": e.code, "title": e.title, "detail": e.detail()})).collect::<Vec<_>>(),
        "pricing": s.pricing,
        "conversation": s.conversation,
    })
}

engine_impl!(sqlite_impl, sqlx::Sqlite, false);
engine_impl!(pg_impl, sqlx::Postgres, true);
