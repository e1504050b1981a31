//! The emulator's memory: numbers, media, templates, faults and everything it saw and sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::GraphError;
use crate::Config;

/// A business phone number registered on a WhatsApp Business Account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Number {
    pub phone_number_id: String,
    pub waba_id: String,
    /// As Meta shows it on the number (`+1 555-010-0001`); webhooks carry its digits.
    pub display_phone_number: String,
    #[serde(default = "default_verified_name")]
    pub verified_name: String,
}

fn default_verified_name() -> String {
    "Test Business".into()
}

impl Number {
    /// Parses `PHONE_NUMBER_ID,WABA_ID,DISPLAY_PHONE[,VERIFIED_NAME]`.
    pub fn parse_spec(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.splitn(4, ',').map(str::trim).collect();
        match parts.as_slice() {
            [id, waba, display, rest @ ..] if !id.is_empty() && !waba.is_empty() => Ok(Self {
                phone_number_id: (*id).to_string(),
                waba_id: (*waba).to_string(),
                display_phone_number: (*display).to_string(),
                verified_name: rest
                    .first()
                    .map(|s| s.to_string())
                    .unwrap_or_else(default_verified_name),
            }),
            _ => Err(format!(
                "--number {spec:?}: expected PHONE_NUMBER_ID,WABA_ID,DISPLAY_PHONE[,VERIFIED_NAME]"
            )),
        }
    }

    /// The display number as webhooks' `metadata.display_phone_number` writes it: digits only.
    pub fn display_digits(&self) -> String {
        digits(&self.display_phone_number)
    }

    /// `GET /{phone_number_id}` as Meta answers it.
    pub fn graph_object(&self) -> Value {
        json!({
            "verified_name": self.verified_name,
            "display_phone_number": self.display_phone_number,
            "id": self.phone_number_id,
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
        })
    }

    /// Every field the emulator knows, for `?fields=` projections: the default object plus
    /// the messaging limit (the portfolio's `whatsapp_business_manager_messaging_limit`, and
    /// the deprecated per-number `messaging_limit_tier`), which Meta returns only when asked.
    pub fn graph_object_all_fields(&self) -> Value {
        let mut v = self.graph_object();
        v["whatsapp_business_manager_messaging_limit"] = json!("TIER_2K");
        v["messaging_limit_tier"] = json!("TIER_1K");
        v["account_mode"] = json!("LIVE");
        v["name_status"] = json!("APPROVED");
        v
    }
}

/// Bytes held for a media id (uploaded by the business or registered for a customer).
#[derive(Clone, Debug)]
pub struct Media {
    pub bytes: Bytes,
    pub mime_type: String,
    /// The owning number, for uploads; `None` for customer media (any number may read it).
    pub phone_number_id: Option<String>,
    pub filename: Option<String>,
    /// Later downloads answer different bytes than the recorded hashes describe.
    pub corrupt: bool,
}

impl Media {
    /// Hex SHA-256: how `GET /{media_id}` writes `sha256`.
    pub fn sha256_hex(&self) -> String {
        crate::hex(&sha256(&self.bytes))
    }

