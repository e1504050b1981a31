//! Meta webhook bodies: the envelope, every `messages` change read as `MessagesValue`, each
//! message's content and time, each status's time and error detail; and the
//! `X-Hub-Signature-256` check with headers taken from the input. Nothing may panic.
#![no_main]

use app::server::webhook::{self, MessagesValue, SignatureError};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-app-secret";

fn read_body(data: &[u8]) {
    let Ok(envelope) = webhook::parse(data) else {
        return;
    };
    for entry in &envelope.entry {
        for change in &entry.changes {
            if change.field != "messages" {
                continue;
            }
            let Ok(value) = serde_json::from_value::<MessagesValue>(change.value.clone()) else {
                continue;
            };
            for m in &value.messages {
                let content = m.content();
                // What ingest does next with the content of a reaction or an edit.
                let _ = content.get("message_id").and_then(|v| v.as_str());
                let _ = content.pointer("/message/type");
                if let Some(ms) = m.timestamp_ms() {
                    let _ = app::server::rfc3339(ms);
                }
            }
            for s in &value.statuses {
                if let Some(ms) = s.timestamp_ms() {
                    let _ = app::server::rfc3339(ms);
                }
                for e in &s.errors {
                    let _ = e.detail();
                }
            }
        }
    }
}

fn signatures(data: &[u8]) {
    // The header Meta would send always passes, and only for its own body.
    let good = webhook::sign(SECRET, data);
    assert_eq!(webhook::verify_signature(SECRET, data, Some(&good)), Ok(()));
    assert_eq!(
        webhook::verify_signature(b"another-secret", data, Some(&good)),
        Err(SignatureError::Mismatch)
    );

    // A header from the input: its first line is the header, the rest the body.
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(head);
    let _ = webhook::verify_signature(SECRET, body, Some(&header));
    let _ = webhook::verify_signature(SECRET, body, Some(&format!("sha256={header}")));
    // The secret from the input too (any key length is valid for HMAC).
    let _ = webhook::verify_signature(head, body, Some(&header));
    let _ = webhook::verify_signature(SECRET, data, None);
}

fuzz_target!(|data: &[u8]| {
    read_body(data);
    signatures(data);
});
