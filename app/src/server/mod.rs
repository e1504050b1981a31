//! Server-only code shared by the server functions and the `qontak` binary:
//! the database layer, secrets, sessions and the state every handler sees.

pub mod crypto;
pub mod db;
pub mod events;
pub mod graph;
pub mod idtoken;
pub mod ingest;
pub mod media;
pub mod metrics;
pub mod outbox;
pub mod safe_url;
pub mod send;
pub mod session;
pub mod signed_request;
pub mod state;
pub mod templates;
pub mod webhook;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A new id: a UUIDv7, so ids sort by creation time on both engines.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The page's Content-Security-Policy: scripts only from us (the hydration script by nonce)
/// and Google's sign-in; WASM may compile; nothing may frame us.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval' https://accounts.google.com/gsi/client; \
         style-src 'self' 'unsafe-inline' https://accounts.google.com/gsi/style; \
         frame-src https://accounts.google.com/gsi/; connect-src 'self' https://accounts.google.com/gsi/; \
         img-src 'self' data: blob: https://*.googleusercontent.com; media-src 'self' blob:; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}
