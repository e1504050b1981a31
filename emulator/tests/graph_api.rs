//! The Graph API surface: shapes, validation, faults, media, templates, numbers.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_meta_error(status: StatusCode, body: &Value, http: StatusCode, code: i64) {
    assert_eq!(status, http, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn text_send_answers_metas_shape_and_is_recorded() {
    let h = Harness::start().await;
    let body = json!({
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "+15551234567", "type": "text", "text": {"preview_url": false, "body": "Hi there"},
    });
    let (status, answer) = h
        .post(&h.graph(&format!("/{PHONE_ID}/messages")), &body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_string();
    assert!(wamid.starts_with("wamid.") && wamid.len() > 20, "{wamid}");
    assert_eq!(
        answer,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+15551234567", "wa_id": "15551234567"}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        })
    );

    let (_, requests) = h.get(&h.url("/_emulator/requests")).await;
    let recorded = requests.as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{requests}");
    let r = &recorded[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], format!("/v25.0/{PHONE_ID}/messages"));
    assert_eq!(r["query"], Value::Null);
    assert_eq!(r["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(r["body"], body);
    assert_eq!(r["response_status"], 200);
    assert!(r["at"].is_string());

    let (_, sent) = h.get(&h.url("/_emulator/sent")).await;
    assert_eq!(sent[0]["wamid"], wamid);
    assert_eq!(sent[0]["to"], "15551234567");
    assert_eq!(sent[0]["type"], "text");
    assert_eq!(
        sent[0]["content"],
        json!({"preview_url": false, "body": "Hi there"})
    );

    // Any version segment works; the request list can be cleared.
    let (status, _) = h
        .post(&format!("{}/v21.0/{PHONE_ID}/messages", h.base), &body)
        .await;
    assert_eq!(status, StatusCode::OK);
    h.delete(&h.url("/_emulator/requests")).await;
    let (_, requests) = h.get(&h.url("/_emulator/requests")).await;
    assert_eq!(requests, json!([]));
}

#[tokio::test]
async fn invalid_sends_answer_metas_error_envelope() {
    let h = Harness::start().await;
    let url = h.graph(&format!("/{PHONE_ID}/messages"));
    let cases = [
        (
            json!({"to": "1555", "type": "text", "text": {"body": "x"}}),
            "messaging_product",
        ),
        (
            json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
            "to is required",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555-12", "text": {"body": "x"}}),
            "phone number",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {}}),
            "text['body']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "carrier_pigeon"}),
            "type must be one of",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "image",
                "image": {"id": "1", "link": "https://example.com/a.jpg"}}),
            "exactly one",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "document", "document": {}}),
            "document['id']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "reaction",
                "reaction": {"emoji": "👍"}}),
            "reaction['message_id']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "template",
                "template": {"name": "hello"}}),
            "template['language']['code']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "?"}}}),
            "interactive['action']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "location",
                "location": {"latitude": 1.5}}),
            "location['longitude']",
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "1555", "type": "contacts", "contacts": []}),
            "contacts",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = h.post(&url, &body).await;
        assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 100);
        let e = &answer["error"];
        assert_eq!(e["type"], "OAuthException");
        assert!(
            e["message"].as_str().unwrap().starts_with("(#100) ")
                && e["message"].as_str().unwrap().contains(needle),
            "{needle}: {answer}"
        );
        assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
        assert!(e["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains(needle));
    }

    // An unknown phone number id is Meta's "object does not exist".
    let body = json!({"messaging_product": "whatsapp", "to": "1555", "text": {"body": "x"}});
    let (status, answer) = h.post(&h.graph("/999/messages"), &body).await;
    assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 100);
    assert_eq!(answer["error"]["error_subcode"], 33);
    assert_eq!(answer["error"]["type"], "GraphMethodException");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Unsupported post request. Object with ID '999' does not exist"));

    // Tokens: missing or unknown → 401, code 190.
    let res = h.http.post(&url).json(&body).send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    assert_meta_error(
        status,
        &res.json().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        190,
    );
    let res = h
        .http
        .post(&url)
        .bearer_auth("stolen")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let answer: Value = res.json().await.unwrap();
    assert_meta_error(status, &answer, StatusCode::UNAUTHORIZED, 190);
    assert_eq!(answer["error"]["type"], "OAuthException");

    let (_, sent) = h.get(&h.url("/_emulator/sent")).await;
    assert_eq!(sent, json!([]), "nothing invalid was accepted");
}

