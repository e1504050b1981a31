//! The outbox under failure: SIGKILL with a thousand queued messages, and two instances on one
//! Postgres draining one queue. Every message must reach Meta exactly once.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::server::db::outbox::NewOutbound;
use app::server::db::{Db, Engine, NewNumber};
use common::meta::PNID;
use common::{engine, free_port, fresh_database_url, scratch_dir, spawn_with_config, test_config};
use serde_json::{json, Value};

const SECRET: &str = "outbox-crash-secret";

/// The emulator, its webhooks signed with this file's secret.
async fn emulator(webhook_url: String) -> String {
    common::meta::emulator_for(webhook_url, SECRET).await
}

/// A workspace with a number (rate set high) and `n` queued messages.
async fn queue(db: &Db, key: &app::server::crypto::SecretKey, n: usize) -> String {
    let ws = db.create_workspace("Outbox").await.unwrap();
    let number = db
        .connect_number(&NewNumber {
            workspace_id: &ws.id,
            waba_id: "1",
            phone_number_id: PNID,
            display_phone: None,
            access_token_enc: &key.encrypt("tok"),
            key_id: key.id(),
        })
        .await
        .unwrap();
    db.set_throughput(&number.id, 5000).await.unwrap();
    for i in 0..n {
        let wa = format!("1555{:07}", i % 50);
        let contact = db.contact_for_wa_id(&ws.id, &wa).await.unwrap();
        let content = json!({"body": format!("message {i}")});
        let graph = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa, "type": "text", "text": content});
        db.enqueue_message(&NewOutbound {
            workspace_id: &ws.id,
            number_id: &number.id,
            contact_id: &contact,
            kind: "text",
            content: &content,
            graph_body: &graph,
            reply_to_id: None,
            idempotency_key: None,
            request_hash: "",
            sent_by: None,
            reaction_target: None,
        })
        .await
        .unwrap();
    }
    ws.id
}

async fn emulator_sends(emulator: &str) -> Vec<Value> {
    let all: Vec<Value> = reqwest::get(format!("{emulator}/_emulator/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().unwrap().ends_with("/messages")
                && r["body"]["status"].is_null()
        })
        .collect()
}

async fn wait_drained(db: &Db, limit: Duration) {
    let start = Instant::now();
    loop {
        let counts = db.outbox_counts().await.unwrap();
        let open: i64 = counts
            .iter()
            .filter(|(s, _)| s != "done" && s != "failed")
            .map(|(_, n)| n)
            .sum();
        if open == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "the outbox did not drain: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start(url: &str, port: u16, key: &str, graph: &str, data: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qontak"))
        .arg("serve")
        .current_dir(data)
        .env("DATABASE_URL", url)
        .env("QONTAK_DATA_DIR", data)
        .env("QONTAK_SECRET_KEY", key)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("META_APP_SECRET", SECRET)
        .env("META_GRAPH_URL", graph)
        .env("QONTAK_OUTBOX_LEASE_MS", "2000")
        .env("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", "3000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qontak starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_with_a_thousand_queued_messages_still_sends_each_exactly_once() {
    let url = fresh_database_url(engine()).await;
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    let key = app::server::crypto::SecretKey::from_base64(&key_b64).unwrap();
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let port = free_port();
    let emu = emulator(format!("http://127.0.0.1:{port}/webhooks/whatsapp")).await;
    let ws = queue(&db, &key, 1000).await;
    let data = scratch_dir();

    let mut server = start(&url, port, &key_b64, &emu, &data);
    let started = Instant::now();
    while emulator_sends(&emu).await.len() < 150 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sending never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let at_kill = emulator_sends(&emu).await.len();
    let mut server = start(&url, port, &key_b64, &emu, &data);
    wait_drained(&db, Duration::from_secs(90)).await;
    server.kill().ok();
    server.wait().ok();

    let sends = emulator_sends(&emu).await;
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for s in &sends {
        *per_message
            .entry(
                s["body"]["biz_opaque_callback_data"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert!(
        at_kill < 1000,
        "killed midway ({at_kill} sent before the kill)"
    );
    assert_eq!(per_message.len(), 1000, "every message reached Meta");
    let twice: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let counts = db.outbox_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![("done".to_string(), 1000)],
        "no job stuck or failed"
    );
    let convs = db
        .conversations(&ws, &app::server::db::read::start(), 100)
        .await
        .unwrap();
    let mut sent = 0;
    for c in convs {
        for m in db
            .messages(&ws, &c.id, &app::server::db::read::start(), 1000)
            .await
            .unwrap()
        {
            assert!(
                m.wamid.is_some() && m.status != "queued" && m.status != "failed",
                "{m:?}"
            );
            sent += 1;
        }
    }
    assert_eq!(sent, 1000);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_drain_one_queue_without_sending_anything_twice() {
    if engine() != Engine::Postgres {
        eprintln!("the two-instance outbox test runs in the Postgres pass");
        return;
    }
    let url = fresh_database_url(Engine::Postgres).await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    let key = app::server::crypto::SecretKey::from_base64(&key_b64).unwrap();
    // The emulator's statuses go to instance A; both instances send.
    let port_hint = free_port();
    let emu = emulator(format!("http://127.0.0.1:{port_hint}/webhooks/whatsapp")).await;
    queue(&db, &key, 600).await;
    let env = [
        ("META_APP_SECRET", SECRET),
        ("META_GRAPH_URL", emu.as_str()),
        ("QONTAK_SECRET_KEY", key_b64.as_str()),
    ];
    let a = spawn_with_config(test_config(&url, &env)).await;
    let b = spawn_with_config(test_config(&url, &env)).await;
    wait_drained(&db, Duration::from_secs(60)).await;
    let sends = emulator_sends(&emu).await;
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for s in &sends {
        *per_message
            .entry(
                s["body"]["biz_opaque_callback_data"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(per_message.len(), 600);
    assert!(
        per_message.values().all(|n| *n == 1),
        "a job was claimed twice"
    );
    drop((a, b));
    db.close().await;
}
