//! The browser's calls to our JSON API (`/api/v1`), with the session cookie; the browser
//! names our origin on changes, which the API requires of cookie callers. Runs only in the
//! WASM client: pages call it from local resources and event handlers.

use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

const UNREACHABLE: &str = "The server could not be reached; try again.";

/// `method path` with an optional JSON body; the answer's JSON (null for 204), or the
/// message of our error shape.
pub async fn call(method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let window = web_sys::window().ok_or(UNREACHABLE)?;
    let headers = web_sys::Headers::new().map_err(|_| UNREACHABLE)?;
    headers
        .set("Accept", "application/json")
        .map_err(|_| UNREACHABLE)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    if let Some(body) = body {
        headers
            .set("Content-Type", "application/json")
            .map_err(|_| UNREACHABLE)?;
        init.set_body(&JsValue::from_str(&body.to_string()));
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(path, &init).map_err(|_| UNREACHABLE)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .and_then(|r| r.dyn_into())
        .map_err(|_| UNREACHABLE)?;
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(json);
    }
    Err(json
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("The request failed (HTTP {status}).")))
}

/// `GET path`.
pub async fn get(path: &str) -> Result<Value, String> {
    call("GET", path, None).await
}

/// The rows of a list answer (`{"data": [...]}`).
pub fn rows(v: &Value) -> Vec<Value> {
    v.get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A string field, or empty.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
