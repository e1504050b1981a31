//! `./x bench peers`: the webhook receivers people build today, on the same machine, driven with
//! the same signed corpus and the same load as Qontak, and then SIGKILLed to see what they lost.
//!
//! The peers live in bench/peers/ (installed by ./x into a scratch virtualenv and node folder):
//! - a plain FastAPI + uvicorn receiver (2 workers) that verifies the signature, stores every
//!   message of every entry and change in SQLite (WAL, synchronous=FULL) and then answers;
//! - pywa's stock webhook route on FastAPI (2 workers) with an `on_message` handler storing into
//!   SQLite: pywa answers first and runs the handler afterwards, on the first message only;
//! - Express with whatsapp-api-js's `post()` and an `on.message` handler storing with
//!   better-sqlite3 before the answer, but `post()` hands it only the first message.
//!
//! Each target runs pinned to the last core (the load generator stays on core 0), gets `seconds`
//! of load from `connections` connections, and is SIGKILLed (its whole process group) the moment
//! the load stops. The wamids of every acknowledged webhook are then looked up in the database it
//! left behind. Qontak runs the same way on SQLite; after its SIGKILL it is started again and left
//! to work through the webhooks it acknowledged (that is its promise), then the same lookup.
//!
//! The corpus is the `webhooks` benchmark's (texts, images, statuses, batches of 9–10 entries)
//! with the business-scoped user ids Meta's payloads carry since 2026 (`contacts[].user_id`,
//! `messages[].from_user_id`): pywa 4.5 refuses a message without them.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use app::server::webhook::sign;
use serde_json::Value;

use crate::load::{self, Shot};
use crate::report::publish;
use crate::scenarios::{self, free_port, PNID, SECRET};

pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    /// Which of qontak, fastapi, pywa, express to run.
    pub targets: Vec<String>,
    /// bench/peers.
    pub dir: PathBuf,
    /// The virtualenv holding bench/peers/requirements.txt.
    pub venv: PathBuf,
}

/// A target's name, how it is shown, and whether it stores before it answers.
struct Target {
    name: &'static str,
    stores_first: bool,
}

const TARGETS: [Target; 4] = [
    Target {
        name: "qontak",
        stores_first: true,
    },
    Target {
        name: "fastapi",
        stores_first: true,
    },
    Target {
        name: "pywa",
        stores_first: false,
    },
    Target {
        name: "express",
        stores_first: true,
    },
];

/// What one target did.
struct Measured {
    outcome: load::Outcome,
    bad_signature: String,
    acked_messages: usize,
    missing: usize,
    note: String,
}

/// A process group: the peer and whatever it forks (uvicorn's workers), SIGKILLed together.
struct Group(Option<Child>);

impl Group {
    fn spawn(
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
        cwd: &Path,
        log: &Path,
    ) -> anyhow::Result<Group> {
        use std::os::unix::process::CommandExt;
        let out = File::create(log)?;
        let mut cmd = scenarios::pinned_command(program);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        Ok(Group(Some(child)))
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL to every process of the group, then reap the leader.
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `webhooks` corpus with business-scoped user ids added, signed again.
fn corpus(n: usize) -> Vec<Shot> {
    fn each<'a>(value: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
        value
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
    }
    fn bsuid(of: &Value) -> Value {
        Value::from(format!("US.{}", of.as_str().unwrap_or_default()))
    }
    scenarios::corpus("peers", n)
        .into_iter()
        .map(|shot| {
            let mut v: Value = serde_json::from_slice(&shot.body).expect("corpus json");
            for entry in each(&mut v, "entry") {
                for change in each(entry, "changes") {
                    let Some(value) = change.get_mut("value") else {
                        continue;
                    };
                    for c in each(value, "contacts") {
                        c["user_id"] = bsuid(&c["wa_id"]);
                    }
                    for m in each(value, "messages") {
                        m["from_user_id"] = bsuid(&m["from"]);
                    }
                    for s in each(value, "statuses") {
                        s["recipient_user_id"] = bsuid(&s["recipient_id"]);
                    }
                }
            }
            let body = serde_json::to_vec(&v).expect("json");
            Shot {
                signature: sign(SECRET.as_bytes(), &body),
                body,
                messages: shot.messages,
            }
        })
        .collect()
}

/// The wamids of the inbound messages a body carries: every entry, change and message.
fn wamids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let mut out = Vec::new();
    for entry in v["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            for m in change["value"]["messages"].as_array().into_iter().flatten() {
                if let Some(id) = m["id"].as_str() {
                    out.push(id.to_string());
                }
            }
        }
    }
    out
}

