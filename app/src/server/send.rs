//! Local validation of outbound messages against Meta's documented limits, so a bad message
//! is refused here with the field at fault (422) instead of failing later at Meta.

use serde_json::{json, Value};

/// A refused field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The types the product sends.
pub const TYPES: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
];

/// Free-form types need the customer's 24-hour window; templates do not.
pub fn needs_window(kind: &str) -> bool {
    kind != "template"
}

fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn max_len(
    obj: &Value,
    key: &str,
    field: &str,
    max: usize,
    required: bool,
) -> Result<(), FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(()),
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            Err(err(field, format!("{field} cannot be empty")))
        }
        Some(Value::String(s)) if chars(s) <= max => Ok(()),
        Some(Value::String(s)) => Err(err(
            field,
            format!("{field} is {} characters; WhatsApp allows {max}", chars(s)),
        )),
        Some(_) => Err(err(field, format!("{field} must be text"))),
        None => Err(err(field, format!("{field} is required"))),
    }
}

/// Checks the type's object; answers it normalised for Graph (our media ids resolved later).
pub fn check(kind: &str, obj: &Value) -> Result<Value, FieldError> {
    if !obj.is_object() && kind != "contacts" {
        return Err(err(kind, format!("`{kind}` must be an object")));
    }
    match kind {
        "text" => {
            max_len(obj, "body", "text.body", 4096, true)?;
            if obj.get("preview_url").is_some_and(|v| !v.is_boolean()) {
                return Err(err("text.preview_url", "preview_url must be true or false"));
            }
            Ok(obj.clone())
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            let sources = ["media_id", "id", "link"]
                .iter()
                .filter(|k| obj.get(**k).is_some())
                .count();
            if sources != 1 {
                return Err(err(format!("{kind}.media_id"), format!("give exactly one of {kind}.media_id (from POST /api/v1/media) or {kind}.link")));
            }
            if let Some(link) = str_field(obj, "link") {
                if !link.starts_with("https://") && !link.starts_with("http://") {
                    return Err(err(format!("{kind}.link"), "link must be an http(s) URL"));
                }
            }
            if matches!(kind, "audio" | "sticker") && obj.get("caption").is_some() {
                return Err(err(
                    format!("{kind}.caption"),
                    format!("WhatsApp does not show captions on {kind}"),
                ));
            }
            max_len(obj, "caption", &format!("{kind}.caption"), 1024, false)?;
            if kind == "document" {
                max_len(obj, "filename", "document.filename", 240, false)?;
            }
            Ok(obj.clone())
        }
        "location" => {
            let lat = obj.get("latitude").and_then(Value::as_f64);
            let lon = obj.get("longitude").and_then(Value::as_f64);
            match (lat, lon) {
                (Some(a), Some(o))
                    if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&o) =>
                {
                    Ok(obj.clone())
                }
                (Some(a), _) if !(-90.0..=90.0).contains(&a) => Err(err(
                    "location.latitude",
                    "latitude must be between -90 and 90",
                )),
                (Some(_), Some(_)) => Err(err(
                    "location.longitude",
                    "longitude must be between -180 and 180",
                )),
                (None, _) => Err(err("location.latitude", "latitude is required")),
                (_, None) => Err(err("location.longitude", "longitude is required")),
            }
        }
        "contacts" => {
            let list = obj
                .as_array()
                .or_else(|| obj.get("contacts").and_then(Value::as_array));
            match list {
                Some(l)
                    if !l.is_empty()
                        && l.iter().all(|c| {
                            c.pointer("/name/formatted_name")
                                .and_then(Value::as_str)
                                .is_some()
                        }) =>
                {
                    Ok(Value::Array(l.clone()))
                }
                _ => Err(err(
                    "contacts",
                    "contacts must be a non-empty list, each with name.formatted_name",
                )),
            }
        }
        "reaction" => {
            if str_field(obj, "message_id").is_none_or(str::is_empty) {
                return Err(err(
                    "reaction.message_id",
                    "reaction.message_id (the Qontak id of the message) is required",
                ));
            }
            match obj.get("emoji") {
                Some(Value::String(e)) if chars(e) <= 10 => Ok(obj.clone()),
                _ => Err(err(
                    "reaction.emoji",
                    "reaction.emoji must be one emoji, or \"\" to remove the reaction",
                )),
            }
        }
        "interactive" => check_interactive(obj),
        "template" => {
            let name = str_field(obj, "name").unwrap_or_default();
            if name.is_empty() {
                return Err(err("template.name", "template.name is required"));
            }
            let language = match obj.get("language") {
                Some(Value::String(code)) if !code.is_empty() => json!({"code": code}),
                Some(v @ Value::Object(_))
                    if str_field(v, "code").is_some_and(|c| !c.is_empty()) =>
                {
                    v.clone()
                }
                _ => {
                    return Err(err(
                        "template.language",
                        "template.language is required, such as \"en_US\"",
                    ))
                }
            };
            if obj.get("components").is_some_and(|c| !c.is_array()) {
                return Err(err(
                    "template.components",
                    "template.components must be a list",
                ));
            }
            let mut out = obj.clone();
            out["language"] = language;
            Ok(out)
        }
        other => Err(err(
            "type",
            format!(
                "`{other}` is not a type Qontak sends; use one of {}",
                TYPES.join(", ")
            ),
        )),
    }
}

