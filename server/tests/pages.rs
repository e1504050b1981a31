//! Server-rendered pages, health endpoints and the headers every answer carries.

mod common;

use common::spawn_app_with;

#[tokio::test]
async fn the_privacy_page_renders_the_owners_policy_with_the_configured_company() {
    let app = spawn_app_with(&[
        ("QONTAK_COMPANY_NAME", "Acme Chat"),
        ("QONTAK_CONTACT_EMAIL", "privacy@acme.test"),
    ])
    .await;
    let res = app.get("/privacy").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Privacy Policy"));
    assert!(html.contains("Last updated: ") && html.contains("April 1, 2026"));
    assert!(html.contains("We do not use third-party advertising cookies."));
    assert!(html.contains("privacy@acme.test") && html.contains("Acme Chat"));
    assert!(!html.contains("service@setiamanggalaabadi.com"));

    let terms = app.get("/terms").send().await.unwrap();
    assert_eq!(terms.status(), 200);
    assert!(terms.text().await.unwrap().contains("Terms of Service"));
}

#[tokio::test]
async fn the_legal_pages_escape_the_configured_names() {
    // The server renders the documents to HTML for the page: configured text stays text.
    let app = spawn_app_with(&[(
        "QONTAK_COMPANY_NAME",
        "Acme <img src=x onerror=alert(1)> Chat",
    )])
    .await;
    let html = app.text("/privacy").await;
    assert!(!html.contains("<img src=x"), "the name became markup");
    assert!(
        html.contains("Acme &lt;img src=x onerror=alert(1)&gt; Chat"),
        "the escaped name is shown"
    );
}

#[tokio::test]
async fn an_unknown_page_answers_404_with_a_page() {
    let app = spawn_app_with(&[]).await;
    let res = app.get("/no/such/page").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn health_and_readiness_answer_when_the_database_is_migrated() {
    let app = spawn_app_with(&[]).await;
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn pages_carry_security_headers_and_a_nonce_csp_that_admits_the_hydration_script() {
    let app = spawn_app_with(&[]).await;
    let res = app.get("/privacy").send().await.unwrap();
    let h = res.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(h.contains_key("x-request-id"));
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(
        !csp.contains("'unsafe-inline' 'self'")
            && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce")
        .to_string();
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce"
    );

    let api = app.get("/api/v1/numbers").send().await.unwrap();
    assert!(api.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");

    // Meta's webhook route has a stack of its own (a cheap refusal path); same headers.
    let hook = app
        .post("/webhooks/whatsapp")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let h = hook.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused_with_413() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let big = "x".repeat(server::http::MAX_BODY_BYTES + 1);
    let res = app
        .post("/auth/dev")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}
