//! Prometheus metrics (`GET /metrics`, text format 0.0.4).
//!
//! Counters and the latency histogram live in one process-wide registry and are bumped where
//! the work happens; the queue gauges (outbox depth and age, webhook backlog, media queue) are
//! read from the database at scrape time with index-backed queries, so every instance on one
//! Postgres reports the same shared queues.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::db::Db;

/// Every metric Qontak exports.
pub struct Metrics {
    registry: Registry,
    /// Seconds from a webhook POST arriving to its answer (Meta asks for well under 250 ms).
    pub webhook_ack_seconds: Histogram,
    pub webhooks_received: IntCounter,
    pub webhooks_acknowledged: IntCounter,
    /// Refused webhooks by reason: `signature`, `invalid`, `unconfigured`, `storage`.
    pub webhooks_refused: IntCounterVec,
    /// Stored webhook bodies applied to conversations and messages.
    pub webhooks_applied: IntCounter,
    /// Sends Meta accepted.
    pub messages_sent: IntCounter,
    /// Send attempts Meta refused or that failed, by Meta error code (`none` without one).
    pub send_errors: IntCounterVec,
    pub sse_clients: IntGauge,
    outbox_jobs: IntGaugeVec,
    outbox_oldest_age: prometheus::Gauge,
    webhook_backlog: IntGauge,
    media_queue: IntGauge,
}

fn build() -> Metrics {
    let registry = Registry::new();
    let buckets = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let webhook_ack_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "qontak_webhook_ack_seconds",
            "Time from a webhook POST arriving to its answer (Meta's guidance: under 250 ms)",
        )
        .buckets(buckets),
    )
    .expect("histogram");
    let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("counter");
    let webhooks_received = counter(
        "qontak_webhooks_received_total",
        "Webhook POSTs received at /webhooks/whatsapp",
    );
    let webhooks_acknowledged = counter(
        "qontak_webhooks_acknowledged_total",
        "Webhook POSTs answered 200 after their body was committed",
    );
    let webhooks_refused = IntCounterVec::new(
        Opts::new(
            "qontak_webhooks_refused_total",
            "Webhook POSTs refused, by reason",
        ),
        &["reason"],
    )
    .expect("counter vec");
    let webhooks_applied = counter(
        "qontak_webhooks_applied_total",
        "Stored webhook bodies applied (ingest rate)",
    );
    let messages_sent = counter(
        "qontak_messages_sent_total",
        "Outbound messages Meta accepted",
    );
    let send_errors = IntCounterVec::new(
        Opts::new(
            "qontak_send_errors_total",
            "Send attempts that failed, by Meta error code",
        ),
        &["code"],
    )
    .expect("counter vec");
    let sse_clients = IntGauge::new(
        "qontak_sse_clients",
        "Server-Sent Events streams open on this instance",
    )
    .expect("gauge");
    let outbox_jobs = IntGaugeVec::new(
        Opts::new(
            "qontak_outbox_jobs",
            "Outbox jobs not finished, by state (whole database)",
        ),
        &["state"],
    )
    .expect("gauge vec");
    let outbox_oldest_age = prometheus::Gauge::new(
        "qontak_outbox_oldest_age_seconds",
        "Age of the oldest unfinished outbox job (0 when none)",
    )
    .expect("gauge");
    let webhook_backlog = IntGauge::new(
        "qontak_webhook_backlog",
        "Stored webhook bodies not applied yet",
    )
    .expect("gauge");
    let media_queue = IntGauge::new(
        "qontak_media_queue_depth",
        "Inbound media files waiting to be downloaded",
    )
    .expect("gauge");
    for c in [
        Box::new(webhook_ack_seconds.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(webhooks_received.clone()),
        Box::new(webhooks_acknowledged.clone()),
        Box::new(webhooks_refused.clone()),
        Box::new(webhooks_applied.clone()),
        Box::new(messages_sent.clone()),
        Box::new(send_errors.clone()),
        Box::new(sse_clients.clone()),
        Box::new(outbox_jobs.clone()),
        Box::new(outbox_oldest_age.clone()),
        Box::new(webhook_backlog.clone()),
        Box::new(media_queue.clone()),
    ] {
        registry.register(c).expect("unique metric names");
    }
    // Families with labels show up from the first scrape.
    for state in ["queued", "in_flight", "unknown"] {
        outbox_jobs.with_label_values(&[state]).set(0);
    }
    for reason in ["signature", "invalid", "unconfigured", "storage"] {
        webhooks_refused.with_label_values(&[reason]);
    }
    Metrics {
        registry,
        webhook_ack_seconds,
        webhooks_received,
        webhooks_acknowledged,
        webhooks_refused,
        webhooks_applied,
        messages_sent,
        send_errors,
        sse_clients,
        outbox_jobs,
        outbox_oldest_age,
        webhook_backlog,
        media_queue,
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(build);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Counts a failed send under Meta's error code.
    pub fn send_error(&self, code: Option<i64>) {
        let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
        self.send_errors.with_label_values(&[code.as_str()]).inc();
    }

    /// Reads the queue gauges from the database and renders every metric as text.
    pub async fn render(&self, db: &Db) -> String {
        match db.queue_stats().await {
            Ok(stats) => {
                for state in ["queued", "in_flight", "unknown"] {
                    let n = stats
                        .outbox
                        .iter()
                        .find(|(s, _)| s == state)
                        .map_or(0, |(_, n)| *n);
                    self.outbox_jobs.with_label_values(&[state]).set(n);
                }
                let age = stats
                    .oldest_job_at
                    .map_or(0.0, |at| ((super::now_ms() - at).max(0) as f64) / 1000.0);
                self.outbox_oldest_age.set(age);
                self.webhook_backlog.set(stats.webhook_backlog);
                self.media_queue.set(stats.media_pending);
            }
            Err(e) => tracing::warn!(error = %e, "reading queue gauges failed"),
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Decrements the SSE gauge when a stream ends, however it ends.
pub struct SseGuard(());

impl SseGuard {
    pub fn open() -> SseGuard {
        metrics().sse_clients.inc();
        SseGuard(())
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        metrics().sse_clients.dec();
    }
}

/// Who may read `/metrics` (`QONTAK_METRICS`, `QONTAK_METRICS_TOKEN`).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Not served (404): the default.
    #[default]
    Off,
    /// `QONTAK_METRICS=1`: anyone who reaches the port; keep the path off the public internet.
    Open,
    /// `QONTAK_METRICS_TOKEN=…`: scrapers send `Authorization: Bearer <token>`.
    Token(String),
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::Off => "Off",
            MetricsAccess::Open => "Open",
            MetricsAccess::Token(_) => "Token(<set>)",
        })
    }
}
