//! Error pages.

use leptos::prelude::*;
use leptos_meta::Title;

/// The page for an unknown path; during server rendering it sets the HTTP status to 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Page not found" />
        <main class="centered-page">
            <div class="card">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address. It may have moved, or the link is mistyped."</p>
                <p><a href="/">"Back to Qontak"</a></p>
            </div>
        </main>
    }
}
