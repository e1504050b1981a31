//! Google and Firebase sign-in: ID tokens signed with a test-only RSA key, whose JWKS a tiny
//! server in the test publishes (counting fetches), checked by the real server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use common::{error_code, spawn_app_with, TestApp};

/// A key made for these tests only; it signs nothing anywhere else.
const TEST_ONLY_PRIVATE_KEY: &str = include_str!("fixtures/test-only-rsa-private-key.pem");
const TEST_ONLY_PUBLIC_KEY: &str = include_str!("fixtures/test-only-rsa-public-key.pem");
const TEST_ONLY_JWKS: &str = include_str!("fixtures/test-only-jwks.json");
const KID: &str = "qontak-test-key-1";
const CLIENT_ID: &str = "1234-test.apps.googleusercontent.com";
const PROJECT: &str = "qontak-test-project";

/// The stand-in for Google's key endpoints: `/google` and `/firebase`, each counting fetches.
struct Jwks {
    url: String,
    google_fetches: Arc<AtomicUsize>,
    firebase_fetches: Arc<AtomicUsize>,
}

impl Jwks {
    async fn start() -> Jwks {
        let google_fetches = Arc::new(AtomicUsize::new(0));
        let firebase_fetches = Arc::new(AtomicUsize::new(0));
        let serve = |counter: Arc<AtomicUsize>| {
            move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "public, max-age=300"),
                        ],
                        TEST_ONLY_JWKS,
                    )
                }
            }
        };
        let router = Router::new()
            .route("/google", get(serve(google_fetches.clone())))
            .route("/firebase", get(serve(firebase_fetches.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Jwks {
            url: format!("http://{addr}"),
            google_fetches,
            firebase_fetches,
        }
    }

    fn google(&self) -> usize {
        self.google_fetches.load(Ordering::SeqCst)
    }

    fn firebase(&self) -> usize {
        self.firebase_fetches.load(Ordering::SeqCst)
    }
}

/// The server with both sign-in methods pointed at the test JWKS.
async fn spawn() -> (TestApp, Jwks) {
    let jwks = Jwks::start().await;
    let google = format!("{}/google", jwks.url);
    let firebase = format!("{}/firebase", jwks.url);
    let app = spawn_app_with(&[
        ("GOOGLE_CLIENT_ID", CLIENT_ID),
        ("GOOGLE_JWKS_URL", &google),
        ("FIREBASE_PROJECT_ID", PROJECT),
        ("FIREBASE_JWKS_URL", &firebase),
    ])
    .await;
    (app, jwks)
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn google_claims(sub: &str, email: &str) -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": sub,
        "email": email,
        "email_verified": true,
        "name": "Ana Lima",
        "iat": now() - 5,
        "exp": now() + 3600,
    })
}

