//! `/metrics`: off by default, guarded by its token, and after some traffic a Prometheus text
//! scrape (parsed with a text-format parser) holds every family with its counters moved.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::meta::{world, PNID};
use common::spawn_app_with;
use prometheus_parse::{Scrape, Value};
use serde_json::json;

const TOKEN: &str = "metrics-scrape-token";

async fn scrape(app: &common::TestApp) -> Scrape {
    let res = app.get("/metrics").bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// Every sample's value by `name{label=value}` (labels sorted), histograms by bucket count.
fn values(s: &Scrape) -> HashMap<String, f64> {
    s.samples
        .iter()
        .map(|sample| {
            let mut labels: Vec<_> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                sample.metric.clone()
            } else {
                format!("{}{{{}}}", sample.metric, labels.join(","))
            };
            let v = match &sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(b) => b.len() as f64,
                Value::Summary(q) => q.len() as f64,
            };
            (key, v)
        })
        .collect()
}

#[tokio::test]
async fn metrics_are_off_by_default_and_need_the_token_when_one_is_set() {
    let off = spawn_app_with(&[]).await;
    assert_eq!(off.get("/metrics").send().await.unwrap().status(), 404);
    let guarded = spawn_app_with(&[("QONTAK_METRICS_TOKEN", TOKEN)]).await;
    assert_eq!(guarded.get("/metrics").send().await.unwrap().status(), 401);
    let wrong = guarded
        .get("/metrics")
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let open = spawn_app_with(&[("QONTAK_METRICS", "1")]).await;
    assert_eq!(open.get("/metrics").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_traffic_parses_and_its_counters_moved() {
    let w = world(&[("QONTAK_METRICS_TOKEN", TOKEN)]).await;
    let before = values(&scrape(&w.app).await);

    // Traffic: a customer writes, we answer, a forged webhook is refused, an SSE client listens.
    let sse = w
        .app
        .get("/api/v1/events")
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let conversation = w.customer_says("15551230001", "hello metrics").await;
    let _ = conversation;
    let res = w
        .send(json!({"number_id": w.number_id, "to": "+15551230001", "type": "text", "text": {"body": "hi back"}}))
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let forged = w
        .app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(r#"{"object":"whatsapp_business_account","entry":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // Meta refuses one send: counted under its code.
    w.emu_post(
        "/_emulator/faults",
        json!({"path_contains": "/messages", "times": 1, "respond": {"http_status": 400, "code": 131026, "message": "Message undeliverable"}}),
    )
    .await;
    let res = w
        .send(json!({"number_id": w.number_id, "to": "+15551230001", "type": "text", "text": {"body": "this one fails"}}))
        .await;
    assert!(res.status().is_success());
    let _ = PNID;

    let mut after = HashMap::new();
    for _ in 0..100 {
        after = values(&scrape(&w.app).await);
        let sent = after
            .get("qontak_messages_sent_total")
            .copied()
            .unwrap_or(0.0);
        let errors = after
            .get("qontak_send_errors_total{code=131026}")
            .copied()
            .unwrap_or(0.0);
        if sent >= 1.0 && errors >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved = |name: &str| {
        let (b, a) = (
            before.get(name).copied().unwrap_or(0.0),
            after.get(name).copied().unwrap_or(0.0),
        );
        assert!(a > b, "{name} did not move: {b} → {a}\n{after:#?}");
    };
    moved("qontak_webhooks_received_total");
    moved("qontak_webhooks_acknowledged_total");
    moved("qontak_webhooks_refused_total{reason=signature}");
    moved("qontak_webhooks_applied_total");
    moved("qontak_messages_sent_total");
    moved("qontak_send_errors_total{code=131026}");
    moved("qontak_webhook_ack_seconds_count");
    // The parser folds the `_bucket` lines into one histogram sample: 12 bounds and +Inf.
    let buckets = after
        .get("qontak_webhook_ack_seconds")
        .copied()
        .unwrap_or(0.0);
    assert_eq!(buckets, 13.0, "every bucket and +Inf\n{after:#?}");
    assert!(after["qontak_sse_clients"] >= 1.0);
    for gauge in [
        "qontak_outbox_jobs{state=queued}",
        "qontak_outbox_jobs{state=in_flight}",
        "qontak_outbox_jobs{state=unknown}",
        "qontak_outbox_oldest_age_seconds",
        "qontak_webhook_backlog",
        "qontak_media_queue_depth",
    ] {
        assert!(after.contains_key(gauge), "{gauge} missing");
    }
    drop(sse);
}
