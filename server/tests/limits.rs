//! Rate limits (429 with `Retry-After`) and body limits (413), in the JSON error shape.

mod common;

use common::{error_code, spawn_app_with};

#[tokio::test]
async fn sign_in_is_limited_per_ip_with_retry_after() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1"), ("QONTAK_RATE_SIGNIN", "3/3")]).await;
    for _ in 0..3 {
        let res = app
            .post("/auth/dev")
            .form(&[("email", "ana@acme.test")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
    }
    let res = app
        .post("/auth/dev")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(error_code(res).await, "rate_limited");
    // Reading the session is not a sign-in attempt.
    assert_eq!(app.get("/auth/session").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_api_is_limited_per_token() {
    let app = spawn_app_with(&[("QONTAK_RATE_API", "5/5")]).await;
    let (_, a) = app.workspace_with_token("Acme").await;
    let (_, b) = app.workspace_with_token("Beta").await;
    for _ in 0..5 {
        let res = app
            .get("/api/v1/numbers")
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = app
        .get("/api/v1/numbers")
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(error_code(res).await, "rate_limited");
    // Another token has its own budget.
    let res = app
        .get("/api/v1/numbers")
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn only_refused_webhooks_count_against_the_webhook_limit() {
    let app = spawn_app_with(&[("META_APP_SECRET", "s"), ("QONTAK_RATE_WEBHOOK", "2/2")]).await;
    // Meta's signed deliveries are never throttled, however many.
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let signed = |body: &'static str| {
        app.post("/webhooks/whatsapp")
            .header(
                "x-hub-signature-256",
                app::server::webhook::sign(b"s", body.as_bytes()),
            )
            .body(body)
    };
    for _ in 0..6 {
        let res = signed(body).send().await.unwrap();
        assert_eq!(res.status(), 200, "valid deliveries do not count");
    }
    for _ in 0..2 {
        let res = app
            .post("/webhooks/whatsapp")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "unsigned, but not throttled yet");
    }
    let res = app
        .post("/webhooks/whatsapp")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(error_code(res).await, "rate_limited");
    // Past the limit the address is refused, even a signed delivery, until its budget refills.
    let res = signed(body).send().await.unwrap();
    assert_eq!(res.status(), 429);
    // Verification GETs and the API are not counted against it.
    assert_ne!(
        app.get("/webhooks/whatsapp").send().await.unwrap().status(),
        429
    );
}

#[tokio::test]
async fn the_default_limits_do_not_get_in_a_peoples_way() {
    let app = spawn_app_with(&[]).await;
    let (_, token) = app.workspace_with_token("Acme").await;
    for _ in 0..300 {
        let res = app
            .get("/api/v1/numbers")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn bodies_over_each_routes_limit_answer_413_json() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1"), ("META_APP_SECRET", "s")]).await;
    let (_, token) = app.workspace_with_token("Acme").await;

    let form = format!("email={}", "a".repeat(server::http::AUTH_BODY_BYTES + 1));
    let res = app
        .post("/auth/dev")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");

    let res = app
        .post("/meta/data-deletion")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "signed_request={}",
            "a".repeat(server::http::AUTH_BODY_BYTES + 1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");

    let text = "x".repeat(server::http::API_BODY_BYTES + 1);
    let res = app
        .post("/api/v1/messages")
        .bearer_auth(&token)
        .json(&serde_json::json!({"number_id": "n", "to": "+15551234567", "type": "text", "text": {"body": text}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");

    let res = app
        .post("/webhooks/whatsapp")
        .header("x-hub-signature-256", "sha256=00")
        .body(vec![b' '; server::http::MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "payload_too_large");
}
