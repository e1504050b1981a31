//! Configuration from the environment (and `.env`), exactly as CONTRACT.md lists it.
//! An invalid value stops the program with one clear line and exit status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::server::crypto::SecretKey;
use app::server::db::{parse_url, Engine};

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub engine: Engine,
    pub site_addr: SocketAddr,
    pub site_root: String,
    pub public_url: String,
    pub secret_key: Arc<SecretKey>,
    pub meta_app_secret: Option<String>,
    pub meta_verify_token: Option<String>,
    pub graph_url: String,
    pub graph_version: String,
    pub meta_app_id: Option<String>,
    pub meta_es_config_id: Option<String>,
    pub google_client_id: Option<String>,
    pub google_jwks_url: String,
    pub firebase_project_id: Option<String>,
    pub firebase_jwks_url: String,
    pub dev_login: bool,
    pub company_name: String,
    pub contact_email: String,
    /// Outbox behaviour (`QONTAK_OUTBOX_UNKNOWN_WAIT_MS`, `QONTAK_OUTBOX_UNKNOWN_POLICY`,
    /// `QONTAK_OUTBOX_BACKOFF_MS`).
    pub outbox: app::server::outbox::OutboxSettings,
    /// Media download queue (`QONTAK_MEDIA_MAX_ATTEMPTS`, `QONTAK_MEDIA_BACKOFF_MS`).
    pub media: app::server::media::MediaSettings,
    /// `QONTAK_ALLOW_PRIVATE_URLS=1`: integrator webhooks may target private addresses.
    pub allow_private_urls: bool,
    /// First retry delay of integrator webhook deliveries (`QONTAK_WEBHOOK_BACKOFF_MS`).
    pub webhook_backoff_ms: i64,
    /// Rate limits and trusted proxies (`QONTAK_RATE_*`, `QONTAK_TRUSTED_PROXIES`).
    pub limits: crate::limits::LimitSettings,
    /// Who may read `/metrics` (`QONTAK_METRICS=1`, `QONTAK_METRICS_TOKEN`).
    pub metrics: app::server::metrics::MetricsAccess,
    /// Warnings to log once logging is up (a generated key, an old Graph version).
    pub warnings: Vec<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Graph API versions and the day Meta ends each (YYYY-MM-DD); a warning starts 90 days before.
const GRAPH_VERSION_EOL: &[(&str, &str)] = &[
    ("v21.0", "2026-09-25"),
    ("v22.0", "2027-01-21"),
    ("v23.0", "2027-06-09"),
    ("v24.0", "2027-10-08"),
    ("v25.0", "2028-02-18"),
];

