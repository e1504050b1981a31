//! `/api/v1/members`, `/api/v1/members/invitations`, `/api/v1/tokens` and `/api/v1/me`: the
//! people of a workspace, their roles, invitations, API tokens and one's own profile. Listing
//! members is open to every member; everything else here that changes the team is for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use app::domain::{Email, Role};
use app::server::crypto::{hash_secret, random_secret};
use app::server::db::teams::{ApiTokenRow, InvitationRow, MemberChange, MemberRow};
use app::server::db::AuditEntry;
use app::server::{now_ms, rfc3339};

use super::{ApiCaller, ApiError, ApiJson};
use crate::AppState;

/// How long an invitation link works.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e| invalid("role", e.to_string()))
}

/// Appends an audit entry for a change the caller made. `detail` is JSON without secrets.
pub async fn audit(
    state: &AppState,
    caller: &ApiCaller,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let actor = match state.db.user(&caller.user_id).await? {
        Some(u) if caller.is_session() => u.email,
        Some(u) => format!("{} (API token {})", u.email, caller.token_id),
        None => caller.user_id.clone(),
    };
    state
        .db
        .audit(&AuditEntry {
            workspace_id: Some(&caller.workspace_id),
            user_id: Some(&caller.user_id),
            actor: &actor,
            action,
            target,
            detail: &detail.to_string(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

// ---- members ----------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberDto {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// `admin` or `agent`.
    pub role: String,
    pub joined_at: String,
}

impl From<MemberRow> for MemberDto {
    fn from(m: MemberRow) -> Self {
        MemberDto {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub data: Vec<MemberDto>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleChange {
    /// `admin` or `agent`.
    pub role: String,
}

/// The workspace's members (any member may see who is on the team).
#[utoipa::path(get, path = "/api/v1/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = MemberList), (status = 401, body = super::error::ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<MemberList>, ApiError> {
    let data = state
        .db
        .members(&caller.workspace_id)
        .await?
        .into_iter()
        .map(MemberDto::from)
        .collect();
    Ok(Json(MemberList {
        data,
        next_cursor: None,
    }))
}

fn refused_change(change: MemberChange) -> Result<(), ApiError> {
    match change {
        MemberChange::Done => Ok(()),
        MemberChange::NotFound => Err(ApiError::NotFound("no such member".into())),
        MemberChange::LastAdmin => Err(ApiError::Conflict {
            code: "last_admin",
            message: "a workspace needs at least one admin: make someone else admin first".into(),
        }),
    }
}

/// Changes a member's role (admins); the last admin cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = MemberDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn change_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<MemberDto>, ApiError> {
    caller.require_admin()?;
    let role = parse_role(&body.role)?;
    refused_change(
        state
            .db
            .set_member_role(&caller.workspace_id, &user_id, role.as_str())
            .await?,
    )?;
    audit(
        &state,
        &caller,
        "member.role_changed",
        Some(&user_id),
        serde_json::json!({"role": role.as_str()}),
    )
    .await?;
    let member = state
        .db
        .members(&caller.workspace_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| ApiError::NotFound("no such member".into()))?;
    Ok(Json(member.into()))
}

/// Removes a member (admins); the last admin cannot be removed. Their API tokens stop working.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    refused_change(
        state
            .db
            .remove_member(&caller.workspace_id, &user_id)
            .await?,
    )?;
    audit(
        &state,
        &caller,
        "member.removed",
        Some(&user_id),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- invitations ------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewInvitation {
    pub email: String,
    /// `admin` or `agent`; `agent` when left out.
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationDto {
    pub id: String,
    pub email: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: String,
    pub expired: bool,
    /// The link to send to the person, shown only when the invitation is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationList {
    pub data: Vec<InvitationDto>,
    pub next_cursor: Option<String>,
}

fn invitation_dto(i: InvitationRow, url: Option<String>) -> InvitationDto {
    InvitationDto {
        expired: i.expires_at <= now_ms(),
        id: i.id,
        email: i.email,
        role: i.role,
        created_at: rfc3339(i.created_at),
        expires_at: rfc3339(i.expires_at),
        url,
    }
}

/// Invites someone by e-mail (admins). The answer's `url` is the one-time link, valid for
/// seven days; only its hash is stored.
#[utoipa::path(post, path = "/api/v1/members/invitations", tag = "members", security(("bearer" = [])),
    request_body = NewInvitation,
    responses((status = 201, body = InvitationDto), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn invite(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<InvitationDto>), ApiError> {
    caller.require_admin()?;
    let email = Email::parse(&body.email).map_err(|e| invalid("email", e.to_string()))?;
    let role = parse_role(body.role.as_deref().unwrap_or("agent"))?;
    let already = state
        .db
        .members(&caller.workspace_id)
        .await?
        .iter()
        .any(|m| m.email == email.as_str());
    if already {
        return Err(ApiError::Conflict {
            code: "already_member",
            message: format!("{} is already a member of this workspace", email.as_str()),
        });
    }
    let token = random_secret("");
    let row = state
        .db
        .create_invitation(
            &caller.workspace_id,
            email.as_str(),
            role.as_str(),
            &hash_secret(&token),
            &caller.user_id,
            now_ms() + INVITATION_TTL_MS,
        )
        .await?;
    audit(
        &state,
        &caller,
        "invitation.created",
        Some(&row.id),
        serde_json::json!({"email": email.as_str(), "role": role.as_str()}),
    )
    .await?;
    let url = format!(
        "{}/invite/{token}",
        state.site.public_url.trim_end_matches('/')
    );
    Ok((StatusCode::CREATED, Json(invitation_dto(row, Some(url)))))
}

/// The invitations not yet accepted nor revoked (admins).
#[utoipa::path(get, path = "/api/v1/members/invitations", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = InvitationList), (status = 403, body = super::error::ErrorBody)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<InvitationList>, ApiError> {
    caller.require_admin()?;
    let data = state
        .db
        .open_invitations(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|i| invitation_dto(i, None))
        .collect();
    Ok(Json(InvitationList {
        data,
        next_cursor: None,
    }))
}

/// Revokes an open invitation (admins): its link stops working.
#[utoipa::path(delete, path = "/api/v1/members/invitations/{id}", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !state
        .db
        .revoke_invitation(&caller.workspace_id, &id)
        .await?
    {
        return Err(ApiError::NotFound("no such open invitation".into()));
    }
    audit(
        &state,
        &caller,
        "invitation.revoked",
        Some(&id),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API tokens -------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// A label to recognise the token by, unique in the workspace.
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenDto {
    pub id: String,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    /// The member the token acts as.
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// The token itself: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenDto>,
    pub next_cursor: Option<String>,
}

fn token_dto(t: ApiTokenRow, token: Option<String>) -> TokenDto {
    TokenDto {
        id: t.id,
        name: t.name,
        prefix: t.prefix,
        created_by: t.email,
        created_at: rfc3339(t.created_at),
        last_used_at: t.last_used_at.map(rfc3339),
        token,
    }
}

/// The workspace's live API tokens (admins), without the secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 403, body = super::error::ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<TokenList>, ApiError> {
    caller.require_admin()?;
    let data = state
        .db
        .api_tokens(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|t| token_dto(t, None))
        .collect();
    Ok(Json(TokenList {
        data,
        next_cursor: None,
    }))
}

/// Creates a token acting as the caller (admins). The token is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = NewToken,
    responses((status = 201, body = TokenDto), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenDto>), ApiError> {
    caller.require_admin()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name", "name must be 1 to 100 characters"));
    }
    let token = random_secret("qtk_");
    let id = state
        .db
        .create_api_token(
            &caller.workspace_id,
            &caller.user_id,
            name,
            &hash_secret(&token),
            &token[..8],
        )
        .await?;
    audit(
        &state,
        &caller,
        "token.created",
        Some(&id),
        serde_json::json!({"name": name}),
    )
    .await?;
    let row = state
        .db
        .api_tokens(&caller.workspace_id)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::internal("a created token is missing"))?;
    Ok((StatusCode::CREATED, Json(token_dto(row, Some(token)))))
}

/// Revokes a token (admins): it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !state.db.revoke_api_token(&caller.workspace_id, &id).await? {
        return Err(ApiError::NotFound("no such token".into()));
    }
    audit(
        &state,
        &caller,
        "token.revoked",
        Some(&id),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- profile ----------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeDto {
    pub id: String,
    pub email: String,
    pub name: String,
    /// The caller's role in the workspace of this request.
    pub role: String,
    pub workspace_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProfileChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// The caller's own profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = MeDto), (status = 401, body = super::error::ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: ApiCaller) -> Result<Json<MeDto>, ApiError> {
    let user = state
        .db
        .user(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this user no longer exists".into()))?;
    Ok(Json(MeDto {
        id: user.id,
        email: user.email,
        name: user.name,
        role: caller.role,
        workspace_id: caller.workspace_id,
    }))
}

/// Corrects the caller's name and e-mail (the right to correction). Audit-logged.
#[utoipa::path(patch, path = "/api/v1/me", tag = "members", security(("bearer" = [])), request_body = ProfileChange,
    responses((status = 200, body = MeDto), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<ProfileChange>,
) -> Result<Json<MeDto>, ApiError> {
    let user = state
        .db
        .user(&caller.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this user no longer exists".into()))?;
    let name = match body.name.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > 200 || n.chars().any(char::is_control) => {
            return Err(invalid(
                "name",
                "name must be at most 200 characters, without control characters",
            ))
        }
        Some(n) => n.to_string(),
        None => user.name.clone(),
    };
    let email = match body.email.as_deref() {
        Some(e) => Email::parse(e)
            .map_err(|e| invalid("email", e.to_string()))?
            .as_str()
            .to_string(),
        None => user.email.clone(),
    };
    let updated = state.db.update_user(&caller.user_id, &name, &email).await?;
    let mut changed = Vec::new();
    if updated.name != user.name {
        changed.push("name");
    }
    if updated.email != user.email {
        changed.push("email");
    }
    if !changed.is_empty() {
        audit(
            &state,
            &caller,
            "profile.updated",
            Some(&caller.user_id),
            serde_json::json!({"fields": changed, "previous_email": user.email}),
        )
        .await?;
    }
    Ok(Json(MeDto {
        id: updated.id,
        email: updated.email,
        name: updated.name,
        role: caller.role,
        workspace_id: caller.workspace_id,
    }))
}
