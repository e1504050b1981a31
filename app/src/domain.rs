//! Domain types that validate on construction: an invalid value cannot exist.
//! They import nothing else of ours and compile for both the server and the browser.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// A phone number in E.164: `+`, a country code that does not start with 0, at most 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts `+15551234567`, and common spellings with spaces, dashes, dots or parentheses.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let trimmed = input.trim();
        let Some(rest) = trimmed.strip_prefix('+') else {
            return Err(InvalidValue(format!(
                "`{trimmed}` is not in international format: start with + and the country code"
            )));
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(InvalidValue(format!(
                        "`{trimmed}` contains `{c}`, which a phone number cannot"
                    )))
                }
            }
        }
        if digits.starts_with('0') {
            return Err(InvalidValue("a country code never starts with 0".into()));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(InvalidValue(format!(
                "`{trimmed}` has {} digits; an international number has 8 to 15",
                digits.len()
            )));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// `+15551234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits only, as Meta writes a `wa_id` (`15551234567`).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            other => Err(InvalidValue(format!(
                "unknown role `{other}`: use admin or agent"
            ))),
        }
    }
}

/// An e-mail address, trimmed and lower-cased; only the basic shape is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let e = input.trim().to_lowercase();
        let valid = match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !e.chars().any(char::is_whitespace)
                    && e.len() <= 254
            }
            None => false,
        };
        if valid {
            Ok(Self(e))
        } else {
            Err(InvalidValue(format!(
                "`{}` is not an e-mail address",
                input.trim()
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

/// A Meta numeric id (WABA id, phone number id): digits only.
pub fn parse_meta_id(field: &str, input: &str) -> Result<String, InvalidValue> {
    let t = input.trim();
    if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t.to_string())
    } else {
        Err(InvalidValue(format!(
            "{field} must be Meta's numeric id, got `{t}`"
        )))
    }
}

/// Meta's supported media types, the message type each becomes, and its size limit in bytes
/// (checked in the browser before an upload and again by the server).
pub fn media_limit(mime: &str) -> Option<(&'static str, usize)> {
    const MB: usize = 1024 * 1024;
    Some(match mime {
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/vnd.ms-powerpoint"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            ("document", 100 * MB)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+1 (555) 123-4567").unwrap().as_str(),
            "+15551234567"
        );
        assert_eq!(
            PhoneNumber::parse(" +62 812.3456.7890 ").unwrap().digits(),
            "6281234567890"
        );
    }

    #[test]
    fn malformed_phone_numbers_are_refused() {
        for bad in [
            "15551234567",
            "+0123456789",
            "+1555",
            "+1234567890123456",
            "+1555abc4567",
            "",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(serde_json::from_str::<PhoneNumber>("\"12\"").is_err());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in ["ana", "ana@", "@x.com", "ana@localhost", "a b@x.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("agent".parse::<Role>().unwrap(), Role::Agent);
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn meta_ids_are_digits() {
        assert_eq!(parse_meta_id("waba_id", " 1234 ").unwrap(), "1234");
        assert!(parse_meta_id("waba_id", "12a4").is_err());
        assert!(parse_meta_id("waba_id", "").is_err());
    }
}

/// A message's delivery status. Outbound moves forward only
/// (`queued` → `sent` → `delivered` → `read` → `played`); `failed` may replace `queued` or
/// `sent` and is final; inbound messages are `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Received,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
            MessageStatus::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => MessageStatus::Queued,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "played" => MessageStatus::Played,
            "failed" => MessageStatus::Failed,
            "received" => MessageStatus::Received,
            _ => return None,
        })
    }

    fn rank(self) -> u8 {
        match self {
            MessageStatus::Queued => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Played => 4,
            MessageStatus::Failed | MessageStatus::Received => 5,
        }
    }

    /// The status after `next` is reported: never backwards, nothing leaves `failed` or
    /// `received`, and `failed` cannot undo a delivery that already happened.
    pub fn advance(self, next: MessageStatus) -> MessageStatus {
        match (self, next) {
            (MessageStatus::Failed | MessageStatus::Received, _) => self,
            (_, MessageStatus::Received) => self,
            (MessageStatus::Queued | MessageStatus::Sent, MessageStatus::Failed) => {
                MessageStatus::Failed
            }
            (_, MessageStatus::Failed) => self,
            _ if next.rank() > self.rank() => next,
            _ => self,
        }
    }
}

#[cfg(test)]
mod status_tests {
    use super::MessageStatus::*;

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(Queued.advance(Sent), Sent);
        assert_eq!(
            Sent.advance(Read),
            Read,
            "read before delivered ends as read"
        );
        assert_eq!(
            Read.advance(Delivered),
            Read,
            "a late delivered does not downgrade"
        );
        assert_eq!(Delivered.advance(Sent), Delivered);
        assert_eq!(Read.advance(Played), Played);
    }

    #[test]
    fn failed_is_final_and_only_replaces_queued_or_sent() {
        assert_eq!(Sent.advance(Failed), Failed);
        assert_eq!(Queued.advance(Failed), Failed);
        assert_eq!(Failed.advance(Delivered), Failed);
        assert_eq!(Failed.advance(Read), Failed);
        assert_eq!(Delivered.advance(Failed), Delivered);
        assert_eq!(Received.advance(Read), Received);
    }
}
