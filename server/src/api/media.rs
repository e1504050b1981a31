//! `POST /api/v1/media`: upload a file to send. Our copy is kept for the thread view, and the
//! file is uploaded to Meta (`POST /{phone-number-id}/media`) so Meta never has to reach us.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use sha2::{Digest, Sha256};

use app::server::crypto::hex;
use app::server::db::media::UploadedMedia;
use app::server::new_id;

use super::{ApiCaller, ApiError};
use crate::AppState;

/// The largest upload accepted (Meta's largest kind, documents, is 100 MB).
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024 + 64 * 1024;

pub use app::domain::media_limit as limit_for;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UploadedDto {
    /// Use as `media_id` in `POST /api/v1/messages`.
    pub id: String,
    pub mime_type: String,
    pub size: usize,
    /// hex
    pub sha256: String,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message,
    }
}

/// Uploads a file (multipart fields `file` and `number_id`).
#[utoipa::path(post, path = "/api/v1/media", tag = "messages", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "fields `file` (with its content type) and `number_id`"),
    responses((status = 201, body = UploadedDto), (status = 413, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: ApiCaller,
    mut form: Multipart,
) -> Result<(StatusCode, Json<UploadedDto>), ApiError> {
    let (mut file, mut number_id) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("unreadable multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_lowercase();
                let name = field.file_name().map(|n| {
                    n.chars()
                        .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
                        .take(200)
                        .collect::<String>()
                });
                let bytes = field.bytes().await.map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                        "the file is larger than WhatsApp allows (100 MB)".into(),
                    ),
                    _ => ApiError::BadRequest(format!("unreadable file: {e}")),
                })?;
                file = Some((mime, name, bytes));
            }
            Some("number_id") => {
                number_id = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                )
            }
            _ => {}
        }
    }
    let (mime, filename, bytes) =
        file.ok_or_else(|| invalid("file", "a `file` field is required".into()))?;
    let number_id =
        number_id.ok_or_else(|| invalid("number_id", "a `number_id` field is required".into()))?;
    let number = state
        .db
        .number(&caller.workspace_id, number_id.trim())
        .await?
        .ok_or_else(|| ApiError::NotFound("no such number".into()))?;
    let (kind, max) = limit_for(&mime)
        .ok_or_else(|| invalid("file", format!("WhatsApp does not accept `{mime}` files")))?;
    if bytes.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "a WhatsApp {kind} is at most {} KB; this file is {} KB",
            max / 1024,
            bytes.len() / 1024
        )));
    }
    if bytes.is_empty() {
        return Err(invalid("file", "the file is empty".into()));
    }
    let token_enc = state
        .db
        .number_access_token_enc(&number.id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such number".into()))?;
    let token = state.key.decrypt(&token_enc).map_err(ApiError::internal)?;
    let id = new_id();
    let key = format!("{}/{id}", caller.workspace_id);
    state.media.put(&key, &bytes).map_err(ApiError::internal)?;
    let meta_id = state
        .graph
        .upload_media(
            &token,
            &number.phone_number_id,
            bytes.to_vec(),
            &mime,
            filename.as_deref().unwrap_or("file"),
        )
        .await
        .map_err(|e| ApiError::Unprocessable {
            code: "meta_refused",
            field: "file".into(),
            message: e.advice(),
        })?;
    let sha = hex(&Sha256::digest(&bytes));
    state
        .db
        .insert_uploaded_media(&UploadedMedia {
            id: &id,
            workspace_id: &caller.workspace_id,
            number_id: &number.id,
            meta_media_id: &meta_id,
            sha256: &sha,
            mime_type: &mime,
            size: bytes.len() as i64,
            filename: filename.as_deref(),
            storage_key: &key,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadedDto {
            id,
            mime_type: mime,
            size: bytes.len(),
            sha256: sha,
        }),
    ))
}
