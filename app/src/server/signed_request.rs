//! Meta's `signed_request` (the Data Deletion Request Callback): `<sig>.<payload>`, both
//! base64url, where `sig` is the HMAC-SHA256 of the payload *as sent* (its base64url text)
//! under the app secret, and the payload is JSON `{"algorithm": "HMAC-SHA256", "issued_at",
//! "user_id", …}`. A pure function, so the fuzzer calls it as the server does.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longer inputs are refused before any work: Meta's are a few hundred bytes.
pub const MAX_LEN: usize = 8 * 1024;
/// A request issued longer ago than this is expired.
pub const MAX_AGE_S: i64 = 24 * 3600;
/// Clock skew tolerated for a request issued "in the future".
pub const MAX_SKEW_S: i64 = 300;

/// What a verified request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The app-scoped user id whose data is to be deleted.
    pub user_id: String,
    pub issued_at: i64,
}

/// Why a `signed_request` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request is malformed: {0}")]
    Malformed(&'static str),
    #[error("signed_request has a bad signature")]
    BadSignature,
    #[error("signed_request uses an algorithm other than HMAC-SHA256")]
    WrongAlgorithm,
    #[error("signed_request has expired")]
    Expired,
}

impl SignedRequestError {
    /// The error code the HTTP answer carries.
    pub fn code(&self) -> &'static str {
        match self {
            SignedRequestError::Malformed(_) => "malformed_signed_request",
            SignedRequestError::BadSignature => "invalid_signature",
            SignedRequestError::WrongAlgorithm => "unsupported_algorithm",
            SignedRequestError::Expired => "expired",
        }
    }
}

fn decode(part: &str) -> Option<Vec<u8>> {
    if part.contains('=') {
        URL_SAFE.decode(part).ok()
    } else {
        URL_SAFE_NO_PAD.decode(part).ok()
    }
}

/// Verifies and reads a `signed_request` at `now_s` (Unix seconds). The signature is checked
/// (in constant time) before the payload is read at all.
pub fn parse(input: &str, secret: &[u8], now_s: i64) -> Result<SignedRequest, SignedRequestError> {
    use SignedRequestError::*;
    let input = input.trim();
    if input.is_empty() || input.len() > MAX_LEN {
        return Err(Malformed("empty or too long"));
    }
    let (sig, payload) = input
        .split_once('.')
        .ok_or(Malformed("expected <signature>.<payload>"))?;
    if sig.is_empty() || payload.is_empty() || payload.contains('.') {
        return Err(Malformed("expected <signature>.<payload>"));
    }
    let sig = decode(sig).ok_or(Malformed("the signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| BadSignature)?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&sig).map_err(|_| BadSignature)?;

    let json = decode(payload).ok_or(Malformed("the payload is not base64url"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| Malformed("the payload is not JSON"))?;
    let algorithm = value
        .get("algorithm")
        .and_then(|a| a.as_str())
        .ok_or(Malformed("the payload has no algorithm"))?;
    if !algorithm.eq_ignore_ascii_case("HMAC-SHA256") {
        return Err(WrongAlgorithm);
    }
    let issued_at = match value.get("issued_at") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or(Malformed("the payload has no issued_at"))?;
    if issued_at > now_s.saturating_add(MAX_SKEW_S) {
        return Err(Malformed("issued_at is in the future"));
    }
    if now_s.saturating_sub(issued_at) > MAX_AGE_S {
        return Err(Expired);
    }
    let user_id = match value.get("user_id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(Malformed("the payload has no user_id")),
    };
    if user_id.is_empty()
        || user_id.len() > 128
        || !user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Malformed("user_id is not an id"));
    }
    Ok(SignedRequest { user_id, issued_at })
}

/// Builds a `signed_request` the way Meta does (for tests, the fuzzer's seeds and the emulator).
pub fn sign(secret: &[u8], payload: &serde_json::Value) -> String {
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{sig}.{payload}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_780_000_000;

    fn payload() -> serde_json::Value {
        json!({"algorithm": "HMAC-SHA256", "expires": NOW + 3600, "issued_at": NOW - 10, "user_id": "218471"})
    }

    #[test]
    fn a_valid_request_is_read() {
        let r = parse(&sign(b"s3cret", &payload()), b"s3cret", NOW).unwrap();
        assert_eq!(r.user_id, "218471");
        assert_eq!(r.issued_at, NOW - 10);
    }

    #[test]
    fn padded_base64_as_php_examples_write_it_is_accepted() {
        let s = sign(b"s3cret", &payload());
        let (sig, p) = s.split_once('.').unwrap();
        let pad = |x: &str| format!("{x}{}", "=".repeat((4 - x.len() % 4) % 4));
        // The MAC covers the payload text as sent, so only the signature may be re-padded.
        assert!(parse(&format!("{}.{p}", pad(sig)), b"s3cret", NOW).is_ok());
    }

    #[test]
    fn refusals_name_their_reason() {
        let good = sign(b"s3cret", &payload());
        assert_eq!(
            parse(&good, b"other", NOW),
            Err(SignedRequestError::BadSignature)
        );
        let (sig, p) = good.split_once('.').unwrap();
        let mut tampered: Vec<u8> = p.bytes().collect();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{sig}.{}", String::from_utf8(tampered).unwrap());
        assert_eq!(
            parse(&tampered, b"s3cret", NOW),
            Err(SignedRequestError::BadSignature)
        );
        let old = sign(
            b"s3cret",
            &json!({"algorithm": "HMAC-SHA256", "issued_at": NOW - MAX_AGE_S - 1, "user_id": "1"}),
        );
        assert_eq!(
            parse(&old, b"s3cret", NOW),
            Err(SignedRequestError::Expired)
        );
        let alg = sign(
            b"s3cret",
            &json!({"algorithm": "HMAC-SHA1", "issued_at": NOW, "user_id": "1"}),
        );
        assert_eq!(
            parse(&alg, b"s3cret", NOW),
            Err(SignedRequestError::WrongAlgorithm)
        );
        for bad in ["", "abc", ".", "a.b.c", "!!!.e30", &"x".repeat(MAX_LEN + 1)] {
            assert!(
                matches!(
                    parse(bad, b"s3cret", NOW),
                    Err(SignedRequestError::Malformed(_)) | Err(SignedRequestError::BadSignature)
                ),
                "{bad:.20}"
            );
        }
        let no_user = sign(
            b"s3cret",
            &json!({"algorithm": "HMAC-SHA256", "issued_at": NOW}),
        );
        assert!(matches!(
            parse(&no_user, b"s3cret", NOW),
            Err(SignedRequestError::Malformed(_))
        ));
        let future = sign(
            b"s3cret",
            &json!({"algorithm": "HMAC-SHA256", "issued_at": NOW + 3600, "user_id": "1"}),
        );
        assert!(matches!(
            parse(&future, b"s3cret", NOW),
            Err(SignedRequestError::Malformed(_))
        ));
    }
}
