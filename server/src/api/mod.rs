//! The integration API under `/api/v1`: bearer tokens, JSON in and out, our error shape for
//! every failure (malformed JSON and unknown routes included), and its OpenAPI document.

pub mod conversations;
pub mod error;
pub mod events;
pub mod media;
pub mod messages;
pub mod numbers;
pub mod openapi;
pub mod paging;
pub mod templates;
pub mod webhooks;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use app::server::crypto::hash_secret;
pub use error::ApiError;

use crate::AppState;

/// The routes under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/numbers", get(numbers::list))
        .route("/conversations", get(conversations::list))
        .route("/conversations/{id}", get(conversations::get_one))
        .route("/conversations/{id}/messages", get(conversations::messages))
        .route("/conversations/{id}/read", post(messages::mark_read))
        .route("/messages", post(messages::send))
        .route(
            "/media",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::max(
                media::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/conversations/{id}/typing", post(messages::typing))
        .route("/contacts", get(conversations::contacts))
        .route("/contacts/{id}", get(conversations::contact))
        .route("/events", get(events::stream_events))
        .route("/templates", get(templates::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .fallback(|| async {
            ApiError::NotFound("no such API route; see /api/v1/openapi.json".into())
        })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this method is not allowed on this route".into())
        })
}

/// Who is calling: the workspace an API token belongs to, and its owner's role there.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub token_id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub role: String,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let row = state
            .db
            .api_token_by_hash(&hash_secret(token))
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized("this API token is not valid or was revoked".into())
            })?;
        state.db.touch_api_token(&row.id).await?;
        Ok(ApiCaller {
            token_id: row.id,
            workspace_id: row.workspace_id,
            user_id: row.user_id,
            role: row.role,
        })
    }
}

/// `Json<T>` whose rejections answer in our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(format!(
                "malformed JSON: {}",
                e.body_text()
            ))),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable {
                code: "validation_failed",
                field: data_error_field(&e.body_text()),
                message: e.body_text(),
            }),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge(
                    "the request body is too large".into(),
                ))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The field serde names in a data error (`…: missing field `to` at line 1…`), or `body`.
fn data_error_field(text: &str) -> String {
    text.split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "body".into())
}
