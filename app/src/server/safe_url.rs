//! Outbound URL safety: a URL the server fetches or posts to on someone's behalf (an
//! integrator's webhook, an agent's media link) must not reach this machine, the private
//! network or a cloud metadata service. Checked on every hop: literal addresses before
//! connecting, names when they are resolved (by the HTTP client's resolver, so a name cannot
//! pass a check and then resolve elsewhere), and redirects are followed by hand, each hop
//! checked again. `QONTAK_ALLOW_PRIVATE_URLS=1` turns the check off (development, tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Decides which addresses are refused.
pub type Refuse = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Loopback, private, link-local (cloud metadata at 169.254.169.254 included), shared
/// (CGNAT), unspecified, broadcast, multicast, and IPv6's unique-local and link-local ranges;
/// an IPv4 address inside IPv6 (`::ffff:127.0.0.1`, NAT64) is judged as the IPv4 one.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b {
                let v4 = std::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                );
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// The production policy: internal addresses refused unless allowed.
pub fn policy(allow_private: bool) -> Refuse {
    if allow_private {
        Arc::new(|_| false)
    } else {
        Arc::new(is_internal)
    }
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL must be an absolute http(s) URL")]
    Invalid,
    #[error("the URL points to a private or local address")]
    Internal,
    #[error("the URL's host does not resolve")]
    Unresolvable,
    #[error("too many redirects")]
    TooManyRedirects,
}

/// Checks a URL now: its scheme, and every address its host is or resolves to.
pub async fn check(url: &str, refuse: &Refuse) -> Result<reqwest::Url, UrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| UrlError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Invalid);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = parsed.host_str().ok_or(UrlError::Invalid)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| UrlError::Unresolvable)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable);
    }
    if addrs.iter().any(|a| refuse(a.ip())) {
        return Err(UrlError::Internal);
    }
    Ok(parsed)
}

/// A resolver that refuses names resolving to a refused address (checked at connect time).
struct GuardedResolver {
    refuse: Refuse,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let refuse = self.refuse.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(UrlError::Unresolvable) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            if addrs.iter().any(|a| refuse(a.ip())) {
                return Err(
                    Box::new(UrlError::Internal) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client for outbound requests to URLs others chose: no automatic redirects, names
/// resolved through the guard.
pub fn client(refuse: &Refuse, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            refuse: refuse.clone(),
        }))
        .build()
        .expect("HTTP client")
}

/// What a guarded request ended with.
#[derive(Debug)]
pub enum Outcome {
    Response(reqwest::Response),
    Refused(UrlError),
    Failed(reqwest::Error),
}

/// Sends a request built by `build` for each hop, following redirects by hand with each
/// target checked (303 and 301/302 after a POST continue as GET, as browsers do; 307/308
/// repeat the request).
pub async fn send(
    client: &reqwest::Client,
    refuse: &Refuse,
    url: &str,
    build: impl Fn(&reqwest::Client, reqwest::Url, bool) -> reqwest::RequestBuilder,
) -> Outcome {
    let mut url = url.to_string();
    let mut as_get = false;
    for _ in 0..=MAX_REDIRECTS {
        let parsed = match check(&url, refuse).await {
            Ok(u) => u,
            Err(e) => return Outcome::Refused(e),
        };
        let res = match build(client, parsed.clone(), as_get).send().await {
            Ok(r) => r,
            Err(e) => {
                // The resolver's refusal arrives as a connect error.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = source {
                    if let Some(refused) = err.downcast_ref::<UrlError>() {
                        return Outcome::Refused(refused.clone());
                    }
                    source = err.source();
                }
                return Outcome::Failed(e);
            }
        };
        if !res.status().is_redirection() {
            return Outcome::Response(res);
        }
        let Some(next) = res
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| parsed.join(l).ok())
        else {
            return Outcome::Response(res);
        };
        if !matches!(res.status().as_u16(), 307 | 308) {
            as_get = true;
        }
        url = next.to_string();
    }
    Outcome::Refused(UrlError::TooManyRedirects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip(s)), "{s}");
        }
        for s in ["8.8.8.8", "157.240.1.1", "2a03:2880:f003::1"] {
            assert!(!is_internal(ip(s)), "{s}");
        }
    }

    #[tokio::test]
    async fn literal_and_resolved_internal_urls_are_refused_unless_allowed() {
        let strict = policy(false);
        for url in [
            "http://127.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::1]/",
            "http://localhost:9/",
        ] {
            assert_eq!(check(url, &strict).await, Err(UrlError::Internal), "{url}");
        }
        assert_eq!(
            check("ftp://example.com/", &strict).await,
            Err(UrlError::Invalid)
        );
        assert_eq!(check("not a url", &strict).await, Err(UrlError::Invalid));
        let open = policy(true);
        assert!(check("http://127.0.0.1/hook", &open).await.is_ok());
    }
}
