//! Inbound media against the emulator: downloaded and verified, served only to the workspace,
//! and a sha256 mismatch retried (with a fresh URL each time) until it fails with the reason.

mod common;

use common::error_code;
use common::meta::{world, World};
use serde_json::{json, Value};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-not-really-an-image-but-bytes-all-the-same";

async fn upload(w: &World, bytes: &[u8], mime: &str) -> Value {
    let res = w
        .http
        .post(format!("{}/_emulator/media", w.emulator))
        .header("content-type", mime)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    res.json().await.unwrap()
}

async fn customer_sends_image(w: &World, media_id: &str) -> (String, String) {
    let r = w
        .emu_post(
            "/_emulator/customers/15551234567/messages",
            json!({"type": "image", "image": {"id": media_id, "caption": "look"}}),
        )
        .await;
    assert_eq!(r["webhook_status"], 200);
    for _ in 0..200 {
        let convs = w.api_get("/api/v1/conversations").await;
        if let Some(c) = convs["data"].as_array().unwrap().first() {
            if c["last_message"]["wamid"] == r["wamid"] {
                return (
                    c["id"].as_str().unwrap().to_string(),
                    c["last_message"]["id"].as_str().unwrap().to_string(),
                );
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the image message never showed");
}

#[tokio::test]
async fn an_inbound_image_is_downloaded_verified_and_served_only_to_its_workspace() {
    let w = world(&[]).await;
    let media = upload(&w, PNG, "image/png").await;
    let (conv, id) = customer_sends_image(&w, media["id"].as_str().unwrap()).await;
    let m = w
        .message_until(&conv, &id, |m| m["content"]["download_state"] == "ready")
        .await;
    assert_eq!(m["content"]["url"], format!("/media/{id}"));
    assert_eq!(m["content"]["media_id"], media["id"]);
    assert_eq!(
        m["content"]["sha256"], media["sha256"],
        "sha256 as Meta wrote it"
    );
    assert_eq!(m["content"]["caption"], "look");

    let res = w
        .app
        .get(&format!("/media/{id}"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);

    let anonymous = w.app.get(&format!("/media/{id}")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(error_code(anonymous).await, "unauthorized");
    let (_, other) = w.app.workspace_with_token("Globex").await;
    let foreign = w
        .app
        .get(&format!("/media/{id}"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn a_sha256_mismatch_is_retried_with_a_fresh_url_then_fails_with_the_reason() {
    let w = world(&[
        ("QONTAK_MEDIA_MAX_ATTEMPTS", "3"),
        ("QONTAK_MEDIA_BACKOFF_MS", "20"),
    ])
    .await;
    let media = upload(&w, PNG, "image/png").await;
    let media_id = media["id"].as_str().unwrap().to_string();
    w.emu_post(&format!("/_emulator/media/{media_id}/corrupt"), json!({}))
        .await;
    let (conv, id) = customer_sends_image(&w, &media_id).await;
    w.message_until(&conv, &id, |m| m["content"]["download_state"] == "failed")
        .await;
    let lookups = w
        .emu_get("/_emulator/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/{media_id}"))
        })
        .count();
    assert_eq!(lookups, 3, "a fresh URL for each of the three attempts");
    let res = w
        .app
        .get(&format!("/media/{id}"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sha256"),
        "{body}"
    );
}
