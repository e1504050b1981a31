//! The settings pages' calls to our JSON API, through [`crate::api_client`].

use serde_json::Value;

use crate::api_client::{self, Body};
pub use crate::api_client::{get, rows, text};

/// `method path` with an optional JSON body; the answer's JSON (null for 204), or the
/// message of our error shape.
pub async fn call(method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    api_client::call(method, path, body.map_or(Body::None, Body::Json)).await
}
