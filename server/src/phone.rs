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
    // The default country only says whose a national number is; an international one carries
    // its own (with the hint, libphonenumber reads `+78 20 794-0001` as valid, without it the
    // same digits as `+7 207940001`, which is not).
    let hint = if international.starts_with('+') {
        None
    } else {
        country
    };
    let parsed = phonenumber::parse(hint, &international)
        .map_err(|_| format!("`{s}` is not a phone number"))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(format!("`{s}` is not a valid number for its country"));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    // Only a number whose E.164 spelling reads back as itself is stored: it is how the number
    // will be parsed again (from the database, from Meta's wa_id, from the next import). When
    // the input already was that spelling, read without a hint, it has just been read back (the
    // common case in imports: this halves their parsing).
    let read_back = hint.is_none() && international == e164;
    if read_back {
        return PhoneNumber::parse(&e164).map_err(|e| e.to_string());
    }
    match phonenumber::parse(None, &e164) {
        Ok(again)
            if phonenumber::is_valid(&again)
                && again.format().mode(phonenumber::Mode::E164).to_string() == e164 => {}
        _ => return Err(format!("`{s}` is not a valid number for its country")),
    }
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

    /// Found by the csv_import fuzz target: with a default country, `+78 20 794-0001` was
    /// accepted as `+78207940001`, which read back alone is `+7 207940001` and invalid.
    #[test]
    fn an_accepted_number_reads_back_as_itself_whatever_the_default_country() {
        for country in [None, Some("IN"), Some("ID"), Some("US"), Some("RU")] {
            let refused = normalize("+78 20 794-0001", country);
            assert!(refused.is_err(), "{country:?}: {refused:?}");
            for s in ["+7 912 345-67-89", "+44 7911 123456", "+62 812-3456-7890"] {
                let e164 = ok(s, country);
                assert_eq!(ok(&e164, None), e164, "{s} with {country:?}");
            }
        }
        assert_eq!(ok("8 912 345 67 89", Some("RU")), "+79123456789");
    }
}
