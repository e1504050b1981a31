//! `GET/POST /webhooks/whatsapp`: Meta's verification handshake and its event deliveries.
//! A POST is answered 200 only after its raw body is durably committed.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use app::server::metrics::metrics;
use app::server::webhook::verify_signature;

use crate::api::ApiError;
use crate::http::MAX_BODY_BYTES;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/whatsapp", get(verify).post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Answers the challenge when the mode is `subscribe` and the token is ours; else 403.
async fn verify(State(state): State<AppState>, Query(q): Query<Handshake>) -> Response {
    let ours = state.meta.verify_token.as_deref();
    let matches = match (ours, q.verify_token.as_deref()) {
        (Some(a), Some(b)) => subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into(),
        _ => false,
    };
    match (q.mode.as_deref(), matches, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("webhook verification answered");
            (
                StatusCode::OK,
                [("content-type", "text/plain; charset=utf-8")],
                challenge,
            )
                .into_response()
        }
        _ => {
            tracing::warn!(configured = ours.is_some(), "webhook verification refused");
            ApiError::Forbidden("verification refused".into()).into_response()
        }
    }
}

/// Verifies the signature over the raw bytes, stores the body, and answers 200 once committed;
/// counted and timed for `/metrics`.
async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let m = metrics();
    m.webhooks_received.inc();
    let timer = m.webhook_ack_seconds.start_timer();
    let answer = match store(&state, &headers, &body).await {
        Ok(()) => {
            m.webhooks_acknowledged.inc();
            (StatusCode::OK, "EVENT_RECEIVED").into_response()
        }
        Err((reason, e)) => {
            m.webhooks_refused.with_label_values(&[reason]).inc();
            e.into_response()
        }
    };
    timer.observe_duration();
    answer
}

async fn store(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), (&'static str, ApiError)> {
    let Some(secret) = state.meta.app_secret.as_deref() else {
        tracing::warn!("webhook refused: META_APP_SECRET is not set");
        return Err((
            "unconfigured",
            ApiError::Unavailable("webhooks are not configured: set META_APP_SECRET".into()),
        ));
    };
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(reason) = verify_signature(secret.as_bytes(), body, header) {
        tracing::warn!(%reason, bytes = body.len(), "webhook refused");
        return Err(("signature", ApiError::Unauthorized(reason.to_string())));
    }
    let text = std::str::from_utf8(body).map_err(|_| {
        (
            "invalid",
            ApiError::BadRequest("the body is not UTF-8".into()),
        )
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
        (
            "invalid",
            ApiError::BadRequest(format!("the body is not JSON: {e}")),
        )
    })?;
    // 503, never 200, while the database cannot take the body: Meta retries.
    state.ingest.store(text.to_string()).await.map_err(|e| {
        tracing::error!(error = %e, "webhook not stored; Meta will retry");
        (
            "storage",
            ApiError::Unavailable("the webhook could not be stored; retry later".into()),
        )
    })
}
