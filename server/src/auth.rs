//! `/auth/*`: sign-in, sign-out and the session as JSON.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use app::domain::Email;
use app::server::db::{AuditEntry, DbError, UserRow};
use app::server::idtoken::{Claims, Provider, TokenError};
use app::server::session;

use crate::api::{ApiError, ApiJson};
use crate::AppState;

/// The origin of Google's redirect-mode form post (`ux_mode: "redirect"`).
pub const GOOGLE_ORIGIN: &str = "https://accounts.google.com";
/// Google's double-submit cookie and form field.
pub const G_CSRF_TOKEN: &str = "g_csrf_token";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/google", post(google_sign_in))
        .route("/auth/firebase", post(firebase_sign_in))
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

/// What Google posts: the ID token as `credential`, and in redirect mode the double-submit
/// `g_csrf_token` (the JSON shape of Google's current example also carries `client_id`).
#[derive(Deserialize)]
struct GoogleBody {
    #[serde(default)]
    credential: String,
    #[serde(default)]
    g_csrf_token: Option<String>,
}

#[derive(Deserialize)]
struct FirebaseBody {
    #[serde(default)]
    id_token: String,
}

/// An error answer in our JSON shape with a code of its own.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// A refused ID token: 401 with the reason code in `error.code`, no cookie, and a log line
/// that names the reason but never the token.
fn refused(provider: Provider, e: TokenError) -> Response {
    let status = match e {
        TokenError::KeysUnavailable => {
            tracing::warn!(
                method = provider.as_str(),
                reason = e.code(),
                "sign-in refused"
            );
            StatusCode::SERVICE_UNAVAILABLE
        }
        TokenError::NotConfigured => StatusCode::NOT_FOUND,
        _ => {
            tracing::info!(
                method = provider.as_str(),
                reason = e.code(),
                "sign-in refused"
            );
            StatusCode::UNAUTHORIZED
        }
    };
    error_response(status, e.code(), &e.to_string())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// `POST /auth/google`: a Google Identity Services ID token, as a form post (Google's
/// redirect mode, or a plain form) or as JSON (the callback mode of our login page).
///
/// When the request carries the `g_csrf_token` cookie or field, both must be there and equal
/// (400 otherwise). A form post from Google's own origin must carry them, and is accepted for
/// that reason; any other cross-site origin is refused.
async fn google_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    if !state.id_tokens.enabled(Provider::Google) {
        return Err(ApiError::NotFound(
            "Google sign-in is not configured".into(),
        ));
    }
    let form = is_form(&headers);
    let from_google = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o == GOOGLE_ORIGIN);
    if !(from_google && form) {
        same_origin(&state, &headers)?;
    }
    let body = if form {
        Form::<GoogleBody>::from_request(request, &state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
            .0
    } else {
        ApiJson::<GoogleBody>::from_request(request, &state)
            .await?
            .0
    };

    let cookie = session::cookie_value(&headers, G_CSRF_TOKEN);
    let field = body.g_csrf_token.as_deref();
    if from_google || cookie.is_some() || field.is_some() {
        let matches = match (cookie, field) {
            (Some(c), Some(f)) => !c.is_empty() && bool::from(c.as_bytes().ct_eq(f.as_bytes())),
            _ => false,
        };
        if !matches {
            tracing::info!(
                method = "google",
                reason = "csrf_mismatch",
                "sign-in refused"
            );
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "csrf_mismatch",
                "the g_csrf_token cookie and field must both be present and equal",
            ));
        }
    }
    if body.credential.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the `credential` field is missing".into(),
        ));
    }
    sign_in_with_token(&state, &headers, Provider::Google, &body.credential, form).await
}

/// `POST /auth/firebase`: JSON `{"id_token"}` from the Firebase JS SDK.
async fn firebase_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    if !state.id_tokens.enabled(Provider::Firebase) {
        return Err(ApiError::NotFound(
            "Firebase sign-in is not configured".into(),
        ));
    }
    same_origin(&state, &headers)?;
    let body = ApiJson::<FirebaseBody>::from_request(request, &state)
        .await?
        .0;
    if body.id_token.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the `id_token` field is missing".into(),
        ));
    }
    sign_in_with_token(&state, &headers, Provider::Firebase, &body.id_token, false).await
}

