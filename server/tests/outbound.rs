//! Outbound URL safety: an agent's media link and an integrator's webhook (with its
//! redirects, each hop checked) never reach loopback, private, link-local or metadata
//! addresses, however they are spelled, unless QONTAK_ALLOW_PRIVATE_URLS is set.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use serde_json::json;

use app::server::safe_url::{self, Outcome, Refuse, UrlError};
use common::error_code;
use common::meta::world;

#[tokio::test]
async fn media_links_into_our_network_are_refused() {
    let w = world(&[]).await;
    w.customer_says("15551234567", "hi").await;
    for link in [
        "http://127.0.0.1/x.jpg",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::ffff:127.0.0.1]/x.jpg",
        "http://localhost:8080/x.jpg",
        "http://10.0.0.5/x.jpg",
    ] {
        let res = w
            .send(json!({"number_id": w.number_id, "to": "+15551234567", "type": "image", "image": {"link": link}}))
            .await;
        assert_eq!(res.status(), 422, "{link}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["field"], "image.link", "{link}");
    }
}

#[tokio::test]
async fn media_links_are_allowed_when_private_urls_are() {
    let w = world(&[("QONTAK_ALLOW_PRIVATE_URLS", "1")]).await;
    w.customer_says("15551234567", "hi").await;
    let res = w
        .send(json!({"number_id": w.number_id, "to": "+15551234567", "type": "image", "image": {"link": "http://127.0.0.1/x.jpg"}}))
        .await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn webhook_urls_into_our_network_are_refused_at_registration() {
    let app = common::spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    for url in [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
    ] {
        let res = app
            .post("/api/v1/webhooks")
            .bearer_auth(&token)
            .json(&json!({"url": url, "events": ["message.created"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{url}");
        assert_eq!(error_code(res).await, "validation_failed");
    }
}

/// A server that redirects to `?to=` and counts the hits it gets otherwise.
async fn redirector(bind: &str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(any(
        move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
            let counter = counter.clone();
            async move {
                match q.get("to") {
                    Some(to) => (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, to.clone())],
                    )
                        .into_response(),
                    None => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        (StatusCode::OK, "reached").into_response()
                    }
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    // 127.0.0.1 stands in for a public server here; every other internal address is refused
    // exactly as in production.
    let public: IpAddr = [127, 0, 0, 1].into();
    let refuse: Refuse = Arc::new(move |ip| ip != public && safe_url::is_internal(ip));
    let client = safe_url::client(&refuse, std::time::Duration::from_secs(5));
    let (front, front_hits) = redirector("127.0.0.1:0").await;
    let (inner, inner_hits) = redirector("127.0.0.2:0").await;
    let inner_port = inner.rsplit(':').next().unwrap().to_string();

    let post = |c: &reqwest::Client, u: reqwest::Url, _get: bool| c.post(u).body("{}");
    for target in [
        inner.clone(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://[::ffff:127.0.0.2]:{inner_port}/"),
        format!("http://[::1]:{inner_port}/"),
    ] {
        let url = format!("{front}/?to={}", urlencode(&target));
        match safe_url::send(&client, &refuse, &url, post).await {
            Outcome::Refused(UrlError::Internal) => {}
            other => panic!("{target}: {other:?}"),
        }
    }
    assert_eq!(
        inner_hits.load(Ordering::SeqCst),
        0,
        "no hop reached the inner server"
    );

    // An allowed redirect is followed to its end; a loop stops.
    let url = format!("{front}/?to={}", urlencode(&format!("{front}/final")));
    match safe_url::send(&client, &refuse, &url, post).await {
        Outcome::Response(r) => assert_eq!(r.text().await.unwrap(), "reached"),
        other => panic!("{other:?}"),
    }
    assert_eq!(front_hits.load(Ordering::SeqCst), 1);
    let looping = format!(
        "{front}/?to={}",
        urlencode(&format!("{front}/?to=/?to=/?to=/?to=/?to=/?to=/?to=/"))
    );
    assert!(matches!(
        safe_url::send(&client, &refuse, &looping, post).await,
        Outcome::Refused(UrlError::TooManyRedirects) | Outcome::Response(_)
    ));

    // The production policy refuses the front server too, and a name resolving to loopback.
    let strict = safe_url::policy(false);
    assert!(matches!(
        safe_url::send(&client, &strict, &front, post).await,
        Outcome::Refused(UrlError::Internal)
    ));
    let port = front.rsplit(':').next().unwrap();
    assert_eq!(
        safe_url::check(&format!("http://localhost:{port}/"), &strict).await,
        Err(UrlError::Internal)
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
