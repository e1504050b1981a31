//! The live event stream: events after a webhook, gap-free resume with `Last-Event-ID`, and
//! two instances on one Postgres seeing each other's events.

mod common;

use std::time::Duration;

use app::server::db::{Engine, NewNumber};
use app::server::webhook::sign;
use common::{engine, spawn_app_with, spawn_with_config, test_config, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "sse-secret";

/// A minimal SSE reader over a streaming response.
struct Sse {
    res: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    event: String,
    data: Value,
}

impl Sse {
    async fn connect(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = app.get("/api/v1/events").bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            res,
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within 5 seconds.
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) =
                        (None, String::from("message"), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return SseEvent {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    };
                }
                let chunk = self
                    .res
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an event within 5 s")
    }

    /// Asserts nothing more arrives for a moment.
    async fn quiet(&mut self) {
        let more = tokio::time::timeout(Duration::from_millis(1500), self.next_raw()).await;
        assert!(
            more.is_err(),
            "no further event expected, got {:?}",
            more.ok()
        );
    }

    async fn next_raw(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.lines().any(|l| l.starts_with("data:")) {
                    return block;
                }
                continue;
            }
            let chunk = self.res.chunk().await.unwrap().unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn setup(app: &TestApp) -> (String, String) {
    let (ws, token) = app.workspace_with_token("Acme").await;
    app.db
        .connect_number(&NewNumber {
            workspace_id: &ws,
            waba_id: "1",
            phone_number_id: "555",
            display_phone: None,
            access_token_enc: &app.state.key.encrypt("t"),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    (ws, token)
}

async fn send_text(app: &TestApp, wamid: &str, body: &str) {
    let payload = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "555"},
        "contacts": [{"wa_id": "15551234567", "profile": {"name": "Ana"}}],
        "messages": [{"from": "15551234567", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": body}}]}}]}]}))
    .unwrap();
    let res = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &payload))
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_webhook_reaches_a_connected_stream_as_message_created_and_conversation_updated() {
    let app = spawn_app_with(&[("META_APP_SECRET", SECRET)]).await;
    let (ws, token) = setup(&app).await;
    let mut sse = Sse::connect(&app, &token, None).await;
    send_text(&app, "wamid.E1", "hello live").await;
    let created = sse.next().await;
    assert_eq!(created.event, "message.created");
    assert_eq!(created.data["type"], "message.created");
    assert_eq!(created.data["workspace_id"], ws);
    assert_eq!(created.data["data"]["content"]["body"], "hello live");
    assert_eq!(created.data["data"]["direction"], "inbound");
    let conv = sse.next().await;
    assert_eq!(conv.event, "conversation.updated");
    assert_eq!(conv.data["data"]["unread_count"], 1);
    assert!(
        conv.id.unwrap().parse::<i64>().unwrap() > created.id.unwrap().parse::<i64>().unwrap(),
        "ids increase"
    );
    // A replay publishes nothing.
    send_text(&app, "wamid.E1", "hello live").await;
    sse.quiet().await;
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_exactly_the_missed_events() {
    let app = spawn_app_with(&[("META_APP_SECRET", SECRET)]).await;
    let (_, token) = setup(&app).await;
    let mut sse = Sse::connect(&app, &token, None).await;
    send_text(&app, "wamid.M1", "one").await;
    let first = sse.next().await;
    let _conv = sse.next().await;
    drop(sse);
    // Missed while disconnected.
    send_text(&app, "wamid.M2", "two").await;
    send_text(&app, "wamid.M3", "three").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let resume_after = _conv.id.clone().unwrap();
    let mut again = Sse::connect(&app, &token, Some(&resume_after)).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(again.next().await);
    }
    let kinds: Vec<_> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message.created",
            "conversation.updated",
            "message.created",
            "conversation.updated"
        ]
    );
    assert_eq!(got[0].data["data"]["content"]["body"], "two");
    assert_eq!(got[2].data["data"]["content"]["body"], "three");
    let ids: Vec<i64> = got
        .iter()
        .map(|e| e.id.clone().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]));
    assert!(ids[0] > resume_after.parse::<i64>().unwrap());
    assert_ne!(first.id, got[0].id, "nothing replayed twice");
    again.quiet().await;

    let bad = app
        .get("/api/v1/events")
        .bearer_auth(&token)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn with_two_instances_on_one_postgres_a_webhook_to_one_reaches_the_others_stream() {
    if engine() != Engine::Postgres {
        eprintln!("two-instance test runs in the Postgres pass");
        return;
    }
    let a = spawn_app_with(&[("META_APP_SECRET", SECRET)]).await;
    let (_, token) = setup(&a).await;
    let b = spawn_with_config(test_config(
        &a.config.database_url,
        &[("META_APP_SECRET", SECRET)],
    ))
    .await;
    let mut on_b = Sse::connect(&b, &token, None).await;
    send_text(&a, "wamid.I1", "via instance A").await;
    let created = on_b.next().await;
    assert_eq!(created.event, "message.created");
    assert_eq!(created.data["data"]["content"]["body"], "via instance A");
}
