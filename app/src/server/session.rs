//! Server-side sessions: an opaque random id in one `HttpOnly; SameSite=Lax` cookie, stored
//! hashed, with idle and absolute expiry. It is a browser-session cookie (no `Max-Age`), as the
//! privacy policy promises.

use http::HeaderMap;

use super::crypto::{hash_secret, random_secret};
use super::db::{DbError, NewSession};
use super::now_ms;
use super::state::AppState;
use crate::auth::{SessionInfo, UserInfo, WorkspaceInfo};

/// The one cookie Qontak sets.
pub const COOKIE_NAME: &str = "qontak_session";
/// A session unused this long ends.
pub const IDLE_TIMEOUT_MS: i64 = 7 * 24 * 3600 * 1000;
/// No session lives longer than this.
pub const ABSOLUTE_TIMEOUT_MS: i64 = 30 * 24 * 3600 * 1000;

/// The value of a named cookie in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that carries a new session id.
pub fn session_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// Starts a session for a user and answers the cookie to set. The id is new at every sign-in.
pub async fn start(
    state: &AppState,
    user_id: &str,
    workspace_id: Option<&str>,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<String, DbError> {
    let id = random_secret("");
    state
        .db
        .create_session(&NewSession {
            id_hash: &hash_secret(&id),
            user_id,
            workspace_id,
            expires_at: now_ms() + ABSOLUTE_TIMEOUT_MS,
            ip,
            user_agent,
        })
        .await?;
    Ok(session_cookie(&id, state.site.secure_cookies))
}

/// The user id and current workspace of the request's session, if it is valid.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Option<String>)>, DbError> {
    let Some(id) = cookie_value(headers, COOKIE_NAME) else {
        return Ok(None);
    };
    let hash = hash_secret(id);
    let now = now_ms();
    let Some(row) = state.db.session(&hash, now).await? else {
        return Ok(None);
    };
    if now - row.last_seen_at > IDLE_TIMEOUT_MS {
        state.db.delete_session(&hash).await?;
        return Ok(None);
    }
    if now - row.last_seen_at > 60_000 {
        state.db.touch_session(&hash, now).await?;
    }
    Ok(Some((row.user_id, row.workspace_id)))
}

/// Ends the request's session, if any.
pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<(), DbError> {
    if let Some(id) = cookie_value(headers, COOKIE_NAME) {
        state.db.delete_session(&hash_secret(id)).await?;
    }
    Ok(())
}

/// The signed-in user and their workspaces, as `GET /auth/session` and the UI show them.
pub async fn session_from_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionInfo>, DbError> {
    let Some((user_id, workspace_id)) = current(state, headers).await? else {
        return Ok(None);
    };
    let Some(user) = state.db.user(&user_id).await? else {
        return Ok(None);
    };
    let workspaces: Vec<WorkspaceInfo> = state
        .db
        .memberships_of(&user_id)
        .await?
        .into_iter()
        .map(|m| WorkspaceInfo {
            id: m.workspace_id,
            name: m.workspace_name,
            role: m.role,
        })
        .collect();
    let current_workspace = workspace_id
        .filter(|w| workspaces.iter().any(|x| &x.id == w))
        .or_else(|| workspaces.first().map(|w| w.id.clone()));
    Ok(Some(SessionInfo {
        user: UserInfo {
            id: user.id,
            email: user.email,
            name: user.name,
        },
        workspaces,
        current_workspace,
        dev_login: state.site.dev_login,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; qontak_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE_NAME), Some("abc"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_only_over_https() {
        let c = session_cookie("x", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && !c.contains("Secure"));
        assert!(
            !c.contains("Max-Age") && !c.contains("Expires"),
            "a browser-session cookie"
        );
        assert!(session_cookie("x", true).ends_with("; Secure"));
    }
}
