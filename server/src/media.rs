//! `GET /media/{message_id}`: an attachment's bytes, for the workspace's signed-in members and
//! its API tokens only, with the stored content type.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use app::server::session;

use crate::api::{ApiCaller, ApiError};
use crate::AppState;

/// The workspace the caller may read: an API token's, or the session's current one.
async fn caller_workspaces(
    state: &AppState,
    parts_headers: &HeaderMap,
) -> Result<Vec<String>, ApiError> {
    if parts_headers.contains_key(header::AUTHORIZATION) {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.headers = parts_headers.clone();
        let caller = <ApiCaller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, state,
        )
        .await?;
        return Ok(vec![caller.workspace_id]);
    }
    match session::session_from_headers(state, parts_headers).await? {
        Some(s) => Ok(s.workspaces.into_iter().map(|w| w.id).collect()),
        None => Err(ApiError::Unauthorized(
            "sign in, or send `Authorization: Bearer <token>`".into(),
        )),
    }
}

pub async fn serve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    let workspaces = caller_workspaces(&state, &headers).await?;
    let mut found = None;
    for ws in &workspaces {
        if let Some(m) = state.db.media_of_message(ws, &message_id).await? {
            found = Some(m);
            break;
        }
    }
    let media = found.ok_or_else(|| ApiError::NotFound("no media for this message".into()))?;
    let key = match (media.state.as_str(), media.storage_key) {
        ("ready", Some(k)) => k,
        ("failed", _) => {
            return Err(ApiError::NotFound(format!(
                "the attachment could not be downloaded from WhatsApp: {}",
                media.last_error.unwrap_or_default()
            )))
        }
        _ => {
            return Err(ApiError::Conflict {
                code: "media_pending",
                message: "the attachment is still downloading".into(),
            })
        }
    };
    let bytes = state.media.get(&key).map_err(ApiError::internal)?;
    let mime = media
        .mime_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let mime = mime
        .split(';')
        .next()
        .unwrap_or("application/octet-stream")
        .trim()
        .to_string();
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    // Never render an attachment as a page of ours.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Some(name) = media.filename {
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || ".-_ ".contains(*c))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{safe}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(res)
}
