//! The axum application: pages, `/auth`, `/api/v1`, health, and the layers around them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use app::server::crypto::SecretKey;
use app::server::db::Db;
use app::server::events::EventBus;
use app::server::graph::Graph;
use app::server::idtoken::{Verifier, VerifierSettings};
use app::server::ingest::Ingest;
use app::server::media::{FileStore, MediaQueue, MediaStore};
use app::server::outbox::Outbox;
use app::server::state::{MetaSettings, SiteInfo};
use app::{shell, App};

use crate::config::Config;
use crate::AppState;

/// The largest webhook body accepted (Meta's batches stay well below it); JSON and form bodies
/// elsewhere stop at axum's 2 MB default; only media uploads go beyond, up to
/// [`crate::api::media::MAX_UPLOAD_BYTES`].
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Sign-in forms and JSON, and Meta's deletion callback: small.
pub const AUTH_BODY_BYTES: usize = 64 * 1024;
/// JSON bodies of the integration API (media uploads have their own limit).
pub const API_BODY_BYTES: usize = 1024 * 1024;

/// Builds the state every handler shares, and starts the background workers.
pub fn state(config: &Config, db: Db) -> AppState {
    let leptos_options = LeptosOptions::builder()
        .output_name("qontak")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.site_addr)
        .env(leptos::config::Env::PROD)
        .build();
    let events = EventBus::new();
    events.start_listener(&db);
    let graph = Graph::new(&config.graph_url, &config.graph_version);
    let outbox = Outbox::start(
        db.clone(),
        graph.clone(),
        Arc::clone(&config.secret_key),
        config.outbox.clone(),
    );
    let media: Arc<dyn MediaStore> = Arc::new(FileStore::new(&config.data_dir));
    let media_queue = MediaQueue::start(
        db.clone(),
        graph.clone(),
        Arc::clone(&config.secret_key),
        media.clone(),
        events.clone(),
        config.media.clone(),
    );
    let id_tokens = Verifier::new(&VerifierSettings {
        google_client_id: config.google_client_id.clone(),
        google_jwks_url: config.google_jwks_url.clone(),
        firebase_project_id: config.firebase_project_id.clone(),
        firebase_jwks_url: config.firebase_jwks_url.clone(),
    });
    let state = AppState {
        id_tokens,
        media,
        media_queue,
        graph,
        outbox,
        ingest: Ingest::start(db.clone(), events.clone()),
        events,
        db,
        key: Arc::clone(&config.secret_key),
        site: Arc::new(SiteInfo {
            company_name: config.company_name.clone(),
            contact_email: config.contact_email.clone(),
            public_url: config.public_url.clone(),
            google_client_id: config.google_client_id.clone(),
            dev_login: config.dev_login,
            secure_cookies: config.secure_cookies(),
            allow_private_urls: config.allow_private_urls,
            data_dir: config.data_dir.clone(),
            metrics: config.metrics.clone(),
        }),
        meta: Arc::new(MetaSettings {
            app_secret: config.meta_app_secret.clone(),
            verify_token: config.meta_verify_token.clone(),
            graph_url: config.graph_url.clone(),
            graph_version: config.graph_version.clone(),
            app_id: config.meta_app_id.clone(),
        }),
        leptos_options,
    };
    crate::integrations::start(state.clone(), config.webhook_backoff_ms);
    crate::privacy::start_retention(state.clone(), Duration::from_secs(3600));
    crate::imports::start(state.clone(), config.data_dir.clone());
    crate::broadcasts::start(state.clone());
    // Webhooks drive template status; this hourly sync (and a new account's first, within a
    // minute of connecting) is the fallback.
    app::server::templates::start_scheduler(
        state.db.clone(),
        state.graph.clone(),
        Arc::clone(&state.key),
        state.events.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    state
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    router_with_limits(state, &crate::limits::LimitSettings::default())
}

