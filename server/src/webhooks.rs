//! `GET/POST /webhooks/whatsapp`: Meta's verification handshake and its event deliveries.
//! A POST is answered 200 only after its raw body is durably committed.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// At most one warning per second for refused signatures, carrying how many refusals it stands
/// for: a flood of forged webhooks must not become a flood of log lines (`/metrics` counts
/// every one).
static REFUSAL_LOG: LogThrottle = LogThrottle::new();

pub struct LogThrottle {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub const fn new() -> LogThrottle {
        LogThrottle {
            last_second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(refusals not logged since the last line)` when this one should be logged.
    pub fn take_turn(&self) -> Option<u64> {
        self.take_turn_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    fn take_turn_at(&self, second: u64) -> Option<u64> {
        let last = self.last_second.load(Ordering::Relaxed);
        if second != last
            && self
                .last_second
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new()
    }
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
        if let Some(suppressed) = REFUSAL_LOG.take_turn() {
            tracing::warn!(%reason, bytes = body.len(), suppressed, "webhook refused");
        }
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

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn refusals_are_logged_once_a_second_with_the_count_left_out() {
        let t = LogThrottle::new();
        assert_eq!(t.take_turn_at(100), Some(0));
        assert_eq!(t.take_turn_at(100), None);
        assert_eq!(t.take_turn_at(100), None);
        assert_eq!(t.take_turn_at(101), Some(2));
        assert_eq!(t.take_turn_at(101), None);
        assert_eq!(t.take_turn_at(105), Some(1));
    }
}
