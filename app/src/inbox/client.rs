//! The browser's side of the integration API: JSON calls with the session cookie, file
//! uploads, and the live event stream. On the server these are never called (the inbox loads
//! its data after hydration), so they answer an error there.

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::api_client::{encode, CallError};
use crate::api_client::{request, Body};

/// A JSON call, its answer decoded as `T`. Decoded through `Value`, as the live events are:
/// one decoder per type in the WASM client instead of two (one from text, one from `Value`).
pub async fn call<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<T, CallError> {
    let value = request(method, path, body.into()).await?;
    serde_json::from_value(value).map_err(|e| CallError {
        status: 200,
        message: format!("The server's answer was not understood: {e}"),
    })
}

/// Uploads a form (a file and its fields).
pub async fn upload(form: web_sys::FormData, path: &str) -> Result<Value, CallError> {
    request("POST", path, Body::Form(form)).await
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, CallError> {
    call("GET", path, None).await
}

pub async fn post<T: DeserializeOwned>(path: &str, body: &Value) -> Result<T, CallError> {
    call("POST", path, Some(body)).await
}

pub async fn patch<T: DeserializeOwned>(path: &str, body: &Value) -> Result<T, CallError> {
    call("PATCH", path, Some(body)).await
}

/// A fresh idempotency key for a send (random, from the browser's crypto).
pub fn idempotency_key() -> String {
    #[cfg(feature = "hydrate")]
    {
        if let Some(c) = web_sys::window().and_then(|w| w.crypto().ok()) {
            return format!("ui-{}", c.random_uuid());
        }
        format!("ui-{}", js_sys::Math::random().to_bits())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        "ui-server".into()
    }
}
