//! Outgoing webhooks for integrators: every event of the workspace's log (the one SSE streams)
//! is delivered to each registered URL, signed, with its event id for de-duplication, retried
//! with backoff for a day, and kept in a delivery log.
//!
//! Signature: `X-Qontak-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
//! endpoint's secret (shown once at registration); receivers should refuse a `t` older than a
//! few minutes to stop replays.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use app::server::db::integrations::DeliveryRow;
use app::server::safe_url::{self, Outcome};
use app::server::{crypto, now_ms};

use crate::AppState;

/// Deliveries are retried for this long after the event.
pub const RETRY_FOR_MS: i64 = 24 * 3600 * 1000;

/// `t=…,v1=…` for `body` at `t` (seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", crypto::hex(&mac.finalize().into_bytes()))
}

/// Starts the dispatcher on the current runtime.
pub fn start(state: AppState, backoff_base_ms: i64) {
    // Redirects are followed by hand and every hop (and every resolved name) is checked.
    let refuse = app::server::safe_url::policy(state.site.allow_private_urls);
    let http = app::server::safe_url::client(&refuse, Duration::from_secs(10));
    let guard = (http, refuse);
    tokio::spawn(async move {
        let mut wake = state.events.subscribe();
        loop {
            if let Err(e) = state.db.fan_out_events().await {
                tracing::warn!(error = %e, "webhook fan-out failed");
            }
            match state.db.claim_deliveries(32).await {
                Ok(batch) if !batch.is_empty() => {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|d| {
                            tokio::spawn(deliver(state.clone(), guard.clone(), d, backoff_base_ms))
                        })
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
}

async fn deliver(
    state: AppState,
    (http, refuse): (reqwest::Client, app::server::safe_url::Refuse),
    d: DeliveryRow,
    backoff_base_ms: i64,
) {
    let Ok(Some(endpoint)) = state.db.endpoint(&d.endpoint_id).await else {
        return;
    };
    let Ok(secret) = state.key.decrypt(&endpoint.secret_enc) else {
        let _ = state
            .db
            .delivery_outcome(
                &d.id,
                "failed",
                None,
                Some("the endpoint's secret cannot be decrypted"),
                now_ms(),
            )
            .await;
        return;
    };
    let data = match state.db.event(&d.workspace_id, d.event_id).await {
        Ok(Some(e)) => crate::api::events::render(&state, &d.workspace_id, &e.kind, &e.data).await,
        _ => json!(null),
    };
    let body = json!({"id": d.event_id.to_string(), "type": d.event_type, "workspace_id": d.workspace_id, "data": data});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let t = now_ms() / 1000;
    let sig = signature(&secret, t, &bytes);
    let result = safe_url::send(&http, &refuse, &endpoint.url, |client, url, _| {
        client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "Qontak-Webhooks/1")
            .header("x-qontak-event", &d.event_type)
            .header("x-qontak-event-id", d.event_id.to_string())
            .header("x-qontak-signature", &sig)
            .body(bytes.clone())
    })
    .await;
    let (ok, status, error) = match result {
        Outcome::Response(r) if r.status().is_success() => {
            (true, Some(r.status().as_u16() as i64), None)
        }
        Outcome::Response(r) => (
            false,
            Some(r.status().as_u16() as i64),
            Some(format!("answered HTTP {}", r.status().as_u16())),
        ),
        Outcome::Refused(e) => (false, None, Some(format!("refused: {e}"))),
        Outcome::Failed(e) => (false, None, Some(e.without_url().to_string())),
    };
    let now = now_ms();
    let outcome = if ok {
        state
            .db
            .delivery_outcome(&d.id, "delivered", status, None, now)
            .await
    } else if now - d.created_at >= RETRY_FOR_MS {
        state
            .db
            .delivery_outcome(&d.id, "failed", status, error.as_deref(), now)
            .await
    } else {
        let delay = backoff_base_ms
            .saturating_mul(1 << (d.attempts - 1).clamp(0, 14))
            .min(3_600_000);
        state
            .db
            .delivery_outcome(&d.id, "pending", status, error.as_deref(), now + delay)
            .await
    };
    if let Err(e) = outcome {
        tracing::warn!(delivery = %d.id, error = %e, "recording a webhook delivery failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature("s3cret", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{}"));
    }
}