fn check_interactive(obj: &Value) -> Result<Value, FieldError> {
    let body = obj.pointer("/body/text").and_then(Value::as_str);
    let action = obj.get("action").cloned().unwrap_or(Value::Null);
    match str_field(obj, "type") {
        Some("button") => {
            let body =
                body.ok_or_else(|| err("interactive.body.text", "buttons need a body text"))?;
            if chars(body) > 1024 {
                return Err(err(
                    "interactive.body.text",
                    "the body of a buttons message is at most 1024 characters",
                ));
            }
            let buttons = action
                .get("buttons")
                .and_then(Value::as_array)
                .ok_or_else(|| err("interactive.action.buttons", "buttons are required"))?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(err(
                    "interactive.action.buttons",
                    format!(
                        "WhatsApp allows 1 to 3 reply buttons, got {}",
                        buttons.len()
                    ),
                ));
            }
            for (i, b) in buttons.iter().enumerate() {
                let title = b
                    .pointer("/reply/title")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let id = b
                    .pointer("/reply/id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if title.is_empty() || chars(title) > 20 {
                    return Err(err(
                        format!("interactive.action.buttons[{i}].reply.title"),
                        "a button title is 1 to 20 characters",
                    ));
                }
                if id.is_empty() || chars(id) > 256 {
                    return Err(err(
                        format!("interactive.action.buttons[{i}].reply.id"),
                        "a button id is 1 to 256 characters",
                    ));
                }
            }
            if let Some(footer) = obj.pointer("/footer/text").and_then(Value::as_str) {
                if chars(footer) > 60 {
                    return Err(err(
                        "interactive.footer.text",
                        "a footer is at most 60 characters",
                    ));
                }
            }
            Ok(obj.clone())
        }
        Some("list") => {
            let body =
                body.ok_or_else(|| err("interactive.body.text", "a list needs a body text"))?;
            if chars(body) > 4096 {
                return Err(err(
                    "interactive.body.text",
                    "the body of a list is at most 4096 characters",
                ));
            }
            let label = action
                .get("button")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if label.is_empty() || chars(label) > 20 {
                return Err(err(
                    "interactive.action.button",
                    "the list's button label is 1 to 20 characters",
                ));
            }
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .ok_or_else(|| err("interactive.action.sections", "sections are required"))?;
            if sections.is_empty() || sections.len() > 10 {
                return Err(err(
                    "interactive.action.sections",
                    "a list has 1 to 10 sections",
                ));
            }
            let mut rows = 0;
            for (s, section) in sections.iter().enumerate() {
                for (r, row) in section
                    .get("rows")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    rows += 1;
                    let title = row.get("title").and_then(Value::as_str).unwrap_or_default();
                    if title.is_empty() || chars(title) > 24 {
                        return Err(err(
                            format!("interactive.action.sections[{s}].rows[{r}].title"),
                            "a row title is 1 to 24 characters",
                        ));
                    }
                    if row
                        .get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| chars(d) > 72)
                    {
                        return Err(err(
                            format!("interactive.action.sections[{s}].rows[{r}].description"),
                            "a row description is at most 72 characters",
                        ));
                    }
                }
            }
            if rows == 0 || rows > 10 {
                return Err(err(
                    "interactive.action.sections",
                    format!("a list has 1 to 10 rows in all, got {rows}"),
                ));
            }
            Ok(obj.clone())
        }
        Some("cta_url") => {
            let p = action.get("parameters").cloned().unwrap_or(Value::Null);
            let text = p
                .get("display_text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let url = p.get("url").and_then(Value::as_str).unwrap_or_default();
            if body.is_none() {
                return Err(err(
                    "interactive.body.text",
                    "a CTA URL message needs a body text",
                ));
            }
            if text.is_empty() || chars(text) > 20 {
                return Err(err(
                    "interactive.action.parameters.display_text",
                    "the button text is 1 to 20 characters",
                ));
            }
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(err(
                    "interactive.action.parameters.url",
                    "the button needs an http(s) URL",
                ));
            }
            Ok(obj.clone())
        }
        _ => Err(err(
            "interactive.type",
            "interactive.type must be button, list or cta_url",
        )),
    }
}

