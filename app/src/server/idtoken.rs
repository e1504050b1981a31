//! Verification of Google and Firebase ID tokens: RS256 signatures checked against each
//! issuer's published keys (JWKS, cached for the response's `Cache-Control: max-age`), then the
//! claims each issuer's documentation requires. A token never reaches a log line.
//!
//! Keys are fetched when the cache is empty or expired, and again when a token names a `kid`
//! the cache does not hold, at most once per [`MIN_REFETCH_INTERVAL`], so a flood of tokens
//! with made-up key ids cannot make us hammer Google. When a refresh fails, the keys already
//! held keep serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// How long keys are kept when the JWKS answer names no `max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// The longest we keep keys, whatever the answer says.
pub const MAX_CACHE_AGE: Duration = Duration::from_secs(24 * 3600);
/// At most one fetch per this interval for an unknown `kid`, or after a failed fetch.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Google's ID tokens: allowed clock skew in seconds.
pub const GOOGLE_LEEWAY_SECS: u64 = 60;
/// Firebase's ID tokens: allowed clock skew in seconds (the Admin SDK's `clockSkewSeconds`).
pub const FIREBASE_LEEWAY_SECS: u64 = 300;
/// The issuers of Google's ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// A Firebase ID token's issuer is this prefix followed by the project id.
pub const FIREBASE_ISSUER_PREFIX: &str = "https://securetoken.google.com/";
/// Longer tokens are refused before anything else is done with them.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Which issuer a token comes from; also the sign-in method's name in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Google,
    Firebase,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Firebase => "firebase",
        }
    }
}

/// What a verified token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The issuer's stable user id (Google `sub`, Firebase `uid`).
    pub sub: String,
    pub email: String,
    /// Always true: tokens without a verified e-mail are refused.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Why a token was refused. [`TokenError::code`] is the stable reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token is malformed or incomplete ({0})")]
    BadToken(&'static str),
    #[error("the ID token was issued for another application")]
    WrongAudience,
    #[error("the ID token comes from an issuer we do not accept")]
    WrongIssuer,
    #[error("the ID token has expired; sign in again")]
    Expired,
    #[error("the ID token is signed with a key we do not know")]
    UnknownKey,
    #[error("the ID token's signature does not match")]
    BadSignature,
    #[error("the ID token must be signed with RS256")]
    UnsupportedAlgorithm,
    #[error("the account's e-mail address is not verified")]
    EmailNotVerified,
    #[error("this sign-in method is not configured")]
    NotConfigured,
    /// The issuer's keys could not be fetched and none are cached: our problem, not the token's.
    #[error("the sign-in provider's keys cannot be fetched right now; try again shortly")]
    KeysUnavailable,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::BadToken(_) => "bad_token",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::Expired => "expired",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::EmailNotVerified => "email_not_verified",
            TokenError::NotConfigured => "not_configured",
            TokenError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// What the verifier needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct VerifierSettings {
    pub google_client_id: Option<String>,
    pub google_jwks_url: String,
    pub firebase_project_id: Option<String>,
    pub firebase_jwks_url: String,
}

/// Verifies ID tokens of the configured issuers; cheap to clone, one key cache per issuer.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    google: Option<Source>,
    firebase: Option<Source>,
}

/// One issuer: what its tokens must say, and its keys.
struct Source {
    audience: String,
    issuers: Vec<String>,
    leeway: u64,
    keys: KeyCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("google", &self.google_enabled())
            .field("firebase", &self.firebase_enabled())
            .finish()
    }
}

impl Verifier {
    pub fn new(settings: &VerifierSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(FETCH_TIMEOUT)
            .user_agent("Qontak/0.1")
            .build()
            .unwrap_or_default();
        let google = settings.google_client_id.as_ref().map(|id| Source {
            audience: id.clone(),
            issuers: GOOGLE_ISSUERS.iter().map(|s| s.to_string()).collect(),
            leeway: GOOGLE_LEEWAY_SECS,
            keys: KeyCache::new(&settings.google_jwks_url),
        });
        let firebase = settings.firebase_project_id.as_ref().map(|project| Source {
            audience: project.clone(),
            issuers: vec![format!("{FIREBASE_ISSUER_PREFIX}{project}")],
            leeway: FIREBASE_LEEWAY_SECS,
            keys: KeyCache::new(&settings.firebase_jwks_url),
        });
        Verifier {
            inner: Arc::new(Inner {
                http,
                google,
                firebase,
            }),
        }
    }

    pub fn google_enabled(&self) -> bool {
        self.inner.google.is_some()
    }

    pub fn firebase_enabled(&self) -> bool {
        self.inner.firebase.is_some()
    }

