//! The integration API under `/api/v1`: bearer tokens, JSON in and out, our error shape for
//! every failure (malformed JSON and unknown routes included), and its OpenAPI document.

pub mod broadcasts;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod events;
pub mod imports;
pub mod inbox;
pub mod media;
pub mod messages;
pub mod numbers;
pub mod openapi;
pub mod paging;
pub mod teams;
pub mod templates;
pub mod webhooks;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde::de::DeserializeOwned;

use app::server::crypto::hash_secret;
pub use error::ApiError;

use crate::AppState;

/// The routes under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/numbers", get(numbers::list).post(numbers::connect))
        .route("/numbers/setup", get(numbers::setup))
        .route("/numbers/{id}", patch(numbers::replace_token))
        .route("/numbers/{id}/health", get(numbers::health))
        .route("/members", get(teams::list_members))
        .route(
            "/members/invitations",
            get(teams::list_invitations).post(teams::invite),
        )
        .route(
            "/members/invitations/{id}",
            delete(teams::revoke_invitation),
        )
        .route(
            "/members/{user_id}",
            patch(teams::change_role).delete(teams::remove_member),
        )
        .route("/tokens", get(teams::list_tokens).post(teams::create_token))
        .route("/tokens/{id}", delete(teams::revoke_token))
        .route("/me", get(teams::me).patch(teams::update_me))
        .route("/conversations", get(conversations::list))
        .route(
            "/conversations/{id}",
            get(conversations::get_one).patch(inbox::update),
        )
        .route("/conversations/{id}/unread", post(inbox::mark_unread))
        .route(
            "/conversations/{id}/notes",
            get(inbox::list_notes).post(inbox::add_note),
        )
        .route(
            "/canned-responses",
            get(inbox::list_canned).post(inbox::create_canned),
        )
        .route(
            "/canned-responses/{id}",
            axum::routing::delete(inbox::delete_canned),
        )
        .route("/search", get(inbox::search))
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
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route("/contacts/labels", get(contacts::labels))
        .route("/contacts/export.csv", get(contacts::export))
        .route(
            "/contacts/imports",
            get(imports::list)
                .post(imports::create)
                .layer(axum::extract::DefaultBodyLimit::max(
                    media::MAX_UPLOAD_BYTES,
                )),
        )
        .route(
            "/contacts/imports/preview",
            post(imports::preview).layer(axum::extract::DefaultBodyLimit::max(
                media::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/contacts/imports/{id}", get(imports::get_one))
        .route(
            "/contacts/imports/{id}/errors.csv",
            get(imports::errors_csv),
        )
        .route(
            "/contacts/{id}",
            get(contacts::get_one)
                .patch(contacts::update)
                .delete(contacts::delete),
        )
        .route("/contacts/{id}/merge", post(contacts::merge))
        .route(
            "/broadcasts",
            get(broadcasts::list).post(broadcasts::create),
        )
        .route("/broadcasts/{id}", get(broadcasts::get_one))
        .route("/broadcasts/{id}/cancel", post(broadcasts::cancel))
        .route("/events", get(events::stream_events))
        .route("/templates", get(templates::list).post(templates::create))
        .route("/templates/sync", post(templates::sync))
        .route(
            "/templates/media",
            post(templates::upload_sample).layer(axum::extract::DefaultBodyLimit::max(
                templates::MAX_SAMPLE_BYTES + 64 * 1024,
            )),
        )
        .route(
            "/templates/{name}",
            axum::routing::delete(templates::delete).patch(templates::edit),
        )
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/export", get(crate::privacy::export))
        .route("/contacts/{id}/export", get(crate::privacy::export_contact))
        .route("/contacts/{id}/erase", post(crate::privacy::erase_contact))
        .route("/me/export", get(crate::privacy::export_me))
        .route("/me", axum::routing::delete(crate::privacy::delete_me))
        .route(
            "/workspace",
            axum::routing::delete(crate::privacy::delete_workspace),
        )
        .route(
            "/settings/retention",
            get(crate::privacy::get_retention).put(crate::privacy::put_retention),
        )
        .route("/audit", get(crate::privacy::audit))
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

impl ApiCaller {
    /// Admin-only routes (numbers, templates, members, tokens, data) call this first.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == "admin" {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only a workspace admin may do this".into(),
            ))
        }
    }

    /// Whether the caller is a signed-in person in the browser (not an API token).
    pub fn is_session(&self) -> bool {
        self.token_id.is_empty()
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    /// A bearer token, or else the session cookie of a signed-in member (the web UI calls the
    /// same API): its current workspace, or the one named by `X-Qontak-Workspace`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return session_caller(parts, state).await;
        };
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

/// The caller behind a session cookie. Requests that change something must come from our own
/// origin (the browser always names it on such requests), so another site cannot ride the cookie.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<ApiCaller, ApiError> {
    let unauthorized = || {
        ApiError::Unauthorized("sign in, or send an `Authorization: Bearer <token>` header".into())
    };
    let (user_id, current) = app::server::session::current(state, &parts.headers)
        .await?
        .ok_or_else(unauthorized)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !safe {
        if !parts.headers.contains_key(axum::http::header::ORIGIN) {
            return Err(ApiError::Forbidden(
                "a signed-in request that changes data must name its Origin".into(),
            ));
        }
        crate::auth::same_origin(state, &parts.headers)?;
    }
    let wanted = parts
        .headers
        .get("x-qontak-workspace")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(current);
    let memberships = state.db.memberships_of(&user_id).await?;
    let membership = match wanted {
        Some(w) => memberships.into_iter().find(|m| m.workspace_id == w),
        None => memberships.into_iter().next(),
    }
    .ok_or_else(|| ApiError::Forbidden("you are not a member of this workspace".into()))?;
    Ok(ApiCaller {
        token_id: String::new(),
        workspace_id: membership.workspace_id,
        user_id,
        role: membership.role,
    })
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
