//! The privacy policy's cookie promise: the only cookie Qontak ever sets is `qontak_session`.
//! Every sign-in path (dev form, Google as JSON and as Google's form post with its
//! `g_csrf_token`, Firebase), sign-out, every page signed in and out, the API and the webhook
//! verification run here, and every `Set-Cookie` of every answer is collected.

mod common;

use axum::routing::get;
use axum::Router;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use common::{spawn_app_with, TestApp};

const TEST_ONLY_PRIVATE_KEY: &str = include_str!("fixtures/test-only-rsa-private-key.pem");
const TEST_ONLY_JWKS: &str = include_str!("fixtures/test-only-jwks.json");
const CLIENT_ID: &str = "1234-test.apps.googleusercontent.com";
const PROJECT: &str = "qontak-test-project";

fn id_token(claims: Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("qontak-test-key-1".into());
    let key = EncodingKey::from_rsa_pem(TEST_ONLY_PRIVATE_KEY.as_bytes()).unwrap();
    encode(&h, &claims, &key).unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Every `Set-Cookie` seen, with the request that produced it.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn record(&mut self, what: &str, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            self.0
                .push((what.to_string(), v.to_str().unwrap_or("?").to_string()));
        }
    }
}

fn session_of(res: &reqwest::Response) -> String {
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn pages(app: &TestApp, seen: &mut Seen, cookie: Option<&str>) {
    for path in [
        "/",
        "/login",
        "/inbox",
        "/privacy",
        "/terms",
        "/no/such/page",
    ] {
        let mut req = app.get(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        assert!(res.status().as_u16() < 500, "{path}: {}", res.status());
        seen.record(path, &res);
    }
}

#[tokio::test]
async fn the_only_cookie_ever_set_is_the_session_cookie() {
    let jwks = Router::new().route(
        "/keys",
        get(|| async { ([("content-type", "application/json")], TEST_ONLY_JWKS) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, jwks).await.unwrap() });
    let app = spawn_app_with(&[
        ("QONTAK_DEV_LOGIN", "1"),
        ("GOOGLE_CLIENT_ID", CLIENT_ID),
        ("GOOGLE_JWKS_URL", &keys),
        ("FIREBASE_PROJECT_ID", PROJECT),
        ("FIREBASE_JWKS_URL", &keys),
        ("META_APP_SECRET", "s"),
        ("META_VERIFY_TOKEN", "v"),
    ])
    .await;
    let (_, token) = app.workspace_with_token("Acme").await;
    let mut seen = Seen::default();

    pages(&app, &mut seen, None).await;
    let res = app.get("/auth/session").send().await.unwrap();
    seen.record("session, signed out", &res);

    // Dev sign-in.
    let res = app
        .post("/auth/dev")
        .form(&[("email", "dev@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    seen.record("/auth/dev", &res);
    let dev = session_of(&res);
    pages(&app, &mut seen, Some(&dev)).await;

    // Google, as JSON from our login page.
    let google = |sub: &str, email: &str| {
        id_token(json!({
            "iss": "https://accounts.google.com", "aud": CLIENT_ID, "azp": CLIENT_ID,
            "sub": sub, "email": email, "email_verified": true, "name": "Ana",
            "iat": now() - 5, "exp": now() + 3600,
        }))
    };
    let res = app
        .post("/auth/google")
        .json(&json!({"credential": google("g-1", "ana@acme.test")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    seen.record("/auth/google json", &res);

    // Google's own form post (redirect mode) with its double-submit cookie: read, never set.
    let res = app
        .post("/auth/google")
        .header("origin", "https://accounts.google.com")
        .header("cookie", "g_csrf_token=abc123")
        .form(&[
            ("credential", google("g-2", "budi@acme.test").as_str()),
            ("g_csrf_token", "abc123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    seen.record("/auth/google form", &res);
    // A mismatching double-submit is refused, still without a cookie of ours.
    let res = app
        .post("/auth/google")
        .header("origin", "https://accounts.google.com")
        .header("cookie", "g_csrf_token=abc123")
        .form(&[
            ("credential", google("g-2", "budi@acme.test").as_str()),
            ("g_csrf_token", "other"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    seen.record("/auth/google csrf mismatch", &res);

    // Firebase.
    let res = app
        .post("/auth/firebase")
        .json(&json!({"id_token": id_token(json!({
            "iss": format!("https://securetoken.google.com/{PROJECT}"), "aud": PROJECT,
            "sub": "f-1", "user_id": "f-1", "email": "citra@acme.test", "email_verified": true,
            "auth_time": now() - 30, "iat": now() - 5, "exp": now() + 3600,
            "firebase": {"sign_in_provider": "google.com", "identities": {}},
        }))}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    seen.record("/auth/firebase", &res);
    let firebase = session_of(&res);
    pages(&app, &mut seen, Some(&firebase)).await;

    // The API with a session and with a token; webhook verification.
    for (what, req) in [
        (
            "api with session",
            app.get("/api/v1/conversations").header("cookie", &firebase),
        ),
        (
            "api with token",
            app.get("/api/v1/numbers").bearer_auth(&token),
        ),
        (
            "webhook verification",
            app.get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=v&hub.challenge=1"),
        ),
        ("session", app.get("/auth/session").header("cookie", &dev)),
    ] {
        let res = req.send().await.unwrap();
        seen.record(what, &res);
    }

    // Sign-out clears the one cookie.
    let res = app
        .post("/auth/logout")
        .header("cookie", &dev)
        .send()
        .await
        .unwrap();
    seen.record("/auth/logout", &res);

    let sign_ins = seen
        .0
        .iter()
        .filter(|(_, c)| c.starts_with("qontak_session=") && !c.contains("Max-Age=0"))
        .count();
    assert_eq!(
        sign_ins, 4,
        "four sign-ins, four session cookies: {:?}",
        seen.0
    );
    assert!(
        seen.0
            .iter()
            .any(|(w, c)| w == "/auth/logout" && c.contains("Max-Age=0")),
        "sign-out clears the cookie"
    );
    for (what, cookie) in &seen.0 {
        assert!(
            cookie.starts_with("qontak_session="),
            "{what} set another cookie: {cookie}"
        );
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{what}: {cookie}"
        );
        assert!(
            !cookie.contains("Expires")
                && (!cookie.contains("Max-Age") || cookie.contains("Max-Age=0")),
            "{what}: a browser-session cookie, never a persistent one: {cookie}"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_served_over_https() {
    let https = spawn_app_with(&[("QONTAK_PUBLIC_URL", "https://chat.example.com")]).await;
    let res = https.get("/privacy").send().await.unwrap();
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let set = https.get("/healthz").send().await.unwrap();
    assert!(set.headers().contains_key("strict-transport-security"));
    let http = spawn_app_with(&[]).await;
    let res = http.get("/privacy").send().await.unwrap();
    assert!(!res.headers().contains_key("strict-transport-security"));
}
