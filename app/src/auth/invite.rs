//! `/invite/{token}`: an invitation link. Shows the workspace and an Accept button to the
//! signed-in user; a visitor signs in first and comes back here.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::fetch_session;
use crate::layout::PublicLayout;

/// What an invitation link shows before it is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitePreview {
    pub workspace_name: String,
    pub email: String,
    pub role: String,
    /// `open`, `used`, `expired` or `revoked`.
    pub state: String,
}

/// The invitation a link's token names, if any. Holding the link is what entitles one to see
/// it, as with the e-mail it was sent in.
#[server(endpoint = "invitation_preview")]
pub async fn invitation_preview(token: String) -> Result<Option<InvitePreview>, ServerFnError> {
    let state = crate::server::state::app_state()?;
    let hash = crate::server::crypto::hash_secret(&token);
    let Some(i) = state.db.invitation_by_hash(&hash).await? else {
        return Ok(None);
    };
    let status = if i.revoked_at.is_some() {
        "revoked"
    } else if i.accepted_at.is_some() {
        "used"
    } else if i.expires_at <= crate::server::now_ms() {
        "expired"
    } else {
        "open"
    };
    Ok(Some(InvitePreview {
        workspace_name: i.workspace_name,
        email: i.email,
        role: i.role,
        state: status.to_string(),
    }))
}

/// The plain words for a refusal code of `POST /auth/invitations/{token}/accept`.
pub fn refusal_text(code: &str) -> &'static str {
    match code {
        "invitation_used" => "This invitation was already used: each link works once.",
        "invitation_expired" => "This invitation has expired: ask an admin of the workspace for a new one.",
        "invitation_revoked" => "This invitation was withdrawn: ask an admin of the workspace for a new one.",
        "email_mismatch" => "This invitation is for another e-mail address: sign out, then sign in with the account it was sent to.",
        _ => "This invitation link is not valid.",
    }
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let token = move || params.with(|p| p.get("token").unwrap_or_default());
    let preview = Resource::new(token, invitation_preview);
    let session = Resource::new(|| (), |_| fetch_session());
    view! {
        <Title text="Invitation" />
        <PublicLayout>
            <div class="card login invite">
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let token = token();
                        let error = query.with(|q| q.get("error"));
                        match (preview.await, session.await) {
                            (Ok(Some(p)), Ok(v)) => invitation_view(token, p, v.session.map(|s| s.user.email), error).into_any(),
                            (Ok(None), _) => view! {
                                <h1>"Invitation"</h1>
                                <p class="error" role="alert">{refusal_text("invitation_not_found")}</p>
                            }.into_any(),
                            (Err(e), _) | (_, Err(e)) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
        </PublicLayout>
    }
}

fn invitation_view(
    token: String,
    p: InvitePreview,
    signed_in_as: Option<String>,
    error: Option<String>,
) -> impl IntoView {
    let problem = error.or_else(|| match p.state.as_str() {
        "used" => Some("invitation_used".into()),
        "expired" => Some("invitation_expired".into()),
        "revoked" => Some("invitation_revoked".into()),
        _ => None,
    });
    let action = match (&problem, signed_in_as) {
        (Some(code), _) => view! { <p class="error" role="alert">{refusal_text(code)}</p> }.into_any(),
        (None, None) => view! {
            <p>"Sign in with the account of " <strong>{p.email.clone()}</strong> " to accept."</p>
            <a class="button primary" href={format!("/login?next=/invite/{token}")}>"Sign in to accept"</a>
        }
        .into_any(),
        (None, Some(me)) => view! {
            <p class="muted">"You are signed in as " {me} "."</p>
            <form method="post" action={format!("/auth/invitations/{token}/accept")}>
                <button type="submit" class="primary">"Accept invitation"</button>
            </form>
        }
        .into_any(),
    };
    view! {
        <h1>"Join " {p.workspace_name.clone()}</h1>
        <p>"You are invited to " <strong class="invite-workspace">{p.workspace_name}</strong> " as "
            <strong>{p.role}</strong> " (invitation for " {p.email} ")."</p>
        {action}
    }
}
