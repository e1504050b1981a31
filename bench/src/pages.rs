//! Front-end figures: server-side rendering of the pages people open (`ssr`) and the size of
//! the WASM client (`wasm`).

use std::time::Duration;

use app::server::crypto::{hash_secret, random_secret};
use app::server::db::{Db, NewSession};
use serde_json::json;

use crate::load;
use crate::report::publish;
use crate::scenarios::{free_port, fresh_db, start_qontak, text, wait_ready, PNID, WABA};

/// A user of the workspace with an API token; answers (user id, token).
pub(crate) async fn member_with_token(
    db: &Db,
    workspace_id: &str,
    email: &str,
) -> anyhow::Result<(String, String)> {
    let user = db.create_user(email, "Bench").await?;
    db.add_member(workspace_id, &user.id, "admin").await?;
    let token = random_secret("qtk_");
    db.create_api_token(
        workspace_id,
        &user.id,
        "bench",
        &hash_secret(&token),
        &token[..8],
    )
    .await?;
    Ok((user.id, token))
}

/// `n` stored inbound webhooks, one conversation each, for the server to apply at start.
pub(crate) async fn seed_conversations(db: &Db, n: usize) -> anyhow::Result<()> {
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
                "contacts": [{"profile": {"name": format!("Customer {i}")}, "wa_id": format!("1555{i:07}")}],
                "messages": [text("seed", i, 0)]}}]}]})
            .to_string()
        })
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    db.insert_webhook_events(&refs).await?;
    Ok(())
}

pub async fn ssr(seconds: u64, connections: usize) -> anyhow::Result<()> {
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let (url, db, _, _) = fresh_db("sqlite", "", &key).await?;
    let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
    let (user, _) = member_with_token(&db, &ws, "ssr@bench.local").await?;
    let session = random_secret("");
    db.create_session(&NewSession {
        id_hash: &hash_secret(&session),
        user_id: &user,
        workspace_id: Some(&ws),
        expires_at: app::server::now_ms() + 86_400_000,
        ip: None,
        user_agent: None,
    })
    .await?;
    seed_conversations(&db, 50).await?;
    let port = free_port();
    let data = std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
    let server = start_qontak(&url, port, &data, &[]);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    while db.webhook_backlog().await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cookie = vec![("cookie".to_string(), format!("qontak_session={session}"))];
    let inbox = reqwest::Client::new()
        .get(format!("{base}/inbox"))
        .header("cookie", &cookie[0].1)
        .send()
        .await?;
    anyhow::ensure!(inbox.status() == 200, "/inbox answered {}", inbox.status());
    let duration = Duration::from_secs(seconds);
    let mut rows = Vec::new();
    for (label, path) in [
        ("GET /healthz, same server (reference)", "/healthz"),
        ("GET /login (signed out)", "/login"),
        ("GET /inbox (signed in, 50 conversations)", "/inbox"),
    ] {
        let headers = if path == "/inbox" {
            cookie.clone()
        } else {
            Vec::new()
        };
        let o = load::run_get(&format!("{base}{path}"), headers, connections, duration).await;
        rows.push(vec![
            label.to_string(),
            format!("{:.0}", o.rate()),
            format!("{:.2}", o.p50_ms()),
            format!("{:.2}", o.p99_ms()),
            o.errors.to_string(),
        ]);
    }
    drop(server);
    db.close().await;
    publish(
        &format!("ssr: {connections} connections, {seconds} s per page"),
        &format!(
            "./x bench ssr (qontak-bench ssr --seconds {seconds} --connections {connections})"
        ),
        &["page", "requests/s", "p50 ms", "p99 ms", "errors"],
        &rows,
    );
    Ok(())
}

/// Raw, gzip -9 and brotli -q 11 (the `brotli` tool, else Node's zlib) sizes of each client file,
/// and of them all: issue 6's budget is for the whole client.
pub fn wasm(files: &[String]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut total = [Some(0u64), Some(0), Some(0)];
    for file in files {
        let sizes = file_sizes(file)?;
        for (sum, size) in total.iter_mut().zip(sizes) {
            *sum = sum.zip(size).map(|(a, b)| a + b);
        }
        rows.push(size_row(file, sizes, ""));
    }
    rows.push(size_row(
        "whole client",
        total,
        "400 KiB gzip (issue 6); 250 KiB gzip / 200 KiB brotli (research P5)",
    ));
    publish(
        "wasm: the hydrating client",
        &format!(
            "./x bench wasm (qontak-bench wasm --file {})",
            files.join(" --file ")
        ),
        &[
            "file",
            "raw KiB",
            "gzip -9 KiB",
            "brotli -q 11 KiB",
            "budget (gzip / brotli)",
        ],
        &rows,
    );
    Ok(())
}

/// Raw, gzip -9 and brotli -q 11 bytes of one file (None where the tool is missing).
fn file_sizes(file: &str) -> anyhow::Result<[Option<u64>; 3]> {
    let raw = std::fs::metadata(file)
        .map_err(|e| anyhow::anyhow!("{file}: {e} (build it with ./x build release)"))?
        .len();
    let compressed = |tool: &str, args: &[&str]| -> Option<u64> {
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(file)
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout.len() as u64)
    };
    let gzip = compressed("gzip", &["-9", "-c", "-n"]);
    // Debian has no `brotli` tool by default; Node (which the browser tests need) has brotli.
    let brotli = compressed("brotli", &["-q", "11", "-c"]).or_else(|| {
        let script = "const z=require('zlib');process.stdout.write(String(z.brotliCompressSync(require('fs').readFileSync(process.argv[1]),{params:{[z.constants.BROTLI_PARAM_QUALITY]:11}}).length))";
        let out = std::process::Command::new("node")
            .args(["-e", script, file])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    });
    Ok([Some(raw), gzip, brotli])
}

fn size_row(name: &str, sizes: [Option<u64>; 3], budget: &str) -> Vec<String> {
    let kib = |n: Option<u64>| {
        n.map_or("n/a (tool missing)".to_string(), |n| {
            format!("{:.1} ({n} B)", n as f64 / 1024.0)
        })
    };
    let mut row = vec![name.to_string()];
    row.extend(sizes.map(kib));
    row.push(budget.to_string());
    row
}