    /// Whether sign-in with this provider is configured.
    pub fn enabled(&self, provider: Provider) -> bool {
        self.source(provider).is_some()
    }

    fn source(&self, provider: Provider) -> Option<&Source> {
        match provider {
            Provider::Google => self.inner.google.as_ref(),
            Provider::Firebase => self.inner.firebase.as_ref(),
        }
    }

    /// Verifies a Google Identity Services ID token (the `credential`).
    pub async fn verify_google(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify(Provider::Google, token).await
    }

    /// Verifies a Firebase Authentication ID token.
    pub async fn verify_firebase(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify(Provider::Firebase, token).await
    }

    /// Verifies a token of either provider.
    pub async fn verify(&self, provider: Provider, token: &str) -> Result<Claims, TokenError> {
        let source = self.source(provider).ok_or(TokenError::NotConfigured)?;
        let token = token.trim();
        let kid = rs256_key_id(token)?;
        let key = source.keys.key(&self.inner.http, &kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = source.leeway;
        validation.set_audience(&[&source.audience]);
        validation.set_issuer(&source.issuers);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let raw = jsonwebtoken::decode::<RawClaims>(token, &key, &validation)
            .map_err(|e| refusal(e.kind()))?
            .claims;
        check_claims(
            provider,
            raw,
            jsonwebtoken::get_current_timestamp(),
            source.leeway,
        )
    }
}

/// The claims we read; everything else in the token is ignored.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    email_verified: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    auth_time: Option<u64>,
}

/// `true`, or the string `"true"` that older Google tokens carried.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s == "true",
        _ => false,
    })
}

/// The rules beyond what `jsonwebtoken` checks: times in the past, `sub` length, a verified
/// e-mail.
fn check_claims(
    provider: Provider,
    raw: RawClaims,
    now: u64,
    leeway: u64,
) -> Result<Claims, TokenError> {
    if raw.sub.is_empty() || raw.sub.len() > 128 {
        return Err(TokenError::BadToken("sub must hold 1 to 128 characters"));
    }
    let iat = raw.iat.ok_or(TokenError::BadToken("iat is missing"))?;
    if iat > now + leeway {
        return Err(TokenError::BadToken("iat is in the future"));
    }
    if provider == Provider::Firebase {
        let auth_time = raw
            .auth_time
            .ok_or(TokenError::BadToken("auth_time is missing"))?;
        if auth_time > now + leeway {
            return Err(TokenError::BadToken("auth_time is in the future"));
        }
    }
    let email = raw
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or(TokenError::EmailNotVerified)?;
    if !raw.email_verified {
        return Err(TokenError::EmailNotVerified);
    }
    Ok(Claims {
        sub: raw.sub,
        email,
        email_verified: true,
        name: raw
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    })
}

/// Reads the token's header without trusting it: the algorithm must be RS256 (so `none` and
/// HMAC tokens stop here, before any key is looked up) and a key id must be named.
fn rs256_key_id(token: &str) -> Result<String, TokenError> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::BadToken("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::BadToken("not a JWT"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| TokenError::BadToken("unreadable header"))?;
    let header: Header =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::BadToken("unreadable header"))?;
    if header.alg != "RS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(TokenError::UnknownKey)
}

/// The reason code for a `jsonwebtoken` refusal.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            TokenError::UnsupportedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "aud" => TokenError::WrongAudience,
            "iss" => TokenError::WrongIssuer,
            "exp" => TokenError::BadToken("exp is missing"),
            _ => TokenError::BadToken("a required claim is missing"),
        },
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => TokenError::UnknownKey,
        ErrorKind::InvalidClaimFormat(_) => TokenError::BadToken("a claim has the wrong type"),
        _ => TokenError::BadToken("unreadable token"),
    }
}

/// One issuer's keys by `kid`.
struct KeyCache {
    url: String,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, DecodingKey>,
    /// When the keys go stale; `None` before the first successful fetch.
    expires_at: Option<Instant>,
    /// The last fetch of any kind, successful or not.
    last_attempt: Option<Instant>,
    /// The last fetch caused by an unknown `kid` while the cache was fresh.
    last_miss_refetch: Option<Instant>,
}

