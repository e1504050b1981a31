//! A flood of signed webhooks, the server SIGKILLed midway and restarted: every delivery that
//! was answered 200 is present, and none twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::server::db::{Db, NewNumber};
use app::server::webhook::sign;
use common::{engine, free_port, fresh_database_url, scratch_dir, wait_ready};
use serde_json::json;

const SECRET: &str = "crash-secret";

fn start(url: &str, port: u16, data: &std::path::Path, key: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qontak"))
        .arg("serve")
        .current_dir(data)
        .env("DATABASE_URL", url)
        .env("QONTAK_DATA_DIR", data)
        .env("QONTAK_SECRET_KEY", key)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("META_APP_SECRET", SECRET)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qontak starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_webhook_survives_a_sigkill_exactly_once() {
    let url = fresh_database_url(engine()).await;
    let data = scratch_dir();
    let key = app::server::crypto::SecretKey::generate_base64();
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let ws = db.create_workspace("Crash").await.unwrap();
    db.connect_number(&NewNumber {
        workspace_id: &ws.id,
        waba_id: "1",
        phone_number_id: "777",
        display_phone: None,
        access_token_enc: "x:y",
        key_id: "x",
    })
    .await
    .unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut server = start(&url, port, &data, &key);
    wait_ready(&client, &base).await;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let wamid = format!("wamid.crash.{worker}.{i}");
                let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp", "metadata": {"phone_number_id": "777"},
                    "contacts": [{"wa_id": format!("1555000{worker:04}"), "profile": {"name": "C"}}],
                    "messages": [{"from": format!("1555000{worker:04}"), "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": "x"}}]}}]}]}))
                .unwrap();
                let res = client
                    .post(format!("{base}/webhooks/whatsapp"))
                    .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(wamid),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill in the middle of the flood.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() > 50,
        "the flood got going: {} acknowledged",
        acked.len()
    );

    // Restart: the processor applies whatever was stored but not yet applied.
    let mut server = start(&url, port, &data, &key);
    wait_ready(&client, &base).await;
    let mut counts = HashMap::new();
    for _ in 0..200 {
        if db.webhook_backlog().await.unwrap() == 0 {
            counts = db
                .wamid_counts()
                .await
                .unwrap()
                .into_iter()
                .collect::<HashMap<_, _>>();
            if acked.iter().all(|w| counts.contains_key(w)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().ok();
    server.wait().ok();
    let missing: Vec<_> = acked.iter().filter(|w| !counts.contains_key(*w)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged webhooks missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    db.close().await;
}
