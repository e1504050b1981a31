//! Meta's webhooks through the real endpoint: verification, signatures, every message type,
//! identities, replays, and what the API shows afterwards.

mod common;

use std::time::Duration;

use app::server::db::NewNumber;
use app::server::webhook::sign;
use common::{error_code, spawn_app_with, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "test-app-secret";
const PNID: &str = "106540352242922";

async fn app() -> (TestApp, String) {
    let app = spawn_app_with(&[
        ("META_APP_SECRET", SECRET),
        ("META_VERIFY_TOKEN", "verify-me"),
    ])
    .await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    app.db
        .connect_number(&NewNumber {
            workspace_id: &ws,
            waba_id: "102290129340398",
            phone_number_id: PNID,
            display_phone: Some("+15550783881"),
            access_token_enc: &app.state.key.encrypt("EAA"),
            key_id: app.state.key.id(),
        })
        .await
        .unwrap();
    (app, token)
}

fn envelope(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]})
}

fn messages_value(contacts: Value, messages: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "contacts": contacts,
        "messages": messages,
    })
}

fn text(id: &str, from: &str, ts: i64, body: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": body}})
}

fn ana() -> Value {
    json!([{"profile": {"name": "Ana"}, "wa_id": "15551234567", "user_id": "US.100"}])
}

async fn post(app: &TestApp, body: &Value) -> reqwest::Response {
    let raw = serde_json::to_vec(body).unwrap();
    app.post("/webhooks/whatsapp")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &raw))
        .body(raw)
        .send()
        .await
        .unwrap()
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.get(path).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// Polls until `f` holds: acknowledged events are applied by a background processor.
async fn eventually<F: Fn(&Value) -> bool>(app: &TestApp, token: &str, path: &str, f: F) -> Value {
    for _ in 0..100 {
        let v = get_json(app, token, path).await;
        if f(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{path} never matched; last: {}",
        get_json(app, token, path).await
    );
}

async fn only_conversation_messages(app: &TestApp, token: &str, n: usize) -> (Value, Vec<Value>) {
    let convs = eventually(app, token, "/api/v1/conversations", |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let conv = convs["data"][0].clone();
    let path = format!(
        "/api/v1/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    let msgs = eventually(app, token, &path, |v| {
        v["data"].as_array().is_some_and(|d| d.len() >= n)
    })
    .await;
    (conv, msgs["data"].as_array().unwrap().clone())
}

#[tokio::test]
async fn verification_answers_the_challenge_only_for_our_token() {
    let (app, _) = app().await;
    let ok = app.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=other&hub.verify_token=verify-me&hub.challenge=1",
        "",
    ] {
        let res = app
            .get(&format!("/webhooks/whatsapp?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{q}");
    }
}

#[tokio::test]
async fn missing_wrong_and_right_signatures_answer_401_401_200_and_only_the_right_is_stored() {
    let (app, _) = app().await;
    let body = serde_json::to_vec(&envelope(messages_value(
        ana(),
        json!([text("wamid.S1", "15551234567", 1700000000, "hi")]),
    )))
    .unwrap();
    let missing = app
        .post("/webhooks/whatsapp")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(missing).await, "unauthorized");
    let wrong = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", sign(b"another-secret", &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        app.db.webhook_event_count().await.unwrap(),
        0,
        "nothing stored for the 401s"
    );
    let right = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(app.db.webhook_event_count().await.unwrap(), 1);
}

