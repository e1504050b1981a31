//! Meta's Resumable Upload API, which gives the handles a media template header's example
//! needs: `POST /{app_id}/uploads?file_name&file_length&file_type` opens a session
//! (`{"id": "upload:…"}`), `POST /upload:…` with the bytes (`file_offset` header, `OAuth`
//! authorization) answers `{"h": "<handle>"}`, and `GET /upload:…` tells where to resume.

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::GraphError;
use crate::state::{numeric_id, AppState};

/// The file types Meta's upload sessions accept.
const FILE_TYPES: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "video/mp4",
];

/// An open or finished upload session.
#[derive(Clone, Debug)]
pub struct Upload {
    pub file_name: String,
    pub file_type: String,
    pub file_length: usize,
    pub bytes: Vec<u8>,
    /// Set once every byte arrived.
    pub handle: Option<String>,
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `POST /{ver}/{app_id}/uploads`: a new session.
pub fn start(state: &AppState, params: &[(String, String)]) -> Result<Value, GraphError> {
    let file_length = param(params, "file_length")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .ok_or_else(|| GraphError::invalid_param("The parameter file_length is required."))?;
    let file_type = param(params, "file_type")
        .ok_or_else(|| GraphError::invalid_param("The parameter file_type is required."))?;
    if !FILE_TYPES.contains(&file_type) {
        return Err(GraphError::invalid_param(format!(
            "Param file_type must be one of {{{}}} - got \"{file_type}\".",
            FILE_TYPES.join(", ")
        )));
    }
    let id = format!(
        "upload:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("MTphdHRhY2htZW50:{}", numeric_id()))
    );
    let upload = Upload {
        file_name: param(params, "file_name").unwrap_or("file").to_string(),
        file_type: file_type.to_string(),
        file_length,
        bytes: Vec::new(),
        handle: None,
    };
    state.with(|s| s.uploads.insert(id.clone(), upload));
    Ok(json!({ "id": id }))
}

/// `GET /{ver}/upload:…`: where the session stands.
pub fn status(state: &AppState, id: &str) -> Option<Value> {
    state.with(|s| {
        s.uploads
            .get(id)
            .map(|u| json!({"id": id, "file_offset": u.bytes.len()}))
    })
}

/// `POST /{ver}/upload:…`: bytes from `file_offset` on; the handle once the file is whole.
pub fn append(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, GraphError> {
    let offset = headers
        .get("file_offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| GraphError::invalid_param("The header file_offset is required."))?;
    state.with(|s| {
        let Some(u) = s.uploads.get_mut(id) else {
            return Err(GraphError::unknown_object("POST", id));
        };
        if offset != u.bytes.len() {
            return Err(GraphError::invalid_param(format!(
                "file_offset {offset} does not match the uploaded length {}; resume at it.",
                u.bytes.len()
            )));
        }
        if offset + body.len() > u.file_length {
            return Err(GraphError::invalid_param(
                "More bytes than the session's file_length.",
            ));
        }
        u.bytes.extend_from_slice(body);
        if u.bytes.len() == u.file_length && u.handle.is_none() {
            let b64 = base64::engine::general_purpose::STANDARD;
            u.handle = Some(format!(
                "4::{}:{}",
                b64.encode(&u.file_type),
                b64.encode(numeric_id())
            ));
        }
        match &u.handle {
            Some(h) => Ok(json!({ "h": h })),
            None => Ok(json!({"id": id, "file_offset": u.bytes.len()})),
        }
    })
}

/// Whether `handle` came from a finished upload.
pub fn known_handle(state: &AppState, handle: &str) -> bool {
    state.with(|s| {
        s.uploads
            .values()
            .any(|u| u.handle.as_deref() == Some(handle))
    })
}
