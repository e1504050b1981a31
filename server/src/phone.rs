//! Phone numbers from people and files: parsed with libphonenumber's metadata (the
//! `phonenumber` crate), checked to be a valid number of its country, written in E.164.

use app::domain::PhoneNumber;
use phonenumber::country;

/// Parses `input`: international (`+62 812-3456-7890`, `0062…`), Meta's digits-only `wa_id`
/// (`6281234567890`), or a national number (`0812 3456 7890`) when `default_country`
/// (ISO 3166 alpha-2, such as `ID`) says whose.
pub fn normalize(input: &str, default_country: Option<&str>) -> Result<PhoneNumber, String> {
    // A spreadsheet's text marker, and the invisible marks copy-paste brings along.
    let cleaned: String = input
        .trim()
        .trim_start_matches('\'')
        .chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{feff}'
            )
        })
        .collect();
    let s = cleaned.trim();
    if s.is_empty() {
        return Err("the phone number is empty".into());
    }
    let country = match default_country.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(parse_country(c)?),
        None => None,
    };
    let international = if let Some(rest) = s.strip_prefix("00") {
        format!("+{rest}")
    } else if s.starts_with('+') {
        s.to_string()
    } else if country.is_none() {
        if s.starts_with('0') {
            return Err(format!(
                "`{s}` is a national number: write it with + and the country code, or choose a default country"
            ));
        }
        // Digits without a plus: Meta's wa_id spelling, country code first.
        format!("+{s}")
    } else {
        s.to_string()
    };
    let parsed = phonenumber::parse(country, &international)
        .map_err(|_| format!("`{s}` is not a phone number"))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(format!("`{s}` is not a valid number for its country"));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    PhoneNumber::parse(&e164).map_err(|e| e.to_string())
}

/// An ISO 3166 alpha-2 country code such as `ID` or `us`.
pub fn parse_country(code: &str) -> Result<country::Id, String> {
    code.trim()
        .to_ascii_uppercase()
        .parse::<country::Id>()
        .map_err(|_| format!("`{code}` is not a country code: use two letters such as ID or US"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str, country: Option<&str>) -> String {
        normalize(input, country)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn spellings_of_one_number_normalise_to_e164() {
        for s in [
            "+62 812-3456-7890",
            "+62 (812) 3456 7890",
            "006281234567890",
            "6281234567890",
            "'+6281234567890",
        ] {
            assert_eq!(ok(s, None), "+6281234567890", "{s}");
        }
        assert_eq!(ok("0812 3456 7890", Some("ID")), "+6281234567890");
        assert_eq!(ok("(415) 555-2671", Some("us")), "+14155552671");
        assert_eq!(ok("+1 415 555 2671", Some("ID")), "+14155552671");
    }

    #[test]
    fn invalid_numbers_are_refused_with_a_reason() {
        for s in ["", "hello", "+1 555", "+999 1234 5678", "0812 3456 7890"] {
            assert!(normalize(s, None).is_err(), "{s} refused");
        }
        assert!(normalize("0812", Some("XX"))
            .unwrap_err()
            .contains("country code"));
    }
}
