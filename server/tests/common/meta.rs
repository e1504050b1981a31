//! The product and the Meta emulator, wired to each other, for tests of the Graph path.

use std::time::Duration;

use app::server::db::NewNumber;
use qontak_meta_emulator::{Config as EmulatorConfig, Number};
use serde_json::{json, Value};

use super::{engine, fresh_database_url, spawn_with_config, test_config, TestApp};

pub const SECRET: &str = "emulated-app-secret";
pub const ACCESS_TOKEN: &str = "EAAG-emulated-access-token";
pub const PNID: &str = "106540352242922";
pub const WABA: &str = "102290129340398";

pub struct World {
    pub app: TestApp,
    pub token: String,
    pub emulator: String,
    pub number_id: String,
    pub http: reqwest::Client,
}

/// Starts the emulator and the product pointed at each other, with one connected number.
pub async fn world(extra: &[(&str, &str)]) -> World {
    let emu_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = format!("http://{}", emu_listener.local_addr().unwrap());
    let mut env: Vec<(&str, &str)> = vec![
        ("META_APP_SECRET", SECRET),
        ("META_GRAPH_URL", emulator.as_str()),
        ("QONTAK_OUTBOX_BACKOFF_MS", "40"),
    ];
    env.extend_from_slice(extra);
    let url = fresh_database_url(engine()).await;
    let app = spawn_with_config(test_config(&url, &env)).await;
    let mut config = EmulatorConfig::new(format!("{}/webhooks/whatsapp", app.url), SECRET);
    config.access_tokens = vec![ACCESS_TOKEN.to_string()];
    config.status_delay = Duration::from_millis(30);
    config.numbers = vec![Number {
        phone_number_id: PNID.into(),
        waba_id: WABA.into(),
        display_phone_number: "+1 555-078-3881".into(),
        verified_name: "Acme".into(),
    }];
    tokio::spawn(async move {
        qontak_meta_emulator::serve(emu_listener, config)
            .await
            .unwrap()
    });

    let (ws, token) = app.workspace_with_token("Acme").await;
    let number = app
        .db
        .connect_number(&NewNumber {
            workspace_id: &ws,
            waba_id: WABA,
            phone_number_id: PNID,
            display_phone: Some("+15550783881"),
            access_token_enc: &app.state.key.encrypt(ACCESS_TOKEN),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    World {
        app,
        token,
        emulator,
        number_id: number.id,
        http: reqwest::Client::new(),
    }
}

/// An emulator with one number (`PNID`, WABA `1`) whose webhooks, signed with `secret`, go to
/// `webhook_url`; answers its base URL.
pub async fn emulator_for(webhook_url: String, secret: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = EmulatorConfig::new(webhook_url, secret);
    config.status_delay = Duration::from_millis(20);
    config.numbers = vec![Number {
        phone_number_id: PNID.into(),
        waba_id: "1".into(),
        display_phone_number: "+1 555-000-0001".into(),
        verified_name: "T".into(),
    }];
    tokio::spawn(async move { qontak_meta_emulator::serve(listener, config).await.unwrap() });
    url
}

impl World {
    pub async fn emu_post(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap_or(Value::Null)
    }

    pub async fn emu_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.emulator))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The customer writes (opens the 24-hour window); answers the conversation id.
    pub async fn customer_says(&self, wa_id: &str, text: &str) -> String {
        let r = self
            .emu_post(
                &format!("/_emulator/customers/{wa_id}/messages"),
                json!({"type": "text", "text": {"body": text}, "profile_name": "Ana"}),
            )
            .await;
        assert_eq!(r["webhook_status"], 200, "{r}");
        let wamid = r["wamid"].as_str().unwrap().to_string();
        for _ in 0..200 {
            let convs = self.api_get("/api/v1/conversations").await;
            for c in convs["data"].as_array().unwrap() {
                if c["contact"]["wa_id"] == wa_id && c["last_message"]["wamid"] == wamid.as_str() {
                    return c["id"].as_str().unwrap().to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the customer's message never showed");
    }

    pub async fn api_get(&self, path: &str) -> Value {
        let res = self
            .app
            .get(path)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    pub async fn send(&self, body: Value) -> reqwest::Response {
        self.app
            .post("/api/v1/messages")
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Polls a message (by conversation) until `f` holds.
    pub async fn message_until(
        &self,
        conversation_id: &str,
        message_id: &str,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/api/v1/conversations/{conversation_id}/messages?limit=200");
        let mut last = Value::Null;
        for _ in 0..300 {
            let v = self.api_get(&path).await;
            if let Some(m) = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == message_id)
            {
                if f(m) {
                    return m.clone();
                }
                last = m.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("message never matched; last: {last}");
    }

    /// The send requests Graph received (not mark-as-read), in order.
    pub async fn graph_sends(&self) -> Vec<Value> {
        self.emu_get("/_emulator/requests")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["path"].as_str().unwrap().ends_with("/messages")
                    && r["body"]["status"].is_null()
            })
            .cloned()
            .collect()
    }
}
