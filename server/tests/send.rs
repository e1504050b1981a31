//! Messages out, against the Meta emulator: the exact JSON Graph receives for every type, the
//! retry rules, idempotency, the 24-hour window, lost answers and read receipts.

mod common;

use common::error_code;
use common::meta::{world, World, ACCESS_TOKEN, PNID};
use serde_json::{json, Value};

const CUSTOMER: &str = "15551234567";

async fn queued(w: &World, body: Value) -> Value {
    let res = w.send(body).await;
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["direction"], "outbound");
    v
}

fn text_to(w: &World, body: &str) -> Value {
    json!({"number_id": w.number_id, "to": format!("+{CUSTOMER}"), "type": "text", "text": {"body": body}})
}

#[tokio::test]
async fn a_text_is_sent_once_with_metas_exact_body_and_its_ticks_go_sent_delivered_read() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    let m = queued(&w, text_to(&w, "Your order shipped")).await;
    let id = m["id"].as_str().unwrap();
    let done = w.message_until(&conv, id, |m| m["status"] == "read").await;
    for s in ["queued", "sent", "delivered", "read"] {
        assert!(
            done["status_timestamps"][s].is_string(),
            "{s} time kept: {done}"
        );
    }
    assert!(done["wamid"].as_str().unwrap().starts_with("wamid."));
    let sends = w.graph_sends().await;
    assert_eq!(sends.len(), 1, "sent once");
    assert_eq!(sends[0]["path"], format!("/v25.0/{PNID}/messages"));
    assert_eq!(sends[0]["authorization"], format!("Bearer {ACCESS_TOKEN}"));
    assert_eq!(
        sends[0]["body"],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "text",
               "text": {"body": "Your order shipped"}, "biz_opaque_callback_data": id})
    );
}