fn firebase_claims(sub: &str, email: &str) -> Value {
    json!({
        "iss": format!("https://securetoken.google.com/{PROJECT}"),
        "aud": PROJECT,
        "sub": sub,
        "user_id": sub,
        "email": email,
        "email_verified": true,
        "name": "Budi Santoso",
        "auth_time": now() - 30,
        "iat": now() - 5,
        "exp": now() + 3600,
        "firebase": {"sign_in_provider": "google.com", "identities": {}},
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn sign_with_kid(claims: &Value, kid: &str) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(TEST_ONLY_PRIVATE_KEY.as_bytes()).unwrap();
    encode(&h, claims, &key).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with_kid(claims, KID)
}

/// An unsigned token (`alg: none`).
fn unsigned(claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": KID}).to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{p}.")
}

/// The classic key-confusion forgery: HS256 with the public key as the HMAC secret.
fn hs256_with_public_key(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(KID.into());
    let key = EncodingKey::from_secret(TEST_ONLY_PUBLIC_KEY.as_bytes()).unwrap();
    encode(&h, claims, &key).unwrap()
}

/// A validly signed token whose payload was then replaced.
fn tampered(claims: &Value, replacement: &Value) -> String {
    let token = sign(claims);
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(replacement.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

async fn post_google_json(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/google")
        .json(&json!({"credential": token}))
        .send()
        .await
        .unwrap()
}

async fn post_firebase(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/firebase")
        .json(&json!({"id_token": token}))
        .send()
        .await
        .unwrap()
}

fn session_cookie(res: &reqwest::Response) -> String {
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("qontak_session=") && set.contains("HttpOnly"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

async fn session(app: &TestApp, cookie: &str) -> Value {
    let res = app
        .get("/auth/session")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Asserts a refusal: 401, the reason code, no cookie.
async fn assert_refused(res: reqwest::Response, code: &str, case: &str) {
    assert_eq!(res.status(), 401, "{case}");
    assert!(
        !res.headers().contains_key("set-cookie"),
        "{case}: a refusal sets no cookie"
    );
    assert_eq!(error_code(res).await, code, "{case}");
}

#[tokio::test]
async fn a_valid_google_token_as_json_signs_in_a_new_user_with_a_workspace() {
    let (app, jwks) = spawn().await;
    let token = sign(&google_claims("g-100", "Ana@Example.com"));
    let res = post_google_json(&app, &token).await;
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"redirect": "/inbox"}));

    let me = session(&app, &cookie).await;
    assert_eq!(me["user"]["email"], "ana@example.com");
    assert_eq!(me["user"]["name"], "Ana Lima");
    assert_eq!(me["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(me["workspaces"][0]["role"], "admin");

    let workspace = me["workspaces"][0]["id"].as_str().unwrap();
    let audit = app.db.audit_entries(workspace, 10).await.unwrap();
    let entry = audit
        .iter()
        .find(|a| a.action == "auth.sign_in")
        .expect("an audit entry");
    let detail: Value = serde_json::from_str(&entry.detail).unwrap();
    assert_eq!(detail["method"], "google");
    assert!(
        !entry.detail.contains(&token[..20]),
        "no token in the audit log"
    );
    assert_eq!(jwks.google(), 1, "keys fetched once");

    // The cached keys serve the next sign-in.
    let again = post_google_json(&app, &token).await;
    assert_eq!(again.status(), 200);
    assert_eq!(jwks.google(), 1);
}

#[tokio::test]
async fn a_google_form_post_answers_303_to_the_inbox_with_the_cookie() {
    let (app, _jwks) = spawn().await;
    let token = sign(&google_claims("g-200", "budi@example.com"));
    let res = app
        .post("/auth/google")
        .form(&[("credential", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/inbox");
    let cookie = session_cookie(&res);
    assert_eq!(
        session(&app, &cookie).await["user"]["email"],
        "budi@example.com"
    );
}

#[tokio::test]
async fn bad_google_tokens_are_refused_with_their_reason_and_no_cookie() {
    let (app, _jwks) = spawn().await;
    let good = google_claims("g-300", "cici@example.com");
    let cases = [
        (
            "wrong aud",
            sign(&with(
                good.clone(),
                "aud",
                json!("someone-else.apps.googleusercontent.com"),
            )),
            "wrong_audience",
        ),
        (
            "wrong iss",
            sign(&with(good.clone(), "iss", json!("https://evil.example"))),
            "wrong_issuer",
        ),
        (
            "firebase issuer",
            sign(&with(
                good.clone(),
                "iss",
                json!(format!("https://securetoken.google.com/{PROJECT}")),
            )),
            "wrong_issuer",
        ),
        (
            "expired",
            sign(&with(
                with(good.clone(), "exp", json!(now() - 3600)),
                "iat",
                json!(now() - 7200),
            )),
            "expired",
        ),
        (
            "iat in the future",
            sign(&with(good.clone(), "iat", json!(now() + 3600))),
            "bad_token",
        ),
        ("alg none", unsigned(&good), "unsupported_algorithm"),
        (
            "HS256 with the public key",
            hs256_with_public_key(&good),
            "unsupported_algorithm",
        ),
        (
            "tampered payload",
            tampered(&good, &with(good.clone(), "sub", json!("g-admin"))),
            "bad_signature",
        ),
        (
            "unverified e-mail",
            sign(&with(good.clone(), "email_verified", json!(false))),
            "email_not_verified",
        ),
        (
            "no e-mail",
            sign(&with(good.clone(), "email", Value::Null)),
            "email_not_verified",
        ),
        (
            "unknown kid",
            sign_with_kid(&good, "rotated-away"),
            "unknown_key",
        ),
        ("not a JWT", "not-a-token".to_string(), "bad_token"),
    ];
    for (case, token, code) in cases {
        assert_refused(post_google_json(&app, &token).await, code, case).await;
    }
    // A refused form post answers the same way.
    let res = app
        .post("/auth/google")
        .form(&[("credential", unsigned(&good).as_str())])
        .send()
        .await
        .unwrap();
    assert_refused(res, "unsupported_algorithm", "form, alg none").await;
    assert!(
        app.db
            .user_by_email("cici@example.com")
            .await
            .unwrap()
            .is_none(),
        "no account was made"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_only_once() {
    let (app, jwks) = spawn().await;
    let claims = google_claims("g-400", "dedi@example.com");
    assert_eq!(post_google_json(&app, &sign(&claims)).await.status(), 200);
    assert_eq!(jwks.google(), 1);
    for i in 0..5 {
        let token = sign_with_kid(&claims, &format!("bogus-{i}"));
        assert_refused(
            post_google_json(&app, &token).await,
            "unknown_key",
            "bogus kid",
        )
        .await;
    }
    assert_eq!(jwks.google(), 2, "one refetch for a flood of unknown kids");
    assert_eq!(post_google_json(&app, &sign(&claims)).await.status(), 200);
    assert_eq!(jwks.google(), 2);
    assert_eq!(jwks.firebase(), 0, "each provider has its own cache");

    // Firebase tokens name keys in their own cache, with the same rule.
    let fb = firebase_claims("fb-400", "dedi@example.com");
    for i in 0..3 {
        let token = sign_with_kid(&fb, &format!("bogus-{i}"));
        assert_refused(
            post_firebase(&app, &token).await,
            "unknown_key",
            "firebase bogus kid",
        )
        .await;
    }
    assert_eq!(jwks.firebase(), 2, "first fill, then one refetch");
}

#[tokio::test]
async fn a_valid_firebase_token_signs_in() {
    let (app, jwks) = spawn().await;
    let res = post_firebase(&app, &sign(&firebase_claims("fb-uid-1", "eka@example.com"))).await;
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"redirect": "/inbox"})
    );
    let me = session(&app, &cookie).await;
    assert_eq!(me["user"]["email"], "eka@example.com");
    assert_eq!(me["workspaces"][0]["role"], "admin");
    let workspace = me["workspaces"][0]["id"].as_str().unwrap();
    let audit = app.db.audit_entries(workspace, 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "auth.sign_in" && a.detail.contains(r#""method":"firebase""#)));
    assert_eq!(jwks.firebase(), 1);
    assert_eq!(jwks.google(), 0);
}

#[tokio::test]
async fn bad_firebase_tokens_are_refused_with_their_reason_and_no_cookie() {
    let (app, _jwks) = spawn().await;
    let good = firebase_claims("fb-uid-2", "fajar@example.com");
    let cases = [
        (
            "wrong aud",
            sign(&with(good.clone(), "aud", json!("another-project"))),
            "wrong_audience",
        ),
        (
            "wrong iss",
            sign(&with(
                good.clone(),
                "iss",
                json!("https://securetoken.google.com/another-project"),
            )),
            "wrong_issuer",
        ),
        (
            "google issuer",
            sign(&with(
                good.clone(),
                "iss",
                json!("https://accounts.google.com"),
            )),
            "wrong_issuer",
        ),
        (
            "expired",
            sign(&with(
                with(good.clone(), "exp", json!(now() - 3600)),
                "iat",
                json!(now() - 7200),
            )),
            "expired",
        ),
        (
            "auth_time in the future",
            sign(&with(good.clone(), "auth_time", json!(now() + 3600))),
            "bad_token",
        ),
        (
            "no auth_time",
            sign(&with(good.clone(), "auth_time", Value::Null)),
            "bad_token",
        ),
        (
            "iat in the future",
            sign(&with(good.clone(), "iat", json!(now() + 3600))),
            "bad_token",
        ),
        (
            "empty sub",
            sign(&with(good.clone(), "sub", json!(""))),
            "bad_token",
        ),
        (
            "sub over 128 characters",
            sign(&with(good.clone(), "sub", json!("u".repeat(129)))),
            "bad_token",
        ),
        ("alg none", unsigned(&good), "unsupported_algorithm"),
        (
            "HS256 with the public key",
            hs256_with_public_key(&good),
            "unsupported_algorithm",
        ),
        (
            "tampered payload",
            tampered(
                &good,
                &with(good.clone(), "email", json!("boss@example.com")),
            ),
            "bad_signature",
        ),
        (
            "unverified e-mail",
            sign(&with(good.clone(), "email_verified", json!(false))),
            "email_not_verified",
        ),
        (
            "unknown kid",
            sign_with_kid(&good, "rotated-away"),
            "unknown_key",
        ),
        (
            "a Google token",
            sign(&google_claims("g-1", "fajar@example.com")),
            "wrong_issuer",
        ),
    ];
    for (case, token, code) in cases {
        assert_refused(post_firebase(&app, &token).await, code, case).await;
    }
    assert!(app
        .db
        .user_by_email("fajar@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_g_csrf_token_double_submit_must_match() {
    let (app, _jwks) = spawn().await;
    let token = sign(&google_claims("g-500", "gita@example.com"));
    let form = |csrf: Option<&str>| {
        let mut fields = vec![("credential", token.clone())];
        if let Some(c) = csrf {
            fields.push(("g_csrf_token", c.to_string()));
        }
        app.post("/auth/google").form(&fields)
    };

    let mismatch = form(Some("abc"))
        .header("cookie", "g_csrf_token=xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
    assert!(!mismatch.headers().contains_key("set-cookie"));
    assert_eq!(error_code(mismatch).await, "csrf_mismatch");

    let cookie_only = form(None)
        .header("cookie", "g_csrf_token=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(cookie_only.status(), 400);
    let field_only = form(Some("abc")).send().await.unwrap();
    assert_eq!(field_only.status(), 400);

    // Google's redirect mode: a cross-site post from Google's origin, protected by the pair.
    let from_google = form(Some("abc"))
        .header("origin", "https://accounts.google.com")
        .header("cookie", "g_csrf_token=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(from_google.status(), 303);
    assert_eq!(from_google.headers()["location"], "/inbox");
    session_cookie(&from_google);

    // Google's origin without the pair is refused.
    let bare = form(None)
        .header("origin", "https://accounts.google.com")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 400);

    // The JSON shape may carry the pair too.
    let json = app
        .post("/auth/google")
        .header("cookie", "g_csrf_token=def")
        .json(&json!({"credential": token, "g_csrf_token": "def"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
}

#[tokio::test]
async fn other_cross_site_origins_are_refused() {
    let (app, _jwks) = spawn().await;
    let token = sign(&google_claims("g-600", "hana@example.com"));
    let evil_form = app
        .post("/auth/google")
        .header("origin", "https://evil.example")
        .header("cookie", "g_csrf_token=abc")
        .form(&[("credential", token.as_str()), ("g_csrf_token", "abc")])
        .send()
        .await
        .unwrap();
    assert_eq!(evil_form.status(), 403);
    assert!(!evil_form.headers().contains_key("set-cookie"));
    // Only Google's form post is exempt, not a JSON request claiming its origin.
    let google_json = app
        .post("/auth/google")
        .header("origin", "https://accounts.google.com")
        .json(&json!({"credential": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(google_json.status(), 403);
    let evil_firebase = app
        .post("/auth/firebase")
        .header("origin", "https://evil.example")
        .json(&json!({"id_token": sign(&firebase_claims("fb-600", "hana@example.com"))}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil_firebase.status(), 403);
    // Our own origin is fine.
    let ours = app
        .post("/auth/google")
        .header("origin", &app.url)
        .json(&json!({"credential": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), 200);
}

#[tokio::test]
async fn accounts_are_keyed_on_sub_not_on_the_email() {
    let (app, _jwks) = spawn().await;
    let first = post_google_json(&app, &sign(&google_claims("g-700", "indah@example.com"))).await;
    let first = session(&app, &session_cookie(&first)).await;
    let changed = post_google_json(&app, &sign(&google_claims("g-700", "indah@new.example"))).await;
    assert_eq!(changed.status(), 200);
    let changed = session(&app, &session_cookie(&changed)).await;
    assert_eq!(changed["user"]["id"], first["user"]["id"]);
    assert_eq!(changed["workspaces"], first["workspaces"]);
    assert!(app
        .db
        .user_by_email("indah@new.example")
        .await
        .unwrap()
        .is_none());

    // The same for Firebase uids.
    let a = post_firebase(&app, &sign(&firebase_claims("fb-700", "joko@example.com"))).await;
    let a = session(&app, &session_cookie(&a)).await;
    let b = post_firebase(
        &app,
        &sign(&firebase_claims("fb-700", "joko@other.example")),
    )
    .await;
    let b = session(&app, &session_cookie(&b)).await;
    assert_eq!(a["user"]["id"], b["user"]["id"]);
}

#[tokio::test]
async fn an_existing_user_with_the_verified_email_is_linked() {
    let (app, _jwks) = spawn().await;
    let (workspace_id, _) = app.workspace_with_token("Kopi").await;
    let existing = app
        .db
        .user_by_email("admin@kopi.test")
        .await
        .unwrap()
        .unwrap();

    let res = post_google_json(&app, &sign(&google_claims("g-800", "Admin@Kopi.test"))).await;
    assert_eq!(res.status(), 200);
    let me = session(&app, &session_cookie(&res)).await;
    assert_eq!(me["user"]["id"], existing.id.as_str());
    assert_eq!(me["workspaces"][0]["id"], workspace_id.as_str());
    assert_eq!(
        me["workspaces"].as_array().unwrap().len(),
        1,
        "no new workspace"
    );

    // Firebase links to the same user, alongside the Google identity.
    let fb = post_firebase(&app, &sign(&firebase_claims("fb-800", "admin@kopi.test"))).await;
    assert_eq!(
        session(&app, &session_cookie(&fb)).await["user"]["id"],
        existing.id.as_str()
    );

    // Another Google account claiming the same e-mail does not take the user over.
    let other = post_google_json(&app, &sign(&google_claims("g-801", "admin@kopi.test"))).await;
    assert_eq!(other.status(), 409);
    assert!(!other.headers().contains_key("set-cookie"));
    assert_eq!(error_code(other).await, "account_conflict");
}

#[tokio::test]
async fn sign_in_is_404_unless_configured() {
    let jwks = Jwks::start().await;
    let app = spawn_app_with(&[]).await;
    let google = post_google_json(&app, &sign(&google_claims("g-900", "lia@example.com"))).await;
    assert_eq!(google.status(), 404);
    assert!(!google.headers().contains_key("set-cookie"));
    assert_eq!(error_code(google).await, "not_found");
    let firebase = post_firebase(&app, &sign(&firebase_claims("fb-900", "lia@example.com"))).await;
    assert_eq!(firebase.status(), 404);
    assert_eq!(error_code(firebase).await, "not_found");

    // One method configured does not enable the other.
    let google_url = format!("{}/google", jwks.url);
    let only_google = spawn_app_with(&[
        ("GOOGLE_CLIENT_ID", CLIENT_ID),
        ("GOOGLE_JWKS_URL", &google_url),
    ])
    .await;
    let firebase = post_firebase(
        &only_google,
        &sign(&firebase_claims("fb-901", "lia@example.com")),
    )
    .await;
    assert_eq!(firebase.status(), 404);
    assert_eq!(jwks.google() + jwks.firebase(), 0);
}

#[tokio::test]
async fn malformed_requests_are_400s() {
    let (app, _jwks) = spawn().await;
    let missing = app
        .post("/auth/google")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let not_json = app
        .post("/auth/firebase")
        .body("id_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
}

#[tokio::test]
async fn the_login_page_offers_the_google_button_only_when_configured() {
    let (app, _jwks) = spawn().await;
    let html = app.text("/login").await;
    assert!(
        html.contains(r#"id="google-signin""#) && html.contains(CLIENT_ID),
        "the button's container carries the client id"
    );
    let bare = spawn_app_with(&[]).await;
    let html = bare
        .get("/login")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(r#"id="google-signin""#));
    assert!(
        html.contains("GOOGLE_CLIENT_ID"),
        "the page says how to enable it"
    );
}
