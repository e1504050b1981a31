//! Who is signed in, and the sign-in page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

use crate::layout::PublicLayout;

pub mod google;
pub mod invite;

/// The signed-in user as the UI sees it (the same shape as `GET /auth/session`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: UserInfo,
    pub workspaces: Vec<WorkspaceInfo>,
    pub current_workspace: Option<String>,
    pub dev_login: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    pub id: String,
    pub name: String,
    pub role: String,
}

impl UserInfo {
    /// The name when known, else the e-mail.
    pub fn display_name(&self) -> String {
        if self.name.trim().is_empty() {
            self.email.clone()
        } else {
            self.name.clone()
        }
    }
}

impl SessionInfo {
    pub fn current_workspace_name(&self) -> Option<String> {
        let current = self.current_workspace.as_ref()?;
        self.workspaces
            .iter()
            .find(|w| &w.id == current)
            .map(|w| w.name.clone())
    }
}

/// What the sign-in page offers on this installation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    pub google_client_id: Option<String>,
    pub dev_login: bool,
}

/// What a page first asks the server: the session of the request's cookie, if any, and how one
/// signs in here. One answer type for every page (the sign-in page too): each type a resource
/// carries costs the browser's client kilobytes of code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    pub session: Option<SessionInfo>,
    pub login: LoginOptions,
}

#[server(endpoint = "session_info")]
pub async fn fetch_session() -> Result<Visitor, ServerFnError> {
    let state = crate::server::state::app_state()?;
    let headers: http::HeaderMap = leptos_axum::extract().await?;
    Ok(Visitor {
        session: crate::server::session::session_from_headers(&state, &headers).await?,
        login: LoginOptions {
            google_client_id: state.site.google_client_id.clone(),
            dev_login: state.site.dev_login,
        },
    })
}

/// `/`: the inbox when signed in, else the sign-in page.
#[component]
pub fn HomeRedirect() -> impl IntoView {
    let session = Resource::new(|| (), |_| fetch_session());
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                match session.await {
                    Ok(Visitor { session: Some(_), .. }) => view! { <Redirect path="/inbox" /> }.into_any(),
                    _ => view! { <Redirect path="/login" /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Renders `children` with the session, or sends a visitor without one to `/login`.
#[component]
pub fn RequireSession<F, V>(children: F) -> impl IntoView
where
    F: Fn(SessionInfo) -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let session = Resource::new(|| (), |_| fetch_session());
    let children = std::sync::Arc::new(children);
    view! {
        <Suspense fallback=|| view! { <div class="skeleton-page" aria-busy="true"></div> }>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match session.await {
                        Ok(Visitor { session: Some(s), .. }) => children(s).into_any(),
                        _ => view! { <Redirect path="/login" /> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// `/login`: Google's button when configured, the development form when enabled.
#[component]
pub fn LoginPage() -> impl IntoView {
    let visitor = Resource::new(|| (), |_| fetch_session());
    // Where to return after signing in (an invitation link); only a path of ours.
    let next = leptos_router::hooks::use_query_map()
        .with_untracked(|q| q.get("next"))
        .filter(|n| n.starts_with('/') && !n.starts_with("//"));
    view! {
        <Title text="Sign in" />
        <PublicLayout>
            <div class="card login">
                <h1>"Sign in to Qontak"</h1>
                <p class="muted">"Your team's WhatsApp inbox."</p>
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || {
                        let next = next.clone();
                        Suspend::new(async move {
                            match visitor.await {
                                Ok(v) => login_methods(v.login, next).into_any(),
                                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                            }
                        })
                    }}
                </Suspense>
                <p class="fineprint">
                    "By signing in you accept the " <a href="/terms">"terms"</a> " and the "
                    <a href="/privacy">"privacy policy"</a> ". We use one session cookie and no advertising cookies."
                </p>
            </div>
        </PublicLayout>
    }
}

fn login_methods(options: LoginOptions, next: Option<String>) -> impl IntoView {
    let google = match options.google_client_id {
        Some(client_id) => view! { <google::GoogleButton client_id /> }.into_any(),
        None => view! {
            <p class="notice">
                "Google sign-in is not configured. Set " <code>"GOOGLE_CLIENT_ID"</code>
                " to an OAuth client id from Google Cloud Console (authorised JavaScript origin: this server's URL)."
            </p>
        }
        .into_any(),
    };
    let dev = options.dev_login.then(|| {
        view! {
            <form class="dev-login" method="post" action="/auth/dev">
                <p class="dev-badge">"Development sign-in — not for production"</p>
                <label for="dev-email">"E-mail"</label>
                <input id="dev-email" name="email" type="email" required autocomplete="email" placeholder="you@example.com" />
                {next.map(|n| view! { <input type="hidden" name="next" value=n /> })}
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        }
    });
    view! { {google} {dev} }
}