#[tokio::test]
async fn webhooks_are_refused_until_the_app_secret_is_set() {
    let app = spawn_app_with(&[]).await;
    let res = app
        .post("/webhooks/whatsapp")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(app.db.webhook_event_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_a_400() {
    let (app, _) = app().await;
    let res = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), b"{not json"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.db.webhook_event_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_text_message_shows_in_conversations_and_messages_with_the_contact_and_an_open_window() {
    let (app, token) = app().await;
    let now = app::server::now_ms() / 1000;
    let res = post(
        &app,
        &envelope(messages_value(
            ana(),
            json!([text(
                "wamid.T1",
                "15551234567",
                now,
                "Does it come in blue?"
            )]),
        )),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (conv, msgs) = only_conversation_messages(&app, &token, 1).await;
    assert_eq!(conv["contact"]["wa_id"], "15551234567");
    assert_eq!(conv["contact"]["bsuid"], "US.100");
    assert_eq!(conv["contact"]["phone"], "+15551234567");
    assert_eq!(conv["contact"]["name"], "Ana");
    assert_eq!(conv["status"], "open");
    assert_eq!(conv["unread_count"], 1);
    assert_eq!(conv["window"]["open"], true);
    assert_eq!(
        conv["last_message"]["content"]["body"],
        "Does it come in blue?"
    );
    let m = &msgs[0];
    assert_eq!(m["wamid"], "wamid.T1");
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["type"], "text");
    assert_eq!(m["status"], "received");
    assert_eq!(m["content"]["body"], "Does it come in blue?");
    assert_eq!(m["conversation_id"], conv["id"]);
}

#[tokio::test]
async fn every_inbound_type_of_a_batch_is_stored_in_metas_shape_ordered_by_metas_time() {
    let (app, token) = app().await;
    let f = "15551234567";
    let mut batch = vec![
        json!({"from": f, "id": "wamid.img", "timestamp": "1700000010", "type": "image", "image": {"id": "m-img", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "the blue one"}}),
        json!({"from": f, "id": "wamid.vid", "timestamp": "1700000011", "type": "video", "video": {"id": "m-vid", "mime_type": "video/mp4", "sha256": "v="}}),
        json!({"from": f, "id": "wamid.voice", "timestamp": "1700000012", "type": "audio", "audio": {"id": "m-aud", "mime_type": "audio/ogg; codecs=opus", "sha256": "a=", "voice": true}}),
        json!({"from": f, "id": "wamid.doc", "timestamp": "1700000013", "type": "document", "document": {"id": "m-doc", "mime_type": "application/pdf", "sha256": "d=", "filename": "invoice.pdf"}}),
        json!({"from": f, "id": "wamid.stk", "timestamp": "1700000014", "type": "sticker", "sticker": {"id": "m-stk", "mime_type": "image/webp", "sha256": "s=", "animated": true}}),
        json!({"from": f, "id": "wamid.loc", "timestamp": "1700000015", "type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta"}}),
        json!({"from": f, "id": "wamid.ctc", "timestamp": "1700000016", "type": "contacts", "contacts": [{"name": {"formatted_name": "Budi"}, "phones": [{"phone": "+62 812", "wa_id": "62812", "type": "CELL"}]}]}),
        json!({"from": f, "id": "wamid.btn", "timestamp": "1700000017", "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}}),
        json!({"from": f, "id": "wamid.lst", "timestamp": "1700000018", "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row 1", "description": "d"}}}),
        json!({"from": f, "id": "wamid.nfm", "timestamp": "1700000019", "type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "response_json": "{}"}}}),
        json!({"from": f, "id": "wamid.qr", "timestamp": "1700000020", "type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}, "context": {"from": "15550783881", "id": "wamid.template"}}),
        json!({"from": f, "id": "wamid.ord", "timestamp": "1700000021", "type": "order", "order": {"catalog_id": "c1", "product_items": [{"product_retailer_id": "p1", "quantity": "2", "item_price": "10", "currency": "USD"}]}}),
        json!({"from": f, "id": "wamid.ref", "timestamp": "1700000022", "type": "text", "text": {"body": "from an ad"}, "referral": {"source_url": "https://fb.me/x", "source_type": "ad", "ctwa_clid": "clid"}}),
        json!({"from": f, "id": "wamid.sys", "timestamp": "1700000023", "type": "system", "system": {"body": "Ana changed their number", "type": "user_changed_number", "new_wa_id": "15557654321"}}),
        json!({"from": f, "id": "wamid.uns", "timestamp": "1700000024", "type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]}),
        json!({"from": f, "id": "wamid.new", "timestamp": "1700000025", "type": "hologram", "hologram": {"depth": 3}}),
        json!({"from": f, "id": "wamid.fwd", "timestamp": "1700000026", "type": "text", "text": {"body": "fwd"}, "context": {"forwarded": true}}),
    ];
    // Arrival order is not Meta's order: the thread follows Meta's timestamps.
    batch.reverse();
    batch.push(text("wamid.first", f, 1700000001, "hello"));
    let res = post(&app, &envelope(messages_value(ana(), Value::Array(batch)))).await;
    assert_eq!(res.status(), 200);
    let (conv, msgs) = only_conversation_messages(&app, &token, 18).await;
    assert_eq!(msgs.len(), 18);
    assert_eq!(conv["unread_count"], 18);
    let by = |w: &str| {
        msgs.iter()
            .find(|m| m["wamid"] == w)
            .unwrap_or_else(|| panic!("{w} stored"))
            .clone()
    };
    assert_eq!(
        msgs[0]["wamid"], "wamid.first",
        "oldest first by Meta's time"
    );
    assert_eq!(msgs[17]["wamid"], "wamid.fwd");
    assert_eq!(by("wamid.img")["content"]["caption"], "the blue one");
    assert_eq!(by("wamid.img")["content"]["sha256"], "abc=");
    assert_eq!(by("wamid.voice")["content"]["voice"], true);
    assert_eq!(by("wamid.doc")["content"]["filename"], "invoice.pdf");
    assert_eq!(by("wamid.stk")["content"]["animated"], true);
    assert_eq!(by("wamid.loc")["content"]["name"], "Monas");
    assert_eq!(
        by("wamid.ctc")["content"]["contacts"][0]["name"]["formatted_name"],
        "Budi"
    );
    assert_eq!(by("wamid.btn")["content"]["button_reply"]["id"], "yes");
    assert_eq!(by("wamid.lst")["content"]["list_reply"]["title"], "Row 1");
    assert_eq!(by("wamid.nfm")["content"]["type"], "nfm_reply");
    assert_eq!(by("wamid.qr")["type"], "button");
    assert_eq!(by("wamid.qr")["content"]["payload"], "STOP");
    assert_eq!(by("wamid.qr")["context"]["id"], "wamid.template");
    assert_eq!(
        by("wamid.ord")["content"]["product_items"][0]["quantity"],
        "2"
    );
    assert_eq!(by("wamid.sys")["content"]["type"], "user_changed_number");
    assert_eq!(by("wamid.uns")["type"], "unsupported");
    assert_eq!(by("wamid.uns")["error"]["code"], 131051);
    assert_eq!(
        by("wamid.new")["type"],
        "hologram",
        "an unknown type keeps its name"
    );
    assert_eq!(by("wamid.new")["content"]["depth"], 3);
    assert_eq!(by("wamid.fwd")["context"]["forwarded"], true);
    assert_eq!(conv["last_message"]["wamid"], "wamid.fwd");
}

#[tokio::test]
async fn reactions_edits_and_revokes_change_the_original_message_and_keep_history() {
    let (app, token) = app().await;
    let f = "15551234567";
    post(
        &app,
        &envelope(messages_value(
            ana(),
            json!([
                text("wamid.orig", f, 1700000000, "Price is 10"),
                text("wamid.other", f, 1700000001, "second")
            ]),
        )),
    )
    .await;
    only_conversation_messages(&app, &token, 2).await;
    let react = |emoji: &str, id: &str| json!({"from": f, "id": id, "timestamp": "1700000005", "type": "reaction", "reaction": {"message_id": "wamid.orig", "emoji": emoji}});
    post(
        &app,
        &envelope(messages_value(ana(), json!([react("👍", "wamid.r1")]))),
    )
    .await;
    let (_, msgs) = only_conversation_messages(&app, &token, 2).await;
    let conv_id = msgs[0]["conversation_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{conv_id}/messages");
    let v = eventually(&app, &token, &path, |v| {
        v["data"][0]["reactions"][0]["emoji"] == "👍"
    })
    .await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        2,
        "a reaction is not a message of its own"
    );
    post(
        &app,
        &envelope(messages_value(ana(), json!([react("", "wamid.r2")]))),
    )
    .await;
    eventually(&app, &token, &path, |v| {
        v["data"][0]["reactions"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    })
    .await;

    let edit = json!({"from": f, "id": "wamid.e1", "timestamp": "1700000009", "type": "edit",
        "edit": {"original_message_id": "wamid.orig", "message": {"type": "text", "text": {"body": "Price is 12"}}}});
    post(&app, &envelope(messages_value(ana(), json!([edit])))).await;
    let v = eventually(&app, &token, &path, |v| v["data"][0]["edited"] == true).await;
    assert_eq!(v["data"][0]["content"]["body"], "Price is 12");
    assert_eq!(v["data"][0]["history"][0]["content"]["body"], "Price is 10");

    let revoke = json!({"from": f, "id": "wamid.v1", "timestamp": "1700000010", "type": "revoke", "revoke": {"original_message_id": "wamid.other"}});
    post(&app, &envelope(messages_value(ana(), json!([revoke])))).await;
    let v = eventually(&app, &token, &path, |v| v["data"][1]["deleted"] == true).await;
    assert_eq!(v["data"][1]["history"][0]["content"]["body"], "second");
}

#[tokio::test]
async fn a_delivery_replayed_three_times_and_interleaved_is_stored_once() {
    let (app, token) = app().await;
    let a = envelope(messages_value(
        ana(),
        json!([text("wamid.R1", "15551234567", 1700000000, "once")]),
    ));
    let b = envelope(messages_value(
        ana(),
        json!([text("wamid.R2", "15551234567", 1700000001, "twice")]),
    ));
    for body in [&a, &b, &a, &b, &a] {
        assert_eq!(post(&app, body).await.status(), 200);
    }
    let (conv, _) = only_conversation_messages(&app, &token, 2).await;
    for _ in 0..20 {
        if app.db.webhook_backlog().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let v = get_json(
        &app,
        &token,
        &format!(
            "/api/v1/conversations/{}/messages",
            conv["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let conv = get_json(&app, &token, "/api/v1/conversations").await;
    assert_eq!(
        conv["data"][0]["unread_count"], 2,
        "replays count nothing twice"
    );
    assert_eq!(
        app.db.webhook_event_count().await.unwrap(),
        5,
        "every delivery is kept raw"
    );
}

/// One delivery whose messages depend on each other (a new sender writing twice under a new
/// name, a reaction to and a reply to messages of the same delivery, the sender's BSUID
/// linked by a later change, a replay of the whole delivery): applied as if one by one.
#[tokio::test]
async fn one_delivery_whose_messages_refer_to_each_other_applies_them_in_order() {
    let (app, token) = app().await;
    let f = "15550001111";
    let who = |name: &str| json!([{"profile": {"name": name}, "wa_id": f}]);
    let change = |value: Value| json!({"field": "messages", "value": value});
    let reaction = json!({"from": f, "id": "wamid.X3", "timestamp": "1700000003", "type": "reaction", "reaction": {"message_id": "wamid.X1", "emoji": "🎉"}});
    let reply = json!({"from": f, "id": "wamid.X4", "timestamp": "1700000004", "type": "text", "text": {"body": "about that"}, "context": {"from": "15550783881", "id": "wamid.X2"}});
    let linked = json!([{"profile": {"name": "Bo Baker"}, "wa_id": f, "user_id": "US.55"}]);
    let m5 = json!({"from": f, "from_user_id": "US.55", "id": "wamid.X5", "timestamp": "1700000005", "type": "image", "image": {"id": "media-x5", "mime_type": "image/png", "sha256": "x="}});
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        change(messages_value(who("Bo"), json!([text("wamid.X1", f, 1700000001, "first")]))),
        change(messages_value(who("Bo Baker"), json!([text("wamid.X2", f, 1700000002, "second"), reaction, reply]))),
    ]}, {"id": "102290129340398", "changes": [change(messages_value(linked, json!([m5])))]}]});
    assert_eq!(post(&app, &body).await.status(), 200);
    let (conv, msgs) = only_conversation_messages(&app, &token, 4).await;
    let wamids: Vec<&str> = msgs.iter().map(|m| m["wamid"].as_str().unwrap()).collect();
    assert_eq!(
        wamids,
        ["wamid.X1", "wamid.X2", "wamid.X4", "wamid.X5"],
        "a reaction is not a message"
    );
    assert_eq!(
        msgs[0]["reactions"][0]["emoji"], "🎉",
        "the reaction found its target in the same delivery"
    );
    assert_eq!(msgs[2]["context"]["id"], "wamid.X2");
    assert_eq!(msgs[3]["type"], "image");
    assert_eq!(conv["unread_count"], 4);
    assert_eq!(conv["last_message"]["wamid"], "wamid.X5");
    assert_eq!(conv["contact"]["name"], "Bo Baker", "the later name wins");
    assert_eq!(
        conv["contact"]["bsuid"], "US.55",
        "linked by the last change"
    );
    assert_eq!(conv["contact"]["wa_id"], f);

    // The same delivery again changes nothing.
    assert_eq!(post(&app, &body).await.status(), 200);
    for _ in 0..100 {
        if app.db.webhook_backlog().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let convs = get_json(&app, &token, "/api/v1/conversations").await;
    assert_eq!(
        convs["data"].as_array().unwrap().len(),
        1,
        "one contact, one conversation"
    );
    assert_eq!(convs["data"][0]["unread_count"], 4);
    let path = format!(
        "/api/v1/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    let again = get_json(&app, &token, &path).await;
    assert_eq!(again["data"].as_array().unwrap().len(), 4);
    assert_eq!(again["data"][0]["reactions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_sender_known_only_by_bsuid_lands_in_a_conversation_and_is_linked_when_the_phone_appears()
{
    let (app, token) = app().await;
    let no_phone = json!([{"profile": {"name": "Rin", "username": "@rin"}, "user_id": "US.777"}]);
    let m1 = json!({"from_user_id": "US.777", "id": "wamid.B1", "timestamp": "1700000000", "type": "text", "text": {"body": "no phone"}});
    post(&app, &envelope(messages_value(no_phone, json!([m1])))).await;
    let (conv, _) = only_conversation_messages(&app, &token, 1).await;
    assert!(conv["contact"]["wa_id"].is_null() && conv["contact"]["phone"].is_null());
    assert_eq!(conv["contact"]["bsuid"], "US.777");
    assert_eq!(conv["contact"]["username"], "@rin");

    let both = json!([{"profile": {"name": "Rin K"}, "wa_id": "15559990000", "user_id": "US.777"}]);
    let m2 = json!({"from": "15559990000", "from_user_id": "US.777", "id": "wamid.B2", "timestamp": "1700000001", "type": "text", "text": {"body": "now with phone"}});
    post(&app, &envelope(messages_value(both, json!([m2])))).await;
    let convs = eventually(&app, &token, "/api/v1/conversations", |v| {
        v["data"][0]["contact"]["wa_id"] == "15559990000"
    })
    .await;
    assert_eq!(
        convs["data"].as_array().unwrap().len(),
        1,
        "the same conversation"
    );
    assert_eq!(
        convs["data"][0]["contact"]["name"], "Rin K",
        "the profile name updates"
    );
    assert_eq!(convs["data"][0]["unread_count"], 2);
}

#[tokio::test]
async fn events_for_unknown_numbers_fields_and_wamids_are_acknowledged_and_kept() {
    let (app, _) = app().await;
    let mut unknown_number = messages_value(
        ana(),
        json!([text("wamid.U1", "15551234567", 1700000000, "hi")]),
    );
    unknown_number["metadata"]["phone_number_id"] = json!("999");
    let status = json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
        "statuses": [{"id": "wamid.never-sent", "status": "delivered", "timestamp": "1700000000", "recipient_id": "15551234567"}]});
    let other_field = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "brand_new_field", "value": {"x": 1}}]}]});
    for body in [envelope(unknown_number), envelope(status), other_field] {
        assert_eq!(post(&app, &body).await.status(), 200);
    }
    assert_eq!(app.db.webhook_event_count().await.unwrap(), 3);
}

#[tokio::test]
async fn list_paging_validates_limit_and_cursor() {
    let (app, token) = app().await;
    for (i, w) in ["15550000001", "15550000002", "15550000003"]
        .iter()
        .enumerate()
    {
        let c = json!([{"profile": {"name": format!("C{i}")}, "wa_id": w}]);
        post(
            &app,
            &envelope(messages_value(
                c,
                json!([text(&format!("wamid.P{i}"), w, 1700000000 + i as i64, "hi")]),
            )),
        )
        .await;
    }
    eventually(&app, &token, "/api/v1/conversations", |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 3)
    })
    .await;
    let p1 = get_json(&app, &token, "/api/v1/conversations?limit=2").await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        p1["data"][0]["contact"]["wa_id"], "15550000003",
        "newest activity first"
    );
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = get_json(
        &app,
        &token,
        &format!("/api/v1/conversations?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["data"][0]["contact"]["wa_id"], "15550000001");
    assert!(p2["next_cursor"].is_null());
    for bad in ["limit=abc", "cursor=%21%21", "limit=0"] {
        let res = app
            .get(&format!("/api/v1/conversations?{bad}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(error_code(res).await, "bad_request");
    }
    let big = get_json(&app, &token, "/api/v1/conversations?limit=1000").await;
    assert_eq!(big["data"].as_array().unwrap().len(), 3);
    let contacts = get_json(&app, &token, "/api/v1/contacts").await;
    assert_eq!(contacts["data"].as_array().unwrap().len(), 3);
    let id = contacts["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        get_json(&app, &token, &format!("/api/v1/contacts/{id}")).await["id"],
        id
    );
}

#[tokio::test]
async fn another_workspaces_conversation_answers_404() {
    let (app, token) = app().await;
    post(
        &app,
        &envelope(messages_value(
            ana(),
            json!([text("wamid.X", "15551234567", 1700000000, "hi")]),
        )),
    )
    .await;
    let (conv, _) = only_conversation_messages(&app, &token, 1).await;
    let (_, other) = app.workspace_with_token("Globex").await;
    let id = conv["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/conversations/{id}"),
        format!("/api/v1/conversations/{id}/messages"),
        format!(
            "/api/v1/contacts/{}",
            conv["contact"]["id"].as_str().unwrap()
        ),
    ] {
        let res = app.get(&path).bearer_auth(&other).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(error_code(res).await, "not_found");
    }
}

#[tokio::test]
async fn template_number_and_account_webhooks_update_what_they_describe() {
    let (app, token) = app().await;
    let waba = |field: &str, value: Value| json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "time": 1700000000, "changes": [{"field": field, "value": value}]}]});
    post(&app, &waba("message_template_status_update", json!({"event": "PENDING", "message_template_id": 5551, "message_template_name": "order_update", "message_template_language": "en_US", "reason": "NONE"}))).await;
    let v = eventually(&app, &token, "/api/v1/templates", |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    assert_eq!(v["data"][0]["status"], "PENDING");
    assert_eq!(v["data"][0]["meta_id"], "5551");
    post(&app, &waba("message_template_status_update", json!({"event": "REJECTED", "message_template_id": 5551, "message_template_name": "order_update", "message_template_language": "en_US", "reason": "INVALID_FORMAT"}))).await;
    let v = eventually(&app, &token, "/api/v1/templates", |v| {
        v["data"][0]["status"] == "REJECTED"
    })
    .await;
    assert_eq!(v["data"][0]["rejected_reason"], "INVALID_FORMAT");
    post(&app, &waba("template_category_update", json!({"message_template_id": 5551, "message_template_name": "order_update", "message_template_language": "en_US", "previous_category": "UTILITY", "new_category": "MARKETING"}))).await;
    eventually(&app, &token, "/api/v1/templates", |v| {
        v["data"][0]["category"] == "MARKETING"
    })
    .await;
    post(&app, &waba("message_template_quality_update", json!({"previous_quality_score": "GREEN", "new_quality_score": "YELLOW", "message_template_id": 5551, "message_template_name": "order_update", "message_template_language": "en_US"}))).await;
    eventually(&app, &token, "/api/v1/templates", |v| {
        v["data"][0]["quality_score"] == "YELLOW"
    })
    .await;

    post(&app, &waba("phone_number_quality_update", json!({"display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE", "max_daily_conversations_per_business": "TIER_10K"}))).await;
    let n = eventually(&app, &token, "/api/v1/numbers", |v| {
        v["data"][0]["messaging_tier"] == "TIER_10K"
    })
    .await;
    assert_eq!(n["data"][0]["throughput_mps"], 1000);

    post(&app, &waba("account_update", json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1700086400}]}))).await;
    let ws = app.db.workspace_by_name("Acme").await.unwrap().unwrap().id;
    for _ in 0..100 {
        let alerts = app.db.alerts(&ws).await.unwrap();
        if alerts
            .iter()
            .any(|(k, d, _)| k == "account_update" && d.contains("ACCOUNT_RESTRICTION"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the account alert was not stored");
}
