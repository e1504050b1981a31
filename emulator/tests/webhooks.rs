//! What the product receives: status webhooks, customer messages and template updates, all
//! signed with the app secret.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

fn change(body: &Value) -> &Value {
    &body["entry"][0]["changes"][0]
}

#[tokio::test]
async fn statuses_sent_delivered_read_arrive_signed_and_echo_callback_data() {
    let h = Harness::start().await;
    let wamid = h
        .send_text(
            "+15557654321",
            json!({"biz_opaque_callback_data": "msg-7f3a"}),
        )
        .await;
    let got = h.wait_for(3, is_status_for(&wamid)).await;
    assert_eq!(got.len(), 3);
    let mut last_ts = 0;
    for (r, expected) in got.iter().zip(["sent", "delivered", "read"]) {
        assert!(r.signature_ok, "bad signature on {}", r.body);
        assert_eq!(r.body["object"], "whatsapp_business_account");
        assert_eq!(r.body["entry"][0]["id"], WABA_ID);
        let c = change(&r.body);
        assert_eq!(c["field"], "messages");
        assert_eq!(c["value"]["messaging_product"], "whatsapp");
        assert_eq!(
            c["value"]["metadata"],
            json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_ID})
        );
        let s = &statuses(&r.body)[0];
        assert_eq!(s["id"], wamid);
        assert_eq!(s["status"], expected);
        assert_eq!(s["recipient_id"], "15557654321");
        assert_eq!(s["biz_opaque_callback_data"], "msg-7f3a");
        assert_eq!(
            s["pricing"],
            json!({"billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"})
        );
        let ts: i64 = s["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(ts >= last_ts);
        last_ts = ts;
    }
    let (_, sent) = h.get(&h.url("/_emulator/sent")).await;
    assert_eq!(sent[0]["status"], "read");

    // Without callback data, none is echoed.
    let plain = h.send_text("15557654321", json!({})).await;
    let got = h.wait_for(1, is_status_for(&plain)).await;
    assert!(statuses(&got[0].body)[0]
        .get("biz_opaque_callback_data")
        .is_none());
}

