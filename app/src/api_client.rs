//! The browser's calls to the JSON API (`/api/v1`), carried by the session cookie. On the
//! server these calls are never made (views call them from event handlers and effects).

use serde_json::Value;

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// A file (or a slice of one), sent as `text/csv`.
    Csv(web_sys::Blob),
    Form(web_sys::FormData),
}

/// Calls the API; answers the JSON (null for 204), or the error message to show.
pub async fn call(method: &str, path: &str, body: Body) -> Result<Value, String> {
    #[cfg(feature = "hydrate")]
    {
        browser::call(method, path, body).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, path, body);
        Err("only the browser calls the API".into())
    }
}

pub async fn get(path: &str) -> Result<Value, String> {
    call("GET", path, Body::None).await
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A text field of a JSON value, or "".
pub fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{Body, Value};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    const UNREACHABLE: &str = "The server could not be reached; try again.";

    pub async fn call(method: &str, path: &str, body: Body) -> Result<Value, String> {
        let window = web_sys::window().ok_or(UNREACHABLE)?;
        let headers = web_sys::Headers::new().map_err(|_| UNREACHABLE)?;
        let _ = headers.set("Accept", "application/json");
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        match &body {
            Body::None => {}
            Body::Json(v) => {
                let _ = headers.set("Content-Type", "application/json");
                init.set_body(&JsValue::from_str(&v.to_string()));
            }
            Body::Csv(blob) => {
                let _ = headers.set("Content-Type", "text/csv");
                init.set_body(blob);
            }
            Body::Form(form) => init.set_body(form),
        }
        init.set_headers(&headers);
        let request =
            web_sys::Request::new_with_str_and_init(path, &init).map_err(|_| UNREACHABLE)?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .and_then(|r| r.dyn_into())
            .map_err(|_| UNREACHABLE)?;
        let status = response.status();
        let text = match response.text() {
            Ok(p) => JsFuture::from(p)
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
        Err(json["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("The server answered HTTP {status}.")))
    }
}
