//! The `qontak` server: configuration, the axum router (pages, auth, webhooks, the
//! integration API), and the command line.
#![recursion_limit = "512"]

pub mod api;
pub mod auth;
pub mod broadcasts;
pub mod cli;
pub mod config;
pub mod http;
pub mod imports;
pub mod integrations;
pub mod limits;
pub mod media;
pub mod phone;
pub mod privacy;
pub mod webhooks;

pub use app::server::state::AppState;