#[tokio::test]
async fn rate_limit_fault_answers_429_twice_then_succeeds() {
    let h = Harness::start().await;
    let (status, _) = h
        .post(
            &h.url("/_emulator/faults"),
            &json!({"path_contains": "/messages", "times": 2,
                    "respond": {"http_status": 429, "code": 130429}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = h.graph(&format!("/{PHONE_ID}/messages"));
    let body = json!({"messaging_product": "whatsapp", "to": "15550001", "text": {"body": "x"}});
    for _ in 0..2 {
        let (status, answer) = h.post(&url, &body).await;
        assert_meta_error(status, &answer, StatusCode::TOO_MANY_REQUESTS, 130429);
        assert_eq!(
            answer["error"]["error_data"]["messaging_product"],
            "whatsapp"
        );
    }
    let (status, answer) = h.post(&url, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, sent) = h.get(&h.url("/_emulator/sent")).await;
    assert_eq!(
        sent.as_array().unwrap().len(),
        1,
        "faulted calls are not sends"
    );

    // A recipient-scoped fault lasts until cleared and spares other recipients.
    h.post(
        &h.url("/_emulator/faults"),
        &json!({"to": "+15550002", "times": null, "respond": {"http_status": 400, "code": 131047}}),
    )
    .await;
    let blocked = json!({"messaging_product": "whatsapp", "to": "15550002", "text": {"body": "x"}});
    for _ in 0..3 {
        let (status, answer) = h.post(&url, &blocked).await;
        assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 131047);
    }
    assert_eq!(h.post(&url, &body).await.0, StatusCode::OK);
    h.delete(&h.url("/_emulator/faults")).await;
    assert_eq!(h.post(&url, &blocked).await.0, StatusCode::OK);
}

#[tokio::test]
async fn drop_after_accept_records_the_send_but_loses_the_response() {
    let h = Harness::start().await;
    h.post(
        &h.url("/_emulator/faults"),
        &json!({"drop_after_accept": true, "times": 1}),
    )
    .await;
    let body = json!({"messaging_product": "whatsapp", "to": "15550003", "text": {"body": "lost"},
                      "biz_opaque_callback_data": "outbox-42"});
    let outcome = async {
        let res = h
            .http
            .post(h.graph(&format!("/{PHONE_ID}/messages")))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        res.bytes().await
    }
    .await;
    assert!(
        outcome.is_err(),
        "the response must be lost, got {outcome:?}"
    );

    let (_, sent) = h.get(&h.url("/_emulator/sent")).await;
    assert_eq!(sent.as_array().unwrap().len(), 1, "{sent}");
    let wamid = sent[0]["wamid"].as_str().unwrap().to_string();
    let got = h.wait_for(3, is_status_for(&wamid)).await;
    let order: Vec<Value> = got
        .iter()
        .map(|r| statuses(&r.body)[0]["status"].clone())
        .collect();
    assert_eq!(
        order,
        vec![json!("sent"), json!("delivered"), json!("read")]
    );
    assert_eq!(
        statuses(&got[0].body)[0]["biz_opaque_callback_data"],
        "outbox-42"
    );

    // Used up: the next send is answered normally.
    h.send_text("15550003", json!({})).await;
}

#[tokio::test]
async fn mark_as_read_answers_success() {
    let h = Harness::start().await;
    let (status, answer) = h
        .post(
            &h.graph(&format!("/{PHONE_ID}/messages")),
            &json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
                    "typing_indicator": {"type": "text"}}),
        )
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let (_, reads) = h.get(&h.url("/_emulator/reads")).await;
    assert_eq!(reads[0]["message_id"], "wamid.IN1");
    assert_eq!(reads[0]["typing_indicator"], true);
}

#[tokio::test]
async fn media_upload_retrieve_download_and_delete() {
    let h = Harness::start().await;
    let bytes = b"\x89PNG\r\n\x1a\n fake image bytes".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "image/png")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let res = h
        .http
        .post(h.graph(&format!("/{PHONE_ID}/media")))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let upload: Value = res.json().await.unwrap();
    let id = upload["id"].as_str().unwrap().to_string();
    assert_eq!(upload, json!({"id": id}));

    let (status, media) = h
        .get(&h.graph(&format!("/{id}?phone_number_id={PHONE_ID}")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = format!("{}/_emulator/media/{id}/download", h.base);
    assert_eq!(
        media,
        json!({
            "messaging_product": "whatsapp", "url": url, "mime_type": "image/png",
            "sha256": hex(&Sha256::digest(&bytes)), "file_size": bytes.len().to_string(), "id": id,
        })
    );

    let res = h.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);
    for request in [h.http.get(&url), h.http.get(&url).bearer_auth("nope")] {
        let res = request.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], 190);
    }

    assert_eq!(
        h.delete(&h.graph(&format!("/{id}"))).await,
        (StatusCode::OK, json!({"success": true}))
    );
    let (status, answer) = h.get(&h.graph(&format!("/{id}"))).await;
    assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 100);
    assert_eq!(answer["error"]["error_subcode"], 33);

    // A multipart upload without the file is refused like Meta does.
    let form = reqwest::multipart::Form::new().text("messaging_product", "whatsapp");
    let res = h
        .http
        .post(h.graph(&format!("/{PHONE_ID}/media")))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], 100);
}

