//! The state every handler and server function sees.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::*;

use super::crypto::SecretKey;
use super::db::Db;

/// Installation-wide facts the pages need.
#[derive(Clone, Debug)]
pub struct SiteInfo {
    pub company_name: String,
    pub contact_email: String,
    pub public_url: String,
    pub google_client_id: Option<String>,
    pub dev_login: bool,
    /// `Secure` cookies: true when the public URL is https.
    pub secure_cookies: bool,
    /// Outbound URLs (integrator webhooks) may point to private addresses: development only.
    pub allow_private_urls: bool,
    /// `QONTAK_DATA_DIR`: uploaded import files wait here while their jobs run.
    pub data_dir: std::path::PathBuf,
    /// Who may scrape `/metrics`.
    pub metrics: super::metrics::MetricsAccess,
}

/// Meta app settings the webhook and Graph code need. Secrets never reach a log line.
#[derive(Clone)]
pub struct MetaSettings {
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    pub graph_url: String,
    pub graph_version: String,
    /// `META_APP_ID`: the app resumable uploads are filed under (Graph's `app` alias when unset).
    pub app_id: Option<String>,
}

impl std::fmt::Debug for MetaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaSettings")
            .field("app_secret", &self.app_secret.as_ref().map(|_| "<set>"))
            .field("verify_token", &self.verify_token.as_ref().map(|_| "<set>"))
            .field("graph_url", &self.graph_url)
            .field("graph_version", &self.graph_version)
            .field("app_id", &self.app_id)
            .finish()
    }
}

/// Shared by the axum router and, as Leptos context, by every server function.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub key: Arc<SecretKey>,
    pub site: Arc<SiteInfo>,
    pub meta: Arc<MetaSettings>,
    pub ingest: super::ingest::Ingest,
    pub events: super::events::EventBus,
    pub graph: super::graph::Graph,
    /// Google and Firebase ID-token verification, with its key caches.
    pub id_tokens: super::idtoken::Verifier,
    pub outbox: super::outbox::Outbox,
    pub media: Arc<dyn super::media::MediaStore>,
    pub media_queue: super::media::MediaQueue,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The state inside a server function.
pub fn app_state() -> Result<AppState, ServerFnError> {
    use_context::<AppState>().ok_or_else(|| ServerFnError::new("server state is not available"))
}
