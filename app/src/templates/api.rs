//! The browser's calls to the JSON API (`/api/v1/templates…`) with the session cookie, and the
//! live event stream. Only event handlers and effects call these, so they run in the WASM
//! client alone.

use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::JsCast;

use crate::api_client::{self, Body};

/// A template as `GET /api/v1/templates` lists it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TemplateItem {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub category: Option<String>,
    pub status: String,
    #[serde(default)]
    pub quality_score: Option<String>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub rejection_recommendation: Option<String>,
    #[serde(default)]
    pub sample: bool,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub components: Value,
}

/// A JSON call; the answer, or the API's error message.
pub async fn call(method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    api_client::call(method, path, body.into()).await
}

/// Every template of the workspace.
pub async fn list() -> Result<Vec<TemplateItem>, String> {
    let v = call("GET", "/api/v1/templates", None).await?;
    serde_json::from_value(v.get("data").cloned().unwrap_or_default()).map_err(|e| e.to_string())
}

/// Uploads a header sample from a file input; answers Meta's handle.
pub async fn upload_sample(file: web_sys::File) -> Result<String, String> {
    let unreachable = |_| api_client::error_message(0, "");
    let form = web_sys::FormData::new().map_err(unreachable)?;
    form.append_with_blob_and_filename("file", &file, &file.name())
        .map_err(unreachable)?;
    let v = api_client::call("POST", "/api/v1/templates/media", Body::Form(form)).await?;
    v.get("handle")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "The upload gave no handle.".to_string())
}

/// Listens to `template.updated` on the workspace's event stream; `on_event` gets the
/// template object, or `{"id"}` alone when it was deleted. The stream closes with the page.
pub fn listen(on_event: impl Fn(Value) + 'static) -> Option<web_sys::EventSource> {
    use wasm_bindgen::closure::Closure;
    let source = web_sys::EventSource::new("/api/v1/events").ok()?;
    let handler =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            let Some(text) = e.data().as_string() else {
                return;
            };
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                on_event(v.get("data").cloned().unwrap_or_default());
            }
        });
    source
        .add_event_listener_with_callback("template.updated", handler.as_ref().unchecked_ref())
        .ok()?;
    // The listener lives as long as the page (the source is closed on cleanup).
    handler.forget();
    Some(source)
}