#[tokio::test]
async fn customer_media_can_be_corrupted_for_hash_mismatch_tests() {
    let h = Harness::start().await;
    let res = h
        .http
        .post(h.url("/_emulator/media"))
        .header("content-type", "application/pdf")
        .body("%PDF-1.4 invoice")
        .send()
        .await
        .unwrap();
    let media: Value = res.json().await.unwrap();
    let id = media["id"].as_str().unwrap().to_string();
    let digest = Sha256::digest(b"%PDF-1.4 invoice");
    use base64::Engine as _;
    assert_eq!(
        media["sha256"],
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    let (_, retrieved) = h.get(&h.graph(&format!("/{id}"))).await;
    assert_eq!(retrieved["sha256"], hex(&digest));
    assert_eq!(retrieved["mime_type"], "application/pdf");

    let download = || async {
        h.http
            .get(format!("{}/_emulator/media/{id}/download", h.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    };
    assert_eq!(Sha256::digest(download().await), digest);
    let (status, _) = h
        .post(
            &h.url(&format!("/_emulator/media/{id}/corrupt")),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(Sha256::digest(download().await), digest);
}

#[tokio::test]
async fn templates_page_through_next_links() {
    let h = Harness::start().await;
    let seed: Vec<Value> = (1..=5)
        .map(|i| {
            json!({"name": format!("tpl_{i}"), "language": "en_US", "category": "UTILITY",
                        "components": [{"type": "BODY", "text": format!("Body {i}")}]})
        })
        .collect();
    let (status, _) = h.post(&h.url("/_emulator/templates"), &json!(seed)).await;
    assert_eq!(status, StatusCode::OK);

    let mut url = h.graph(&format!(
        "/{WABA_ID}/message_templates?limit=2&fields=name,status"
    ));
    let mut pages = Vec::new();
    loop {
        let (status, page) = h.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["paging"]["cursors"]["before"].is_string());
        assert!(page["paging"]["cursors"]["after"].is_string());
        pages.push(page.clone());
        match page["paging"]["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
        assert!(pages.len() < 5, "paging does not end");
    }
    assert_eq!(pages.len(), 3);
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["data"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let names: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap().clone())
        .map(|t| {
            let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 3, "only the asked fields and id: {t}");
            assert_eq!(t["status"], "APPROVED");
            assert!(t["id"].is_string());
            t["name"].clone()
        })
        .collect();
    assert_eq!(
        names,
        (1..=5)
            .map(|i| json!(format!("tpl_{i}")))
            .collect::<Vec<_>>()
    );
    assert!(pages[1]["paging"]["previous"].is_string());
    assert!(pages[0]["paging"].get("previous").is_none());
}

#[tokio::test]
async fn template_create_rejects_duplicates_and_delete_removes() {
    let h = Harness::start().await;
    let url = h.graph(&format!("/{WABA_ID}/message_templates"));
    let create = json!({
        "name": "order_update", "language": "en_US", "category": "UTILITY", "parameter_format": "named",
        "components": [{"type": "BODY", "text": "Hi {{first_name}}",
                        "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Pablo"}]}}],
    });
    let (status, created) = h.post(&url, &create).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created,
        json!({"id": id, "status": "PENDING", "category": "UTILITY"})
    );

    let (status, dup) = h.post(&url, &create).await;
    assert_meta_error(status, &dup, StatusCode::BAD_REQUEST, 100);
    assert_eq!(dup["error"]["error_subcode"], 2388024);
    assert!(dup["error"]["error_user_title"].is_string());

    let (status, bad) = h
        .post(
            &url,
            &json!({"name": "Bad Name", "language": "en_US", "category": "UTILITY",
                            "components": [{"type": "BODY", "text": "x"}]}),
        )
        .await;
    assert_meta_error(status, &bad, StatusCode::BAD_REQUEST, 100);

    // Sending a template that is still pending is Meta's 132001.
    let send = json!({"messaging_product": "whatsapp", "to": "15550004", "type": "template",
                      "template": {"name": "order_update", "language": {"code": "en_US"}}});
    let (status, answer) = h
        .post(&h.graph(&format!("/{PHONE_ID}/messages")), &send)
        .await;
    assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 132001);

    let (_, one) = h.get(&h.graph(&format!("/{id}?fields=name,status"))).await;
    assert_eq!(
        one,
        json!({"name": "order_update", "status": "PENDING", "id": id})
    );

    assert_eq!(
        h.delete(&format!("{url}?name=order_update&hsm_id={id}"))
            .await,
        (StatusCode::OK, json!({"success": true}))
    );
    let (status, missing) = h.delete(&format!("{url}?name=order_update")).await;
    assert_meta_error(status, &missing, StatusCode::NOT_FOUND, 100);
    let (_, list) = h.get(&url).await;
    assert_eq!(list, json!({"data": []}));
}

