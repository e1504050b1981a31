//! `qontak-bench chaos`: tries to lose data. A supervisor starts the real `qontak` binary, the
//! Meta emulator (in this process) and a replayer that behaves like Meta: every webhook (the
//! customers' messages it makes up, and the emulator's status webhooks, which it relays) is
//! delivered until answered 200, in shuffled order, by three concurrent senders, some of them
//! twice more as duplicates. Meanwhile an API client sends messages with idempotency keys,
//! retrying until accepted. The server is SIGKILLed at random moments and restarted. At the
//! end, with the server running, the supervisor waits for the queues to settle and checks:
//!
//! 1. every acknowledged inbound message is stored exactly once;
//! 2. no status regressed: every sent message ends `read` (the emulator's last status);
//! 3. every accepted send ended `sent`/`delivered`/`read` or `failed` with a reason, one message
//!    per idempotency key, and the emulator saw at most one request per message;
//! 4. no outbox job is left unfinished.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::server::db::Db;
use app::server::webhook::sign;
use axum::body::Bytes;
use axum::http::HeaderMap;
use rand::Rng;
use serde_json::{json, Value};

use crate::scenarios::{exe, free_port, fresh_db, PNID, SECRET, WABA};

/// What to run.
pub struct Options {
    pub cycles: u32,
    pub seconds: u64,
    pub webhook_rate: u32,
    pub send_rate: u32,
    pub engine: String,
    pub pg: String,
    /// Append the summary to docs/chaos.md.
    pub record: bool,
}

const CUSTOMERS: usize = 100;
/// How long a send of unknown outcome waits for Meta's status before it is sent again. The
/// no-duplicate invariant holds when Meta's statuses arrive within it (the product's default
/// is 10 minutes); under a replay backlog they can take tens of seconds here.
const UNKNOWN_WAIT_MS: u64 = 60_000;

struct Item {
    body: Bytes,
    signature: String,
    wamids: Vec<String>,
}

/// Meta's side of webhooks: everything pending is retried until the product answers 200.
#[derive(Default)]
struct Relay {
    pending: Mutex<Vec<Item>>,
    /// Items not acknowledged yet (pending or being delivered).
    outstanding: AtomicI64,
    acked: Mutex<HashSet<String>>,
    acked_bodies: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    unreachable: AtomicU64,
}

impl Relay {
    fn push(&self, item: Item) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.pending.lock().expect("lock").push(item);
    }

    /// A random pending item: the order of deliveries is shuffled.
    fn take(&self) -> Option<Item> {
        let mut p = self.pending.lock().expect("lock");
        if p.is_empty() {
            return None;
        }
        let i = rand::rng().random_range(0..p.len());
        Some(p.swap_remove(i))
    }
}

/// The API client's side of sends.
#[derive(Default)]
struct Sends {
    outstanding: AtomicI64,
    /// Idempotency key → our message id, for every send answered 2xx.
    accepted: Mutex<HashMap<String, String>>,
    refused: Mutex<Vec<String>>,
    retries: AtomicU64,
}

/// The server under test, restarted after every kill.
struct Server {
    child: Child,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    data: PathBuf,
}

impl Server {
    fn spawn(env: &[(&'static str, String)], data: &PathBuf, log: &PathBuf) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log");
        let mut cmd = Command::new(exe("qontak"));
        cmd.arg("serve")
            .current_dir(data)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("qontak starts")
    }

    fn restart(&mut self) {
        self.child = Self::spawn(&self.env, &self.data, &self.log);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts the server if it exited on its own (a bind race after a kill, say).
    fn revive(&mut self) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            self.restart();
            return true;
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn inbound(tag: &str, customer: usize, k: usize) -> Item {
    let wa = format!("1555{:07}", customer);
    let wamids: Vec<String> = (0..k).map(|j| format!("wamid.chaos.{tag}.{j}")).collect();
    let messages: Vec<Value> = wamids
        .iter()
        .map(|id| json!({"from": wa, "id": id, "timestamp": (app::server::now_ms() / 1000).to_string(), "type": "text", "text": {"body": format!("chaos {id}")}}))
        .collect();
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100001", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": format!("Customer {customer}")}, "wa_id": wa}], "messages": messages}}]}]}))
    .expect("json");
    Item {
        signature: sign(SECRET.as_bytes(), &body),
        body: Bytes::from(body),
        wamids,
    }
}

