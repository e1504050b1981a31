//! The benchmark scenarios.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::server::db::outbox::NewOutbound;
use app::server::db::{Db, NewNumber};
use app::server::webhook::{sign, verify_signature};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::load::{self, Shot};
use crate::report::publish;

pub(crate) const SECRET: &str = "bench-app-secret";
pub(crate) const PNID: &str = "100000000000002";
pub(crate) const WABA: &str = "100000000000001";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process that is killed and reaped when dropped, whatever path the benchmark takes.
pub struct Proc(Child);

impl Proc {
    /// Starts `cmd`; the process is killed when the `Proc` is dropped.
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Proc> {
        Ok(Proc(cmd.spawn()?))
    }

    /// The process id (for reading its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command for `program`, pinned to the last core when `taskset` exists (the load stays on
/// core 0).
pub(crate) fn pinned_command(program: &str) -> Command {
    let cores = machine_cores();
    let pin = cores >= 2 && Command::new("taskset").arg("-V").output().is_ok();
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg((cores - 1).to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The machine's cores, whatever this process is pinned to (`./x bench` pins it to core 0, and
/// `available_parallelism` counts only the cores a process may use: 1 there, which left every
/// "pinned" server on the load's core).
pub(crate) fn machine_cores() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
                    None => r.parse::<usize>().ok().map(|_| 1),
                })
                .sum::<Option<usize>>()
        })
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Runs `program args` pinned to the last core when `taskset` exists (the load stays on core 0).
fn spawn_pinned(program: &str, args: &[&str], env: &[(&str, String)]) -> Proc {
    placed(program, args, env, Placement::Pinned)
}

pub(crate) async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

pub(crate) fn exe(name: &str) -> String {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)));
    match here {
        Some(p) if p.exists() => p.display().to_string(),
        _ => format!("target/release/{name}"),
    }
}

/// A fresh database of the engine with a workspace and one connected number.
pub(crate) async fn fresh_db(
    engine: &str,
    pg: &str,
    key: &app::server::crypto::SecretKey,
) -> anyhow::Result<(String, Db, String, Option<String>)> {
    let stamp = app::server::new_id().replace('-', "");
    let (url, pg_name) = match engine {
        "postgres" => {
            let name = format!("qontak_bench_{stamp}");
            let admin = sqlx::PgPool::connect(&format!("{pg}/postgres")).await?;
            sqlx::Executor::execute(
                &admin,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await?;
            admin.close().await;
            (format!("{pg}/{name}"), Some(name))
        }
        _ => {
            let dir = std::env::temp_dir().join(format!("qontak-bench-{stamp}"));
            std::fs::create_dir_all(&dir)?;
            (
                format!("sqlite://{}/qontak.db?mode=rwc", dir.display()),
                None,
            )
        }
    };
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    let ws = db.create_workspace("Bench").await?;
    let number = db
        .connect_number(&NewNumber {
            workspace_id: &ws.id,
            waba_id: WABA,
            phone_number_id: PNID,
            display_phone: Some("+15550100001"),
            access_token_enc: &key.encrypt("bench-token"),
            key_id: key.id(),
        })
        .await?;
    Ok((url, db, number.id, pg_name))
}

pub(crate) async fn drop_pg(pg: &str, name: Option<String>) {
    if let Some(name) = name {
        if let Ok(admin) = sqlx::PgPool::connect(&format!("{pg}/postgres")).await {
            let _ = sqlx::Executor::execute(
                &admin,
                sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
            )
            .await;
            admin.close().await;
        }
    }
}

pub(crate) fn text(run: &str, i: usize, j: usize) -> Value {
    json!({"from": format!("1555{:07}", i % 5000), "id": format!("wamid.{run}.{i}.{j}"), "timestamp": "1700000000", "type": "text", "text": {"body": format!("Hello, is order {i} on its way?")}})
}

/// Real-shaped signed bodies: single texts, images, statuses, and batches of 1–10 entries.
pub(crate) fn corpus(run: &str, n: usize) -> Vec<Shot> {
    (0..n)
        .map(|i| {
            let wa = format!("1555{:07}", i % 5000);
            let value = |messages: Vec<Value>| json!({"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550100001", "phone_number_id": PNID},
                "contacts": [{"profile": {"name": format!("Customer {}", i % 5000)}, "wa_id": wa}], "messages": messages});
            let entry = |v: Value| json!({"id": WABA, "changes": [{"field": "messages", "value": v}]});
            let (entries, messages) = match i % 10 {
                0..=5 => (vec![entry(value(vec![text(run, i, 0)]))], 1),
                6 => (vec![entry(value(vec![json!({"from": wa, "id": format!("wamid.{run}.{i}.0"), "timestamp": "1700000000", "type": "image",
                    "image": {"id": format!("media{i}"), "mime_type": "image/jpeg", "sha256": "Q29mZmVl", "caption": "photo"}})]))], 1),
                7 => (vec![entry(json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
                    "statuses": [{"id": format!("wamid.out.{run}.{i}"), "status": "delivered", "timestamp": "1700000001", "recipient_id": wa}]}))], 0),
                _ => {
                    let k = 1 + i % 10;
                    ((0..k).map(|j| entry(value(vec![text(run, i, j)]))).collect(), k)
                }
            };
            let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": entries})).expect("json");
            Shot { signature: sign(SECRET.as_bytes(), &body), body, messages }
        })
        .collect()
}