impl KeyCache {
    fn new(url: &str) -> Self {
        KeyCache {
            url: url.to_string(),
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The key named `kid`, fetching the key set when the rules allow. The lock is held across
    /// the fetch, so concurrent sign-ins wait for one fetch instead of starting their own.
    async fn key(&self, http: &reqwest::Client, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut st = self.state.lock().await;
        let now = Instant::now();
        let recently =
            |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) < MIN_REFETCH_INTERVAL);
        let fresh = st.expires_at.is_some_and(|t| now < t);
        if fresh {
            if let Some(key) = st.keys.get(kid) {
                return Ok(key.clone());
            }
            if recently(st.last_miss_refetch) {
                return Err(TokenError::UnknownKey);
            }
            st.last_miss_refetch = Some(now);
        } else if recently(st.last_attempt) {
            // Stale, and a fetch was just tried: serve what we hold rather than ask again.
            return match st.keys.get(kid) {
                Some(key) => Ok(key.clone()),
                None if st.keys.is_empty() => Err(TokenError::KeysUnavailable),
                None => Err(TokenError::UnknownKey),
            };
        }
        st.last_attempt = Some(now);
        match fetch_keys(http, &self.url).await {
            Ok((keys, max_age)) => {
                tracing::debug!(url = %self.url, keys = keys.len(), max_age_secs = max_age.as_secs(), "fetched ID-token signing keys");
                st.keys = keys;
                st.expires_at = Some(Instant::now() + max_age);
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "could not fetch ID-token signing keys");
                if st.keys.is_empty() {
                    return Err(TokenError::KeysUnavailable);
                }
            }
        }
        st.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// Fetches a JWKS: the usable RSA signing keys by `kid`, and how long to keep them.
async fn fetch_keys(
    http: &reqwest::Client,
    url: &str,
) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let max_age = response
        .headers()
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(max_age)
        .unwrap_or(DEFAULT_MAX_AGE)
        .min(MAX_CACHE_AGE);
    let set: JwkSet = response
        .json()
        .await
        .map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: HashMap<String, DecodingKey> = set
        .keys
        .into_iter()
        .filter(|k| k.kty == "RSA")
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
            Some((k.kid?, key))
        })
        .collect();
    if keys.is_empty() {
        return Err("the key set holds no RS256 signing key".into());
    }
    Ok((keys, max_age))
}

/// The `max-age` of one `Cache-Control` header value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn only_rs256_headers_with_a_key_id_pass() {
        let token = |h: &str| format!("{}.{}.sig", b64(h), b64("{}"));
        assert_eq!(
            rs256_key_id(&token(r#"{"alg":"RS256","kid":"k1"}"#)),
            Ok("k1".into())
        );
        assert_eq!(
            rs256_key_id(&token(r#"{"alg":"none"}"#)),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            rs256_key_id(&token(r#"{"alg":"HS256","kid":"k1"}"#)),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            rs256_key_id(&token(r#"{"alg":"RS256"}"#)),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(rs256_key_id("a.b").unwrap_err().code(), "bad_token");
        assert_eq!(rs256_key_id("a.b.c.d").unwrap_err().code(), "bad_token");
        assert_eq!(rs256_key_id("!!.b.c").unwrap_err().code(), "bad_token");
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=19302, must-revalidate, no-transform"),
            Some(Duration::from_secs(19302))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("Max-Age=5"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("max-age=soon"), None);
    }

    fn raw(email_verified: bool) -> RawClaims {
        RawClaims {
            sub: "123".into(),
            email: Some("ana@example.com".into()),
            email_verified,
            name: Some(" Ana ".into()),
            iat: Some(1_000),
            auth_time: Some(1_000),
        }
    }

    #[test]
    fn claims_need_a_verified_email_and_past_times() {
        let ok = check_claims(Provider::Google, raw(true), 1_000, 60).unwrap();
        assert_eq!(ok.name.as_deref(), Some("Ana"));
        assert_eq!(
            check_claims(Provider::Google, raw(false), 1_000, 60),
            Err(TokenError::EmailNotVerified)
        );
        let mut future = raw(true);
        future.iat = Some(2_000);
        assert_eq!(
            check_claims(Provider::Google, future, 1_000, 60)
                .unwrap_err()
                .code(),
            "bad_token"
        );
        let mut auth_later = raw(true);
        auth_later.auth_time = Some(1_400);
        assert!(check_claims(Provider::Google, raw(true), 1_000, 300).is_ok());
        assert!(check_claims(Provider::Firebase, auth_later, 1_000, 300).is_err());
        let mut long_sub = raw(true);
        long_sub.sub = "x".repeat(129);
        assert!(check_claims(Provider::Firebase, long_sub, 1_000, 300).is_err());
    }

    #[test]
    fn email_verified_may_be_a_string() {
        let c: RawClaims =
            serde_json::from_str(r#"{"sub":"1","email_verified":"true","iat":1}"#).unwrap();
        assert!(c.email_verified);
        let c: RawClaims = serde_json::from_str(r#"{"sub":"1","iat":1}"#).unwrap();
        assert!(!c.email_verified);
    }
}
