//! The browser's side of the integration API: JSON calls with the session cookie, file
//! uploads, and the live event stream. On the server these are never called (the inbox loads
//! its data after hydration), so they answer an error there.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A failed call: the server's plain explanation when it gave one.
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

#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    async fn send(
        method: &str,
        path: &str,
        body: Option<JsValue>,
        json: bool,
    ) -> Result<String, CallError> {
        let offline = |_| CallError {
            status: 0,
            message: error_message(0, ""),
        };
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        let headers = web_sys::Headers::new().map_err(offline)?;
        headers.set("Accept", "application/json").map_err(offline)?;
        if json {
            headers
                .set("Content-Type", "application/json")
                .map_err(offline)?;
        }
        init.set_headers(&headers);
        if let Some(b) = &body {
            init.set_body(b);
        }
        let request = web_sys::Request::new_with_str_and_init(path, &init).map_err(offline)?;
        let window = web_sys::window().ok_or_else(|| offline(JsValue::NULL))?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(offline)?
            .unchecked_into();
        let text = JsFuture::from(response.text().map_err(offline)?)
            .await
            .map_err(offline)?
            .as_string()
            .unwrap_or_default();
        if response.ok() {
            Ok(text)
        } else {
            Err(CallError {
                status: response.status(),
                message: error_message(response.status(), &text),
            })
        }
    }

    pub async fn call<T: DeserializeOwned>(
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, CallError> {
        let text = send(
            method,
            path,
            body.map(|b| JsValue::from_str(&b.to_string())),
            body.is_some(),
        )
        .await?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| CallError {
            status: 200,
            message: format!("The server's answer was not understood: {e}"),
        })
    }

    pub async fn upload(form: web_sys::FormData, path: &str) -> Result<Value, CallError> {
        let text = send("POST", path, Some(form.into()), false).await?;
        serde_json::from_str(&text).map_err(|e| CallError {
            status: 200,
            message: e.to_string(),
        })
    }
}

#[cfg(feature = "hydrate")]
pub use browser::{call, upload};

#[cfg(not(feature = "hydrate"))]
pub async fn call<T: DeserializeOwned>(
    _method: &str,
    _path: &str,
    _body: Option<&Value>,
) -> Result<T, CallError> {
    Err(CallError {
        status: 0,
        message: "only the browser calls the API".into(),
    })
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

/// Escapes a value for a query string.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_the_servers_explanation() {
        let body = r#"{"error":{"code":"window_closed","message":"The 24-hour window is closed"}}"#;
        assert_eq!(error_message(422, body), "The 24-hour window is closed");
        assert!(error_message(502, "<html>").contains("502"));
        assert!(error_message(0, "").contains("could not be reached"));
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