async fn deliver(relay: Arc<Relay>, url: String, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(item) = relay.take() else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let res = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &item.signature)
            .body(item.body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 200 => {
                relay
                    .acked
                    .lock()
                    .expect("lock")
                    .extend(item.wamids.iter().cloned());
                relay.acked_bodies.fetch_add(1, Ordering::Relaxed);
                relay.outstanding.fetch_sub(1, Ordering::SeqCst);
            }
            other => {
                if other.is_ok() {
                    relay.refused.fetch_add(1, Ordering::Relaxed);
                } else {
                    relay.unreachable.fetch_add(1, Ordering::Relaxed);
                }
                relay.pending.lock().expect("lock").push(item);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Customers writing at `rate` webhooks a second; one in five is delivered three times.
async fn customers(relay: Arc<Relay>, rate: u32, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    let mut due = 0.0f64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        due += f64::from(rate) / 100.0;
        while due >= 1.0 {
            due -= 1.0;
            n += 1;
            let customer = (n as usize * 7) % CUSTOMERS;
            let k = 1 + (n as usize % 3);
            if n.is_multiple_of(5) {
                for _ in 0..2 {
                    relay.push(inbound(&n.to_string(), customer, k));
                    relay.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            relay.push(inbound(&n.to_string(), customer, k));
        }
    }
}

/// Sends at `rate` a second through the API, each with its idempotency key, retried until
/// the server answers (a lost answer is retried with the same key).
async fn sender(
    base: String,
    token: String,
    number_id: String,
    rate: u32,
    sends: Arc<Sends>,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut n = 0u64;
    let mut due = 0.0f64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        due += f64::from(rate) / 100.0;
        while due >= 1.0 {
            due -= 1.0;
            n += 1;
            let key = format!("chaos-send-{n}");
            let body = json!({"number_id": number_id, "to": format!("+1555{:07}", n as usize % CUSTOMERS),
                "type": "text", "text": {"body": format!("reply {n}")}, "idempotency_key": key});
            let (client, url, token, sends) = (
                client.clone(),
                format!("{base}/api/v1/messages"),
                token.clone(),
                sends.clone(),
            );
            sends.outstanding.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                loop {
                    let res = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap_or_default();
                            let id = v["id"].as_str().unwrap_or_default().to_string();
                            sends.accepted.lock().expect("lock").insert(key, id);
                            break;
                        }
                        Ok(r)
                            if r.status().is_client_error()
                                && r.status() != 408
                                && r.status() != 429 =>
                        {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            sends
                                .refused
                                .lock()
                                .expect("lock")
                                .push(format!("{key}: {status} {text}"));
                            break;
                        }
                        _ => {
                            sends.retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                sends.outstanding.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

async fn open_jobs(db: &Db) -> i64 {
    db.outbox_counts()
        .await
        .map(|c| {
            c.iter()
                .filter(|(s, _)| s != "done" && s != "failed")
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(i64::MAX)
}

async fn wait_http(url: &str, limit: Duration) -> bool {
    let client = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < limit {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// An outbound message as stored: (id, status, wamid, error title).
type Outbound = (String, String, Option<String>, Option<String>);

async fn outbound_messages(db: &Db) -> anyhow::Result<Vec<Outbound>> {
    let sql = "SELECT id, status, wamid, error_title FROM messages WHERE direction = 'outbound'";
    Ok(match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
    })
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let (db_url, db, number_id, pg_name) = fresh_db(&o.engine, &o.pg, &key).await?;
    db.set_throughput(&number_id, 1000).await?;
    let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
    let user = db.create_user("chaos@qontak.local", "Chaos").await?;
    db.add_member(&ws, &user.id, "admin").await?;
    let token = app::server::crypto::random_secret("qtk_");
    db.create_api_token(
        &ws,
        &user.id,
        "chaos",
        &app::server::crypto::hash_secret(&token),
        &token[..8],
    )
    .await?;

    // Meta: the relay (its webhook side) and the emulator (its Graph side).
    let relay = Arc::new(Relay::default());
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = format!("http://{}/meta", relay_listener.local_addr()?);
    let inbox = relay.clone();
    let relay_app = axum::Router::new().route(
        "/meta",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let inbox = inbox.clone();
            async move {
                let signature = headers
                    .get("x-hub-signature-256")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                inbox.push(Item {
                    body,
                    signature,
                    wamids: Vec::new(),
                });
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(relay_listener, relay_app).await });
    let emu_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let emulator = format!("http://{}", emu_listener.local_addr()?);
    let mut emu_config = qontak_meta_emulator::Config::new(&relay_url, SECRET);
    emu_config.status_delay = Duration::from_millis(50);
    emu_config.numbers = vec![qontak_meta_emulator::Number {
        phone_number_id: PNID.into(),
        waba_id: WABA.into(),
        display_phone_number: "+1 555-010-0001".into(),
        verified_name: "Chaos".into(),
    }];
    tokio::spawn(async move { qontak_meta_emulator::serve(emu_listener, emu_config).await });

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let data = std::env::temp_dir().join(format!("qontak-chaos-{}", app::server::new_id()));
    std::fs::create_dir_all(&data)?;
    let log = data.join("server.log");
    let env: Vec<(&'static str, String)> = vec![
        ("DATABASE_URL", db_url.clone()),
        ("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}")),
        ("QONTAK_DATA_DIR", data.display().to_string()),
        ("QONTAK_SECRET_KEY", key_b64.clone()),
        ("META_APP_SECRET", SECRET.to_string()),
        ("META_GRAPH_URL", emulator.clone()),
        ("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", UNKNOWN_WAIT_MS.to_string()),
        ("QONTAK_OUTBOX_LEASE_MS", "5000".to_string()),
        ("QONTAK_OUTBOX_BACKOFF_MS", "200".to_string()),
        ("QONTAK_LOG_FORMAT", "json".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    let mut server = Server {
        child: Server::spawn(&env, &data, &log),
        env,
        log: log.clone(),
        data: data.clone(),
    };
    anyhow::ensure!(
        wait_http(&format!("{base}/readyz"), Duration::from_secs(30)).await,
        "the server never became ready (log: {})",
        log.display()
    );

    // Every customer writes once first, so the 24-hour window is open for the replies.
    let stop_workers = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(tokio::spawn(deliver(
            relay.clone(),
            format!("{base}/webhooks/whatsapp"),
            stop_workers.clone(),
        )));
    }
    for c in 0..CUSTOMERS {
        relay.push(inbound(&format!("pre{c}"), c, 1));
    }
    let settle = Instant::now();
    while relay.outstanding.load(Ordering::SeqCst) > 0 || db.has_webhook_backlog().await? {
        anyhow::ensure!(
            settle.elapsed() < Duration::from_secs(60),
            "the first messages never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Load, and the kills.
    let stop_load = Arc::new(AtomicBool::new(false));
    let sends = Arc::new(Sends::default());
    let load = vec![
        tokio::spawn(customers(relay.clone(), o.webhook_rate, stop_load.clone())),
        tokio::spawn(sender(
            base.clone(),
            token.clone(),
            number_id.clone(),
            o.send_rate,
            sends.clone(),
            stop_load.clone(),
        )),
    ];
    let per_cycle = o.seconds as f64 / f64::from(o.cycles.max(1));
    let (mut kills, mut revived) = (0u32, 0u32);
    for _ in 0..o.cycles {
        let wait = rand::rng()
            .random_range(0.3 * per_cycle..=1.7 * per_cycle)
            .max(0.05);
        let until = Instant::now() + Duration::from_secs_f64(wait);
        while Instant::now() < until {
            if server.revive() {
                revived += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill();
        kills += 1;
        server.restart();
    }
    // A last stretch under load after the final restart, then the load stops.
    tokio::time::sleep(Duration::from_secs_f64(per_cycle.clamp(0.5, 3.0))).await;
    stop_load.store(true, Ordering::SeqCst);
    for l in load {
        let _ = l.await;
    }

    // Settle: everything delivered and accepted, the queues empty and quiet for two seconds.
    let settle = Instant::now();
    let limit = Duration::from_millis(UNKNOWN_WAIT_MS * 2 + 60_000);
    let mut quiet_since: Option<Instant> = None;
    let mut violations: Vec<String> = Vec::new();
    loop {
        if server.revive() {
            revived += 1;
        }
        let state = (
            relay.outstanding.load(Ordering::SeqCst),
            sends.outstanding.load(Ordering::SeqCst),
            db.webhook_backlog().await.unwrap_or(-1),
            open_jobs(&db).await,
        );
        if state != (0, 0, 0, 0) {
            quiet_since = None;
        } else if quiet_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2) {
            break;
        }
        if settle.elapsed() > limit {
            violations.push(format!(
                "did not settle within {} s: {} webhooks undelivered, {} sends unanswered, {} stored webhooks unapplied, {} jobs open",
                limit.as_secs(), state.0, state.1, state.2, state.3
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_in = settle.elapsed();
    stop_workers.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }

    // The checks.
    let stored: HashMap<String, i64> = db.wamid_counts().await?.into_iter().collect();
    let acked = relay.acked.lock().expect("lock").clone();
    let missing: Vec<_> = acked.iter().filter(|w| !stored.contains_key(*w)).collect();
    if !missing.is_empty() {
        violations.push(format!(
            "{} acknowledged inbound messages missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    if !doubled.is_empty() {
        violations.push(format!(
            "{} wamids stored more than once, e.g. {:?}",
            doubled.len(),
            &doubled[..doubled.len().min(5)]
        ));
    }
    let requests: Vec<Value> = reqwest::get(format!("{emulator}/_emulator/requests"))
        .await?
        .json()
        .await?;
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in requests.iter().filter(|r| {
        r["method"] == "POST"
            && r["path"].as_str().is_some_and(|p| p.ends_with("/messages"))
            && r["body"]["status"].is_null()
    }) {
        if let Some(id) = r["body"]["biz_opaque_callback_data"].as_str() {
            *per_message.entry(id.to_string()).or_default() += 1;
        }
    }
    let twice: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        violations.push(format!(
            "{} messages sent to Meta more than once, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        ));
    }
    let accepted = sends.accepted.lock().expect("lock").clone();
    let refused = sends.refused.lock().expect("lock").clone();
    if !refused.is_empty() {
        violations.push(format!(
            "{} sends refused, e.g. {:?}",
            refused.len(),
            &refused[..refused.len().min(3)]
        ));
    }
    let outbound: HashMap<String, Outbound> = outbound_messages(&db)
        .await?
        .into_iter()
        .map(|m| (m.0.clone(), m))
        .collect();
    if outbound.len() != accepted.len() {
        violations.push(format!(
            "{} outbound messages stored for {} idempotency keys",
            outbound.len(),
            accepted.len()
        ));
    }
    let (mut read, mut failed) = (0usize, 0usize);
    for (key, id) in &accepted {
        match outbound.get(id) {
            None => violations.push(format!("accepted send {key} ({id}) is not stored")),
            Some((_, status, wamid, error)) => match status.as_str() {
                "read" if wamid.is_some() && per_message.get(id) == Some(&1) => read += 1,
                "failed" if error.as_deref().is_some_and(|e| !e.is_empty()) => failed += 1,
                other => violations.push(format!(
                    "send {key} ({id}) ended `{other}` (wamid {wamid:?}, {} requests to Meta)",
                    per_message.get(id).copied().unwrap_or(0)
                )),
            },
        }
        if violations.len() > 20 {
            break;
        }
    }
    let open = open_jobs(&db).await;
    if open != 0 {
        violations.push(format!(
            "{open} outbox jobs unfinished: {:?}",
            db.outbox_counts().await?
        ));
    }
    let backlog = db.webhook_backlog().await?;
    if backlog != 0 {
        violations.push(format!("{backlog} stored webhooks never applied"));
    }
    drop(server);
    db.close().await;
    crate::scenarios::drop_pg(&o.pg, pg_name).await;

    let row = vec![
        o.engine.clone(),
        format!("{kills} (+{revived} restarts after an early exit)"),
        format!(
            "{} s (settled {:.1} s after the load)",
            started.elapsed().as_secs(),
            settled_in.as_secs_f64()
        ),
        format!(
            "{} bodies / {} messages acked ({} duplicate deliveries, {} non-200, {} refused connections)",
            relay.acked_bodies.load(Ordering::Relaxed),
            acked.len(),
            relay.duplicates.load(Ordering::Relaxed),
            relay.refused.load(Ordering::Relaxed),
            relay.unreachable.load(Ordering::Relaxed)
        ),
        format!(
            "{} accepted ({} retries): {read} read, {failed} failed; {} requests to Meta",
            accepted.len(),
            sends.retries.load(Ordering::Relaxed),
            per_message.values().sum::<usize>()
        ),
        if violations.is_empty() {
            "none".to_string()
        } else {
            violations.len().to_string()
        },
    ];
    let header = [
        "engine",
        "SIGKILLs",
        "duration",
        "webhooks (Meta-like replayer)",
        "sends (idempotent API client)",
        "violations",
    ];
    let title = format!(
        "chaos: {} kill cycles over {} s, {} webhooks/s, {} sends/s",
        o.cycles, o.seconds, o.webhook_rate, o.send_rate
    );
    if o.record {
        crate::report::publish_to(
            "docs/chaos.md",
            &title,
            &format!(
                "./x chaos --cycles {} --seconds {} (qontak-bench chaos --engine {} --webhook-rate {} --send-rate {})",
                o.cycles, o.seconds, o.engine, o.webhook_rate, o.send_rate
            ),
            &header,
            &[row],
        );
    } else {
        crate::report::print_table(&title, &header, &[row]);
    }
    if violations.is_empty() {
        println!(
            "chaos: every invariant held (server log: {})",
            log.display()
        );
        let _ = std::fs::remove_dir_all(&data);
        Ok(())
    } else {
        for v in &violations {
            eprintln!("violation: {v}");
        }
        anyhow::bail!(
            "chaos: {} invariant violations (server log: {})",
            violations.len(),
            log.display()
        )
    }
}
