//! Outgoing webhooks for integrators: signed deliveries with event ids, retries, the log.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::server::db::NewNumber;
use app::server::webhook::sign;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{error_code, spawn_app_with, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "integrations-secret";

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    fail_first: Arc<Mutex<u32>>,
}

async fn receiver(fail_first: u32) -> (String, Receiver) {
    let r = Receiver {
        fail_first: Arc::new(Mutex::new(fail_first)),
        ..Default::default()
    };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let mut fail = state.fail_first.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                state
                    .got
                    .lock()
                    .unwrap()
                    .push((headers, serde_json::from_slice(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

async fn setup() -> (TestApp, String) {
    let app = spawn_app_with(&[
        ("META_APP_SECRET", SECRET),
        ("QONTAK_ALLOW_PRIVATE_URLS", "1"),
        ("QONTAK_WEBHOOK_BACKOFF_MS", "50"),
    ])
    .await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    app.db
        .connect_number(&NewNumber {
            workspace_id: &ws,
            waba_id: "1",
            phone_number_id: "42",
            display_phone: None,
            access_token_enc: &app.state.key.encrypt("t"),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    (app, token)
}

async fn customer_writes(app: &TestApp, wamid: &str) {
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "42"}, "contacts": [{"wa_id": "15551234567"}],
        "messages": [{"from": "15551234567", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}}]}}]}]}))
    .unwrap();
    let res = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn events_are_delivered_signed_with_their_id_and_retried_after_a_failure() {
    let (app, token) = setup().await;
    let (url, rx) = receiver(1).await;
    let res = app
        .post("/api/v1/webhooks")
        .bearer_auth(&token)
        .json(&json!({"url": url, "events": ["message.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let endpoint: Value = res.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let listed: Value = app
        .get("/api/v1/webhooks")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed["data"][0]["secret"].is_null(),
        "the secret is shown once"
    );

    customer_writes(&app, "wamid.HOOK1").await;
    for _ in 0..200 {
        if !rx.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only message.created was asked for");
    let (headers, body) = &got[0];
    assert_eq!(body["type"], "message.created");
    assert_eq!(body["data"]["wamid"], "wamid.HOOK1");
    assert_eq!(headers["x-qontak-event"], "message.created");
    assert_eq!(
        headers["x-qontak-event-id"].to_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let sig = headers["x-qontak-signature"].to_str().unwrap();
    let t: i64 = sig
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        server::integrations::signature(&secret, t, &serde_json::to_vec(body).unwrap())
    );

    let log: Value = app
        .get(&format!(
            "/api/v1/webhooks/{}/deliveries",
            endpoint["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["data"][0]["state"], "delivered");
    assert_eq!(log["data"][0]["attempts"], 2, "one failure, then delivered");
}

#[tokio::test]
async fn only_admins_manage_webhooks_and_private_urls_are_refused_by_default() {
    let (app, token) = setup().await;
    let ws = app.db.workspace_by_name("Acme").await.unwrap().unwrap();
    let agent = app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    app.db.add_member(&ws.id, &agent.id, "agent").await.unwrap();
    let agent_token = app::server::crypto::random_secret("qtk_");
    app.db
        .create_api_token(
            &ws.id,
            &agent.id,
            "agent",
            &app::server::crypto::hash_secret(&agent_token),
            "qtk_",
        )
        .await
        .unwrap();
    let res = app
        .post("/api/v1/webhooks")
        .bearer_auth(&agent_token)
        .json(&json!({"url": "https://hooks.example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "forbidden");
    let res = app
        .post("/api/v1/webhooks")
        .bearer_auth(&token)
        .json(&json!({"url": "https://hooks.example.com", "events": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    let strict = spawn_app_with(&[]).await;
    let (_, t2) = strict.workspace_with_token("Strict").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
        "http://10.1.2.3/",
    ] {
        let res = strict
            .post("/api/v1/webhooks")
            .bearer_auth(&t2)
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{url}");
    }
}
