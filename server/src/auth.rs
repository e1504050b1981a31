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
        .route("/auth/workspace", post(switch_workspace))
        .route("/auth/invitations/{token}/accept", post(accept_invitation))
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
    /// Where to go after signing in (a path of ours, e.g. an invitation link); `/inbox` when
    /// absent.
    #[serde(default)]
    next: Option<String>,
}

/// `next` when it is a path on this site, else `/inbox`: never a redirect off-site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/inbox".to_string(),
    }
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
    let workspace_id = sign_in_workspace(&state, &user.id, email.as_str()).await?;
    let (ip, ua) = client_meta(&headers);
    let cookie = session::start(
        &state,
        &user.id,
        workspace_id.as_deref(),
        ip.as_deref(),
        ua.as_deref(),
    )
    .await?;
    state
        .db
        .audit(&AuditEntry {
            workspace_id: workspace_id.as_deref(),
            user_id: Some(&user.id),
            actor: email.as_str(),
            action: "auth.sign_in",
            detail: r#"{"method":"dev"}"#,
            ip: ip.as_deref(),
            user_agent: ua.as_deref(),
            ..Default::default()
        })
        .await?;
    let next = local_path(form.next.as_deref());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

/// The workspace a signing-in user starts in: their first one; for a first sign-in a new
/// workspace they administer, unless an invitation waits for their e-mail (then none, until
/// they accept it).
async fn sign_in_workspace(
    state: &AppState,
    user_id: &str,
    email: &str,
) -> Result<Option<String>, ApiError> {
    if let Some(m) = state.db.memberships_of(user_id).await?.first() {
        return Ok(Some(m.workspace_id.clone()));
    }
    if state.db.has_open_invitation(email).await? {
        return Ok(None);
    }
    Ok(Some(first_workspace(state, user_id, email).await?))
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
    let workspace_id = sign_in_workspace(state, &user.id, &user.email).await?;
    let (ip, ua) = client_meta(headers);
    let cookie = session::start(
        state,
        &user.id,
        workspace_id.as_deref(),
        ip.as_deref(),
        ua.as_deref(),
    )
    .await?;
    let detail = serde_json::json!({"method": provider.as_str(), "account": how}).to_string();
    state
        .db
        .audit(&AuditEntry {
            workspace_id: workspace_id.as_deref(),
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

#[derive(Deserialize)]
struct WorkspaceChoice {
    #[serde(default)]
    workspace_id: String,
}

/// The signed-in user of a request, with the hash of their session id.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(UserRow, String)>, ApiError> {
    let Some((user_id, _)) = session::current(state, headers).await? else {
        return Ok(None);
    };
    let Some(id) = session::cookie_value(headers, session::COOKIE_NAME) else {
        return Ok(None);
    };
    Ok(state
        .db
        .user(&user_id)
        .await?
        .map(|u| (u, app::server::crypto::hash_secret(id))))
}

/// `POST /auth/workspace` (form or JSON `workspace_id`): the session continues in another
/// workspace the user belongs to. A form post answers 303 to the inbox, JSON 200.
async fn switch_workspace(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    same_origin(&state, &headers)?;
    let form = is_form(&headers);
    let body = if form {
        Form::<WorkspaceChoice>::from_request(request, &state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
            .0
    } else {
        ApiJson::<WorkspaceChoice>::from_request(request, &state)
            .await?
            .0
    };
    let (user, session_hash) = signed_in(&state, &headers)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    let membership = state
        .db
        .memberships_of(&user.id)
        .await?
        .into_iter()
        .find(|m| m.workspace_id == body.workspace_id)
        .ok_or_else(|| ApiError::NotFound("you are not a member of this workspace".into()))?;
    state
        .db
        .set_session_workspace(&session_hash, &membership.workspace_id)
        .await?;
    if form {
        Ok(Redirect::to("/inbox").into_response())
    } else {
        Ok(Json(serde_json::json!({
            "workspace_id": membership.workspace_id,
            "role": membership.role,
        }))
        .into_response())
    }
}

/// `POST /auth/invitations/{token}/accept`: the signed-in user whose e-mail the invitation
/// names joins its workspace, once. A form post (the invitation page) answers 303 to the
/// inbox, or back to the page with `?error=<code>`; JSON answers 200 or the error.
async fn accept_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    use app::server::db::teams::Acceptance;
    same_origin(&state, &headers)?;
    let form = is_form(&headers);
    let well_formed = !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(ApiError::NotFound("no such invitation".into()));
    }
    let refuse = |status: StatusCode, code: &str, message: &str| -> Response {
        if form {
            Redirect::to(&format!("/invite/{token}?error={code}")).into_response()
        } else {
            error_response(status, code, message)
        }
    };
    let Some((user, session_hash)) = signed_in(&state, &headers).await? else {
        return Ok(if form {
            Redirect::to(&format!("/login?next=/invite/{token}")).into_response()
        } else {
            error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in first, then open the invitation link again",
            )
        });
    };
    let hash = app::server::crypto::hash_secret(&token);
    let Some(invitation) = state.db.invitation_by_hash(&hash).await? else {
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "invitation_not_found",
            "this invitation link is not valid",
        ));
    };
    let gone = |code: &str, message: &str| refuse(StatusCode::GONE, code, message);
    if invitation.revoked_at.is_some() {
        return Ok(gone(
            "invitation_revoked",
            "this invitation was withdrawn; ask an admin for a new one",
        ));
    }
    if invitation.accepted_at.is_some() {
        return Ok(gone(
            "invitation_used",
            "this invitation was already used; each link works once",
        ));
    }
    if invitation.expires_at <= app::server::now_ms() {
        return Ok(gone(
            "invitation_expired",
            "this invitation expired; ask an admin for a new one",
        ));
    }
    if !invitation.email.eq_ignore_ascii_case(&user.email) {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "email_mismatch",
            "this invitation is for another e-mail address: sign in with the account it was sent to",
        ));
    }
    if state.db.accept_invitation(&invitation, &user.id).await? == Acceptance::Gone {
        return Ok(gone(
            "invitation_used",
            "this invitation was already used; each link works once",
        ));
    }
    state
        .db
        .set_session_workspace(&session_hash, &invitation.workspace_id)
        .await?;
    let (ip, ua) = client_meta(&headers);
    let detail = serde_json::json!({"role": invitation.role}).to_string();
    state
        .db
        .audit(&AuditEntry {
            workspace_id: Some(&invitation.workspace_id),
            user_id: Some(&user.id),
            actor: &user.email,
            action: "invitation.accepted",
            target: Some(&invitation.id),
            detail: &detail,
            ip: ip.as_deref(),
            user_agent: ua.as_deref(),
        })
        .await?;
    if form {
        Ok(Redirect::to("/inbox").into_response())
    } else {
        Ok(Json(serde_json::json!({
            "workspace_id": invitation.workspace_id,
            "role": invitation.role,
            "redirect": "/inbox",
        }))
        .into_response())
    }
}
