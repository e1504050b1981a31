//! `/auth/*`: sign-in, sign-out and the session as JSON.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use app::domain::Email;
use app::server::db::{AuditEntry, DbError};
use app::server::session;

use crate::api::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/dev", post(dev_sign_in))
        .route("/auth/logout", post(logout))
        .route("/auth/session", get(current_session))
}

/// Refuses a cross-site form post: when the browser names an `Origin`, it must be ours.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ours = origin == state.site.public_url
        || origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(host);
    if ours {
        Ok(())
    } else {
        Err(ApiError::Forbidden("cross-site request refused".into()))
    }
}

fn client_meta(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_string());
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    (ip, ua)
}

#[derive(Deserialize)]
struct DevForm {
    email: String,
}

/// Development sign-in by e-mail alone, only while `QONTAK_DEV_LOGIN=1` (404 otherwise).
/// A first sign-in creates the user and a workspace they administer.
async fn dev_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DevForm>,
) -> Result<Response, ApiError> {
    if !state.site.dev_login {
        return Err(ApiError::NotFound(
            "development sign-in is not enabled".into(),
        ));
    }
    same_origin(&state, &headers)?;
    let email = Email::parse(&form.email).map_err(|e| ApiError::Unprocessable {
        code: "validation_failed",
        field: "email".into(),
        message: e.to_string(),
    })?;
    let user = match state.db.user_by_email(email.as_str()).await? {
        Some(u) => u,
        None => {
            let name = email
                .as_str()
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            state.db.create_user(email.as_str(), &name).await?
        }
    };
    let memberships = state.db.memberships_of(&user.id).await?;
    let workspace_id = match memberships.first() {
        Some(m) => m.workspace_id.clone(),
        None => first_workspace(&state, &user.id, email.as_str()).await?,
    };
    let (ip, ua) = client_meta(&headers);
    let cookie = session::start(
        &state,
        &user.id,
        Some(&workspace_id),
        ip.as_deref(),
        ua.as_deref(),
    )
    .await?;
    state
        .db
        .audit(&AuditEntry {
            workspace_id: Some(&workspace_id),
            user_id: Some(&user.id),
            actor: email.as_str(),
            action: "auth.sign_in",
            detail: r#"{"method":"dev"}"#,
            ip: ip.as_deref(),
            user_agent: ua.as_deref(),
            ..Default::default()
        })
        .await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/inbox")).into_response())
}

/// Creates the workspace of a user's first sign-in, named after them.
async fn first_workspace(state: &AppState, user_id: &str, email: &str) -> Result<String, ApiError> {
    let base = format!("{}'s workspace", email.split('@').next().unwrap_or("my"));
    for n in 1..100 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base} {n}")
        };
        match state.db.create_workspace(&name).await {
            Ok(w) => {
                state.db.add_member(&w.id, user_id, "admin").await?;
                return Ok(w.id);
            }
            Err(DbError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("could not name a new workspace"))
}

/// Ends the session and clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    same_origin(&state, &headers)?;
    session::end(&state, &headers).await?;
    let cookie = session::clear_cookie(state.site.secure_cookies);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if wants_json {
        Ok((
            [(header::SET_COOKIE, cookie)],
            Json(serde_json::json!({"signed_out": true})),
        )
            .into_response())
    } else {
        Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
    }
}

/// The signed-in user as JSON, or 401.
async fn current_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match session::session_from_headers(&state, &headers).await? {
        Some(s) => Ok((StatusCode::OK, Json(s)).into_response()),
        None => Err(ApiError::Unauthorized("not signed in".into())),
    }
}
