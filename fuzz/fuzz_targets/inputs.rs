//! User-typed values and outbound message objects: `PhoneNumber::parse` and `Email::parse` on
//! the input as text, and `send::check` for every type Qontak sends when the input is JSON.
//! Nothing may panic, and what is accepted must parse again to the same value.
#![no_main]

use app::domain::{Email, PhoneNumber};
use app::server::send;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(phone) = PhoneNumber::parse(&text) {
        let again = PhoneNumber::parse(phone.as_str()).expect("a parsed phone number parses again");
        assert_eq!(again, phone);
        assert_eq!(&phone.as_str()[1..], phone.digits());
    }
    if let Ok(email) = Email::parse(&text) {
        let again = Email::parse(email.as_str()).expect("a parsed e-mail address parses again");
        assert_eq!(again, email);
    }

    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for kind in send::TYPES {
        let _ = send::needs_window(kind);
        if let Ok(out) = send::check(kind, &value) {
            // The normalised object is what goes to Graph; checking it again must not panic.
            let _ = send::check(kind, &out);
        }
        // The same object nested as the API receives it (`{"type": kind, kind: {...}}`).
        if let Some(inner) = value.get(kind) {
            let _ = send::check(kind, inner);
        }
    }
    let _ = send::check("not-a-type", &value);
    if let Some(s) = value.as_str() {
        let _ = send::placeholder_count(s);
    }
});