impl Config {
    /// Reads the process environment, after loading `.env` when present.
    pub fn from_env() -> Result<Config, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`; a missing key and an empty value are the same.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();

        let data_dir = PathBuf::from(get("QONTAK_DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = get("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/qontak.db?mode=rwc", data_dir.display()));
        let engine = parse_url(&database_url).map_err(ConfigError)?;

        let site_addr: SocketAddr = get("LEPTOS_SITE_ADDR")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|_| {
                ConfigError("LEPTOS_SITE_ADDR must be host:port, such as 127.0.0.1:3000".into())
            })?;

        let public_url = get("QONTAK_PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:3000".into());
        let public_url = public_url.trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError(
                "QONTAK_PUBLIC_URL must start with http:// or https://".into(),
            ));
        }

        let dev_login = match get("QONTAK_DEV_LOGIN").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "QONTAK_DEV_LOGIN must be 1 or 0, got `{other}`"
                )))
            }
        };
        if dev_login && public_url.starts_with("https://") {
            return Err(ConfigError(
                "QONTAK_DEV_LOGIN=1 is refused when QONTAK_PUBLIC_URL is https: development sign-in is for local use only"
                    .into(),
            ));
        }

        let secret_key = match get("QONTAK_SECRET_KEY") {
            Some(k) => SecretKey::from_base64(&k).map_err(|_| {
                ConfigError("QONTAK_SECRET_KEY must be base64 of at least 32 bytes".into())
            })?,
            None => {
                let (key, generated) = key_from_data_dir(&data_dir)?;
                if generated {
                    warnings.push(format!(
                        "QONTAK_SECRET_KEY is not set: generated one into {}; back it up, it decrypts the stored access tokens",
                        key_path(&data_dir).display()
                    ));
                }
                key
            }
        };

        let mut outbox = app::server::outbox::OutboxSettings::default();
        let ms = |k: &str, v: String| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ConfigError(format!("{k} must be a number of milliseconds, got `{v}`"))
            })
        };
        if let Some(v) = get("QONTAK_OUTBOX_UNKNOWN_WAIT_MS") {
            outbox.unknown_wait_ms = ms("QONTAK_OUTBOX_UNKNOWN_WAIT_MS", v)?;
        }
        if let Some(v) = get("QONTAK_OUTBOX_LEASE_MS") {
            outbox.lease_ms = ms("QONTAK_OUTBOX_LEASE_MS", v)?.max(1000);
        }
        if let Some(v) = get("QONTAK_OUTBOX_BACKOFF_MS") {
            outbox.backoff_base_ms = ms("QONTAK_OUTBOX_BACKOFF_MS", v)?.max(1);
        }
        outbox.fail_unknown = match get("QONTAK_OUTBOX_UNKNOWN_POLICY").as_deref() {
            None | Some("retry") => false,
            Some("fail") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "QONTAK_OUTBOX_UNKNOWN_POLICY must be retry or fail, got `{other}`"
                )))
            }
        };

        let mut media = app::server::media::MediaSettings::default();
        if let Some(v) = get("QONTAK_MEDIA_MAX_ATTEMPTS") {
            media.max_attempts = ms("QONTAK_MEDIA_MAX_ATTEMPTS", v)?.max(1);
        }
        if let Some(v) = get("QONTAK_MEDIA_BACKOFF_MS") {
            media.backoff_base_ms = ms("QONTAK_MEDIA_BACKOFF_MS", v)?.max(1);
        }

        let allow_private_urls = matches!(
            get("QONTAK_ALLOW_PRIVATE_URLS").as_deref(),
            Some("1") | Some("true")
        );
        let webhook_backoff_ms = match get("QONTAK_WEBHOOK_BACKOFF_MS") {
            Some(v) => ms("QONTAK_WEBHOOK_BACKOFF_MS", v)?.max(1),
            None => 5_000,
        };

        let mut limits = crate::limits::LimitSettings::default();
        for (name, slot) in [
            ("QONTAK_RATE_SIGNIN", &mut limits.signin),
            ("QONTAK_RATE_API", &mut limits.api),
            ("QONTAK_RATE_WEBHOOK", &mut limits.webhook),
        ] {
            if let Some(v) = get(name) {
                *slot = crate::limits::Rate::parse(&v)
                    .map_err(|e| ConfigError(format!("{name}: {e}")))?;
            }
        }
        if let Some(v) = get("QONTAK_TRUSTED_PROXIES") {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                limits.trusted_proxies.push(part.parse().map_err(|_| {
                    ConfigError(format!(
                        "QONTAK_TRUSTED_PROXIES: `{part}` is not an IP address"
                    ))
                })?);
            }
        }
        let metrics = match (
            get("QONTAK_METRICS_TOKEN"),
            get("QONTAK_METRICS").as_deref(),
        ) {
            (Some(token), _) => app::server::metrics::MetricsAccess::Token(token),
            (None, None | Some("0") | Some("false")) => app::server::metrics::MetricsAccess::Off,
            (None, Some("1") | Some("true")) => app::server::metrics::MetricsAccess::Open,
            (None, Some(other)) => {
                return Err(ConfigError(format!(
                    "QONTAK_METRICS must be 1 or 0, got `{other}`"
                )))
            }
        };

        let graph_version = get("META_GRAPH_VERSION").unwrap_or_else(|| "v25.0".into());
        if let Some(w) = graph_version_warning(&graph_version, app::server::now_ms()) {
            warnings.push(w);
        }

        Ok(Config {
            data_dir,
            database_url,
            engine,
            site_addr,
            site_root: get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into()),
            public_url,
            secret_key: Arc::new(secret_key),
            meta_app_secret: get("META_APP_SECRET"),
            meta_verify_token: get("META_VERIFY_TOKEN"),
            graph_url: get("META_GRAPH_URL")
                .unwrap_or_else(|| "https://graph.facebook.com".into())
                .trim_end_matches('/')
                .to_string(),
            graph_version,
            meta_app_id: get("META_APP_ID"),
            meta_es_config_id: get("META_ES_CONFIG_ID"),
            google_client_id: get("GOOGLE_CLIENT_ID"),
            google_jwks_url: get("GOOGLE_JWKS_URL").unwrap_or_else(|| "https://www.googleapis.com/oauth2/v3/certs".into()),
            firebase_project_id: get("FIREBASE_PROJECT_ID"),
            firebase_jwks_url: get("FIREBASE_JWKS_URL").unwrap_or_else(|| {
                "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com".into()
            }),
            dev_login,
            outbox,
            media,
            allow_private_urls,
            webhook_backoff_ms,
            limits,
            metrics,
            company_name: get("QONTAK_COMPANY_NAME").unwrap_or_else(|| app::legal::DEFAULT_COMPANY.into()),
            contact_email: get("QONTAK_CONTACT_EMAIL").unwrap_or_else(|| app::legal::DEFAULT_CONTACT_EMAIL.into()),
            warnings,
        })
    }

    /// `Secure` cookies when people reach us over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secret.key")
}

/// The key kept in the data folder, generated (mode 0600) on first use.
fn key_from_data_dir(data_dir: &Path) -> Result<(SecretKey, bool), ConfigError> {
    let path = key_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = SecretKey::from_base64(&text).map_err(|_| {
            ConfigError(format!(
                "{} does not hold a valid key (base64 of 32 bytes)",
                path.display()
            ))
        })?;
        return Ok((key, false));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        ConfigError(format!(
            "cannot create the data folder {}: {e}",
            data_dir.display()
        ))
    })?;
    let text = SecretKey::generate_base64();
    write_private(&path, &text)
        .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
    Ok((
        SecretKey::from_base64(&text).expect("a generated key is valid"),
        true,
    ))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A warning when the Graph API version ends within 90 days (or is unknown to this build).
pub fn graph_version_warning(version: &str, now_ms: i64) -> Option<String> {
    let Some((_, eol)) = GRAPH_VERSION_EOL.iter().find(|(v, _)| *v == version) else {
        return Some(format!(
            "META_GRAPH_VERSION {version} is not one this build knows; check Meta's changelog"
        ));
    };
    let eol_ms = time::Date::parse(
        eol,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?
    .midnight()
    .assume_utc()
    .unix_timestamp()
        * 1000;
    let days_left = (eol_ms - now_ms) / 86_400_000;
    (days_left <= 90).then(|| {
        if days_left < 0 {
            format!("META_GRAPH_VERSION {version} reached its end of life on {eol}: move to a newer version")
        } else {
            format!("META_GRAPH_VERSION {version} ends on {eol} ({days_left} days): plan the move to a newer version")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("qontak-config-{}", uuid::Uuid::now_v7()));
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("QONTAK_DATA_DIR".into())
            .or_insert(dir.display().to_string());
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&[]).unwrap();
        assert!(
            c.database_url.starts_with("sqlite://")
                && c.database_url.ends_with("/qontak.db?mode=rwc")
        );
        assert_eq!(c.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url, "http://127.0.0.1:3000");
        assert_eq!(c.graph_url, "https://graph.facebook.com");
        assert_eq!(c.graph_version, "v25.0");
        assert!(!c.dev_login);
        assert!(c.meta_app_secret.is_none());
        assert!(c.warnings.iter().any(|w| w.contains("generated")));
    }

    #[test]
    fn the_generated_key_is_reused_on_the_next_start() {
        let dir = std::env::temp_dir().join(format!("qontak-key-{}", uuid::Uuid::now_v7()));
        let d = dir.display().to_string();
        let first = config(&[("QONTAK_DATA_DIR", &d)]).unwrap();
        let second = config(&[("QONTAK_DATA_DIR", &d)]).unwrap();
        assert_eq!(first.secret_key.id(), second.secret_key.id());
        assert!(second.warnings.iter().all(|w| !w.contains("generated")));
    }

    #[test]
    fn invalid_values_are_refused_with_a_clear_message() {
        let e = |pairs: &[(&str, &str)]| config(pairs).unwrap_err().0;
        assert!(e(&[("DATABASE_URL", "mysql://x")]).contains("mysql"));
        assert!(e(&[("DATABASE_URL", "::::")]).contains("DATABASE_URL"));
        assert!(e(&[("QONTAK_SECRET_KEY", "c2hvcnQ=")]).contains("32 bytes"));
        assert!(e(&[("LEPTOS_SITE_ADDR", "nowhere")]).contains("LEPTOS_SITE_ADDR"));
        assert!(e(&[
            ("QONTAK_DEV_LOGIN", "1"),
            ("QONTAK_PUBLIC_URL", "https://chat.example.com")
        ])
        .contains("https"));
    }

    #[test]
    fn old_graph_versions_warn() {
        let jan_2027 = 1_798_761_600_000; // 2027-01-01
        assert!(graph_version_warning("v22.0", jan_2027)
            .unwrap()
            .contains("2027-01-21"));
        assert!(graph_version_warning("v25.0", jan_2027).is_none());
        assert!(graph_version_warning("v21.0", jan_2027)
            .unwrap()
            .contains("end of life"));
        assert!(graph_version_warning("v99.0", jan_2027).is_some());
    }
}
