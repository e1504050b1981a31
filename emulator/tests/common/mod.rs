//! Test harness: the emulator on port 0 and a stand-in for the product's webhook endpoint that
//! checks every signature with `hmac` + `sha2`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use qontak_meta_emulator::{Config, Number};
use serde_json::{json, Value};
use sha2::Sha256;

pub const SECRET: &str = "test-app-secret";
pub const TOKEN: &str = "test-token";
pub const PHONE_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";
pub const DISPLAY: &str = "+1 555-078-3881";

/// One webhook post as the product received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub signature_ok: bool,
    pub raw: Bytes,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// How many of the next posts answer 500.
    fail_next: Arc<AtomicU32>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `X-Hub-Signature-256: sha256=<hex>` over the raw bytes, checked in constant time.
pub fn signature_ok(secret: &str, headers: &HeaderMap, raw: &[u8]) -> bool {
    let Some(hex) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
    else {
        return false;
    };
    let Some(expected) = unhex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(raw);
    mac.verify_slice(&expected).is_ok()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    r.received.lock().unwrap().push(Received {
        signature_ok: signature_ok(SECRET, &headers, &raw),
        raw,
        body,
    });
    let failing = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

pub struct Harness {
    /// The emulator's base URL.
    pub base: String,
    pub http: reqwest::Client,
    receiver: Receiver,
}

impl Harness {
    /// The emulator with one registered number, a token list of one, and quick statuses.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`Harness::start`], with `tweak` applied to the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_url = format!(
            "http://{}/webhooks/whatsapp",
            listener.local_addr().unwrap()
        );
        let app = Router::new()
            .route("/webhooks/whatsapp", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut config = Config::new(webhook_url, SECRET);
        config.access_tokens = vec![TOKEN.into()];
        config.status_delay = Duration::from_millis(20);
        config.numbers = vec![Number {
            phone_number_id: PHONE_ID.into(),
            waba_id: WABA_ID.into(),
            display_phone_number: DISPLAY.into(),
            verified_name: "Qontak Test".into(),
        }];
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(qontak_meta_emulator::serve(listener, config));
        Self {
            base,
            http: reqwest::Client::new(),
            receiver,
        }
    }

    /// A Graph URL: `<base>/v25.0<path>`.
    pub fn graph(&self, path: &str) -> String {
        format!("{}/v25.0{path}", self.base)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POST JSON with the valid token.
    pub async fn post(&self, url: &str, body: &Value) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .post(url)
                .bearer_auth(TOKEN)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// GET with the valid token.
    pub async fn get(&self, url: &str) -> (StatusCode, Value) {
        Self::answer(self.http.get(url).bearer_auth(TOKEN).send().await.unwrap()).await
    }

    pub async fn delete(&self, url: &str) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .delete(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends a text message to `to` and returns the wamid.
    pub async fn send_text(&self, to: &str, extra: Value) -> String {
        let mut body = json!({
            "messaging_product": "whatsapp", "recipient_type": "individual",
            "to": to, "type": "text", "text": {"body": "hello"},
        });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let (status, answer) = self
            .post(&self.graph(&format!("/{PHONE_ID}/messages")), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["messages"][0]["id"].as_str().unwrap().to_string()
    }

    pub fn fail_next_webhooks(&self, n: u32) {
        self.receiver.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.receiver.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `pick` finds at least `n` received webhooks; returns them.
    pub async fn wait_for(&self, n: usize, pick: impl Fn(&Received) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Received> = self.received().into_iter().filter(|r| pick(r)).collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited 10 s for {n} webhooks, got {}: {:#?}",
                found.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The statuses of a status webhook body.
pub fn statuses(body: &Value) -> Vec<Value> {
    body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
        .flat_map(|c| {
            c["value"]["statuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Whether a webhook carries a status for `wamid`.
pub fn is_status_for(wamid: &str) -> impl Fn(&Received) -> bool + '_ {
    move |r| statuses(&r.body).iter().any(|s| s["id"] == wamid)
}