#[tokio::test]
async fn every_outbound_type_reaches_graph_in_metas_shape() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    w.emu_post("/_emulator/templates", json!({"waba_id": common::meta::WABA, "templates": [{"name": "order_update", "language": "en_US", "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"}]}]})).await;
    let first = queued(&w, text_to(&w, "first")).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let first = w
        .message_until(&conv, &first_id, |m| m["wamid"].is_string())
        .await;
    let first_wamid = first["wamid"].as_str().unwrap().to_string();
    let inbound = w
        .api_get(&format!("/api/v1/conversations/{conv}/messages"))
        .await["data"][0]
        .clone();
    assert_eq!(inbound["direction"], "inbound");

    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"type": "image", "image": {"link": "https://cdn.example.com/p.jpg", "caption": "The blue one"}}),
            json!({"link": "https://cdn.example.com/p.jpg", "caption": "The blue one"}),
        ),
        (
            json!({"type": "video", "video": {"id": "1234567890", "caption": "demo"}}),
            json!({"id": "1234567890", "caption": "demo"}),
        ),
        (
            json!({"type": "audio", "audio": {"id": "555", "voice": true}}),
            json!({"id": "555", "voice": true}),
        ),
        (
            json!({"type": "document", "document": {"link": "https://cdn.example.com/i.pdf", "filename": "invoice.pdf"}}),
            json!({"link": "https://cdn.example.com/i.pdf", "filename": "invoice.pdf"}),
        ),
        (
            json!({"type": "sticker", "sticker": {"id": "777"}}),
            json!({"id": "777"}),
        ),
        (
            json!({"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta"}}),
            json!({"latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta"}),
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Budi", "first_name": "Budi"}, "phones": [{"phone": "+62812", "type": "CELL"}]}]}),
            json!([{"name": {"formatted_name": "Budi", "first_name": "Budi"}, "phones": [{"phone": "+62812", "type": "CELL"}]}]),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}}),
            json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Menu"}, "action": {"button": "Choose", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row"}]}]}}}),
            json!({"type": "list", "body": {"text": "Menu"}, "action": {"button": "Choose", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row"}]}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "Track"}, "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://x.example/t"}}}}),
            json!({"type": "cta_url", "body": {"text": "Track"}, "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://x.example/t"}}}),
        ),
        (
            json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "335628"}]}]}}),
            json!({"name": "order_update", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "335628"}]}]}),
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": first_id, "emoji": "👍"}}),
            json!({"message_id": first_wamid, "emoji": "👍"}),
        ),
    ];
    let mut ids = Vec::new();
    for (partial, _) in &cases {
        let mut body = partial.clone();
        body["number_id"] = json!(w.number_id);
        body["to"] = json!(format!("+{CUSTOMER}"));
        ids.push(queued(&w, body).await["id"].as_str().unwrap().to_string());
    }
    // A reply quotes the customer's message.
    let mut reply = text_to(&w, "Replying");
    reply["reply_to"] = inbound["id"].clone();
    let reply_id = queued(&w, reply).await["id"].as_str().unwrap().to_string();

    for _ in 0..300 {
        if w.graph_sends().await.len() >= cases.len() + 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sends = w.graph_sends().await;
    for ((partial, expected), id) in cases.iter().zip(&ids) {
        let kind = partial["type"].as_str().unwrap();
        let got = sends
            .iter()
            .find(|s| s["body"]["biz_opaque_callback_data"] == id.as_str())
            .unwrap_or_else(|| panic!("{kind} reached Graph"));
        let mut want = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": kind, "biz_opaque_callback_data": id});
        want[kind] = expected.clone();
        assert_eq!(got["body"], want, "{kind}");
    }
    let got = sends
        .iter()
        .find(|s| s["body"]["biz_opaque_callback_data"] == reply_id.as_str())
        .unwrap();
    assert_eq!(
        got["body"]["context"],
        json!({"message_id": inbound["wamid"]})
    );

    // The reaction shows on its target and is not a bubble of its own.
    let target = w
        .message_until(&conv, &first_id, |m| {
            m["reactions"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    assert_eq!(
        target["reactions"],
        json!([{"emoji": "👍", "direction": "outbound"}])
    );
    let listed = w
        .api_get(&format!("/api/v1/conversations/{conv}/messages?limit=200"))
        .await;
    assert!(listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["type"] != "reaction"));
}

#[tokio::test]
async fn throttling_twice_then_success_sends_once_after_two_retries() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    w.emu_post("/_emulator/faults", json!({"path_contains": "/messages", "times": 2, "respond": {"http_status": 429, "code": 130429, "message": "Rate limit hit"}})).await;
    let id = queued(&w, text_to(&w, "hello")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.message_until(&conv, &id, |m| {
        m["status"] == "sent" || m["status"] == "delivered" || m["status"] == "read"
    })
    .await;
    let (state, attempts, last_error) = w.app.db.job_of_message(&id).await.unwrap().unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("done", 3),
        "two retries recorded"
    );
    assert!(last_error.unwrap().contains("130429"));
    let sends = w.graph_sends().await;
    assert_eq!(sends.len(), 3);
    assert_eq!(
        sends.iter().filter(|s| s["response_status"] == 200).count(),
        1,
        "one accepted send"
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    w.emu_post("/_emulator/faults", json!({"path_contains": "/messages", "times": 1, "respond": {"http_status": 500, "code": 1, "message": "An unknown error occurred"}})).await;
    let id = queued(&w, text_to(&w, "hello")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.message_until(&conv, &id, |m| m["wamid"].is_string())
        .await;
    assert_eq!(w.graph_sends().await.len(), 2);
}

#[tokio::test]
async fn permanent_refusals_fail_the_message_with_the_reason_and_no_further_attempt() {
    for (code, words) in [(131047, "template"), (131026, "could not deliver")] {
        let w = world(&[]).await;
        let conv = w.customer_says(CUSTOMER, "hi").await;
        w.emu_post("/_emulator/faults", json!({"to": CUSTOMER, "times": null, "respond": {"http_status": 400, "code": code, "message": "refused"}})).await;
        let id = queued(&w, text_to(&w, "hello")).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let m = w
            .message_until(&conv, &id, |m| m["status"] == "failed")
            .await;
        assert_eq!(m["error"]["code"], code);
        assert!(
            m["error"]["detail"].as_str().unwrap().contains(words),
            "{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(w.graph_sends().await.len(), 1, "no retry for {code}");
        assert_eq!(
            w.app.db.job_of_message(&id).await.unwrap().unwrap().0,
            "failed"
        );
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_sends_once_and_a_different_body_conflicts() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    let mut body = text_to(&w, "once");
    body["idempotency_key"] = json!("order-1-shipped");
    let first = queued(&w, body.clone()).await;
    // The key comes back on the message, so the client that sent it can match the live event
    // to its own queued copy.
    assert_eq!(first["idempotency_key"], "order-1-shipped");
    let again = w.send(body.clone()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    body["text"]["body"] = json!("different");
    let conflict = w.send(body).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(error_code(conflict).await, "idempotency_conflict");
    let stored = w
        .message_until(&conv, first["id"].as_str().unwrap(), |m| {
            m["wamid"].is_string()
        })
        .await;
    assert_eq!(stored["idempotency_key"], "order-1-shipped");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.graph_sends().await.len(), 1);

    // A day later the retention pass frees the key: the message no longer shows it, and the
    // key names a new send.
    let later = app::server::now_ms() + 25 * 3600 * 1000;
    let swept = server::privacy::run_retention(&w.app.state, later)
        .await
        .unwrap();
    assert_eq!(swept.idempotency_keys, 1);
    let stored = w
        .message_until(&conv, first["id"].as_str().unwrap(), |m| {
            m["idempotency_key"].is_null()
        })
        .await;
    assert!(stored["wamid"].is_string());
    let mut reused = text_to(&w, "a new one");
    reused["idempotency_key"] = json!("order-1-shipped");
    let second = queued(&w, reused).await;
    assert_ne!(second["id"], first["id"]);
}

#[tokio::test]
async fn a_closed_window_refuses_free_form_with_template_advice_but_allows_templates() {
    let w = world(&[]).await;
    let res = w.send(text_to(&w, "hello?")).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "window_closed");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("template"));
    w.emu_post("/_emulator/templates", json!({"waba_id": common::meta::WABA, "templates": [{"name": "hello_world", "language": "en_US"}]})).await;
    let t = json!({"number_id": w.number_id, "to": format!("+{CUSTOMER}"), "type": "template", "template": {"name": "hello_world", "language": "en_US"}});
    queued(&w, t).await;
    assert!(w
        .graph_sends()
        .await
        .iter()
        .all(|s| s["body"]["type"] != "text"));
}

#[tokio::test]
async fn a_send_whose_answer_is_lost_is_resolved_by_its_status_webhook_without_a_second_request() {
    let w = world(&[("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", "60000")]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    w.emu_post(
        "/_emulator/faults",
        json!({"drop_after_accept": true, "times": 1}),
    )
    .await;
    let id = queued(&w, text_to(&w, "are you there?")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = w
        .message_until(&conv, &id, |m| {
            m["wamid"].is_string() && m["status"] == "read"
        })
        .await;
    assert!(m["wamid"].as_str().unwrap().starts_with("wamid."));
    assert_eq!(
        w.graph_sends().await.len(),
        1,
        "resolved from biz_opaque_callback_data"
    );
    assert_eq!(
        w.app.db.job_of_message(&id).await.unwrap().unwrap().0,
        "done"
    );
}

#[tokio::test]
async fn validation_errors_name_the_field_and_foreign_ids_answer_404() {
    let w = world(&[]).await;
    w.customer_says(CUSTOMER, "hi").await;
    let cases = [
        (
            json!({"number_id": w.number_id, "to": "15551234567", "type": "text", "text": {"body": "x"}}),
            422,
            "to",
        ),
        (
            json!({"number_id": w.number_id, "to": "+15551234567", "type": "text", "text": {"body": "x".repeat(4097)}}),
            422,
            "text.body",
        ),
        (
            json!({"number_id": w.number_id, "to": "+15551234567", "type": "interactive", "interactive": {"type": "button", "body": {"text": "b"}, "action": {"buttons": [1, 2, 3, 4]}}}),
            422,
            "interactive.action.buttons",
        ),
        (
            json!({"number_id": w.number_id, "to": "+15551234567", "type": "hologram", "hologram": {}}),
            422,
            "type",
        ),
        (
            json!({"number_id": w.number_id, "to": "+15551234567", "type": "text"}),
            422,
            "text",
        ),
    ];
    for (body, status, field) in cases {
        let res = w.send(body.clone()).await;
        assert_eq!(res.status(), status, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (_, other) = w.app.workspace_with_token("Globex").await;
    let res = w
        .app
        .post("/api/v1/messages")
        .bearer_auth(&other)
        .json(&text_to(&w, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "another workspace's number");
    let malformed = w
        .app
        .post("/api/v1/messages")
        .bearer_auth(&w.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(malformed).await, "bad_request");
    assert!(w.graph_sends().await.is_empty());
}

#[tokio::test]
async fn reading_a_conversation_clears_unread_and_marks_the_newest_message_read_at_meta() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "one").await;
    w.customer_says(CUSTOMER, "two").await;
    let before = w.api_get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(before["unread_count"], 2);
    let newest = before["last_message"]["wamid"].clone();
    let res = w
        .app
        .post(&format!("/api/v1/conversations/{conv}/read"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after: Value = res.json().await.unwrap();
    assert_eq!(after["unread_count"], 0);
    for _ in 0..200 {
        let reads = w.emu_get("/_emulator/reads").await;
        if reads.as_array().is_some_and(|r| {
            r.iter()
                .any(|x| x.to_string().contains(newest.as_str().unwrap()))
        }) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("Meta was not told the conversation was read");
}

#[tokio::test]
async fn an_uploaded_file_goes_to_meta_first_and_is_sent_by_metas_media_id() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    let pdf = b"%PDF-1.4 an invoice, more or less".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("number_id", w.number_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf.clone())
                .file_name("invoice.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let res = w
        .app
        .post("/api/v1/media")
        .bearer_auth(&w.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let up: Value = res.json().await.unwrap();
    let ours = up["id"].as_str().unwrap().to_string();
    let body = json!({"number_id": w.number_id, "to": format!("+{CUSTOMER}"), "type": "document", "document": {"media_id": ours, "filename": "invoice.pdf", "caption": "Your invoice"}});
    let id = queued(&w, body).await["id"].as_str().unwrap().to_string();
    let m = w
        .message_until(&conv, &id, |m| m["wamid"].is_string())
        .await;
    assert_eq!(m["content"]["media_id"], ours.as_str());
    assert_eq!(m["content"]["url"], format!("/media/{id}"));
    let sends = w.graph_sends().await;
    let doc = &sends.last().unwrap()["body"]["document"];
    let meta_id = doc["id"].as_str().unwrap();
    assert_ne!(meta_id, ours, "Graph gets Meta's media id, not ours");
    assert_eq!(doc["filename"], "invoice.pdf");
    let info: Value = w
        .http
        .get(format!("{}/v25.0/{meta_id}", w.emulator))
        .bearer_auth(ACCESS_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["mime_type"], "application/pdf",
        "the upload reached Meta: {info}"
    );
    let copy = w
        .app
        .get(&format!("/media/{id}"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), 200);
    assert_eq!(
        copy.bytes().await.unwrap().to_vec(),
        pdf,
        "our own copy for the thread"
    );

    let gif = reqwest::multipart::Form::new()
        .text("number_id", w.number_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"GIF89a".to_vec())
                .file_name("a.gif")
                .mime_str("image/gif")
                .unwrap(),
        );
    let res = w
        .app
        .post("/api/v1/media")
        .bearer_auth(&w.token)
        .multipart(gif)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let big = reqwest::multipart::Form::new()
        .text("number_id", w.number_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![0u8; 5 * 1024 * 1024 + 1])
                .file_name("big.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    let res = w
        .app
        .post("/api/v1/media")
        .bearer_auth(&w.token)
        .multipart(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");
}

#[tokio::test]
async fn the_typing_indicator_reaches_meta_and_is_throttled() {
    let w = world(&[]).await;
    let conv = w.customer_says(CUSTOMER, "hi").await;
    let res = w
        .app
        .post(&format!("/api/v1/conversations/{conv}/typing"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["typing"], true, "{v}");
    let again: Value = w
        .app
        .post(&format!("/api/v1/conversations/{conv}/typing"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["typing"], false);
    assert_eq!(again["reason"], "throttled");
    let typing_calls = w
        .emu_get("/_emulator/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["body"]["typing_indicator"]["type"] == "text")
        .count();
    assert_eq!(typing_calls, 1);
}

#[tokio::test]
async fn at_a_slow_pace_queued_sends_outwait_their_lease_and_still_go_once_each() {
    // A 1-second lease, a 1-second unknown wait, 2 messages a second: the tenth send waits
    // about 4.5 s for its turn. Were the waiting sends taken for sends cut off mid-flight, the
    // sweep would mark them unknown and queue them again a second later: sent twice.
    let w = world(&[
        ("QONTAK_OUTBOX_LEASE_MS", "1000"),
        ("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", "1000"),
    ])
    .await;
    w.app.db.set_throughput(&w.number_id, 2).await.unwrap();
    let conv = w.customer_says(CUSTOMER, "hi").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let m = queued(&w, text_to(&w, &format!("update {i}"))).await;
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        w.message_until(&conv, id, |m| m["status"] == "read").await;
    }
    // Past the unknown wait: a job wrongly marked unknown would have been sent again by now.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let sends = w.graph_sends().await;
    let mut bodies: Vec<&str> = sends
        .iter()
        .filter_map(|s| s["body"]["text"]["body"].as_str())
        .collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        (0..10).map(|i| format!("update {i}")).collect::<Vec<_>>(),
        "each message sent exactly once"
    );
    for id in &ids {
        assert_eq!(
            w.app.db.job_of_message(id).await.unwrap().unwrap().0,
            "done"
        );
    }
}
