//! The database layer: the only module that holds SQL.
//!
//! One binary serves SQLite (the embedded default) and Postgres, chosen at run time by
//! `DATABASE_URL`. Both engines get the same statements: `$1` placeholders, `RETURNING` and
//! `ON CONFLICT` mean the same in each; ids are TEXT, times are 64-bit integer milliseconds and
//! JSON is TEXT, so every row decodes to the same Rust types on both. Where the engines differ,
//! a function matches on [`Db`] and spells the statement per engine.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::idtoken::Provider;
use super::{new_id, now_ms};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// A connection pool on one of the two engines.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the engine's pool; the same statement serves both.
/// Write transactions: on SQLite they take the write lock at `BEGIN IMMEDIATE`, so a
/// transaction that reads before it writes waits its turn (busy timeout) instead of failing at
/// once with "database is locked" when another connection wrote in between; Postgres begins as
/// usual.
pub(crate) trait BeginWrite {
    type Engine: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, Self::Engine>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for SqlitePool {
    type Engine = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Engine = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

/// SQLite lets one connection write at a time, and connections that meet at its lock wait in
/// its busy handler, which sleeps 1, 2, 5, 10… ms between tries (and a deferred transaction
/// that read before another's commit cannot upgrade at all: SQLITE_BUSY_SNAPSHOT). The busy
/// writers (the webhook group commit, the processor, the outbox) queue here instead, async and
/// first come first served, and take the lock at `BEGIN IMMEDIATE`, so each waits for at most
/// the transactions ahead of it, not for a sleep.
pub(crate) static SQLITE_WRITE_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The longest a writer queues at the gate. The gate only spares writers SQLite's busy-handler
/// sleeps; `BEGIN IMMEDIATE` still serialises them, so a writer that waited this long goes on
/// without it (and says so) rather than wait for ever on a holder that never lets go. (One test
/// server of several sharing this process-wide gate hung once, idle; the cause is not known.)
const GATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// A write transaction on SQLite, through [`SQLITE_WRITE_GATE`]; keep the guard until commit.
pub(crate) async fn sqlite_write(
    pool: &SqlitePool,
) -> Result<
    (
        Option<tokio::sync::MutexGuard<'static, ()>>,
        sqlx::Transaction<'static, sqlx::Sqlite>,
    ),
    sqlx::Error,
> {
    let gate = sqlite_write_gate().await;
    let tx = pool.begin_write().await?;
    Ok((gate, tx))
}

/// A turn at [`SQLITE_WRITE_GATE`] (none after [`GATE_PATIENCE`]); keep it until commit.
pub(crate) async fn sqlite_write_gate() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    match tokio::time::timeout(GATE_PATIENCE, SQLITE_WRITE_GATE.lock()).await {
        Ok(guard) => Some(guard),
        Err(_) => {
            tracing::warn!(
                waited_s = GATE_PATIENCE.as_secs(),
                "the SQLite write gate stayed taken; writing without it"
            );
            None
        }
    }
}

macro_rules! on {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

macro_rules! number_select {
    () => {
        "SELECT n.id, n.workspace_id, n.phone_number_id, c.waba_id, n.display_phone, n.verified_name, \
     n.quality_rating, n.messaging_tier, n.throughput_mps, n.created_at FROM phone_numbers n \
     JOIN meta_connections c ON c.id = n.connection_id"
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub workspace_id: String,
    pub workspace_name: String,
    pub role: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub role: String,
}

/// What connecting a number needs; the token arrives already encrypted.
pub struct NewNumber<'a> {
    pub workspace_id: &'a str,
    pub waba_id: &'a str,
    pub phone_number_id: &'a str,
    pub display_phone: Option<&'a str>,
    pub access_token_enc: &'a str,
    pub key_id: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NumberRow {
    pub id: String,
    pub workspace_id: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    pub messaging_tier: Option<String>,
    pub throughput_mps: i64,
    pub created_at: i64,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: &'a str,
    pub workspace_id: Option<&'a str>,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub workspace_id: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[derive(Default)]
pub struct AuditEntry<'a> {
    pub workspace_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_checked_before_connecting() {
        assert_eq!(
            parse_url("sqlite://data/qontak.db?mode=rwc"),
            Ok(Engine::Sqlite)
        );
        assert_eq!(parse_url("sqlite::memory:"), Ok(Engine::Sqlite));
        assert_eq!(
            parse_url("postgres://u@127.0.0.1:5432/test"),
            Ok(Engine::Postgres)
        );
        assert!(parse_url("mysql://x").unwrap_err().contains("`mysql`"));
        assert!(parse_url("not a url").unwrap_err().contains("not a URL"));
        assert!(parse_url("postgres://u@host:notaport/db").is_err());
    }
}

pub mod broadcasts;
pub mod contacts;
pub mod inbox;
pub mod ingest;
pub mod integrations;
pub mod media;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod read;
pub mod teams;
pub mod templates;

/// Which engine a `DATABASE_URL` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Database failures, with unique violations and missing rows told apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what.to_string()),
        _ => DbError::Sqlx(e),
    }
}

/// Checks a `DATABASE_URL` without connecting: the scheme and the URL's own syntax.
pub fn parse_url(url: &str) -> Result<Engine, String> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s)
        .or_else(|| url.split_once(':').map(|(s, _)| s));
    match scheme {
        Some("sqlite") => SqliteConnectOptions::from_str(url)
            .map(|_| Engine::Sqlite)
            .map_err(|e| format!("DATABASE_URL is not a valid SQLite URL: {e}")),
        Some("postgres" | "postgresql") => PgConnectOptions::from_str(url)
            .map(|_| Engine::Postgres)
            .map_err(|e| format!("DATABASE_URL is not a valid Postgres URL: {e}")),
        Some(other) if !other.is_empty() && other.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => Err(format!(
            "DATABASE_URL uses `{other}`, which Qontak does not support: use sqlite://… or postgres://…"
        )),
        _ => Err("DATABASE_URL is not a URL: use sqlite://path/to/file.db or postgres://user@host/db".to_string()),
    }
}

