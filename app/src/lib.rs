//! Qontak's Leptos application: routes, views, server functions and the types shared by the
//! WASM client and the axum server. Everything that only runs on the server lives in
//! [`server`], compiled with the `ssr` feature.
#![recursion_limit = "512"]

pub mod api_client;
pub mod auth;
pub mod broadcasts;
pub mod contacts;
pub mod domain;
pub mod errors;
pub mod inbox;
pub mod layout;
pub mod legal;
pub mod live_load;
pub mod settings;
pub mod templates;
pub mod theme;

#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) = http::HeaderValue::from_str(&server::page_csp(&nonce.to_string())) {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component: routes of the single-page app.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    theme::mark_hydrated();
    view! {
        <Stylesheet id="qontak" href="/pkg/qontak.css" />
        <Title formatter=|text: String| {
            if text.is_empty() { "Qontak".to_string() } else { format!("{text} · Qontak") }
        } />
        <Router>
            <Routes fallback=errors::NotFound>
                <Route path=path!("/") view=auth::HomeRedirect />
                <Route path=path!("/login") view=auth::LoginPage />
                <Route path=path!("/inbox") view=inbox::InboxPage />
                <Route path=path!("/settings/canned-responses") view=inbox::CannedResponsesPage />
                <Route path=path!("/templates") view=templates::TemplatesPage />
                <Route path=path!("/privacy") view=legal::PrivacyPage />
                <Route path=path!("/terms") view=legal::TermsPage />
                <Route path=path!("/invite/:token") view=auth::invite::InvitePage />
                <Route path=path!("/settings") view=settings::SettingsPage />
                <Route path=path!("/settings/members") view=settings::MembersPage />
                <Route path=path!("/settings/tokens") view=settings::TokensPage />
                <Route path=path!("/settings/whatsapp") view=settings::NumbersPage />
                <Route path=path!("/settings/profile") view=settings::ProfilePage />
                <Route path=path!("/contacts") view=contacts::ContactsPage />
                <Route path=path!("/broadcasts") view=broadcasts::BroadcastsPage />
            </Routes>
        </Router>
    }
}
