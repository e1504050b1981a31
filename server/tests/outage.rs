//! Dependencies down. The database unreachable (Postgres behind a proxy we cut): webhooks answer
//! 503, never 200, and once it is back Meta's retries land with nothing lost. Meta answering 5xx
//! for a spell: sends back off, then drain at the number's pace, each sent once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::server::db::{Db, Engine, NewNumber};
use app::server::webhook::sign;
use common::meta::world;
use common::{engine, fresh_database_url, spawn_with_config, test_config};
use serde_json::json;

const SECRET: &str = "outage-secret";

/// A TCP proxy to Postgres that can be cut (every connection dropped, new ones refused).
struct Cuttable {
    addr: String,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Cuttable { addr, open, conns }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn webhook(wamid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "4242"},
        "contacts": [{"wa_id": "15551234567", "profile": {"name": "Ana"}}],
        "messages": [{"from": "15551234567", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": wamid}}]}}]}]}))
    .unwrap()
}

async fn deliver(client: &reqwest::Client, base: &str, wamid: &str) -> Option<u16> {
    let body = webhook(wamid);
    client
        .post(format!("{base}/webhooks/whatsapp"))
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_unreachable_webhooks_answer_503_and_nothing_is_lost_after() {
    if engine() != Engine::Postgres {
        eprintln!("note: the database-outage test cuts a Postgres connection; it runs in the Postgres pass");
        return;
    }
    let url = fresh_database_url(Engine::Postgres).await;
    let direct = Db::connect(&url).await.unwrap();
    direct.migrate().await.unwrap();
    // postgres://user@HOST:PORT/db?… → the same through the proxy.
    let (head, rest) = url.split_once('@').unwrap();
    let (upstream, tail) = rest.split_once('/').unwrap();
    let proxy = Cuttable::start(upstream.to_string()).await;
    let proxied = format!("{head}@{}/{tail}", proxy.addr);
    let app = spawn_with_config(test_config(&proxied, &[("META_APP_SECRET", SECRET)])).await;
    let ws = direct.create_workspace("Outage").await.unwrap();
    direct
        .connect_number(&NewNumber {
            workspace_id: &ws.id,
            waba_id: "1",
            phone_number_id: "4242",
            display_phone: None,
            access_token_enc: &app.state.key.encrypt("t"),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(25))
        .build()
        .unwrap();
    for i in 0..5 {
        assert_eq!(
            deliver(&client, &app.url, &format!("wamid.before.{i}")).await,
            Some(200)
        );
    }

    proxy.cut();
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(deliver(&client, &app.url, &format!("wamid.during.{i}")).await);
    }
    assert!(
        answers.iter().all(|a| *a == Some(503)),
        "while the database is down webhooks answer 503, never 200: {answers:?}"
    );
    let ready = client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "readiness says so too");

    proxy.restore();
    // Meta retries what was not answered 200.
    let start = Instant::now();
    for i in 0..3 {
        let wamid = format!("wamid.during.{i}");
        while deliver(&client, &app.url, &wamid).await != Some(200) {
            assert!(start.elapsed() < Duration::from_secs(60), "never recovered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    while direct.webhook_backlog().await.unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "stored webhooks never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored: HashMap<String, i64> = direct.wamid_counts().await.unwrap().into_iter().collect();
    for w in (0..5)
        .map(|i| format!("wamid.before.{i}"))
        .chain((0..3).map(|i| format!("wamid.during.{i}")))
    {
        assert_eq!(stored.get(&w), Some(&1), "{w} stored exactly once");
    }
    direct.close().await;
}

fn ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_spell_of_meta_5xx_sends_back_off_then_drain_at_the_numbers_pace() {
    let w = world(&[]).await;
    w.app.db.set_throughput(&w.number_id, 20).await.unwrap();
    w.customer_says("15551110000", "hello").await;
    w.emu_post(
        "/_emulator/faults",
        json!({"path_contains": "/messages", "times": null, "respond": {"http_status": 503, "code": 2, "message": "Service temporarily unavailable"}}),
    )
    .await;
    for i in 0..40 {
        let res = w
            .send(json!({"number_id": w.number_id, "to": "+15551110000", "type": "text", "text": {"body": format!("m{i}")}}))
            .await;
        assert_eq!(res.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = reqwest::Client::new();
    client
        .delete(format!("{}/_emulator/faults", w.emulator))
        .send()
        .await
        .unwrap();

    let start = Instant::now();
    let sent = loop {
        let sent = w.emu_get("/_emulator/sent").await;
        let sent = sent.as_array().unwrap().clone();
        if sent.len() >= 40 {
            break sent;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the backlog never drained: {} sent",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let requests = w.graph_sends().await;
    let refused = requests
        .iter()
        .filter(|r| r["response_status"] == 503)
        .count();
    assert!(
        refused >= 10,
        "sends were tried during the spell: {refused} refused"
    );
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for s in &sent {
        *per_message
            .entry(s["biz_opaque_callback_data"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_message.len(), 40);
    assert!(per_message.values().all(|n| *n == 1), "each accepted once");
    // Paced throughout, failing or not: no second holds more requests than the number's rate
    // plus the bucket's burst, so recovery brings no burst of 429s.
    let mut at: Vec<i64> = requests
        .iter()
        .map(|r| ms(r["at"].as_str().unwrap()))
        .collect();
    at.sort();
    let busiest = at
        .iter()
        .map(|t| at.iter().filter(|u| **u >= *t && **u < t + 1000).count())
        .max()
        .unwrap();
    assert!(
        busiest <= 20 + 3,
        "at most the number's 20/s in any second, got {busiest} ({} requests, {refused} refused)",
        requests.len()
    );
}
