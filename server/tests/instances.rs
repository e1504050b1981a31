//! Several instances on one Postgres (Postgres only; on SQLite each test prints a note and
//! passes): webhooks to either instance reach the live streams of both, outbox work splits
//! across both with nothing sent twice, and when one instance dies the other keeps serving and
//! drains what was left.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::server::db::outbox::NewOutbound;
use app::server::db::{Db, Engine, NewNumber};
use app::server::webhook::sign;
use common::meta::PNID;
use common::{
    engine, free_port, fresh_database_url, scratch_dir, spawn_with_config, test_config, wait_ready,
    TestApp,
};
use serde_json::{json, Value};

const SECRET: &str = "instances-secret";

fn postgres_only(test: &str) -> bool {
    if engine() == Engine::Postgres {
        return true;
    }
    eprintln!("note: {test} needs Postgres (several instances share one database); it runs in the Postgres pass");
    false
}

/// The emulator, its webhooks signed with this file's secret.
async fn emulator(webhook_url: String) -> String {
    common::meta::emulator_for(webhook_url, SECRET).await
}

/// A workspace with an API token and a connected number; answers (workspace, token, number).
async fn workspace(app: &TestApp, rate: i64) -> (String, String, String) {
    let (ws, token) = app.workspace_with_token("Shared").await;
    let number = app
        .db
        .connect_number(&NewNumber {
            workspace_id: &ws,
            waba_id: "1",
            phone_number_id: PNID,
            display_phone: None,
            access_token_enc: &app.state.key.encrypt("tok"),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    app.db.set_throughput(&number.id, rate).await.unwrap();
    (ws, token, number.id)
}

fn inbound(wamid: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
        "contacts": [{"wa_id": "15551234567", "profile": {"name": "Ana"}}],
        "messages": [{"from": "15551234567", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": body}}]}}]}]}))
    .unwrap()
}

async fn post_webhook(client: &reqwest::Client, base: &str, payload: Vec<u8>) -> u16 {
    client
        .post(format!("{base}/webhooks/whatsapp"))
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &payload))
        .body(payload)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// An open event stream, read until a text shows up.
struct Stream {
    res: reqwest::Response,
    seen: String,
}

impl Stream {
    async fn open(app: &TestApp, token: &str) -> Stream {
        let res = app
            .get("/api/v1/events")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        Stream {
            res,
            seen: String::new(),
        }
    }

    /// Waits (at most 5 s) until `needle` arrived; answers how long that took.
    async fn until(&mut self, needle: &str) -> Duration {
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !self.seen.contains(needle) {
                let chunk = self
                    .res
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                self.seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("`{needle}` never reached the stream"));
        start.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_to_either_instance_reaches_the_streams_of_both() {
    if !postgres_only("the two-instance event test") {
        return;
    }
    let url = fresh_database_url(Engine::Postgres).await;
    let env = [("META_APP_SECRET", SECRET)];
    let one = spawn_with_config(test_config(&url, &env)).await;
    let two = spawn_with_config(test_config(&url, &env)).await;
    let (_, token, _) = workspace(&one, 80).await;
    let mut on_one = Stream::open(&one, &token).await;
    let mut on_two = Stream::open(&two, &token).await;

    let client = reqwest::Client::new();
    assert_eq!(
        post_webhook(&client, &one.url, inbound("wamid.X1", "sent to one")).await,
        200
    );
    let local = on_one.until("sent to one").await;
    let remote = on_two.until("sent to one").await;
    assert_eq!(
        post_webhook(&client, &two.url, inbound("wamid.X2", "sent to two")).await,
        200
    );
    let local2 = on_two.until("sent to two").await;
    let remote2 = on_one.until("sent to two").await;
    eprintln!(
        "one → its own stream {local:?}, → two's {remote:?}; two → its own {local2:?}, → one's {remote2:?}"
    );
}

/// Queues `n` messages, twenty writers at a time (one commit each costs an fsync).
async fn enqueue(db: &Db, ws: &str, number_id: &str, n: usize) {
    let mut writers = Vec::new();
    for w in 0..20 {
        let (db, ws, number_id) = (db.clone(), ws.to_string(), number_id.to_string());
        writers.push(tokio::spawn(async move {
            for i in (w..n).step_by(20) {
                let wa = format!("1555{:07}", i % 40);
                let contact = db.contact_for_wa_id(&ws, &wa).await.unwrap();
                let content = json!({"body": format!("message {i}")});
                let graph = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa, "type": "text", "text": content});
                db.enqueue_message(&NewOutbound {
                    workspace_id: &ws,
                    number_id: &number_id,
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
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
}

/// Send requests the emulator saw, by our message id (each instance calls its own API version).
async fn sends(emulator: &str) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let all: Vec<Value> = reqwest::get(format!("{emulator}/_emulator/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (mut per_message, mut per_version) = (HashMap::new(), HashMap::new());
    for r in all.iter().filter(|r| {
        r["method"] == "POST"
            && r["path"].as_str().unwrap().ends_with("/messages")
            && r["body"]["status"].is_null()
    }) {
        let id = r["body"]["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .to_string();
        *per_message.entry(id).or_insert(0) += 1;
        let version = r["path"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .to_string();
        *per_version.entry(version).or_insert(0) += 1;
    }
    (per_message, per_version)
}

async fn open_jobs(db: &Db) -> i64 {
    db.outbox_counts()
        .await
        .unwrap()
        .iter()
        .filter(|(s, _)| s != "done" && s != "failed")
        .map(|(_, n)| n)
        .sum()
}

async fn wait_drained(db: &Db, limit: Duration) {
    let start = Instant::now();
    while open_jobs(db).await > 0 {
        assert!(
            start.elapsed() < limit,
            "the outbox did not drain: {:?}",
            db.outbox_counts().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_work_splits_across_both_instances_and_nothing_is_sent_twice() {
    if !postgres_only("the two-instance outbox split test") {
        return;
    }
    let url = fresh_database_url(Engine::Postgres).await;
    let port_hint = free_port();
    let emu = emulator(format!("http://127.0.0.1:{port_hint}/webhooks/whatsapp")).await;
    let key = app::server::crypto::SecretKey::generate_base64();
    let env = |version: &'static str| {
        vec![
            ("META_APP_SECRET", SECRET),
            ("META_GRAPH_URL", emu.as_str()),
            ("QONTAK_SECRET_KEY", key.as_str()),
            ("META_GRAPH_VERSION", version),
        ]
    };
    let one = spawn_with_config(test_config(&url, &env("v25.0"))).await;
    let two = spawn_with_config(test_config(&url, &env("v24.0"))).await;
    // Paced, so the queue lasts long enough for both workers to take turns.
    let (ws, _, number) = workspace(&one, 100).await;
    let t = Instant::now();
    enqueue(&one.db, &ws, &number, 400).await;
    eprintln!("queued 400 in {:?}", t.elapsed());
    one.state.outbox.wake();
    two.state.outbox.wake();
    wait_drained(&one.db, Duration::from_secs(60)).await;
    eprintln!("drained after {:?}", t.elapsed());
    let (per_message, per_version) = sends(&emu).await;
    assert_eq!(per_message.len(), 400, "every message reached Meta");
    let twice: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    eprintln!("sends per instance: {per_version:?}");
    assert!(
        per_version.get("v25.0").copied().unwrap_or(0) >= 25
            && per_version.get("v24.0").copied().unwrap_or(0) >= 25,
        "both instances took a share: {per_version:?}"
    );
}

fn start(url: &str, port: u16, key: &str, graph: &str, version: &str) -> Child {
    let data = scratch_dir();
    Command::new(env!("CARGO_BIN_EXE_qontak"))
        .arg("serve")
        .current_dir(&data)
        .env("DATABASE_URL", url)
        .env("QONTAK_DATA_DIR", &data)
        .env("QONTAK_SECRET_KEY", key)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("META_APP_SECRET", SECRET)
        .env("META_GRAPH_URL", graph)
        .env("META_GRAPH_VERSION", version)
        .env("QONTAK_OUTBOX_LEASE_MS", "2000")
        .env("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", "3000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qontak starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_one_instance_is_killed_the_other_keeps_serving_and_drains_the_rest() {
    if !postgres_only("the instance-loss test") {
        return;
    }
    let url = fresh_database_url(Engine::Postgres).await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    let key = app::server::crypto::SecretKey::from_base64(&key_b64).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    // Meta's statuses go to the survivor, as a load balancer would route them.
    let emu = emulator(format!("{base_b}/webhooks/whatsapp")).await;
    let ws = db.create_workspace("Shared").await.unwrap();
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
    // 50/s per instance: the queue lasts a few seconds, so the kill lands midway.
    db.set_throughput(&number.id, 50).await.unwrap();
    enqueue(&db, &ws.id, &number.id, 400).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut a = start(&url, port_a, &key_b64, &emu, "v25.0");
    let mut b = start(&url, port_b, &key_b64, &emu, "v24.0");
    wait_ready(&client, &base_a).await;
    wait_ready(&client, &base_b).await;

    let started = Instant::now();
    loop {
        let (_, per_version) = sends(&emu).await;
        if per_version.get("v25.0").copied().unwrap_or(0) >= 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "instance A never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let (_, at_kill) = sends(&emu).await;
    assert_eq!(
        post_webhook(&client, &base_a, inbound("wamid.K0", "to the dead one")).await,
        0
    );
    // The survivor answers webhooks and health checks while it drains A's share.
    for i in 0..20 {
        assert_eq!(
            post_webhook(
                &client,
                &base_b,
                inbound(&format!("wamid.K{}", i + 1), "still here")
            )
            .await,
            200
        );
    }
    assert_eq!(
        client
            .get(format!("{base_b}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_drained(&db, Duration::from_secs(90)).await;
    let (per_message, per_version) = sends(&emu).await;
    eprintln!("sends per instance at the kill: {at_kill:?}; at the end: {per_version:?}");
    assert_eq!(per_message.len(), 400, "every message reached Meta");
    let twice: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert!(
        per_version["v24.0"] > at_kill.get("v24.0").copied().unwrap_or(0),
        "the survivor took over"
    );
    assert_eq!(
        db.outbox_counts().await.unwrap(),
        vec![("done".to_string(), 400)]
    );
    let applying = Instant::now();
    loop {
        let backlog = db.webhook_backlog().await.unwrap();
        if backlog == 0 {
            break;
        }
        assert!(
            applying.elapsed() < Duration::from_secs(120),
            "{backlog} stored webhooks never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = db.wamid_counts().await.unwrap();
    let ks = stored
        .iter()
        .filter(|(w, _)| w.starts_with("wamid.K"))
        .count();
    assert_eq!(ks, 20, "every webhook the survivor acknowledged is stored");
    b.kill().ok();
    b.wait().ok();
    db.close().await;
}