/// Verifies the token, finds or makes the account, starts a session and answers: 200
/// `{"redirect": "/inbox"}` to JSON, 303 to `/inbox` to a form post.
async fn sign_in_with_token(
    state: &AppState,
    headers: &HeaderMap,
    provider: Provider,
    token: &str,
    form: bool,
) -> Result<Response, ApiError> {
    let claims = match state.id_tokens.verify(provider, token).await {
        Ok(c) => c,
        Err(e) => return Ok(refused(provider, e)),
    };
    let Ok(email) = Email::parse(&claims.email) else {
        return Ok(refused(
            provider,
            TokenError::BadToken("unusable e-mail address"),
        ));
    };
    let Some((user, how)) = account(state, provider, &claims, &email).await? else {
        tracing::info!(
            method = provider.as_str(),
            reason = "account_conflict",
            "sign-in refused"
        );
        return Ok(error_response(
            StatusCode::CONFLICT,
            "account_conflict",
            "this e-mail address belongs to a user who signs in with another account of this provider",
        ));
    };
    let memberships = state.db.memberships_of(&user.id).await?;
    let workspace_id = match memberships.first() {
        Some(m) => m.workspace_id.clone(),
        None => first_workspace(state, &user.id, &user.email).await?,
    };
    let (ip, ua) = client_meta(headers);
    let cookie = session::start(
        state,
        &user.id,
        Some(&workspace_id),
        ip.as_deref(),
        ua.as_deref(),
    )
    .await?;
    let detail = serde_json::json!({"method": provider.as_str(), "account": how}).to_string();
    state
        .db
        .audit(&AuditEntry {
            workspace_id: Some(&workspace_id),
            user_id: Some(&user.id),
            actor: &user.email,
            action: "auth.sign_in",
            detail: &detail,
            ip: ip.as_deref(),
            user_agent: ua.as_deref(),
            ..Default::default()
        })
        .await?;
    tracing::info!(method = provider.as_str(), account = how, user_id = %user.id, "signed in");
    if form {
        Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/inbox")).into_response())
    } else {
        Ok((
            StatusCode::OK,
            [
                (header::SET_COOKIE, cookie),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            Json(serde_json::json!({"redirect": "/inbox"})),
        )
            .into_response())
    }
}

/// The account of a verified identity, keyed on the provider's `sub`: a returning user; else
/// the user with this (verified) e-mail, linked now when they have no such identity yet; else
/// a new user. `None` when the e-mail belongs to a user linked to another account of the same
/// provider.
async fn account(
    state: &AppState,
    provider: Provider,
    claims: &Claims,
    email: &Email,
) -> Result<Option<(UserRow, &'static str)>, ApiError> {
    if let Some(user) = state.db.user_by_identity(provider, &claims.sub).await? {
        return Ok(Some((user, "returning")));
    }
    if let Some(user) = state.db.user_by_email(email.as_str()).await? {
        return match state
            .db
            .link_identity(&user.id, provider, &claims.sub)
            .await
        {
            Ok(true) => Ok(Some((user, "linked"))),
            Ok(false) => Ok(None),
            // Linked to someone a moment ago: a concurrent first sign-in of this identity.
            Err(DbError::Conflict(_)) => Ok(state
                .db
                .user_by_identity(provider, &claims.sub)
                .await?
                .map(|u| (u, "returning"))),
            Err(e) => Err(e.into()),
        };
    }
    let name = claims.name.clone().unwrap_or_else(|| {
        email
            .as_str()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string()
    });
    match state
        .db
        .create_user_with_identity(email.as_str(), &name, provider, &claims.sub)
        .await
    {
        Ok(user) => Ok(Some((user, "created"))),
        // A concurrent first sign-in of the same identity created it.
        Err(DbError::Conflict(_)) => Ok(state
            .db
            .user_by_identity(provider, &claims.sub)
            .await?
            .map(|u| (u, "returning"))),
        Err(e) => Err(e.into()),
    }
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
    let signed_in = session::current(&state, &headers).await?;
    session::end(&state, &headers).await?;
    if let Some((user_id, workspace_id)) = signed_in {
        let (ip, ua) = client_meta(&headers);
        let actor = state
            .db
            .user(&user_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        state
            .db
            .audit(&AuditEntry {
                workspace_id: workspace_id.as_deref(),
                user_id: Some(&user_id),
                actor: &actor,
                action: "auth.sign_out",
                ip: ip.as_deref(),
                user_agent: ua.as_deref(),
                detail: "{}",
                ..Default::default()
            })
            .await?;
    }
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