    /// Base64 SHA-256: how inbound message webhooks write `image.sha256` and the like.
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(sha256(&self.bytes))
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// A message template, stored as Meta's template object plus the account it belongs to.
#[derive(Clone, Debug)]
pub struct Template {
    pub waba_id: String,
    /// Meta's object: `id`, `name`, `language`, `status`, `category`, `components`, ….
    pub object: Map<String, Value>,
}

impl Template {
    pub fn field(&self, key: &str) -> &str {
        self.object.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

/// An injected failure for matching Graph calls.
#[derive(Clone, Debug)]
pub struct Fault {
    pub id: u64,
    pub path_contains: Option<String>,
    /// Recipient digits the fault is limited to.
    pub to: Option<String>,
    /// How many more times it applies; `None` is forever.
    pub remaining: Option<u64>,
    pub respond: Option<GraphError>,
    pub drop_after_accept: bool,
    /// The request as given, for `GET /_emulator/faults`.
    pub spec: Value,
}

/// A message the business sent (an accepted `POST /{phone_number_id}/messages`).
#[derive(Clone, Debug)]
pub struct Sent {
    pub seq: u64,
    pub wamid: String,
    pub phone_number_id: String,
    /// Recipient digits (`to`), when the request named a phone number.
    pub to: Option<String>,
    /// Recipient BSUID (`recipient`), when given.
    pub recipient: Option<String>,
    pub kind: String,
    /// Pricing category of its statuses: `service`, or the template's category.
    pub category: String,
    pub body: Value,
    pub at: String,
    /// The statuses posted for it so far, in order.
    pub statuses: Vec<String>,
}

impl Sent {
    pub fn json(&self) -> Value {
        json!({
            "seq": self.seq,
            "wamid": self.wamid,
            "phone_number_id": self.phone_number_id,
            "to": self.to,
            "recipient": self.recipient,
            "type": self.kind,
            "content": self.body.get(&self.kind).cloned().unwrap_or(Value::Null),
            "body": self.body,
            "biz_opaque_callback_data": self.body.get("biz_opaque_callback_data"),
            "status": self.statuses.last(),
            "statuses": self.statuses,
            "at": self.at,
        })
    }
}

/// Everything the emulator holds.
#[derive(Default)]
pub struct Store {
    seq: u64,
    pub numbers: Vec<Number>,
    /// WABA id → the subscription's settings (`override_callback_uri`, …).
    pub subscriptions: HashMap<String, Value>,
    pub media: HashMap<String, Media>,
    pub templates: Vec<Template>,
    /// Resumable upload sessions by id (`upload:…`).
    pub uploads: HashMap<String, crate::uploads::Upload>,
    pub faults: Vec<Fault>,
    pub requests: Vec<Value>,
    pub sent: Vec<Sent>,
    /// Messages customers sent (through the control API), as posted.
    pub inbound: Vec<Value>,
    /// Last inbound Meta timestamp per (phone_number_id, wa_id): the service window.
    pub last_inbound: HashMap<(String, String), i64>,
    /// Mark-as-read calls, in order.
    pub reads: Vec<Value>,
    /// Webhook deliveries and their outcome.
    pub webhooks: Vec<Value>,
}

impl Store {
    /// The next sequence number (shared by every list, so lists interleave by `seq`).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn number(&self, phone_number_id: &str) -> Option<&Number> {
        self.numbers
            .iter()
            .find(|n| n.phone_number_id == phone_number_id)
    }

    pub fn upsert_number(&mut self, number: Number) {
        match self
            .numbers
            .iter_mut()
            .find(|n| n.phone_number_id == number.phone_number_id)
        {
            Some(existing) => *existing = number,
            None => self.numbers.push(number),
        }
    }

    /// A WABA is known when a number or a template belongs to it.
    pub fn knows_waba(&self, waba_id: &str) -> bool {
        self.numbers.iter().any(|n| n.waba_id == waba_id)
            || self.templates.iter().any(|t| t.waba_id == waba_id)
    }

    pub fn sent_mut(&mut self, wamid: &str) -> Option<&mut Sent> {
        self.sent.iter_mut().find(|s| s.wamid == wamid)
    }
}

/// Shared state behind every handler.
pub struct AppState {
    pub config: Config,
    public_url: String,
    pub http: reqwest::Client,
    store: Mutex<Store>,
}

impl AppState {
    /// A fresh emulator with `config.numbers` registered.
    pub fn new(config: Config, public_url: String) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("facebookexternalua")
            .build()
            .unwrap_or_default();
        let mut store = Store::default();
        for number in &config.numbers {
            store.upsert_number(number.clone());
        }
        Arc::new(Self {
            public_url: public_url.trim_end_matches('/').to_string(),
            config,
            http,
            store: Mutex::new(store),
        })
    }

    /// The base URL the emulator is reached at, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Runs `f` with the store locked (never across an await).
    pub fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `token` may call the Graph API.
    pub fn token_ok(&self, token: &str) -> bool {
        !token.is_empty()
            && (self.config.access_tokens.is_empty()
                || self.config.access_tokens.iter().any(|t| t == token))
    }
}

/// The digits of a phone number (`+1 555-0100` → `15550100`).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A numeric Graph id, like Meta's (16 digits).
pub fn numeric_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{}",
        rng.random_range(1_000_000_000_000_000u64..10_000_000_000_000_000)
    )
}

/// A message id in Meta's style: `wamid.` + base64 (Meta's are base64 of a protobuf).
pub fn wamid() -> String {
    let mut bytes = [0u8; 29];
    rand::rng().fill(&mut bytes[..]);
    bytes[..3].copy_from_slice(&[0x1c, 0x18, 0x0b]);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Unix seconds now.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 now, for `at` fields.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_look_like_metas() {
        let a = wamid();
        assert!(a.starts_with("wamid.HBgL"), "{a}");
        assert_ne!(a, wamid());
    }

    #[test]
    fn media_hashes_are_hex_for_graph_and_base64_for_webhooks() {
        let m = Media {
            bytes: Bytes::from_static(b"abc"),
            mime_type: "text/plain".into(),
            phone_number_id: None,
            filename: None,
            corrupt: false,
        };
        assert_eq!(
            m.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            m.sha256_base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn numeric_ids_have_sixteen_digits() {
        let id = numeric_id();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_digit()));
    }
}