/// The bare handler: verify the signature over the raw bytes and parse the JSON, nothing else.
pub async fn ceiling(listen: &str, secret: String) -> anyhow::Result<()> {
    let secret = Arc::new(secret);
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/webhooks/whatsapp",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let secret = secret.clone();
                async move {
                    let h = headers
                        .get("x-hub-signature-256")
                        .and_then(|v| v.to_str().ok());
                    if verify_signature(secret.as_bytes(), &body, h).is_err() {
                        return StatusCode::UNAUTHORIZED;
                    }
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(_) => StatusCode::OK,
                        Err(_) => StatusCode::BAD_REQUEST,
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// `qontak-bench emulator` on `emu_port`, its status webhooks going to the Qontak on `port`.
pub(crate) fn emulator_args(emu_port: u16, port: u16) -> Vec<String> {
    vec![
        "emulator".into(),
        "--listen".into(),
        format!("127.0.0.1:{emu_port}"),
        "--webhook-url".into(),
        format!("http://127.0.0.1:{port}/webhooks/whatsapp"),
        "--secret".into(),
        SECRET.into(),
    ]
}

/// The emulator in a process of its own; its statuses go to `webhook_url`.
pub async fn emulator(listen: &str, webhook_url: &str, secret: &str) -> anyhow::Result<()> {
    let mut config = qontak_meta_emulator::Config::new(webhook_url, secret);
    config.status_delay = Duration::from_millis(50);
    config.numbers = vec![qontak_meta_emulator::Number {
        phone_number_id: PNID.into(),
        waba_id: WABA.into(),
        display_phone_number: "+1 555-010-0001".into(),
        verified_name: "Bench".into(),
    }];
    let listener = tokio::net::TcpListener::bind(listen).await?;
    qontak_meta_emulator::serve(listener, config).await?;
    Ok(())
}

/// Where the benchmark puts the server it measures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The server on the last core, the load generator (this process, pinned by `./x bench`)
    /// on core 0: the server's own cost, undisturbed.
    Pinned,
    /// The server free on every core, sharing them with the load generator's one thread: the
    /// way the ceiling (`wrk` beside the handler, about 71,000/s) was measured.
    Shared,
}

impl Placement {
    fn label(self) -> &'static str {
        match self {
            Placement::Pinned => "server on 1 core",
            Placement::Shared => "server on 2 cores",
        }
    }
}

/// `program` placed as `placement` says (children inherit this process's pinning, so a shared
/// server is given every core back explicitly).
fn placed(program: &str, args: &[&str], env: &[(&str, String)], placement: Placement) -> Proc {
    let cores = machine_cores();
    let taskset = Command::new("taskset").arg("-V").output().is_ok();
    let mut cmd = match placement {
        Placement::Pinned => pinned_command(program),
        Placement::Shared if taskset => {
            let mut c = Command::new("taskset");
            c.arg("-c")
                .arg(format!("0-{}", cores.max(1) - 1))
                .arg(program);
            c
        }
        Placement::Shared => Command::new(program),
    };
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
    )
}

fn qontak_env(db_url: &str, port: u16, data: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db_url.to_string()),
        ("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}")),
        ("QONTAK_DATA_DIR", data.display().to_string()),
        (
            "QONTAK_SECRET_KEY",
            std::env::var("BENCH_KEY").unwrap_or_default(),
        ),
        ("META_APP_SECRET", SECRET.to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]
}

pub(crate) fn start_qontak(db_url: &str, port: u16, data: &Path, extra: &[(&str, String)]) -> Proc {
    let mut env = qontak_env(db_url, port, data);
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    spawn_pinned(&exe("qontak"), &["serve"], &env)
}

