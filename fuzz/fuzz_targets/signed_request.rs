//! Meta's `signed_request` (the data deletion callback): `app::server::signed_request::parse`
//! on the input as sent, and on the input signed as a payload the way Meta signs one. Nothing
//! may panic; whatever is accepted must carry a valid signature, and a request signed under
//! another secret is never accepted.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

use app::server::signed_request::{parse, SignedRequestError};

const SECRET: &[u8] = b"fuzz-app-secret";
const NOW: i64 = 1_780_000_000;

fn sign_raw(secret: &[u8], payload_b64: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(payload_b64.as_bytes());
    format!("{}.{payload_b64}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // 1. The input as Meta would post it.
    if let Ok(r) = parse(&text, SECRET, NOW) {
        assert!(!r.user_id.is_empty());
        assert!(NOW - r.issued_at <= app::server::signed_request::MAX_AGE_S);
        // It was signed with SECRET: no other secret accepts it.
        assert_eq!(parse(&text, b"another-secret", NOW), Err(SignedRequestError::BadSignature));
    }

    // 2. The input as the payload, correctly signed: the JSON reader gets arbitrary bytes.
    let payload = URL_SAFE_NO_PAD.encode(data);
    let signed = sign_raw(SECRET, &payload);
    let accepted = parse(&signed, SECRET, NOW);
    if accepted.is_ok() {
        // The same payload under another key is refused before it is read.
        let forged = sign_raw(b"attacker", &payload);
        assert_eq!(parse(&forged, SECRET, NOW), Err(SignedRequestError::BadSignature));
    }
    assert_ne!(parse(&signed, SECRET, NOW).is_ok(), accepted.is_err());

    // 3. The input text itself as the payload part (not base64): the decoder gets it.
    if !text.contains('.') {
        let _ = parse(&sign_raw(SECRET, &text), SECRET, NOW);
    }
});
