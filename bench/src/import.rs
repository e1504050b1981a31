//! `qontak-bench import`: CSV contact imports of 100,000 and 400,000 rows (1% bad) through the
//! real server over HTTP, and the CSV export of 100,000 contacts. Reports rows per second and
//! the server process's peak resident memory (VmHWM) for each, each on a fresh server process,
//! so a flat figure across sizes shows the import streams instead of loading the file. Last, the
//! workspace export (`GET /api/v1/export`, the zip the privacy policy's right of access promises)
//! of a workspace seeded with 1,000,000 messages, next to one with 100,000: flat memory again.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::publish;
use crate::scenarios::{drop_pg, free_port, fresh_db, start_qontak, wait_ready, Proc};

/// A field of /proc/PID/status in KiB (`VmHWM`: the peak resident set; `VmRSS`: now).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

/// A CSV of `rows` contacts; every hundredth row has a bad phone number.
fn csv(rows: usize) -> Vec<u8> {
    let mut out = String::with_capacity(rows * 64);
    out.push_str("phone,name,labels,city,plan\n");
    for i in 0..rows {
        if i % 100 == 99 {
            out.push_str(&format!("not-a-number-{i},Broken {i},,Nowhere,\n"));
        } else {
            out.push_str(&format!(
                "+62812{i:08},Customer number {i},\"customer;batch-{}\",City {},plan-{}\n",
                i % 7,
                i % 97,
                i % 3
            ));
        }
    }
    out.into_bytes()
}

struct Server {
    proc: Proc,
    url: String,
}

async fn server(db_url: &str) -> Server {
    let port = free_port();
    let data = std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
    let proc = start_qontak(db_url, port, &data, &[]);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/readyz")).await;
    Server { proc, url }
}

/// An admin API token in the bench workspace.
pub(crate) async fn token(db: &app::server::db::Db) -> anyhow::Result<String> {
    let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
    let user = db.create_user("bench@example.com", "Bench").await?;
    db.add_member(&ws, &user.id, "admin").await?;
    let token = app::server::crypto::random_secret("qtk_");
    db.create_api_token(
        &ws,
        &user.id,
        "bench",
        &app::server::crypto::hash_secret(&token),
        "qtk_",
    )
    .await?;
    Ok(token)
}

pub async fn import(
    sizes: &[usize],
    export_messages: &[i64],
    engine: &str,
    pg: &str,
) -> anyhow::Result<()> {
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let http = reqwest::Client::new();
    let mut rows_out = Vec::new();
    let mut export_db = None;
    for &rows in sizes {
        let (db_url, db, _, pg_name) = fresh_db(engine, pg, &key).await?;
        let token = token(&db).await?;
        let body = csv(rows);
        let bytes = body.len();
        let s = server(&db_url).await;
        let idle = status_kib(s.proc.pid(), "VmHWM");
        let started = Instant::now();
        let job: Value = http
            .post(format!("{}/api/v1/contacts/imports", s.url))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?
            .json()
            .await?;
        let id = job["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no job: {job}"))?
            .to_string();
        let uploaded = started.elapsed();
        let done = loop {
            let j: Value = http
                .get(format!("{}/api/v1/contacts/imports/{id}", s.url))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            if j["state"] == "done"
                || j["state"] == "failed"
                || started.elapsed() > Duration::from_secs(900)
            {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let took = started.elapsed().as_secs_f64();
        let peak = status_kib(s.proc.pid(), "VmHWM");
        rows_out.push(vec![
            format!(
                "import {rows} rows, {:.1} MiB ({engine})",
                bytes as f64 / 1048576.0
            ),
            format!("{:.0}", rows as f64 / took),
            format!(
                "{} created, {} failed, state {}; upload {:.2} s, total {took:.2} s",
                done["created"],
                done["failed"],
                done["state"],
                uploaded.as_secs_f64()
            ),
            mib(idle),
            mib(peak),
        ]);
        drop(s);
        if export_db.is_none() {
            export_db = Some((
                db_url,
                db,
                token,
                pg_name,
                done["created"].as_i64().unwrap_or(0),
            ));
        } else {
            db.close().await;
            drop_pg(pg, pg_name).await;
        }
    }
    if let Some((db_url, db, token, pg_name, contacts)) = export_db {
        let d = download(&http, &db_url, "/api/v1/contacts/export.csv", &token).await?;
        let (lines, took, bytes) = (d.lines, d.took, d.bytes);
        let (idle, peak) = (d.idle_kib, d.peak_kib);
        rows_out.push(vec![
            format!("export {contacts} contacts ({engine})"),
            format!("{:.0}", (lines.saturating_sub(1)) as f64 / took),
            format!(
                "{} rows, {:.1} MiB in {took:.2} s",
                lines.saturating_sub(1),
                bytes as f64 / 1048576.0
            ),
            mib(idle),
            mib(peak),
        ]);
        db.close().await;
        drop_pg(pg, pg_name).await;
    }
    for &messages in export_messages {
        rows_out.push(export_workspace(&http, &key, engine, pg, messages).await?);
    }
    publish(
        "import: CSV contacts through the HTTP API (1% bad rows), the CSV export, the workspace export",
        &format!("./x bench import (qontak-bench import --engine {engine})"),
        &[
            "run",
            "rows/s",
            "outcome",
            "server RSS idle MiB",
            "server peak RSS (VmHWM) MiB",
        ],
        &rows_out,
    );
    Ok(())
}

/// The whole-workspace export of a workspace seeded with `messages` messages (one conversation
/// per ten), read to the end on a fresh server process.
async fn export_workspace(
    http: &reqwest::Client,
    key: &app::server::crypto::SecretKey,
    engine: &str,
    pg: &str,
    messages: i64,
) -> anyhow::Result<Vec<String>> {
    let (db_url, db, number_id, pg_name) = fresh_db(engine, pg, key).await?;
    let token = token(&db).await?;
    let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
    eprintln!("seeding {engine} with {messages} messages for the export…");
    crate::inbox::seed(&db, &number_id, &ws, "", (messages / 10).max(1), messages).await?;
    let d = download(http, &db_url, "/api/v1/export", &token).await?;
    db.close().await;
    drop_pg(pg, pg_name).await;
    Ok(vec![
        format!("export workspace, {messages} messages ({engine})"),
        format!("{:.0}", messages as f64 / d.took),
        format!(
            "zip of {:.1} MiB in {:.2} s",
            d.bytes as f64 / 1048576.0,
            d.took
        ),
        mib(d.idle_kib),
        mib(d.peak_kib),
    ])
}

/// What reading one download to its end cost a fresh server process.
struct Download {
    bytes: usize,
    lines: usize,
    took: f64,
    idle_kib: u64,
    peak_kib: u64,
}

/// Starts a fresh server on `db_url` and reads `path` to the end with `token`.
async fn download(
    http: &reqwest::Client,
    db_url: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<Download> {
    let s = server(db_url).await;
    let idle_kib = status_kib(s.proc.pid(), "VmHWM");
    let started = Instant::now();
    let mut res = http
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = res.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    Ok(Download {
        bytes,
        lines,
        took: started.elapsed().as_secs_f64(),
        idle_kib,
        peak_kib: status_kib(s.proc.pid(), "VmHWM"),
    })
}
