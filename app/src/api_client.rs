//! The browser's one way to the JSON API (`/api/v1`), carried by the session cookie (the
//! browser names our origin on changes, which the API requires of cookie callers). Every page
//! calls through here: one fetch, one reading of the answer and one wording of failures. On
//! the server these calls are never made (views call them from event handlers and effects),
//! so they answer an error there.

use serde_json::Value;

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// A file (or a slice of one), sent as `text/csv`.
    Csv(web_sys::Blob),
    Form(web_sys::FormData),
}

impl From<Option<&Value>> for Body {
    fn from(body: Option<&Value>) -> Self {
        body.map_or(Body::None, |b| Body::Json(b.clone()))
    }
}

/// A failed call: the HTTP status (0 when the server was not reached) and the server's plain
/// explanation when it gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CallError> for String {
    fn from(e: CallError) -> Self {
        e.message
    }
}

/// The message of our JSON error shape, or a plain fallback.
pub fn error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| match status {
            0 => "The server could not be reached. Check the connection and try again.".into(),
            401 => "Your session has ended. Sign in again.".into(),
            403 => "You are not allowed to do this.".into(),
            404 => "It is gone: someone may have deleted it.".into(),
            s => format!("The server answered {s}. Try again in a moment."),
        })
}

/// Reads an answer: its JSON (null when empty) on success, else the failure.
pub fn answer(status: u16, text: &str) -> Result<Value, CallError> {
    if !(200..300).contains(&status) {
        return Err(CallError {
            status,
            message: error_message(status, text),
        });
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| CallError {
        status,
        message: format!("The server's answer was not understood: {e}"),
    })
}

/// Calls the API: the answer's JSON (null for 204), or the failure.
pub async fn request(method: &str, path: &str, body: Body) -> Result<Value, CallError> {
    #[cfg(feature = "hydrate")]
    {
        browser::request(method, path, body).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, path, body);
        Err(CallError {
            status: 0,
            message: "only the browser calls the API".into(),
        })
    }
}

/// [`request`], with only the message of a failure.
pub async fn call(method: &str, path: &str, body: Body) -> Result<Value, String> {
    Ok(request(method, path, body).await?)
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
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The rows of a list answer (`{"data": [...]}`).
pub fn rows(v: &Value) -> Vec<Value> {
    v.get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{answer, Body, CallError, Value};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    pub async fn request(method: &str, path: &str, body: Body) -> Result<Value, CallError> {
        let unreachable = |_| CallError {
            status: 0,
            message: super::error_message(0, ""),
        };
        let window = web_sys::window().ok_or_else(|| unreachable(JsValue::NULL))?;
        let headers = web_sys::Headers::new().map_err(unreachable)?;
        headers
            .set("Accept", "application/json")
            .map_err(unreachable)?;
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        match &body {
            Body::None => {}
            Body::Json(v) => {
                headers
                    .set("Content-Type", "application/json")
                    .map_err(unreachable)?;
                init.set_body(&JsValue::from_str(&v.to_string()));
            }
            Body::Csv(blob) => {
                headers
                    .set("Content-Type", "text/csv")
                    .map_err(unreachable)?;
                init.set_body(blob);
            }
            Body::Form(form) => init.set_body(form),
        }
        init.set_headers(&headers);
        let request = web_sys::Request::new_with_str_and_init(path, &init).map_err(unreachable)?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .and_then(|r| r.dyn_into())
            .map_err(unreachable)?;
        let text = match response.text() {
            Ok(p) => JsFuture::from(p)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        answer(response.status(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_show_the_servers_explanation() {
        let body = r#"{"error":{"code":"window_closed","message":"The 24-hour window is closed"}}"#;
        assert_eq!(error_message(422, body), "The 24-hour window is closed");
        assert!(error_message(502, "<html>").contains("502"));
        assert!(error_message(0, "").contains("could not be reached"));
        assert!(error_message(401, "").contains("Sign in again"));
    }

    #[test]
    fn answers_are_read_by_status() {
        assert_eq!(answer(200, r#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(answer(204, ""), Ok(Value::Null));
        let e = answer(200, "<html>").unwrap_err();
        assert!(e.message.contains("not understood"), "{e}");
        let e = answer(409, r#"{"error":{"code":"x","message":"Taken"}}"#).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (409, "Taken"));
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn text_fields_read_strings_numbers_and_absence() {
        let v = json!({"s": "x", "n": 3, "z": null});
        assert_eq!(text(&v, "s"), "x");
        assert_eq!(text(&v, "n"), "3");
        assert_eq!(text(&v, "z"), "");
        assert_eq!(text(&v, "missing"), "");
    }
}