/// Posts the corpus with the raw load generator (see [`load::raw_run`]).
async fn flood_webhooks(
    port: u16,
    shots: Arc<Vec<Shot>>,
    connections: usize,
    duration: Duration,
) -> load::Outcome {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let handle = load::raw_run(addr, "/webhooks/whatsapp", shots, connections, duration);
    tokio::task::spawn_blocking(move || handle.join().expect("the load generator"))
        .await
        .expect("the load generator")
}

pub async fn webhooks(
    seconds: u64,
    connections: usize,
    engine: &str,
    pg: &str,
    placements: &[Placement],
) -> anyhow::Result<()> {
    let engines: Vec<&str> = if engine == "both" {
        vec!["sqlite", "postgres"]
    } else {
        vec![engine]
    };
    let duration = Duration::from_secs(seconds);
    let mut rows = Vec::new();
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;

    for (round, &placement) in placements.iter().enumerate() {
        // The ceiling, same corpus, load and placement.
        let port = free_port();
        let ceiling = placed(
            &exe("qontak-bench"),
            &[
                "ceiling",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--secret",
                SECRET,
            ],
            &[],
            placement,
        );
        wait_ready(&format!("http://127.0.0.1:{port}/healthz")).await;
        let shots = Arc::new(corpus(&format!("ceiling{round}"), 1_000_000));
        let c = flood_webhooks(port, shots, connections, duration).await;
        drop(ceiling);
        let ceiling_rate = c.rate();
        rows.push(vec![
            format!("bare axum: verify + parse (ceiling), {}", placement.label()),
            format!("{ceiling_rate:.0}"),
            format!("{:.2}", c.p50_ms()),
            format!("{:.2}", c.p99_ms()),
            "100%".into(),
            "—".into(),
            c.errors.to_string(),
        ]);

        for &engine in &engines {
            let (url, db, _, pg_name) = fresh_db(engine, pg, &key).await?;
            let port = free_port();
            let data =
                std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
            let server = placed(
                &exe("qontak"),
                &["serve"],
                &qontak_env(&url, port, &data),
                placement,
            );
            wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
            let shots = Arc::new(corpus(&format!("{engine}{round}"), 1_000_000));
            let started = Instant::now();
            let o = flood_webhooks(port, shots, connections, duration).await;
            // Processing: until every acknowledged body is applied.
            while db.has_webhook_backlog().await? && started.elapsed() < Duration::from_secs(600) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let processed_in = started.elapsed();
            let stored: i64 = db.wamid_counts().await?.len() as i64;
            drop(server);
            db.close().await;
            drop_pg(pg, pg_name).await;
            let _ = std::fs::remove_dir_all(&data);
            let label = match engine {
                "postgres" => "Qontak, Postgres (synchronous_commit=on)",
                _ => "Qontak, SQLite (WAL; FULL acks, NORMAL applies synced before events)",
            };
            rows.push(vec![
                format!("{label}, {}", placement.label()),
                format!("{:.0}", o.rate()),
                format!("{:.2}", o.p50_ms()),
                format!("{:.2}", o.p99_ms()),
                format!("{:.0}%", 100.0 * o.rate() / ceiling_rate),
                format!(
                    "{:.0} msg/s ({} of {} acked messages stored)",
                    stored as f64 / processed_in.as_secs_f64(),
                    stored,
                    o.messages_acked
                ),
                o.errors.to_string(),
            ]);
        }
    }
    let which = match placements {
        [Placement::Pinned] => "pinned",
        [Placement::Shared] => "shared",
        _ => "both",
    };
    publish(
        &format!("webhooks: {connections} connections (raw HTTP/1.1 load generator, one thread), {seconds} s per target"),
        &format!("./x bench webhooks (qontak-bench webhooks --seconds {seconds} --connections {connections} --engine {engine} --placement {which})"),
        &["target", "acknowledged webhooks/s", "p50 ms", "p99 ms", "of ceiling", "processing (webhook → visible in the API)", "errors"],
        &rows,
    );
    Ok(())
}

