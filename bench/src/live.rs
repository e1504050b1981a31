//! `events`: webhook-to-browser latency. A measuring client streams `/api/v1/events` of one
//! workspace while `idle` other clients stream another workspace's; each probe is a signed
//! webhook whose message must show up on the measuring stream. The same run without idle
//! clients is the reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::server::db::NewNumber;
use app::server::webhook::sign;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::pages::member_with_token;
use crate::report::publish;
use crate::scenarios::{free_port, fresh_db, start_qontak, wait_ready, PNID, SECRET, WABA};

async fn open_stream(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<reqwest::Response> {
    let res = client
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(
        res.status() == 200,
        "/api/v1/events answered {}",
        res.status()
    );
    Ok(res)
}

/// Reads the stream, noting when each probe's message arrived.
async fn watch(mut res: reqwest::Response, arrivals: Arc<Mutex<HashMap<String, Instant>>>) {
    let mut buf = String::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let v: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                if let Some(body) = v["data"]["content"]["body"].as_str() {
                    arrivals
                        .lock()
                        .expect("lock")
                        .entry(body.to_string())
                        .or_insert(now);
                }
            }
        }
    }
}

fn probe(label: &str, n: usize) -> (String, Vec<u8>) {
    let text = format!("probe-{label}-{n}");
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Probe"}, "wa_id": "15550000001"}],
        "messages": [{"from": "15550000001", "id": format!("wamid.{text}"), "timestamp": "1700000000", "type": "text", "text": {"body": text}}]}}]}]}))
    .expect("json");
    (text, body)
}

pub async fn events(idle: usize, samples: usize) -> anyhow::Result<()> {
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let (url, db, _, _) = fresh_db("sqlite", "", &key).await?;
    let ws = db.workspace_by_name("Bench").await?.expect("workspace").id;
    let (_, token) = member_with_token(&db, &ws, "live@bench.local").await?;
    let quiet = db.create_workspace("Idle").await?;
    db.connect_number(&NewNumber {
        workspace_id: &quiet.id,
        waba_id: "200000000000001",
        phone_number_id: "200000000000002",
        display_phone: None,
        access_token_enc: &key.encrypt("idle-token"),
        key_id: key.id(),
    })
    .await?;
    let (_, idle_token) = member_with_token(&db, &quiet.id, "idle@bench.local").await?;
    let port = free_port();
    let data = std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
    let server = start_qontak(&url, port, &data, &[]);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    for (label, count) in [("reference", 0usize), ("loaded", idle)] {
        let mut idle_streams = Vec::with_capacity(count);
        for _ in 0..count {
            idle_streams.push(open_stream(&client, &base, &idle_token).await?);
        }
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let watcher = tokio::spawn(watch(
            open_stream(&client, &base, &token).await?,
            arrivals.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut sent: Vec<(String, Instant)> = Vec::with_capacity(samples);
        let mut ack = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for n in 0..samples {
            let (text, body) = probe(label, n);
            let t0 = Instant::now();
            let res = client
                .post(format!("{base}/webhooks/whatsapp"))
                .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(
                res.status() == 200,
                "a probe webhook answered {}",
                res.status()
            );
            let _ = ack.record((t0.elapsed().as_micros() as u64).max(1));
            sent.push((text, t0));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let got = arrivals.lock().expect("lock").clone();
        for (text, t0) in &sent {
            if let Some(at) = got.get(text) {
                let _ = hist.record((at.duration_since(*t0).as_micros() as u64).max(1));
            }
        }
        watcher.abort();
        drop(idle_streams);
        let ms =
            |h: &Histogram<u64>, q: f64| format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0);
        rows.push(vec![
            if count == 0 {
                "webhook → SSE client, no other clients (reference)".to_string()
            } else {
                format!("webhook → SSE client, {count} idle SSE clients connected")
            },
            ms(&hist, 0.5),
            ms(&hist, 0.99),
            ms(&ack, 0.99),
            format!("{} of {samples}", hist.len()),
        ]);
    }
    drop(server);
    db.close().await;
    publish(
        &format!("events: {samples} probes at 20/s"),
        &format!("./x bench events (qontak-bench events --idle {idle} --samples {samples})"),
        &[
            "stream",
            "p50 ms",
            "p99 ms",
            "webhook ack p99 ms",
            "probes received",
        ],
        &rows,
    );
    Ok(())
}
