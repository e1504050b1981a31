//! Page frames: the public frame (legal pages, sign-in) and the signed-in app shell.

use leptos::prelude::*;

use crate::auth::SessionInfo;
use crate::theme::ThemeToggle;

/// Header with the brand and links, for pages anyone may see.
#[component]
pub fn PublicLayout(children: Children) -> impl IntoView {
    view! {
        <div class="public">
            <header class="topbar">
                <a class="brand" href="/">
                    <span class="logo" aria-hidden="true">"Q"</span>
                    "Qontak"
                </a>
                <nav aria-label="Site">
                    <a href="/privacy">"Privacy"</a>
                    <a href="/terms">"Terms"</a>
                    <ThemeToggle />
                </nav>
            </header>
            <main class="public-main">{children()}</main>
        </div>
    }
}

/// The signed-in shell: sidebar with the product's sections and a header with the user.
#[component]
pub fn AppLayout(session: SessionInfo, children: Children) -> impl IntoView {
    let (collapsed, set_collapsed) = signal(false);
    let workspace = session.current_workspace_name().unwrap_or_default();
    let switcher = workspace_switcher(&session);
    view! {
        <div class="app-shell" class:collapsed=collapsed>
            <aside class="sidebar" aria-label="Main">
                <a class="brand" href="/inbox">
                    <span class="logo" aria-hidden="true">"Q"</span>
                    <span class="label">"Qontak"</span>
                </a>
                <nav>
                    <a href="/inbox">"Inbox"</a>
                    <a href="/contacts">"Contacts"</a>
                    <a href="/templates">"Templates"</a>
                    <a href="/broadcasts">"Broadcasts"</a>
                    <a href="/settings">"Settings"</a>
                </nav>
            </aside>
            <div class="app-main">
                <header class="topbar">
                    <button
                        type="button"
                        class="sidebar-toggle"
                        aria-label="Toggle the sidebar"
                        aria-pressed=move || collapsed.get().to_string()
                        on:click=move |_| set_collapsed.update(|c| *c = !*c)
                    >
                        "☰"
                    </button>
                    <span class="workspace-name">{workspace}</span>
                    {switcher}
                    <span class="spacer"></span>
                    <ThemeToggle />
                    <span class="user" title=session.user.email.clone()>
                        {session.user.display_name()}
                    </span>
                    <form method="post" action="/auth/logout">
                        <button type="submit" class="link">"Sign out"</button>
                    </form>
                </header>
                {session.dev_login.then(|| view! {
                    <div class="dev-banner" role="status">
                        "Development sign-in is enabled: anyone who can reach this server can sign in by e-mail."
                    </div>
                })}
                <main class="content">{children()}</main>
            </div>
        </div>
    }
}

/// For a member of several workspaces: a form that moves the session to another one
/// (`POST /auth/workspace`, then the inbox). Works without JavaScript.
fn workspace_switcher(session: &SessionInfo) -> Option<impl IntoView> {
    if session.workspaces.len() < 2 {
        return None;
    }
    let current = session.current_workspace.clone().unwrap_or_default();
    let options = session
        .workspaces
        .iter()
        .map(|w| {
            let selected = w.id == current;
            view! { <option value={w.id.clone()} selected={selected}>{w.name.clone()} " (" {w.role.clone()} ")"</option> }
        })
        .collect_view();
    Some(view! {
        <form class="workspace-switcher" method="post" action="/auth/workspace">
            <label class="visually-hidden" for="workspace-select">"Workspace"</label>
            <select id="workspace-select" name="workspace_id">{options}</select>
            <button type="submit" class="link">"Switch"</button>
        </form>
    })
}