/// How many `{{…}}` variables a template text has.
pub fn placeholder_count(text: &str) -> usize {
    text.matches("{{").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_length_and_emptiness_follow_metas_limits() {
        assert!(check("text", &json!({"body": "hi"})).is_ok());
        assert_eq!(
            check("text", &json!({"body": ""})).unwrap_err().field,
            "text.body"
        );
        assert!(check("text", &json!({"body": "x".repeat(4096)})).is_ok());
        assert!(check("text", &json!({"body": "x".repeat(4097)}))
            .unwrap_err()
            .message
            .contains("4096"));
        assert!(check("text", &json!({})).is_err());
    }

    #[test]
    fn media_needs_one_source_and_a_short_caption() {
        assert!(check("image", &json!({"link": "https://x/y.jpg", "caption": "c"})).is_ok());
        assert!(check("image", &json!({"media_id": "m", "link": "https://x"})).is_err());
        assert!(check("image", &json!({"caption": "c"})).is_err());
        assert_eq!(
            check(
                "image",
                &json!({"link": "https://x", "caption": "c".repeat(1025)})
            )
            .unwrap_err()
            .field,
            "image.caption"
        );
        assert!(check("audio", &json!({"media_id": "m", "caption": "no"})).is_err());
        assert!(check("image", &json!({"link": "ftp://x"})).is_err());
    }

    #[test]
    fn interactive_buttons_and_lists_are_bounded() {
        let b = |n: usize, title: &str| json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": (0..n).map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": title}})).collect::<Vec<_>>()}});
        assert!(check("interactive", &b(3, "Yes")).is_ok());
        assert!(check("interactive", &b(4, "Yes"))
            .unwrap_err()
            .message
            .contains("1 to 3"));
        assert!(check("interactive", &b(1, &"x".repeat(21)))
            .unwrap_err()
            .field
            .ends_with("reply.title"));
        let rows = |n: usize| json!({"type": "list", "body": {"text": "b"}, "action": {"button": "Choose", "sections": [{"title": "s", "rows": (0..n).map(|i| json!({"id": format!("r{i}"), "title": "Row"})).collect::<Vec<_>>()}]}});
        assert!(check("interactive", &rows(10)).is_ok());
        assert!(check("interactive", &rows(11)).is_err());
        assert!(check("interactive", &json!({"type": "carousel"})).is_err());
    }

    #[test]
    fn templates_need_a_name_and_a_language_which_is_normalised() {
        let t = check("template", &json!({"name": "hello", "language": "en_US"})).unwrap();
        assert_eq!(t["language"], json!({"code": "en_US"}));
        assert_eq!(
            check("template", &json!({"language": "en_US"}))
                .unwrap_err()
                .field,
            "template.name"
        );
        assert_eq!(
            check("template", &json!({"name": "x"})).unwrap_err().field,
            "template.language"
        );
        assert!(!needs_window("template") && needs_window("text") && needs_window("reaction"));
    }

    #[test]
    fn location_reaction_and_unknown_types() {
        assert!(check("location", &json!({"latitude": -6.2, "longitude": 106.8})).is_ok());
        assert_eq!(
            check("location", &json!({"latitude": 91, "longitude": 0}))
                .unwrap_err()
                .field,
            "location.latitude"
        );
        assert!(check("reaction", &json!({"message_id": "m", "emoji": ""})).is_ok());
        assert!(check("reaction", &json!({"emoji": "👍"})).is_err());
        assert_eq!(check("hologram", &json!({})).unwrap_err().field, "type");
        assert_eq!(placeholder_count("Hi {{1}}, order {{2}}"), 2);
    }
}
