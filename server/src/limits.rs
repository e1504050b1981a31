//! Request limits: rate limits per client IP on sign-in (and Meta's deletion callback), per API
//! token on `/api/v1`, one per IP on refused webhook deliveries (forgeries), and one JSON shape for every
//! refusal (429 with `Retry-After`, 413, 408), whichever layer refused.
//!
//! Rates are GCRA buckets from `governor`, keyed in memory; a key unused for a while is
//! forgotten. Each limit is `QONTAK_RATE_<NAME>=<per minute>[/<burst>]`, `0` turns it off.
//! The client IP is the TCP peer; `X-Forwarded-For` counts only when the peer is one of
//! `QONTAK_TRUSTED_PROXIES`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use app::server::crypto::hash_secret;

use crate::api::ApiError;

/// One limit: so many requests a minute, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// `120` or `120/40`; `0` is no limit (`None`).
    pub fn parse(text: &str) -> Result<Option<Rate>, String> {
        let (rate, burst) = match text.split_once('/') {
            Some((r, b)) => (r.trim(), Some(b.trim())),
            None => (text.trim(), None),
        };
        let per_minute: u32 = rate
            .parse()
            .map_err(|_| format!("`{text}` is not <per minute>[/<burst>]"))?;
        if per_minute == 0 {
            return Ok(None);
        }
        let burst = match burst {
            Some(b) => b
                .parse::<u32>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("`{text}`: the burst must be a positive number"))?,
            None => per_minute,
        };
        Ok(Some(Rate { per_minute, burst }))
    }
}

