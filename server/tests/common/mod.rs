//! Test harness: a real server on port 0 over a fresh database of the engine under test.
//!
//! `QONTAK_TEST_DB=postgres` runs the suite on Postgres (`QONTAK_TEST_PG_URL`, default the
//! local server; database `QONTAK_TEST_PG_DB`, default `test`), each test in a schema of its own
//! named `qontak_t_…`; otherwise SQLite, each test in a file of its own. `./x test` runs the
//! suite once per engine, on a database it creates for the run and drops afterwards.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use app::server::db::{Db, Engine};
use server::config::Config;
use server::AppState;

pub mod meta;

pub fn engine() -> Engine {
    match std::env::var("QONTAK_TEST_DB").as_deref() {
        Ok("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

fn pg_base() -> String {
    std::env::var("QONTAK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, empty database of the given engine, as a URL.
pub async fn fresh_database_url(engine: Engine) -> String {
    let name = format!("qontak_t_{}", uuid::Uuid::now_v7().simple());
    match engine {
        Engine::Sqlite => {
            let dir = scratch_dir();
            format!("sqlite://{}/{name}.db?mode=rwc", dir.display())
        }
        Engine::Postgres => {
            // A schema of its own in the run's database: creating and dropping databases costs
            // a checkpoint each, a schema costs nothing. `./x test` drops the run's database.
            use sqlx::Executor;
            let db = std::env::var("QONTAK_TEST_PG_DB").unwrap_or_else(|_| "test".into());
            let admin = sqlx::PgPool::connect(&format!("{}/{db}", pg_base()))
                .await
                .expect("Postgres answers");
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .await
                .expect("create test schema");
            admin.close().await;
            format!("{}/{db}?options=-c%20search_path%3D{name}", pg_base())
        }
    }
}

/// A new empty folder under the system's temporary folder.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qontak-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A configuration for tests: the given database, a scratch data folder, extra variables.
pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let data_dir = scratch_dir();
    let mut map: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("DATABASE_URL".into(), database_url.into());
    map.entry("QONTAK_DATA_DIR".into())
        .or_insert(data_dir.display().to_string());
    map.entry("LEPTOS_SITE_ADDR".into())
        .or_insert("127.0.0.1:0".into());
    map.entry("QONTAK_SECRET_KEY".into())
        .or_insert(app::server::crypto::SecretKey::generate_base64());
    Config::from_lookup(|k| map.get(k).cloned()).expect("test configuration is valid")
}

/// A running server.
pub struct TestApp {
    pub url: String,
    pub db: Db,
    pub state: AppState,
    pub config: Config,
    pub client: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server on a free port with extra configuration.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let url = fresh_database_url(engine()).await;
    let config = test_config(&url, extra);
    spawn_with_config(config).await
}

pub async fn spawn_with_config(config: Config) -> TestApp {
    let db = server::http::connect_and_migrate(&config)
        .await
        .expect("database ready");
    let state = server::http::state(&config, db.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = server::http::router_with_limits(state.clone(), &config.limits)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("server runs");
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        url: format!("http://{addr}"),
        db,
        state,
        config,
        client,
    }
}

impl TestApp {
    /// A workspace with an admin and an API token for them; answers (workspace id, token).
    pub async fn workspace_with_token(&self, name: &str) -> (String, String) {
        use app::server::crypto::{hash_secret, random_secret};
        let ws = self.db.create_workspace(name).await.expect("workspace");
        let user = self
            .db
            .create_user(
                &format!("admin@{}.test", name.to_lowercase().replace(' ', "-")),
                "Admin",
            )
            .await
            .expect("user");
        self.db
            .add_member(&ws.id, &user.id, "admin")
            .await
            .expect("member");
        let token = random_secret("qtk_");
        self.db
            .create_api_token(&ws.id, &user.id, "test", &hash_secret(&token), &token[..8])
            .await
            .expect("token");
        (ws.id, token)
    }

    /// The body of `GET path`, as text (a page's HTML).
    #[allow(dead_code)]
    pub async fn text(&self, path: &str) -> String {
        self.get(path).send().await.unwrap().text().await.unwrap()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url))
    }
}

/// A free TCP port on loopback (for a server started as a separate process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until `base/readyz` answers 200 (15 s at most).
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{base} never became ready");
}

/// Asserts our JSON error shape and answers its code.
pub async fn error_code(response: reqwest::Response) -> String {
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/json"), "error answered as {ct}");
    let body: serde_json::Value = response.json().await.expect("JSON body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message in {body}"
    );
    code
}

/// Runs a statement on the test database (to set up states the API does not create).
pub async fn exec(db: &Db, sql: String) {
    match db {
        Db::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect("test SQL runs");
}