impl Db {
    /// Opens a pool. SQLite runs in WAL mode with `synchronous=FULL`, foreign keys on and a
    /// busy timeout, so an acknowledged write survives a power cut.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        match parse_url(url).map_err(|e| DbError::Sqlx(sqlx::Error::Configuration(e.into())))? {
            Engine::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // Pages read through a memory map instead of a read() copy each, and a
                    // larger page cache: under a webhook flood the kernel copies dominated
                    // the SQLite threads' time. Durability is unchanged (the WAL is fsynced).
                    .pragma("mmap_size", "268435456")
                    .pragma("cache_size", "-16384")
                    // The ingest checkpoints in the background (`Ingest::start`); a commit
                    // only checkpoints itself if the WAL grows this long anyway.
                    .pragma("wal_autocheckpoint", "16384");
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Db::Sqlite(pool))
            }
            Engine::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies pending migrations of this engine.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Readiness: the database answers and every migration this binary knows is applied.
    pub async fn ready(&self) -> Result<bool, DbError> {
        let expected = match self {
            Db::Sqlite(_) => SQLITE_MIGRATOR.iter().count(),
            Db::Postgres(_) => POSTGRES_MIGRATOR.iter().count(),
        } as i64;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: Result<i64, sqlx::Error> =
            on!(self, p => sqlx::query_scalar(sql).fetch_one(p).await);
        match applied {
            Ok(n) => Ok(n >= expected),
            // No migrations table yet: reachable, not ready.
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn close(&self) {
        on!(self, p => p.close().await)
    }

    /// Every (table, column, type class) of the application's tables, sorted, for comparing
    /// the two engines' schemas. Type classes: `int`, `text`, `other`.
    pub async fn schema_columns(&self) -> Result<Vec<(String, String, String)>, DbError> {
        let rows: Vec<(String, String, String)> = match self {
            Db::Sqlite(p) => {
                sqlx::query_as(
                    "SELECT m.name, c.name, lower(c.type) FROM sqlite_master m \
                     JOIN pragma_table_info(m.name) c \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' \
                     AND m.name NOT LIKE '%\\_fts%' ESCAPE '\\'",
                )
                .fetch_all(p)
                .await?
            }
            Db::Postgres(p) => {
                sqlx::query_as(
                    "SELECT table_name::text, column_name::text, lower(data_type::text) FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' \
                     AND data_type <> 'tsvector'",
                )
                .fetch_all(p)
                .await?
            }
        };
        let mut out: Vec<_> = rows
            .into_iter()
            .map(|(t, c, ty)| {
                let class = match ty.as_str() {
                    "integer" | "bigint" => "int",
                    "text" => "text",
                    _ => "other",
                };
                (t, c, class.to_string())
            })
            .collect();
        out.sort();
        Ok(out)
    }

    // ---- workspaces, users, memberships -------------------------------------------------

    pub async fn create_workspace(&self, name: &str) -> Result<WorkspaceRow, DbError> {
        let row = WorkspaceRow {
            id: new_id(),
            name: name.to_string(),
            created_at: now_ms(),
        };
        let sql = "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)";
        on!(self, p => sqlx::query(sql).bind(&row.id).bind(&row.name).bind(row.created_at).execute(p).await.map(|r| r.rows_affected()))
            .map_err(conflict("a workspace with this name"))?;
        Ok(row)
    }

    pub async fn workspace_by_name(&self, name: &str) -> Result<Option<WorkspaceRow>, DbError> {
        let sql = "SELECT id, name, created_at FROM workspaces WHERE name = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(name).fetch_optional(p).await)?)
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRow>, DbError> {
        let sql = "SELECT id, name, created_at FROM workspaces WHERE id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    /// Creates a user with this e-mail; fails with `Conflict` when one exists.
    pub async fn create_user(&self, email: &str, name: &str) -> Result<UserRow, DbError> {
        let now = now_ms();
        let row = UserRow {
            id: new_id(),
            email: email.to_string(),
            name: name.to_string(),
        };
        let sql = "INSERT INTO users (id, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)";
        on!(self, p => sqlx::query(sql).bind(&row.id).bind(&row.email).bind(&row.name).bind(now).execute(p).await.map(|r| r.rows_affected()))
            .map_err(conflict("a user with this e-mail"))?;
        Ok(row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        let sql = "SELECT id, email, name FROM users WHERE email = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(email).fetch_optional(p).await)?)
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        let sql = "SELECT id, email, name FROM users WHERE id = $1";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id).fetch_optional(p).await)?)
    }

    /// The user whose Google `sub` or Firebase `uid` this is.
    pub async fn user_by_identity(
        &self,
        provider: Provider,
        subject: &str,
    ) -> Result<Option<UserRow>, DbError> {
        let sql = match provider {
            Provider::Google => "SELECT id, email, name FROM users WHERE google_sub = $1",
            Provider::Firebase => "SELECT id, email, name FROM users WHERE firebase_uid = $1",
        };
        Ok(on!(self, p => sqlx::query_as(sql).bind(subject).fetch_optional(p).await)?)
    }

    /// Links a sign-in identity to a user who has none of this provider yet. Answers false when
    /// the user already has one; `Conflict` when another user holds this identity.
    pub async fn link_identity(
        &self,
        user_id: &str,
        provider: Provider,
        subject: &str,
    ) -> Result<bool, DbError> {
        let sql = match provider {
            Provider::Google => {
                "UPDATE users SET google_sub = $1, updated_at = $2 WHERE id = $3 AND google_sub IS NULL"
            }
            Provider::Firebase => {
                "UPDATE users SET firebase_uid = $1, updated_at = $2 WHERE id = $3 AND firebase_uid IS NULL"
            }
        };
        let n = on!(self, p => sqlx::query(sql).bind(subject).bind(now_ms()).bind(user_id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(conflict("a user with this sign-in account"))?;
        Ok(n == 1)
    }

    /// Creates a user who signs in with this identity; `Conflict` when the e-mail or the
    /// identity is taken.
    pub async fn create_user_with_identity(
        &self,
        email: &str,
        name: &str,
        provider: Provider,
        subject: &str,
    ) -> Result<UserRow, DbError> {
        let now = now_ms();
        let row = UserRow {
            id: new_id(),
            email: email.to_string(),
            name: name.to_string(),
        };
        let sql = match provider {
            Provider::Google => {
                "INSERT INTO users (id, email, name, google_sub, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)"
            }
            Provider::Firebase => {
                "INSERT INTO users (id, email, name, firebase_uid, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)"
            }
        };
        on!(self, p => sqlx::query(sql).bind(&row.id).bind(&row.email).bind(&row.name).bind(subject).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))
        .map_err(conflict("a user with this e-mail or sign-in account"))?;
        Ok(row)
    }

    /// Adds a member; fails with `Conflict` when the user already belongs to the workspace.
    pub async fn add_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), DbError> {
        let sql = "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";
        on!(self, p => sqlx::query(sql).bind(workspace_id).bind(user_id).bind(role).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))
            .map_err(conflict("this membership"))?;
        Ok(())
    }

    /// The workspaces a user belongs to, oldest membership first.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRow>, DbError> {
        let sql = "SELECT w.id AS workspace_id, w.name AS workspace_name, m.role FROM memberships m \
                   JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY m.created_at, w.id";
        Ok(on!(self, p => sqlx::query_as(sql).bind(user_id).fetch_all(p).await)?)
    }

    // ---- API tokens ---------------------------------------------------------------------

    /// Stores a token by its hash; the token itself is never stored.
    pub async fn create_api_token(
        &self,
        workspace_id: &str,
        user_id: &str,
        name: &str,
        token_hash: &str,
        prefix: &str,
    ) -> Result<String, DbError> {
        let id = new_id();
        let sql = "INSERT INTO api_tokens (id, workspace_id, user_id, name, token_hash, prefix, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on!(self, p => sqlx::query(sql).bind(&id).bind(workspace_id).bind(user_id).bind(name)
            .bind(token_hash).bind(prefix).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))
        .map_err(conflict("a token with this name in the workspace"))?;
        Ok(id)
    }

    /// The live token with this hash whose owner is still a member of its workspace.
    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, DbError> {
        let sql = "SELECT t.id, t.workspace_id, t.user_id, m.role FROM api_tokens t \
                   JOIN memberships m ON m.workspace_id = t.workspace_id AND m.user_id = t.user_id \
                   WHERE t.token_hash = $1 AND t.revoked_at IS NULL";
        Ok(on!(self, p => sqlx::query_as(sql).bind(token_hash).fetch_optional(p).await)?)
    }

    /// Records a token's use, at most once a minute so reads stay reads.
    pub async fn touch_api_token(&self, id: &str) -> Result<(), DbError> {
        let now = now_ms();
        let sql = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)";
        on!(self, p => sqlx::query(sql).bind(now).bind(id).bind(now - 60_000).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    // ---- WhatsApp numbers ---------------------------------------------------------------

    /// Connects a number: the WABA's connection (token stored encrypted, replaced when given
    /// again) and the phone number under it. A phone number id is connected to one workspace.
    pub async fn connect_number(&self, n: &NewNumber<'_>) -> Result<NumberRow, DbError> {
        let now = now_ms();
        let upsert = "INSERT INTO meta_connections (id, workspace_id, waba_id, access_token_enc, key_id, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $6) \
                      ON CONFLICT (workspace_id, waba_id) DO UPDATE SET access_token_enc = excluded.access_token_enc, \
                      key_id = excluded.key_id, token_invalid_at = NULL, updated_at = excluded.updated_at RETURNING id";
        let insert = "INSERT INTO phone_numbers (id, workspace_id, connection_id, phone_number_id, display_phone, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $6)";
        let id = new_id();
        on!(self, p => {
            let mut tx = p.begin().await?;
            let connection_id: String = sqlx::query_scalar(upsert)
                .bind(new_id()).bind(n.workspace_id).bind(n.waba_id).bind(n.access_token_enc).bind(n.key_id).bind(now)
                .fetch_one(&mut *tx).await?;
            sqlx::query(insert).bind(&id).bind(n.workspace_id).bind(&connection_id).bind(n.phone_number_id)
                .bind(n.display_phone).bind(now)
                .execute(&mut *tx).await.map_err(conflict("this phone number id"))?;
            tx.commit().await?;
        });
        self.number(n.workspace_id, &id)
            .await?
            .ok_or_else(|| DbError::NotFound("number".into()))
    }

    /// A workspace's numbers, oldest first.
    pub async fn numbers(&self, workspace_id: &str) -> Result<Vec<NumberRow>, DbError> {
        let sql = concat!(
            number_select!(),
            " WHERE n.workspace_id = $1 ORDER BY n.created_at, n.id"
        );
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).fetch_all(p).await)?)
    }

    /// One number, scoped to its workspace.
    pub async fn number(&self, workspace_id: &str, id: &str) -> Result<Option<NumberRow>, DbError> {
        let sql = concat!(number_select!(), " WHERE n.workspace_id = $1 AND n.id = $2");
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(id).fetch_optional(p).await)?)
    }

    /// The encrypted access token of a number's connection (for the Graph client only).
    pub async fn number_access_token_enc(
        &self,
        number_id: &str,
    ) -> Result<Option<String>, DbError> {
        let sql = "SELECT c.access_token_enc FROM phone_numbers n JOIN meta_connections c ON c.id = n.connection_id WHERE n.id = $1";
        Ok(on!(self, p => sqlx::query_scalar(sql).bind(number_id).fetch_optional(p).await)?)
    }

    // ---- sessions -----------------------------------------------------------------------

    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let sql = "INSERT INTO sessions (id_hash, user_id, workspace_id, created_at, last_seen_at, expires_at, ip, user_agent) \
                   VALUES ($1, $2, $3, $4, $4, $5, $6, $7)";
        on!(self, p => sqlx::query(sql).bind(s.id_hash).bind(s.user_id).bind(s.workspace_id).bind(now)
            .bind(s.expires_at).bind(s.ip).bind(s.user_agent).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A session that has not expired, by the hash of its id.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>, DbError> {
        let sql = "SELECT id_hash, user_id, workspace_id, created_at, last_seen_at, expires_at FROM sessions \
                   WHERE id_hash = $1 AND expires_at > $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(id_hash).bind(now).fetch_optional(p).await)?)
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), DbError> {
        let sql = "UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2";
        on!(self, p => sqlx::query(sql).bind(now).bind(id_hash).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), DbError> {
        let sql = "DELETE FROM sessions WHERE id_hash = $1";
        on!(self, p => sqlx::query(sql).bind(id_hash).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends every session of a user ("sign out everywhere").
    pub async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, DbError> {
        let sql = "DELETE FROM sessions WHERE user_id = $1";
        Ok(
            on!(self, p => sqlx::query(sql).bind(user_id).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    // ---- audit log ----------------------------------------------------------------------

    /// Appends to the audit log. `detail` is JSON and must never hold a secret or content.
    pub async fn audit(&self, e: &AuditEntry<'_>) -> Result<(), DbError> {
        let sql = "INSERT INTO audit_log (workspace_id, user_id, actor, action, target, detail, ip, user_agent, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        on!(self, p => sqlx::query(sql).bind(e.workspace_id).bind(e.user_id).bind(e.actor).bind(e.action)
            .bind(e.target).bind(e.detail).bind(e.ip).bind(e.user_agent).bind(now_ms()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The newest audit entries of a workspace.
    pub async fn audit_entries(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>, DbError> {
        let sql = "SELECT id, actor, action, target, detail, created_at FROM audit_log WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2";
        Ok(on!(self, p => sqlx::query_as(sql).bind(workspace_id).bind(limit).fetch_all(p).await)?)
    }
}