/// The configured limits (`None`: unlimited).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `QONTAK_RATE_SIGNIN`: POSTs to `/auth/*` and `/meta/data-deletion`, per IP.
    pub signin: Option<Rate>,
    /// `QONTAK_RATE_API`: `/api/v1`, per token (or session, or IP without either).
    pub api: Option<Rate>,
    /// `QONTAK_RATE_WEBHOOK`: refused POSTs to `/webhooks/whatsapp` (bad signature, not
    /// JSON), per IP; Meta's valid deliveries never count.
    pub webhook: Option<Rate>,
    /// `QONTAK_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitSettings {
    /// Generous: a person never meets them; a script hammering sign-in or a token does.
    fn default() -> Self {
        LimitSettings {
            signin: Some(Rate {
                per_minute: 60,
                burst: 20,
            }),
            api: Some(Rate {
                per_minute: 12_000,
                burst: 2_000,
            }),
            webhook: Some(Rate {
                per_minute: 6_000,
                burst: 1_000,
            }),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The limiters, shared by every request.
pub struct Limiters {
    signin: Option<DefaultKeyedRateLimiter<String>>,
    api: Option<DefaultKeyedRateLimiter<String>>,
    webhook: Option<DefaultKeyedRateLimiter<String>>,
    /// Addresses whose refused webhooks ran over the limit, and until when they are refused.
    webhook_blocked: Mutex<HashMap<String, Instant>>,
    trusted_proxies: Vec<IpAddr>,
    checks: AtomicU64,
}

fn limiter(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = rate?;
    let per_minute = NonZeroU32::new(rate.per_minute)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(per_minute);
    Some(RateLimiter::keyed(
        Quota::per_minute(per_minute).allow_burst(burst),
    ))
}

impl Limiters {
    pub fn new(settings: &LimitSettings) -> Arc<Limiters> {
        Arc::new(Limiters {
            signin: limiter(settings.signin),
            api: limiter(settings.api),
            webhook: limiter(settings.webhook),
            webhook_blocked: Mutex::new(HashMap::new()),
            trusted_proxies: settings.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        })
    }

    /// The client's address: the peer, or the last untrusted hop a trusted proxy names.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Some(
            hops.into_iter()
                .rev()
                .find(|ip| !self.trusted_proxies.contains(ip))
                .unwrap_or(peer),
        )
    }

    /// How long `key` stays refused, if its refused webhooks ran over the limit.
    fn webhook_blocked_for(&self, key: &str) -> Option<std::time::Duration> {
        let blocked = self.webhook_blocked.lock().ok()?;
        let until = blocked.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    fn block_webhooks(&self, key: String, wait: std::time::Duration) {
        if let Ok(mut blocked) = self.webhook_blocked.lock() {
            if blocked.len() >= 10_000 {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(key, Instant::now() + wait);
        }
    }

    fn check(
        &self,
        limiter: &DefaultKeyedRateLimiter<String>,
        key: String,
    ) -> Result<(), std::time::Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The client IP a request carries (set by [`enforce`]), for audit entries.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Which limit a request falls under, and its key.
fn classify<'a>(
    limiters: &'a Limiters,
    req: &Request,
    ip: Option<IpAddr>,
) -> Option<(&'a DefaultKeyedRateLimiter<String>, String)> {
    let path = req.uri().path();
    let post = req.method() == axum::http::Method::POST;
    let ip_key = || ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    if post && (path.starts_with("/auth/") || path == "/meta/data-deletion") {
        return Some((limiters.signin.as_ref()?, ip_key()));
    }
    if path.starts_with("/api/v1/") || path == "/api/v1" {
        let headers = req.headers();
        let key = if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            format!("t:{}", &hash_secret(auth.trim())[..32])
        } else if let Some(s) =
            app::server::session::cookie_value(headers, app::server::session::COOKIE_NAME)
        {
            format!("s:{}", &hash_secret(s)[..32])
        } else {
            format!("ip:{}", ip_key())
        };
        return Some((limiters.api.as_ref()?, key));
    }
    None
}

/// The rate-limit middleware; also records the client IP in the request's extensions.
pub async fn enforce(
    State(limiters): State<Arc<Limiters>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = limiters.client_ip(peer, req.headers());
    // Handlers read the client from `X-Forwarded-For`: from here on it holds only the address
    // worked out above, whatever an untrusted client wrote there.
    req.headers_mut().remove("x-forwarded-for");
    if let Some(ip) = ip {
        req.extensions_mut().insert(ClientIp(ip));
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            req.headers_mut().insert("x-forwarded-for", v);
        }
    }
    // Meta's webhooks: only refused deliveries (bad signature, not JSON) count, so Meta's own
    // traffic is never slowed however busy the numbers are; an address that keeps sending
    // forgeries past the limit is refused with 429 until its budget refills.
    if req.method() == axum::http::Method::POST && req.uri().path() == "/webhooks/whatsapp" {
        let Some(limiter) = limiters.webhook.as_ref() else {
            return next.run(req).await;
        };
        let key = ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        if let Some(wait) = limiters.webhook_blocked_for(&key) {
            return too_many(req.uri().path(), wait);
        }
        let res = next.run(req).await;
        if matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST
        ) {
            if let Err(wait) = limiters.check(limiter, key.clone()) {
                limiters.block_webhooks(key, wait);
                return too_many("/webhooks/whatsapp", wait);
            }
        }
        return res;
    }
    if let Some((limiter, key)) = classify(&limiters, &req, ip) {
        if let Err(wait) = limiters.check(limiter, key) {
            return too_many(req.uri().path(), wait);
        }
    }
    next.run(req).await
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn too_many(path: &str, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    tracing::info!(%path, retry_after = seconds, "rate limited");
    let mut res = ApiError::TooManyRequests(format!("too many requests; try again in {seconds} s"))
        .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    res
}

/// Answers refusals made by layers outside our handlers (body limits, timeouts) in the JSON
/// error shape, so every 413 and 408 looks like the API's own.
pub async fn json_refusals(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        return res;
    }
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return res;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body is too large for this route".into())
            .into_response()
    } else {
        let mut res = ApiError::Unavailable("the request took too long".into()).into_response();
        *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_and_without_a_burst() {
        assert_eq!(
            Rate::parse("120/40"),
            Ok(Some(Rate {
                per_minute: 120,
                burst: 40
            }))
        );
        assert_eq!(
            Rate::parse("5"),
            Ok(Some(Rate {
                per_minute: 5,
                burst: 5
            }))
        );
        assert_eq!(Rate::parse("0"), Ok(None));
        assert!(Rate::parse("x").is_err());
        assert!(Rate::parse("5/0").is_err());
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let l = Limiters::new(&LimitSettings {
            trusted_proxies: vec![proxy],
            ..Default::default()
        });
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(l.client_ip(Some(proxy), &h), Some(client));
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(l.client_ip(Some(stranger), &h), Some(stranger));
    }
}