#[tokio::test]
async fn template_sends_are_priced_by_the_templates_category() {
    let h = Harness::start().await;
    h.post(
        &h.url("/_emulator/templates"),
        &json!({"templates": [{"name": "promo", "language": "en_US", "category": "MARKETING"}]}),
    )
    .await;
    let (status, answer) = h
        .post(
            &h.graph(&format!("/{PHONE_ID}/messages")),
            &json!({"messaging_product": "whatsapp", "to": "15550005", "type": "template",
                    "template": {"name": "promo", "language": {"code": "en_US"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["contacts"],
        json!([{"input": "15550005", "wa_id": "15550005"}])
    );
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    let got = h.wait_for(1, is_status_for(wamid)).await;
    assert_eq!(
        statuses(&got[0].body)[0]["pricing"]["category"],
        "marketing"
    );
}

#[tokio::test]
async fn customer_message_webhook_is_signed_and_shaped_like_metas() {
    let h = Harness::start().await;
    let (status, answer) = h
        .post(
            &h.url("/_emulator/customers/+15557654321/messages"),
            &json!({"type": "text", "text": {"body": "hi"}, "profile_name": "Ann",
                    "user_id": "US.13491208655302741918", "timestamp": 1_700_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["webhook_status"], 200);
    let wamid = answer["wamid"].as_str().unwrap().to_string();
    assert!(wamid.starts_with("wamid."));

    let got = h.received();
    assert_eq!(
        got.len(),
        1,
        "delivered once, before the control call answered"
    );
    let r = &got[0];
    assert!(r.signature_ok);
    assert_eq!(
        r.body,
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": WABA_ID,
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                        "contacts": [{"profile": {"name": "Ann"}, "wa_id": "15557654321",
                                      "user_id": "US.13491208655302741918"}],
                        "messages": [{"from": "15557654321", "from_user_id": "US.13491208655302741918",
                                      "id": wamid, "timestamp": "1700000000", "type": "text",
                                      "text": {"body": "hi"}}],
                    },
                    "field": "messages",
                }],
            }],
        })
    );
    // The signature covers the exact bytes that were posted.
    assert_eq!(serde_json::from_slice::<Value>(&r.raw).unwrap(), r.body);

    // Media from the control API carries Meta's base64 sha256 and mime type.
    let res = h
        .http
        .post(h.url("/_emulator/media"))
        .header("content-type", "image/jpeg")
        .body(vec![0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3])
        .send()
        .await
        .unwrap();
    let media: Value = res.json().await.unwrap();
    let (_, answer) = h
        .post(
            &h.url("/_emulator/customers/15557654321/messages"),
            &json!({"type": "image", "image": {"id": media["id"], "caption": "the blue one"},
                    "context": {"message_id": "wamid.BUSINESS1"}}),
        )
        .await;
    let got = h.wait_for(2, |_| true).await;
    let message = &change(&got[1].body)["value"]["messages"][0];
    assert!(got[1].signature_ok);
    assert_eq!(message["id"], answer["wamid"]);
    assert_eq!(
        message["image"],
        json!({"id": media["id"], "caption": "the blue one", "mime_type": "image/jpeg",
               "sha256": media["sha256"]})
    );
    assert_eq!(
        message["context"],
        json!({"id": "wamid.BUSINESS1", "from": "15550783881"})
    );

    // A username-only customer: no phone number anywhere.
    let (status, _) = h
        .post(
            &h.url("/_emulator/customers/0/messages"),
            &json!({"type": "location", "location": {"latitude": -6.2, "longitude": 106.8},
                    "user_id": "US.99", "omit_phone": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = h.wait_for(3, |_| true).await;
    let value = &change(&got[2].body)["value"];
    assert!(value["contacts"][0].get("wa_id").is_none());
    assert!(value["messages"][0].get("from").is_none());
    assert_eq!(value["messages"][0]["from_user_id"], "US.99");
    assert_eq!(value["messages"][0]["location"]["latitude"], -6.2);
}

#[tokio::test]
async fn webhooks_are_retried_until_the_product_acknowledges() {
    let h = Harness::start().await;
    h.fail_next_webhooks(2);
    let (_, answer) = h
        .post(
            &h.url("/_emulator/customers/15550006/messages"),
            &json!({"type": "text", "text": {"body": "again?"}}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200);
    assert_eq!(answer["webhook_attempts"], 3);
    let got = h.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.raw == got[0].raw && r.signature_ok));
    let (_, log) = h.get(&h.url("/_emulator/webhooks")).await;
    assert_eq!(log[0]["delivered"], true);
    assert_eq!(log[0]["attempts"], 3);
}

#[tokio::test]
async fn control_statuses_post_failures_with_metas_errors() {
    let h = Harness::start().await;
    // Statuses for a send come from the control API too (here a failure after the automatic
    // ones; the product must keep `failed` out of order rules of its own).
    let wamid = h.send_text("15550007", json!({})).await;
    h.wait_for(3, is_status_for(&wamid)).await;
    let (status, answer) = h
        .post(
            &h.url("/_emulator/statuses"),
            &json!({"wamid": wamid, "status": "failed", "error_code": 131026}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["webhook_status"], 200);
    let got = h.wait_for(4, is_status_for(&wamid)).await;
    let failed = &statuses(&got[3].body)[0];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["recipient_id"], "15550007");
    assert_eq!(failed["errors"][0]["code"], 131026);
    assert!(failed["errors"][0]["title"].is_string());
    assert!(failed.get("pricing").is_none());
}

#[tokio::test]
async fn template_status_change_posts_a_signed_webhook() {
    let h = Harness::start().await;
    let (_, seeded) = h
        .post(
            &h.url("/_emulator/templates"),
            &json!([{"name": "order_update", "language": "pt_BR", "category": "UTILITY",
                     "status": "PENDING", "components": [{"type": "BODY", "text": "Oi"}]}]),
        )
        .await;
    let id = seeded["data"][0]["id"].as_str().unwrap().to_string();

    let (status, answer) = h
        .post(
            &h.url(&format!("/_emulator/templates/{id}/status")),
            &json!({"status": "APPROVED"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["webhook_status"], 200);
    assert_eq!(answer["template"]["status"], "APPROVED");
    let got = h.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].signature_ok);
    assert_eq!(got[0].body["object"], "whatsapp_business_account");
    assert_eq!(got[0].body["entry"][0]["id"], WABA_ID);
    assert!(got[0].body["entry"][0]["time"].is_i64());
    let c = change(&got[0].body);
    assert_eq!(c["field"], "message_template_status_update");
    assert_eq!(c["value"]["event"], "APPROVED");
    assert_eq!(
        c["value"]["message_template_id"],
        id.parse::<u64>().unwrap()
    );
    assert_eq!(c["value"]["message_template_name"], "order_update");
    assert_eq!(c["value"]["message_template_language"], "pt_BR");
    assert_eq!(c["value"]["message_template_category"], "UTILITY");
    assert_eq!(c["value"]["reason"], "NONE");

    // The Graph API now lists it as approved, and it can be sent.
    let (_, list) = h
        .get(&h.graph(&format!("/{WABA_ID}/message_templates?status=APPROVED")))
        .await;
    assert_eq!(list["data"][0]["name"], "order_update");
    let (status, _) = h
        .post(
            &h.graph(&format!("/{PHONE_ID}/messages")),
            &json!({"messaging_product": "whatsapp", "to": "15550008", "type": "template",
                    "template": {"name": "order_update", "language": {"code": "pt_BR"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A rejection carries its reason, and Graph shows it.
    h.post(
        &h.url(&format!("/_emulator/templates/{id}/status")),
        &json!({"status": "REJECTED", "reason": "INVALID_FORMAT",
                "rejection_info": {"reason": "INVALID_FORMAT", "recommendation": "Fix it"}}),
    )
    .await;
    let got = h
        .wait_for(2, |r| {
            change(&r.body)["field"] == "message_template_status_update"
        })
        .await;
    let value = &change(&got[1].body)["value"];
    assert_eq!(value["event"], "REJECTED");
    assert_eq!(value["reason"], "INVALID_FORMAT");
    assert_eq!(value["rejection_info"]["recommendation"], "Fix it");
    let (_, one) = h.get(&h.graph(&format!("/{id}"))).await;
    assert_eq!(one["status"], "REJECTED");
    assert_eq!(one["rejected_reason"], "INVALID_FORMAT");
}

#[tokio::test]
async fn enforced_window_fails_free_form_sends_until_the_customer_writes() {
    let h = Harness::start_with(|c| c.enforce_window = true).await;
    // Accepted, as Meta does, then failed with 131047.
    let early = h.send_text("15550009", json!({})).await;
    let got = h.wait_for(1, is_status_for(&early)).await;
    let failed = &statuses(&got[0].body)[0];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["errors"][0]["code"], 131047);
    assert_eq!(failed["errors"][0]["title"], "Re-engagement message");

    h.post(
        &h.url("/_emulator/customers/15550009/messages"),
        &json!({"type": "text", "text": {"body": "hello?"}}),
    )
    .await;
    let reply = h.send_text("15550009", json!({})).await;
    let got = h.wait_for(3, is_status_for(&reply)).await;
    let order: Vec<Value> = got
        .iter()
        .map(|r| statuses(&r.body)[0]["status"].clone())
        .collect();
    assert_eq!(
        order,
        vec![json!("sent"), json!("delivered"), json!("read")]
    );
}

#[tokio::test]
async fn template_review_approves_created_templates_with_a_webhook() {
    let h = Harness::start_with(|c| c.template_review = Some(std::time::Duration::from_millis(10)))
        .await;
    let (status, created) = h
        .post(
            &h.graph(&format!("/{WABA_ID}/message_templates")),
            &json!({"name": "welcome", "language": "en_US", "category": "MARKETING",
                    "components": [{"type": "BODY", "text": "Welcome!"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let got = h
        .wait_for(1, |r| {
            change(&r.body)["field"] == "message_template_status_update"
        })
        .await;
    assert!(got[0].signature_ok);
    assert_eq!(change(&got[0].body)["value"]["event"], "APPROVED");
    assert_eq!(
        change(&got[0].body)["value"]["message_template_id"].to_string(),
        created["id"].as_str().unwrap()
    );
    let (_, one) = h
        .get(&h.graph(&format!("/{}", created["id"].as_str().unwrap())))
        .await;
    assert_eq!(one["status"], "APPROVED");
}
