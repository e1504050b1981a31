//! The inbox: where agents work their conversations.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::RequireSession;
use crate::layout::AppLayout;

#[component]
pub fn InboxPage() -> impl IntoView {
    view! {
        <Title text="Inbox" />
        <RequireSession children=|session| view! {
            <AppLayout session>
                <section class="inbox-empty card">
                    <h1>"Inbox"</h1>
                    <p class="muted">"No conversations yet. Messages from your customers appear here as they arrive."</p>
                </section>
            </AppLayout>
        } />
    }
}