#[tokio::test]
async fn phone_numbers_and_subscribed_apps_answer_metas_shapes() {
    let h = Harness::start().await;
    let number = json!({
        "verified_name": "Qontak Test", "display_phone_number": DISPLAY, "id": PHONE_ID,
        "quality_rating": "GREEN", "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"},
    });
    assert_eq!(
        h.get(&h.graph(&format!("/{PHONE_ID}"))).await,
        (StatusCode::OK, number.clone())
    );
    let (_, list) = h.get(&h.graph(&format!("/{WABA_ID}/phone_numbers"))).await;
    assert_eq!(list["data"], json!([number]));

    let apps = h.graph(&format!("/{WABA_ID}/subscribed_apps"));
    assert_eq!(h.get(&apps).await, (StatusCode::OK, json!({"data": []})));
    assert_eq!(
        h.post(&apps, &json!({})).await,
        (StatusCode::OK, json!({"success": true}))
    );
    let (_, subscribed) = h.get(&apps).await;
    let app = &subscribed["data"][0]["whatsapp_business_api_data"];
    assert!(
        app["id"].is_string() && app["name"].is_string(),
        "{subscribed}"
    );
    assert_eq!(
        h.delete(&apps).await,
        (StatusCode::OK, json!({"success": true}))
    );
    assert_eq!(h.get(&apps).await.1, json!({"data": []}));

    // A number registered later is known at once; unknown ids are not.
    let (status, _) = h
        .post(
            &h.url("/_emulator/numbers"),
            &json!({"phone_number_id": "200", "waba_id": "300", "display_phone_number": "+62 811 000",
                    "verified_name": "Toko"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.get(&h.graph("/200")).await.1["verified_name"], "Toko");
    let (status, answer) = h.get(&h.graph("/201/phone_numbers")).await;
    assert_meta_error(status, &answer, StatusCode::BAD_REQUEST, 100);
    assert_eq!(answer["error"]["error_subcode"], 33);
    assert_eq!(h.get(&h.url("/_emulator/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn resumable_uploads_give_handles_that_media_headers_need() {
    let h = Harness::start().await;
    let (status, session) = h
        .post(
            &h.graph("/app/uploads?file_name=a.png&file_length=6&file_type=image/png"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let id = session["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("upload:"), "{id}");
    let part = |offset: &str, bytes: &'static [u8]| {
        h.http
            .post(h.graph(&format!("/{id}")))
            .header("Authorization", format!("OAuth {TOKEN}"))
            .header("file_offset", offset)
            .body(bytes)
            .send()
    };
    let first: Value = part("0", b"abc").await.unwrap().json().await.unwrap();
    assert_eq!(
        first,
        json!({"id": id, "file_offset": 3}),
        "a partial upload says where to resume"
    );
    let wrong = part("0", b"def").await.unwrap();
    assert_eq!(wrong.status(), 400, "a wrong offset is refused");
    let (_, resume) = h.get(&h.graph(&format!("/{id}"))).await;
    assert_eq!(resume["file_offset"], 3);
    let done: Value = part("3", b"def").await.unwrap().json().await.unwrap();
    let handle = done["h"].as_str().unwrap().to_string();

    let template = |handle: &str| {
        json!({"name": "with_image", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}},
            {"type": "BODY", "text": "Look."}]})
    };
    let (status, body) = h
        .post(
            &h.graph(&format!("/{WABA_ID}/message_templates")),
            &template("4::made-up"),
        )
        .await;
    assert_meta_error(status, &body, StatusCode::BAD_REQUEST, 100);
    assert_eq!(body["error"]["error_user_title"], "Invalid media handle");
    let (status, created) = h
        .post(
            &h.graph(&format!("/{WABA_ID}/message_templates")),
            &template(&handle),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["status"], "PENDING");
    let (status, _) = h
        .post(
            &h.graph("/app/uploads?file_length=6&file_type=text/plain"),
            &json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Meta's upload sessions take PDF, JPEG, PNG and MP4"
    );
}