pub async fn send(messages: usize, engine: &str, pg: &str) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;

    // The emulator's own ceiling: sends posted straight at it.
    let emu_port = free_port();
    let sink = free_port();
    let emu = spawn_pinned(
        &exe("qontak-bench"),
        &[
            "emulator",
            "--listen",
            &format!("127.0.0.1:{emu_port}"),
            "--webhook-url",
            &format!("http://127.0.0.1:{sink}/none"),
            "--secret",
            SECRET,
        ],
        &[],
    );
    wait_ready(&format!("http://127.0.0.1:{emu_port}/_emulator/health")).await;
    let shots: Vec<Shot> = (0..400_000)
        .map(|i| {
            let body = serde_json::to_vec(&json!({"messaging_product": "whatsapp", "to": format!("1555{:07}", i % 5000), "type": "text", "text": {"body": "ceiling"}})).expect("json");
            Shot { body, signature: String::new(), messages: 1 }
        })
        .collect();
    let url = format!("http://127.0.0.1:{emu_port}/v25.0/{PNID}/messages");
    let c = load_with_auth(&url, Arc::new(shots), 64, Duration::from_secs(5)).await;
    drop(emu);
    rows.push(vec![
        "emulator's own request ceiling (64 connections)".into(),
        format!("{:.0}", c.rate()),
        format!("{:.1}", c.p99_ms()),
        "—".into(),
        c.errors.to_string(),
    ]);

    for (label, rate, count) in [
        ("outbox drain, rate set high", 100_000i64, messages),
        ("outbox drain, paced at 80/s", 80, 1_000usize),
    ] {
        let (db_url, db, number_id, pg_name) = fresh_db(engine, pg, &key).await?;
        db.set_throughput(&number_id, rate).await?;
        let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
        let port = free_port();
        let emu_port = free_port();
        let args = emulator_args(emu_port, port);
        let emu = spawn_pinned(
            &exe("qontak-bench"),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        wait_ready(&format!("http://127.0.0.1:{emu_port}/_emulator/health")).await;
        for i in 0..count {
            let wa = format!("1555{:07}", i % 5000);
            let contact = db.contact_for_wa_id(&ws, &wa).await?;
            let content = json!({"body": format!("Your order {i} shipped")});
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
            .await?;
        }
        let data =
            std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
        let started = Instant::now();
        let server = start_qontak(
            &db_url,
            port,
            &data,
            &[("META_GRAPH_URL", format!("http://127.0.0.1:{emu_port}"))],
        );
        loop {
            let counts = db.outbox_counts().await?;
            let open: i64 = counts
                .iter()
                .filter(|(s, _)| s != "done" && s != "failed")
                .map(|(_, n)| n)
                .sum();
            if open == 0 || started.elapsed() > Duration::from_secs(900) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (first, last, p99) = db.sent_span_ms(&ws).await?;
        let requests: Vec<Value> =
            reqwest::get(format!("http://127.0.0.1:{emu_port}/_emulator/requests"))
                .await?
                .json()
                .await?;
        let throttled = requests
            .iter()
            .filter(|r| r["response_status"] == 429)
            .count();
        let sends = requests
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/messages")))
            .count();
        drop(server);
        drop(emu);
        db.close().await;
        drop_pg(pg, pg_name).await;
        let span = ((last - first) as f64 / 1000.0).max(0.001);
        rows.push(vec![
            format!("{label} ({count} messages, {engine})"),
            format!("{:.0}", (count as f64 - 1.0) / span),
            format!("{:.0}", p99 as f64),
            format!("{throttled} × 429; {sends} send requests"),
            "0".into(),
        ]);
    }
    publish(
        &format!("send: {messages} queued messages to the emulator"),
        &format!("./x bench send (qontak-bench send --messages {messages} --engine {engine})"),
        &[
            "target",
            "messages/s (first to last sent)",
            "p99 queue→sent ms",
            "Meta answers",
            "errors",
        ],
        &rows,
    );
    Ok(())
}

async fn load_with_auth(
    url: &str,
    shots: Arc<Vec<Shot>>,
    connections: usize,
    duration: Duration,
) -> load::Outcome {
    load::run_with_header(
        url,
        shots,
        connections,
        duration,
        ("authorization", "Bearer bench-token"),
    )
    .await
}

/// Valid webhooks at a steady rate, alone and then under a flood of badly signed ones at
/// `factor` times that rate: how much the flood raises the valid ones' latency. Qontak on
/// SQLite; the per-IP webhook rate limit is off so the flood reaches the signature check (an
/// attacker spread over many addresses), and the server logs at its usual level.
pub async fn flood(seconds: u64, rate: u32, factor: u32, rounds: u32) -> anyhow::Result<()> {
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let duration = Duration::from_secs(seconds);
    let n = (rate as u64 * seconds + 100) as usize;
    let bad: Arc<Vec<Shot>> = Arc::new(
        corpus("flood", 1000)
            .into_iter()
            .map(|s| Shot {
                signature: format!("sha256={}", "0".repeat(64)),
                ..s
            })
            .collect(),
    );
    let mut rows = Vec::new();
    let mut rises = Vec::new();
    // Two servers: as deployed (the refused-webhook limit on, the flood from another address
    // than Meta's), and the limit off with the flood from Meta's own address (the bare cost of
    // refusing every bad signature). In each, clean and flooded runs alternate, `rounds` times,
    // so a drift of the disk's fsync latency (which sets the valid webhooks' p99) weighs on
    // both sides alike; the p99s compared are those of all clean and all flooded requests.
    type Phase = (
        &'static str,
        Vec<(&'static str, String)>,
        Option<std::net::IpAddr>,
    );
    let phases: [Phase; 2] = [
        (
            "limit on (default), flood from another address",
            vec![],
            Some([127, 0, 0, 2].into()),
        ),
        (
            "limit off, flood from the same address",
            vec![("QONTAK_RATE_WEBHOOK", "0".into())],
            None,
        ),
    ];
    for (phase, env, from) in phases {
        let (url, db, _, _) = fresh_db("sqlite", "", &key).await?;
        let port = free_port();
        let data =
            std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
        let server = start_qontak(&url, port, &data, &env);
        wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
        let target = format!("http://127.0.0.1:{port}/webhooks/whatsapp");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        // Warm-up, not reported: connections, caches, the first commits.
        let warm = Arc::new(corpus(&format!("warm{phase}"), n));
        let _ = load::paced(&target, warm, rate, Duration::from_secs(2), &[200], None).await;
        let (mut clean, mut flooded, mut flood) = (None, None, None);
        for round in 0..rounds {
            // ABBA: clean first in even rounds, flooded first in odd ones, so a drift over the
            // run weighs on both sides alike.
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for flooding in order {
                if !flooding {
                    let shots = Arc::new(corpus(&format!("clean{phase}{round}"), n));
                    let c = load::paced(&target, shots, rate, duration, &[200], None).await;
                    clean = Some(merge(clean, c));
                    continue;
                }
                let shots = Arc::new(corpus(&format!("flooded{phase}{round}"), n));
                let attacker = load::raw_paced(
                    addr,
                    from,
                    "/webhooks/whatsapp",
                    bad.clone(),
                    rate * factor,
                    duration,
                    &[401, 429],
                );
                let v = load::paced(&target, shots, rate, duration, &[200], None).await;
                let f = tokio::task::spawn_blocking(move || attacker.join())
                    .await?
                    .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
                flooded = Some(merge(flooded, v));
                flood = Some(merge(flood, f));
            }
        }
        let (clean, flooded, flood) = (
            clean.expect("at least one round"),
            flooded.expect("at least one round"),
            flood.expect("at least one round"),
        );
        let row = |label: String, o: &load::Outcome, flood: Option<&load::Outcome>| {
            vec![
                label,
                format!("{:.0}", o.rate()),
                format!("{:.2}", o.p50_ms()),
                format!("{:.2}", o.p99_ms()),
                o.errors.to_string(),
                flood.map_or("—".into(), |f| {
                    format!(
                        "{:.0}/s answered 401 or 429 ({} other answers)",
                        f.rate(),
                        f.errors
                    )
                }),
            ]
        };
        rows.push(row(
            format!("{phase}: valid alone, {rate}/s, {rounds} × {seconds} s"),
            &clean,
            None,
        ));
        rows.push(row(
            format!(
                "{phase}: valid under a {}/s bad-signature flood, {rounds} × {seconds} s",
                rate * factor
            ),
            &flooded,
            Some(&flood),
        ));
        drop(server);
        db.close().await;
        let _ = std::fs::remove_dir_all(&data);
        rises.push((
            phase,
            100.0 * (flooded.p99_ms() - clean.p99_ms()) / clean.p99_ms(),
        ));
    }
    for (phase, rise) in rises {
        rows.push(vec![
            format!("{phase}: p99 rise under the flood"),
            "—".into(),
            "—".into(),
            format!("{rise:+.0}%"),
            "—".into(),
            "target ≤ +20%".into(),
        ]);
    }
    publish(
        &format!("flood: {rate} valid webhooks/s, {factor}× as many with bad signatures, {rounds} rounds of {seconds} s clean and {seconds} s flooded"),
        &format!("./x bench flood (qontak-bench flood --seconds {seconds} --rate {rate} --factor {factor} --rounds {rounds})"),
        &["run", "valid webhooks/s", "p50 ms", "p99 ms", "valid errors", "flood"],
        &rows,
    );
    Ok(())
}

/// Two runs' outcomes as one: counts and histograms added, durations summed.
fn merge(a: Option<load::Outcome>, b: load::Outcome) -> load::Outcome {
    let Some(mut a) = a else { return b };
    a.ok += b.ok;
    a.errors += b.errors;
    a.messages_acked += b.messages_acked;
    a.elapsed += b.elapsed;
    let _ = a.hist.add(&b.hist);
    a.acked.extend(b.acked);
    a
}
