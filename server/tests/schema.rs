//! The two engines' migrations produce the same tables and columns.

mod common;

use app::server::db::{Db, Engine};
use common::fresh_database_url;

#[tokio::test]
async fn sqlite_and_postgres_migrations_produce_the_same_tables_and_columns() {
    let sqlite = Db::connect(&fresh_database_url(Engine::Sqlite).await)
        .await
        .unwrap();
    let postgres = Db::connect(&fresh_database_url(Engine::Postgres).await)
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    postgres.migrate().await.unwrap();
    let a = sqlite.schema_columns().await.unwrap();
    let b = postgres.schema_columns().await.unwrap();
    assert!(a.len() > 100, "the schema has its tables: {}", a.len());
    let only_sqlite: Vec<_> = a.iter().filter(|c| !b.contains(c)).collect();
    let only_postgres: Vec<_> = b.iter().filter(|c| !a.contains(c)).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "differ: sqlite {only_sqlite:?} postgres {only_postgres:?}"
    );
    assert!(
        a.iter().all(|(_, _, class)| class != "other"),
        "only int and text columns: {a:?}"
    );
    assert!(sqlite.ready().await.unwrap() && postgres.ready().await.unwrap());
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = Db::connect(&fresh_database_url(common::engine()).await)
        .await
        .unwrap();
    assert!(!db.ready().await.unwrap(), "not ready before migrations");
    db.migrate().await.unwrap();
    let before = db.schema_columns().await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(before, db.schema_columns().await.unwrap());
    assert!(db.ready().await.unwrap());
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys_and_full_sync() {
    let Db::Sqlite(pool) = Db::connect(&fresh_database_url(Engine::Sqlite).await)
        .await
        .unwrap()
    else {
        unreachable!()
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&pool)
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(fk, 1);
    assert_eq!(sync, 2, "FULL");
    assert!(busy >= 5000);
}

/// The webhook processor applies with `synchronous=NORMAL` (its bodies were fsynced when
/// acknowledged); every connection it gives back to the pool is FULL again.
#[tokio::test]
async fn applying_webhooks_leaves_every_sqlite_connection_at_full_sync() {
    let db = Db::connect(&fresh_database_url(Engine::Sqlite).await)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"messages":[]}}]}]}"#;
    db.insert_webhook_events(&[body, body]).await.unwrap();
    let batch = db.unprocessed_webhook_events(10).await.unwrap();
    assert_eq!(batch.len(), 2);
    db.apply_webhook_events(&batch).await.unwrap();
    assert!(
        !db.has_webhook_backlog().await.unwrap(),
        "the batch was applied"
    );
    let Db::Sqlite(pool) = &db else {
        unreachable!()
    };
    // Holding as many connections as the pool allows: the one the apply used is among them.
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        let mut conn = pool.acquire().await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        held.push(conn);
    }
}