/// The whole HTTP surface, with the configured rate limits.
pub fn router_with_limits(state: AppState, limits: &crate::limits::LimitSettings) -> Router {
    use axum::extract::DefaultBodyLimit;
    let limiters = crate::limits::Limiters::new(limits);
    // HSTS only when people reach us over https (a plain-http install would lock itself out).
    let state_https = state.site.public_url.starts_with("https://");
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let fallback_state = state.clone();
    let options = state.leptos_options.clone();
    let request_id = HeaderName::from_static("x-request-id");
    // Meta's webhooks sit outside the pages' and API's layers (compression, the upload limit,
    // the leptos routes): a refused delivery costs only what refusing needs, so a flood of
    // forgeries weighs as little as it can on the valid ones (issue 8's flood benchmark). They
    // keep the request id, the trace span, the rate limit, the JSON refusals, a timeout and the
    // same security headers as every other answer.
    let webhooks = security_headers(
        crate::webhooks::router().with_state(state.clone()),
        state_https,
    )
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ))
    .layer(axum::middleware::from_fn(crate::limits::json_refusals))
    .layer(axum::middleware::from_fn_with_state(
        limiters.clone(),
        crate::limits::enforce,
    ))
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(TraceLayer::new_for_http().make_span_with(http_span))
    .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid));

    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::auth::router().layer(DefaultBodyLimit::max(AUTH_BODY_BYTES)))
        .merge(crate::privacy::public_router().layer(DefaultBodyLimit::max(AUTH_BODY_BYTES)))
        .route("/metrics", get(metrics))
        .route("/media/{message_id}", get(crate::media::serve))
        .nest(
            "/api/v1",
            crate::api::router().layer(DefaultBodyLimit::max(API_BODY_BYTES)),
        )
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(context_state.clone());
                leptos::nonce::provide_nonce();
            },
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            move || provide_context(fallback_state.clone()), shell
        ))
        .with_state(state)
        // Layers run outside-in from the bottom: the request id is set first so the trace
        // span carries it; headers and compression wrap every answer, pages and API alike.
        .layer(CompressionLayer::new())
        // The client's files are served precompressed (`.br`/`.gz` beside them, see `./x
        // build`), which the compression layer leaves alone, so nothing else says that the
        // answer depends on Accept-Encoding; a shared cache would otherwise hand brotli to a
        // client that did not ask for it. Where the layer compressed, its Vary stands.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::VARY,
            HeaderValue::from_static("accept-encoding"),
        ));
    security_headers(app, state_https)
        .layer(RequestBodyLimitLayer::new(
            crate::api::media::MAX_UPLOAD_BYTES,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::from_fn(crate::limits::json_refusals))
        .layer(axum::middleware::from_fn_with_state(
            limiters,
            crate::limits::enforce,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(http_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .merge(webhooks)
}

/// The security headers every answer carries, pages, API and webhooks alike (HSTS only when
/// people reach us over https: a plain-http install would lock itself out).
fn security_headers(router: Router, https: bool) -> Router {
    router
        .layer(axum::middleware::map_response(
            move |mut res: axum::response::Response| async move {
                if https {
                    res.headers_mut().insert(
                        header::STRICT_TRANSPORT_SECURITY,
                        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
                    );
                }
                res
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin-allow-popups"),
        ))
}

/// The span of one request: method, path and request id. The path only: a query string may
/// carry a verify token.
fn http_span<B>(req: &Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ready().await {
        Ok(true) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "not_ready", "reason": "migrations are not applied"}),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not_ready", "reason": "database unreachable"})),
            )
        }
    }
}

/// Prometheus text format, when enabled (`QONTAK_METRICS=1`, or a bearer token through
/// `QONTAK_METRICS_TOKEN`); otherwise 404 as if the path did not exist.
async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use app::server::metrics::{MetricsAccess, CONTENT_TYPE};
    match &state.site.metrics {
        MetricsAccess::Off => {
            return crate::api::ApiError::NotFound("not found".into()).into_response();
        }
        MetricsAccess::Open => {}
        MetricsAccess::Token(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                given.as_bytes(),
                token.as_bytes(),
            )) {
                return crate::api::ApiError::Unauthorized("a metrics token is required".into())
                    .into_response();
            }
        }
    }
    let text = app::server::metrics::metrics().render(&state.db).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Connects, migrates and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let db = connect_and_migrate(&config).await?;
    let state = state(&config, db.clone());
    let listener = tokio::net::TcpListener::bind(config.site_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, engine = ?config.engine, "serving Qontak at {}", config.public_url);
    let app = router_with_limits(state, &config.limits)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    db.close().await;
    Ok(())
}

/// Opens the database (creating the data folder for SQLite) and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Db> {
    if config.engine == app::server::db::Engine::Sqlite {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    Ok(db)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Exposed so tests can build a key without the environment.
pub fn test_key() -> Arc<SecretKey> {
    Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).expect("generated key"))
}