/// The acknowledged wamids, and how many of them `stored` lacks.
fn missing(shots: &[Shot], outcome: &load::Outcome, stored: &HashSet<String>) -> (usize, usize) {
    let acked: Vec<String> = outcome
        .acked
        .iter()
        .filter_map(|&i| shots.get(i))
        .flat_map(|s| wamids(&s.body))
        .collect();
    let lost = acked.iter().filter(|w| !stored.contains(*w)).count();
    (acked.len(), lost)
}

/// The wamids in a peer's SQLite file (after a SIGKILL: opening it replays the WAL).
async fn stored_in(path: &Path) -> anyhow::Result<HashSet<String>> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?;
    let rows: Vec<String> = sqlx::query_scalar("SELECT wamid FROM messages")
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    Ok(rows.into_iter().collect())
}

/// How the target answers a body with a wrong signature (a status code, or why none).
async fn bad_signature(url: &str, shot: &Shot) -> String {
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(shot.body.clone())
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => format!("{} (accepted!)", r.status().as_u16()),
        Ok(r) => r.status().as_u16().to_string(),
        Err(_) => "no answer".into(),
    }
}

async fn ready(url: &str, group: &mut Group, log: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if !group.alive() {
            bail!("it exited before answering (log: {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} never answered (log: {})", log.display())
}

/// The version pinned for `package` in requirements.txt (`name==x`) or package.json
/// (`"name": "x"`).
fn pinned(file: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix(&format!("{package}=="))
                .or_else(|| l.strip_prefix(&format!("\"{package}\": \"")))
                .map(|v| v.trim_end_matches([',', '"']).to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Starts a peer, loads it, SIGKILLs it, and counts what it lost.
async fn peer(
    o: &Options,
    name: &str,
    shots: &Arc<Vec<Shot>>,
    scratch: &Path,
) -> anyhow::Result<Measured> {
    let dir = std::fs::canonicalize(&o.dir)
        .with_context(|| format!("{} (run from the repository root)", o.dir.display()))?;
    let db = scratch.join(format!("{name}.db"));
    let log = scratch.join(format!("{name}.log"));
    let port = free_port();
    let env = vec![
        ("DB", db.display().to_string()),
        ("APP_SECRET", SECRET.to_string()),
        ("PHONE_ID", PNID.to_string()),
        ("PORT", port.to_string()),
        ("PYTHONDONTWRITEBYTECODE", "1".to_string()),
        ("NODE_ENV", "production".to_string()),
    ];
    let port_s = port.to_string();
    let mut group = match name {
        "express" => {
            let cwd = dir.join("express");
            if !cwd.join("node_modules").is_dir() {
                bail!(
                    "{} has no node_modules: run ./x bench peers, which installs them",
                    cwd.display()
                );
            }
            Group::spawn("node", &["server.js"], &env, &cwd, &log)?
        }
        _ => {
            let python = o.venv.join("bin/python");
            if !python.exists() {
                bail!(
                    "no virtualenv at {}: run ./x bench peers, which installs it",
                    o.venv.display()
                );
            }
            let module = format!("{name}_receiver:app");
            let args = [
                "-m",
                "uvicorn",
                &module,
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--workers",
                "2",
                "--log-level",
                "warning",
                "--no-access-log",
            ];
            Group::spawn(&python.display().to_string(), &args, &env, &dir, &log)?
        }
    };
    ready(
        &format!("http://127.0.0.1:{port}/healthz"),
        &mut group,
        &log,
    )
    .await?;
    // uvicorn's second worker comes up a moment after the first one answers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (bad, outcome) = drive(port, o, shots).await;
    group.kill();
    let stored = stored_in(&db)
        .await
        .with_context(|| format!("reading {} (log: {})", db.display(), log.display()))?;
    let (acked_messages, missing) = missing(shots, &outcome, &stored);
    Ok(Measured {
        outcome,
        bad_signature: bad,
        acked_messages,
        missing,
        note: String::new(),
    })
}

/// A badly signed request first (its answer is reported), then the load, on the target's webhook.
async fn drive(port: u16, o: &Options, shots: &Arc<Vec<Shot>>) -> (String, load::Outcome) {
    let url = format!("http://127.0.0.1:{port}/webhooks/whatsapp");
    let bad = bad_signature(&url, &shots[0]).await;
    let outcome = load::run(
        &url,
        shots.clone(),
        o.connections,
        Duration::from_secs(o.seconds),
    )
    .await;
    (bad, outcome)
}

/// Qontak on SQLite, the same way; after the SIGKILL it restarts and drains what it acknowledged.
async fn qontak(o: &Options, shots: &Arc<Vec<Shot>>) -> anyhow::Result<Measured> {
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let (db_url, db, _, _) = scenarios::fresh_db("sqlite", "", &key).await?;
    let data = std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
    // No Meta here: media downloads for the corpus's images fail at once on a closed local port.
    let env = [(
        "META_GRAPH_URL",
        format!("http://127.0.0.1:{}", free_port()),
    )];
    let port = free_port();
    let server = scenarios::start_qontak(&db_url, port, &data, &env);
    scenarios::wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
    let (bad, outcome) = drive(port, o, shots).await;
    drop(server); // SIGKILL
    let backlog = db.webhook_backlog().await?;
    let port = free_port();
    let restarted = Instant::now();
    let server = scenarios::start_qontak(&db_url, port, &data, &env);
    scenarios::wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
    while db.has_webhook_backlog().await? && restarted.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = restarted.elapsed();
    let stored: HashSet<String> = db
        .wamid_counts()
        .await?
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    drop(server);
    db.close().await;
    let _ = std::fs::remove_dir_all(&data);
    // fresh_db's folder: sqlite://<folder>/qontak.db?mode=rwc
    if let Some(folder) = db_url
        .strip_prefix("sqlite://")
        .and_then(|p| p.split('?').next())
        .and_then(|p| Path::new(p).parent())
    {
        let _ = std::fs::remove_dir_all(folder);
    }
    let (acked_messages, missing) = missing(shots, &outcome, &stored);
    Ok(Measured {
        outcome,
        bad_signature: bad,
        acked_messages,
        missing,
        note: format!(
            "; restarted, {backlog} queued webhooks applied in {:.1} s",
            drained.as_secs_f64()
        ),
    })
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    for t in &o.targets {
        if !TARGETS.iter().any(|k| k.name == t) {
            bail!("unknown target {t}: qontak, fastapi, pywa or express");
        }
    }
    let requirements = o.dir.join("requirements.txt");
    let package = o.dir.join("express/package.json");
    let label = |name: &str| match name {
        "qontak" => "Qontak, SQLite (WAL, synchronous=FULL)".to_string(),
        "fastapi" => format!(
            "FastAPI {} + uvicorn {} (2 workers) + sqlite3: stores every message, then answers",
            pinned(&requirements, "fastapi"),
            pinned(&requirements, "uvicorn[standard]")
        ),
        "pywa" => format!(
            "pywa {} stock route on FastAPI (2 workers) + sqlite3: answers, then stores",
            pinned(&requirements, "pywa")
        ),
        _ => format!(
            "Express {} + whatsapp-api-js {} post() + better-sqlite3 {}: stores, then answers",
            pinned(&package, "express"),
            pinned(&package, "whatsapp-api-js"),
            pinned(&package, "better-sqlite3")
        ),
    };

    // Enough bodies that Qontak does not run out at 40,000 webhooks/s; every target gets the
    // same bytes (each starts on an empty database).
    let n = (o.seconds as usize * 40_000).max(10_000);
    let shots = Arc::new(corpus(n));
    let scratch = std::env::temp_dir().join(format!("qontak-peers-{}", app::server::new_id()));
    std::fs::create_dir_all(&scratch)?;

    let mut results: Vec<(&Target, anyhow::Result<Measured>)> = Vec::new();
    for t in TARGETS
        .iter()
        .filter(|t| o.targets.iter().any(|n| n == t.name))
    {
        println!("peers: {} …", t.name);
        let m = match t.name {
            "qontak" => qontak(&o, &shots).await,
            name => peer(&o, name, &shots, &scratch).await,
        };
        if let Err(e) = &m {
            eprintln!("peers: {} failed: {e:#}", t.name);
        }
        results.push((t, m));
    }

    let ours = results
        .iter()
        .find(|(t, _)| t.name == "qontak")
        .and_then(|(_, m)| m.as_ref().ok())
        .map(|m| (m.outcome.rate(), m.missing));
    let mut rows = Vec::new();
    for (t, m) in &results {
        let row = match m {
            Ok(m) => {
                let o = &m.outcome;
                vec![
                    label(t.name),
                    format!("{:.0}", o.rate()),
                    format!("{:.2}", o.p50_ms()),
                    format!("{:.2}", o.p99_ms()),
                    format!("{} in {} webhooks", m.acked_messages, o.ok),
                    format!(
                        "{} ({:.1}%){}",
                        m.missing,
                        100.0 * m.missing as f64 / m.acked_messages.max(1) as f64,
                        m.note
                    ),
                    match ours {
                        Some(_) if t.name == "qontak" => "—".into(),
                        Some((rate, _)) => format!("{:.1}×", rate / o.rate().max(0.001)),
                        None => "—".into(),
                    },
                    m.bad_signature.clone(),
                    o.errors.to_string(),
                ]
            }
            Err(e) => {
                let mut row = vec![label(t.name), format!("failed: {e:#}")];
                row.resize(9, "—".into());
                row
            }
        };
        rows.push(row);
    }
    let best = results
        .iter()
        .filter(|(t, _)| t.name != "qontak" && t.stores_first)
        .filter_map(|(t, m)| m.as_ref().ok().map(|m| (t.name, m.outcome.rate())))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((rate, lost)), Some((name, best_rate))) = (ours, best) {
        let ratio = rate / best_rate.max(0.001);
        let met = ratio >= 10.0 && lost == 0;
        let mut row = vec![
            format!(
                "goal: Qontak ≥ 10× the best peer that stores before answering ({name}), 0 missing"
            ),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            lost.to_string(),
            format!("{ratio:.1}×"),
            if met { "met" } else { "not met" }.into(),
        ];
        row.resize(9, "—".into());
        rows.push(row);
    }
    if results.iter().all(|(_, m)| m.is_ok()) {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        eprintln!(
            "peers: the peers' databases and logs are kept in {}",
            scratch.display()
        );
    }
    let (seconds, connections) = (o.seconds, o.connections);
    publish(
        &format!(
            "peers: {connections} connections, {seconds} s per target, SIGKILL when the load stops"
        ),
        &format!(
            "./x bench peers (qontak-bench peers --seconds {seconds} --connections {connections} --targets {})",
            o.targets.join(",")
        ),
        &[
            "target",
            "acknowledged webhooks/s",
            "p50 ms",
            "p99 ms",
            "messages acknowledged",
            "acknowledged messages missing after SIGKILL",
            "Qontak's ratio",
            "bad signature →",
            "errors",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_carries_bsuids_and_every_wamid_is_found() {
        let shots = corpus(20);
        let total: usize = shots.iter().map(|s| s.messages).sum();
        let found: usize = shots.iter().map(|s| wamids(&s.body).len()).sum();
        assert_eq!(total, found);
        let v: Value = serde_json::from_slice(&shots[0].body).unwrap();
        let value = &v["entry"][0]["changes"][0]["value"];
        assert!(value["contacts"][0]["user_id"]
            .as_str()
            .unwrap()
            .starts_with("US."));
        assert!(value["messages"][0]["from_user_id"].is_string());
        // Signed again after the change.
        assert_eq!(shots[0].signature, sign(SECRET.as_bytes(), &shots[0].body));
        // Statuses get no contacts key they did not have.
        let status: Value = serde_json::from_slice(&shots[7].body).unwrap();
        assert!(status["entry"][0]["changes"][0]["value"]
            .get("contacts")
            .is_none());
    }

    #[test]
    fn pinned_versions_are_read() {
        let dir = std::env::temp_dir().join(format!("peers-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let req = dir.join("requirements.txt");
        std::fs::write(&req, "# x\npywa==4.5.0\nuvicorn[standard]==0.54.0\n").unwrap();
        let pkg = dir.join("package.json");
        std::fs::write(
            &pkg,
            "{\n  \"dependencies\": {\n    \"express\": \"5.3.0\",\n    \"x\": \"1\"\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(pinned(&req, "pywa"), "4.5.0");
        assert_eq!(pinned(&req, "uvicorn[standard]"), "0.54.0");
        assert_eq!(pinned(&pkg, "express"), "5.3.0");
        assert_eq!(pinned(&pkg, "nope"), "?");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
