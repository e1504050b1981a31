//! `?limit=` and `?cursor=` for every list: limit defaults to 50 and is capped at 200; a cursor
//! is an opaque base64url token of a keyset position; an unreadable one answers 400.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use app::server::db::read::{start, Position};

use super::ApiError;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size: 1 to 200, default 50.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(50),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(n.min(200)),
                _ => Err(ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to 200, got `{s}`"
                ))),
            },
        }
    }

    /// Where the page starts.
    pub fn position(&self) -> Result<Position, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(start()),
            Some(c) => decode(c)
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this API gave out".into())),
        }
    }
}

pub fn encode(p: &Position) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", p.0, p.1))
}

fn decode(c: &str) -> Option<Position> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (t, id) = raw.split_once('|')?;
    Some((t.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: Option<&str>, cursor: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(str::to_string),
            cursor: cursor.map(str::to_string),
        }
    }

    #[test]
    fn limits_default_cap_and_refuse_nonsense() {
        assert_eq!(q(None, None).limit().unwrap(), 50);
        assert_eq!(q(Some("500"), None).limit().unwrap(), 200);
        assert!(q(Some("0"), None).limit().is_err());
        assert!(q(Some("ten"), None).limit().is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let p = (1_700_000_000_000, "0190-abc".to_string());
        assert_eq!(q(None, Some(&encode(&p))).position().unwrap(), p);
        assert!(q(None, Some("!!!")).position().is_err());
        assert!(q(None, Some(&URL_SAFE_NO_PAD.encode("no-separator")))
            .position()
            .is_err());
    }
}
