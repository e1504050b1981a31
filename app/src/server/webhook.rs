//! Meta's webhooks: the signature check over the raw body, and the typed reading of a
//! `whatsapp_business_account` envelope. Unknown fields are ignored; unknown `field`s and
//! message types are kept as they came (the raw body is stored before any of this runs).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not `sha256=<hex>`")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // Hex digits only: `from_str_radix` alone would also take a leading `+`.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body under the app secret>`
/// in constant time ([Meta: webhooks, "Validating payloads"]).
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex)
        .filter(|b| b.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: for tests, the emulator and benchmarks.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!(
        "sha256={}",
        super::crypto::hex(&mac.finalize().into_bytes())
    )
}

/// A webhook body.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The WABA id.
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

/// `value` of a `messages` change.
#[derive(Debug, Default, Deserialize)]
pub struct MessagesValue {
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<ContactInfo>,
    #[serde(default)]
    pub messages: Vec<InboundMessage>,
    #[serde(default)]
    pub statuses: Vec<StatusUpdate>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub phone_number_id: String,
}

/// A sender's identity: `wa_id` (phone digits) and/or the business-scoped `user_id`.
#[derive(Debug, Default, Deserialize)]
pub struct ContactInfo {
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

/// One inbound message. The type's object stays in Meta's shape in `rest[type]`.
#[derive(Debug, Deserialize)]
pub struct InboundMessage {
    pub id: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub from_user_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub timestamp: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub errors: Option<Value>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl InboundMessage {
    /// Meta's time of the message, in milliseconds; `None` when it is not a number of seconds
    /// that fits in milliseconds (the caller then uses the time of receipt).
    pub fn timestamp_ms(&self) -> Option<i64> {
        seconds_to_ms(&self.timestamp)
    }

    /// The type's object (`text`, `image`, …), or for an unknown type whatever Meta sent.
    pub fn content(&self) -> Value {
        match self.rest.get(&self.kind) {
            Some(v) if v.is_object() => v.clone(),
            Some(v) => serde_json::json!({ self.kind.clone(): v.clone() }),
            None if self.kind == "unsupported" => {
                serde_json::json!({"errors": self.errors.clone()})
            }
            None => Value::Object(self.rest.clone()),
        }
    }
}

/// One status update for a message we sent.
#[derive(Debug, Deserialize)]
pub struct StatusUpdate {
    pub id: String,
    pub status: String,
    #[serde(default, deserialize_with = "string_or_number")]
    pub timestamp: String,
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub errors: Vec<MetaErrorInfo>,
    #[serde(default)]
    pub pricing: Option<Value>,
    #[serde(default)]
    pub conversation: Option<Value>,
}

impl StatusUpdate {
    pub fn timestamp_ms(&self) -> Option<i64> {
        seconds_to_ms(&self.timestamp)
    }
}

/// Unix seconds as Meta writes them, in milliseconds. Checked: a body may carry any number, and
/// `"timestamp":"1722222222222222222"` times 1000 overflows i64 (found by `fuzz/`: a panic with
/// overflow checks, a wrapped nonsense time without).
fn seconds_to_ms(timestamp: &str) -> Option<i64> {
    timestamp.parse::<i64>().ok()?.checked_mul(1000)
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct MetaErrorInfo {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<Value>,
}

impl MetaErrorInfo {
    pub fn detail(&self) -> Option<String> {
        self.error_data
            .as_ref()
            .and_then(|d| d.get("details"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.message.clone())
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Parses a body that passed the signature check. Errors only when it is not JSON of the
/// envelope's shape; everything inside is read leniently.
pub fn parse(body: &[u8]) -> Result<Envelope, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_hex_is_hex_digits_only() {
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(
            decode_hex("+aff"),
            None,
            "from_str_radix alone would take a sign"
        );
        assert_eq!(decode_hex("abc"), None);
    }

    #[test]
    fn a_correct_signature_passes_and_anything_else_fails() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"app-secret", body);
        assert_eq!(verify_signature(b"app-secret", body, Some(&header)), Ok(()));
        assert_eq!(
            verify_signature(b"other", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"app-secret", b"{}", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"app-secret", body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(b"app-secret", body, Some("sha1=abcd")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"app-secret", body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"app-secret", body, Some("sha256=é")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn every_message_of_a_batch_is_read_with_its_content_in_metas_shape() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"106"},
            "contacts":[{"profile":{"name":"Ana"},"wa_id":"15551234567","user_id":"US.1"}],
            "messages":[{"from":"15551234567","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":"hi"}},
                        {"from":"15551234567","id":"wamid.B","timestamp":1700000001,"type":"image","image":{"id":"m1","mime_type":"image/jpeg","sha256":"x"}},
                        {"id":"wamid.C","timestamp":"1700000002","type":"new_thing","new_thing":{"a":1}}]}}]}]}"#;
        let env = parse(body).unwrap();
        let v: MessagesValue =
            serde_json::from_value(env.entry[0].changes[0].value.clone()).unwrap();
        assert_eq!(v.metadata.phone_number_id, "106");
        assert_eq!(v.messages.len(), 3);
        assert_eq!(v.messages[0].content()["body"], "hi");
        assert_eq!(v.messages[1].timestamp_ms(), Some(1_700_000_001_000));
        assert_eq!(v.messages[1].content()["mime_type"], "image/jpeg");
        assert_eq!(v.messages[2].kind, "new_thing");
        assert_eq!(v.messages[2].content()["a"], 1);
        assert_eq!(v.contacts[0].user_id.as_deref(), Some("US.1"));
    }

    #[test]
    fn a_timestamp_too_large_for_milliseconds_is_none_not_a_panic() {
        assert_eq!(seconds_to_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(seconds_to_ms("-1"), Some(-1000));
        assert_eq!(seconds_to_ms("1722222222222222222"), None);
        assert_eq!(seconds_to_ms(&i64::MAX.to_string()), None);
        assert_eq!(seconds_to_ms("x"), None);
    }
}
