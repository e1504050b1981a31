//! `qontak-meta-emulator`: a local stand-in for Meta's WhatsApp Cloud (Graph) API.
//!
//! It answers the Graph paths the product calls (send message, mark as read, media, message
//! templates, phone numbers, subscribed apps) in Meta's documented shapes, including Meta's error
//! envelope, and it plays the customer: a small control API under `/_emulator/…` (and a page at
//! `/`) makes a customer send a message, which reaches the product as a signed webhook, exactly as
//! Meta would post it. What the business sends is answered with `sent` → `delivered` → `read`
//! status webhooks.
//!
//! Everything lives in memory; start it in-process with [`serve`] (tests bind port 0) or as the
//! `qontak-meta-emulator` binary ([`Cli`]).

mod control;
mod error;
mod graph;
mod send;
mod state;
mod templates;
mod uploads;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

pub use error::GraphError;
pub use state::{AppState, Number};

/// The largest request body accepted (Meta's largest media kind, documents, is 100 MB).
const BODY_LIMIT: usize = 110 * 1024 * 1024;

/// How the emulator behaves; the binary builds it from [`Cli`], tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where webhooks are posted (the product's `POST /webhooks/whatsapp`).
    pub webhook_url: String,
    /// The Meta app secret: every webhook carries `X-Hub-Signature-256` made with it.
    pub app_secret: String,
    /// Accepted bearer tokens; empty means any non-empty token is accepted.
    pub access_tokens: Vec<String>,
    /// The pause before each automatic status webhook (`sent`, `delivered`, `read`).
    pub status_delay: Duration,
    /// The base URL people and the product reach the emulator at (used in media URLs and
    /// paging links); `None` means `http://<the listener's address>`.
    pub public_url: Option<String>,
    /// Numbers registered at start (more can be added with `POST /_emulator/numbers`).
    pub numbers: Vec<Number>,
    /// When set, a created template is approved (with its webhook) after this long.
    pub template_review: Option<Duration>,
    /// When set, a free-form send to a customer who has not written in the last 24 hours is
    /// accepted and then fails with a `131047` status webhook, as Meta does.
    pub enforce_window: bool,
}

impl Config {
    /// A configuration with the defaults of the command line for everything but the two
    /// required values.
    pub fn new(webhook_url: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            webhook_url: webhook_url.into(),
            app_secret: app_secret.into(),
            access_tokens: Vec::new(),
            status_delay: Duration::from_millis(150),
            public_url: None,
            numbers: Vec::new(),
            template_review: None,
            enforce_window: false,
        }
    }
}

/// The command line of the `qontak-meta-emulator` binary.
#[derive(clap::Parser, Debug)]
#[command(
    name = "qontak-meta-emulator",
    version,
    about = "A local stand-in for Meta's WhatsApp Cloud API (Graph API + customer webhooks)"
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub listen: SocketAddr,
    /// The product's webhook endpoint, where messages and statuses are posted.
    #[arg(long, default_value = "http://127.0.0.1:3000/webhooks/whatsapp")]
    pub webhook_url: String,
    /// Meta app secret used to sign webhooks (`X-Hub-Signature-256`).
    #[arg(long, env = "META_APP_SECRET")]
    pub app_secret: String,
    /// An accepted bearer token (repeatable); without any, every non-empty token is accepted.
    #[arg(long = "access-token", value_name = "TOKEN")]
    pub access_tokens: Vec<String>,
    /// Milliseconds between the automatic `sent`, `delivered` and `read` status webhooks.
    #[arg(long, default_value_t = 150)]
    pub status_delay_ms: u64,
    /// Base URL the emulator is reached at (media URLs, paging links); defaults to the
    /// listen address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Register a business number at start (repeatable):
    /// `PHONE_NUMBER_ID,WABA_ID,DISPLAY_PHONE[,VERIFIED_NAME]`.
    #[arg(
        long = "number",
        value_name = "PHONE_NUMBER_ID,WABA_ID,DISPLAY_PHONE[,VERIFIED_NAME]"
    )]
    pub numbers: Vec<String>,
    /// Approve newly created templates after this many milliseconds (default: they stay
    /// PENDING until `POST /_emulator/templates/{id}/status`).
    #[arg(long)]
    pub template_review_ms: Option<u64>,
    /// Fail free-form sends outside the 24-hour customer service window with a `131047`
    /// status webhook, as Meta does.
    #[arg(long)]
    pub enforce_window: bool,
}

impl Cli {
    /// The [`Config`] this command line describes.
    pub fn config(&self) -> Result<Config, String> {
        let numbers = self
            .numbers
            .iter()
            .map(|spec| Number::parse_spec(spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            webhook_url: self.webhook_url.clone(),
            app_secret: self.app_secret.clone(),
            access_tokens: self.access_tokens.clone(),
            status_delay: Duration::from_millis(self.status_delay_ms),
            public_url: self.public_url.clone(),
            numbers,
            template_review: self.template_review_ms.map(Duration::from_millis),
            enforce_window: self.enforce_window,
        })
    }
}

/// Serves the emulator on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let state = AppState::new(config, public_url);
    tracing::info!(%addr, public_url = %state.public_url(), "Meta emulator listening");
    axum::serve(listener, router(state)).await
}

/// The emulator's routes: the Graph API (any version segment), the media download URL, the
/// control API under `/_emulator` and the customer page at `/`.
pub fn router(state: Arc<AppState>) -> Router {
    let graph = Router::new()
        .route(
            "/{ver}/{id}",
            get(graph::object).post(graph::object).delete(graph::object),
        )
        .route(
            "/{ver}/{id}/{edge}",
            get(graph::edge).post(graph::edge).delete(graph::edge),
        )
        .route("/_emulator/media/{id}/download", get(graph::download))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            graph::record_auth_and_faults,
        ));
    Router::new()
        .merge(graph)
        .merge(control::routes())
        .route("/", get(control::page))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Hex encoding (lower case), for signatures and Meta's media `sha256`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl AppState {
    /// Registers (or replaces) a business number.
    pub fn add_number(&self, number: Number) {
        self.with(|s| s.upsert_number(number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }

    #[test]
    fn number_specs_parse_with_and_without_a_name() {
        let n = Number::parse_spec("111,222,+1 555-010-0001,Acme").unwrap();
        assert_eq!(n.phone_number_id, "111");
        assert_eq!(n.waba_id, "222");
        assert_eq!(n.display_phone_number, "+1 555-010-0001");
        assert_eq!(n.verified_name, "Acme");
        let n = Number::parse_spec("111,222,15550100001").unwrap();
        assert_eq!(n.verified_name, "Test Business");
        assert!(Number::parse_spec("111,222").is_err());
    }
}
