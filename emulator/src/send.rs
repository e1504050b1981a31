//! `POST /{phone_number_id}/messages`: validation, acceptance, mark-as-read, and the status
//! webhooks that follow.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{default_message, title_for, GraphError};
use crate::state::{digits, now_rfc3339, now_unix, wamid, AppState, Number, Sent};
use crate::webhook::{spawn_statuses, StatusTarget};

/// The message types the Cloud API sends.
const TYPES: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "reaction",
    "template",
];
const MEDIA: &[&str] = &["image", "video", "audio", "document", "sticker"];
const INTERACTIVE: &[&str] = &[
    "button",
    "list",
    "cta_url",
    "flow",
    "product",
    "product_list",
    "catalog_message",
    "location_request_message",
    "address_message",
    "call_permission_request",
    "voice_call",
];
/// The customer service window.
const WINDOW_SECS: i64 = 24 * 60 * 60;

/// A send request that passed validation.
#[derive(Debug, PartialEq)]
pub struct Accepted {
    pub kind: String,
    /// `to` as the request wrote it.
    pub input: Option<String>,
    /// Its digits: the `wa_id`.
    pub to: Option<String>,
    pub recipient: Option<String>,
}

/// What a body on the messages path asks for.
#[derive(Debug, PartialEq)]
pub enum Request {
    Send(Accepted),
    MarkRead { message_id: String, typing: bool },
}

fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn required_str<'a>(obj: &'a Value, key: &str, label: &str) -> Result<&'a str, GraphError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(GraphError::invalid_param(
            format!("The parameter {label} is required."),
        )),
        Some(_) => Err(GraphError::invalid_param(format!(
            "Param {label} must be a string."
        ))),
    }
}

fn is_number(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(_)) => true,
        Some(Value::String(s)) => s.parse::<f64>().is_ok(),
        _ => false,
    }
}

fn max_len(obj: &Value, key: &str, label: &str, max: usize) -> Result<(), GraphError> {
    match str_field(obj, key) {
        Some(s) if s.chars().count() > max => Err(GraphError::invalid_param(format!(
            "Param {label} must be at most {max} characters long."
        ))),
        _ => Ok(()),
    }
}

/// Checks a body the way the Cloud API does before accepting it.
pub fn validate(body: &Value) -> Result<Request, GraphError> {
    if !body.is_object() {
        return Err(GraphError::invalid_param(
            "The parameter messaging_product is required.",
        ));
    }
    match body.get("messaging_product") {
        None | Some(Value::Null) => {
            return Err(GraphError::invalid_param(
                "The parameter messaging_product is required.",
            ))
        }
        Some(Value::String(p)) if p == "whatsapp" => {}
        Some(other) => {
            return Err(GraphError::invalid_param(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )))
        }
    }

    if let Some(status) = body.get("status") {
        if status != "read" {
            return Err(GraphError::invalid_param(format!(
                "Param status must be one of {{READ}} - got {status}."
            )));
        }
        let message_id = required_str(body, "message_id", "message_id")?;
        let typing = match body.get("typing_indicator") {
            None | Some(Value::Null) => false,
            Some(t) if t.get("type") == Some(&json!("text")) => true,
            Some(_) => {
                return Err(GraphError::invalid_param(
                    "Param typing_indicator['type'] must be one of {TEXT}.",
                ))
            }
        };
        return Ok(Request::MarkRead {
            message_id: message_id.to_string(),
            typing,
        });
    }

    if let Some(rt) = body.get("recipient_type") {
        if rt != "individual" && rt != "group" {
            return Err(GraphError::invalid_param(format!(
                "Param recipient_type must be one of {{INDIVIDUAL, GROUP}} - got {rt}."
            )));
        }
    }

    // `to` wins over `recipient` (a BSUID) when both are given.
    let (input, to) = match body.get("to") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(to)) => {
            let rest = to.strip_prefix('+').unwrap_or(to);
            if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) || rest.len() > 15 {
                return Err(GraphError::invalid_param(format!(
                    "Param to must be a phone number (digits with an optional leading +) - got \"{to}\"."
                )));
            }
            (Some(to.clone()), Some(rest.to_string()))
        }
        Some(_) => return Err(GraphError::invalid_param("Param to must be a string.")),
    };
    let recipient = match body.get("recipient") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if !r.is_empty() => Some(r.clone()),
        Some(_) => {
            return Err(GraphError::invalid_param(
                "Param recipient must be a business-scoped user id.",
            ))
        }
    };
    if to.is_none() && recipient.is_none() {
        return Err(GraphError::invalid_param("The parameter to is required."));
    }

    // The Cloud API sends text when `type` is omitted.
    let kind = match body.get("type") {
        None | Some(Value::Null) => "text".to_string(),
        Some(Value::String(k)) if TYPES.contains(&k.as_str()) => k.clone(),
        Some(other) => {
            return Err(GraphError::invalid_param(format!(
                "Param type must be one of {{AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, \
                 LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}} - got {other}."
            )))
        }
    };
    let object = match body.get(&kind) {
        None | Some(Value::Null) => {
            return Err(GraphError::invalid_param(format!(
                "The parameter {kind} is required."
            )))
        }
        Some(o) => o,
    };
    if kind == "contacts" {
        validate_contacts(object)?;
    } else if !object.is_object() {
        return Err(GraphError::invalid_param(format!(
            "Param {kind} must be an object."
        )));
    }
    match kind.as_str() {
        "text" => {
            required_str(object, "body", "text['body']")?;
            max_len(object, "body", "text['body']", 4096)?;
        }
        k if MEDIA.contains(&k) => validate_media(k, object)?,
        "location" => {
            for key in ["latitude", "longitude"] {
                if !is_number(object.get(key)) {
                    return Err(GraphError::invalid_param(format!(
                        "The parameter location['{key}'] is required."
                    )));
                }
            }
        }
        "reaction" => {
            required_str(object, "message_id", "reaction['message_id']")?;
            if !matches!(object.get("emoji"), Some(Value::String(_))) {
                return Err(GraphError::invalid_param(
                    "The parameter reaction['emoji'] is required.",
                ));
            }
        }
        "template" => {
            required_str(object, "name", "template['name']")?;
            let language = object.get("language").unwrap_or(&Value::Null);
            required_str(language, "code", "template['language']['code']")?;
            if let Some(c) = object.get("components") {
                if !c.is_array() {
                    return Err(GraphError::invalid_param(
                        "Param template['components'] must be an array.",
                    ));
                }
            }
        }
        "interactive" => validate_interactive(object)?,
        _ => {}
    }
    if let Some(context) = body.get("context") {
        required_str(context, "message_id", "context['message_id']")?;
    }
    Ok(Request::Send(Accepted {
        kind,
        input,
        to,
        recipient,
    }))
}

fn validate_media(kind: &str, object: &Value) -> Result<(), GraphError> {
    let id = object.get("id").is_some_and(|v| !v.is_null());
    let link = object.get("link").is_some_and(|v| !v.is_null());
    match (id, link) {
        (true, true) => {
            return Err(GraphError::invalid_param(format!(
                "Param {kind} must contain exactly one of {kind}['id'] or {kind}['link'], not both."
            )))
        }
        (false, false) => {
            return Err(GraphError::invalid_param(format!(
                "The parameter {kind}['id'] or {kind}['link'] is required."
            )))
        }
        (true, false) => {
            required_str(object, "id", &format!("{kind}['id']"))?;
        }
        (false, true) => {
            let l = required_str(object, "link", &format!("{kind}['link']"))?;
            if !(l.starts_with("https://") || l.starts_with("http://")) {
                return Err(GraphError::invalid_param(format!(
                    "Param {kind}['link'] must be a valid URL."
                )));
            }
        }
    }
    if matches!(kind, "image" | "video" | "document") {
        max_len(object, "caption", &format!("{kind}['caption']"), 1024)?;
    }
    Ok(())
}

fn validate_contacts(object: &Value) -> Result<(), GraphError> {
    let Some(list) = object.as_array().filter(|l| !l.is_empty()) else {
        return Err(GraphError::invalid_param(
            "Param contacts must be a non-empty array.",
        ));
    };
    for (i, c) in list.iter().enumerate() {
        let name = c.get("name").unwrap_or(&Value::Null);
        required_str(
            name,
            "formatted_name",
            &format!("contacts[{i}]['name']['formatted_name']"),
        )?;
    }
    Ok(())
}

fn validate_interactive(object: &Value) -> Result<(), GraphError> {
    let kind = required_str(object, "type", "interactive['type']")?;
    if !INTERACTIVE.contains(&kind) {
        return Err(GraphError::invalid_param(format!(
            "Param interactive['type'] must be one of {{BUTTON, LIST, CTA_URL, FLOW, PRODUCT, \
             PRODUCT_LIST, CATALOG_MESSAGE, LOCATION_REQUEST_MESSAGE, ADDRESS_MESSAGE, \
             CALL_PERMISSION_REQUEST, VOICE_CALL}} - got \"{kind}\"."
        )));
    }
    let Some(action) = object.get("action").filter(|a| a.is_object()) else {
        return Err(GraphError::invalid_param(
            "The parameter interactive['action'] is required.",
        ));
    };
    match kind {
        "button" => {
            let n = action
                .get("buttons")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if !(1..=3).contains(&n) {
                return Err(GraphError::invalid_param(
                    "Param interactive['action']['buttons'] must have between 1 and 3 buttons.",
                ));
            }
            required_str(
                object.get("body").unwrap_or(&Value::Null),
                "text",
                "interactive['body']['text']",
            )?;
        }
        "list" => {
            required_str(action, "button", "interactive['action']['button']")?;
            if action
                .get("sections")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                return Err(GraphError::invalid_param(
                    "The parameter interactive['action']['sections'] is required.",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Handles a body on `POST /{phone_number_id}/messages` for `number`.
pub fn handle(
    state: &Arc<AppState>,
    number: &Number,
    body: &Value,
) -> Result<Response, GraphError> {
    let accepted = match validate(body)? {
        Request::MarkRead { message_id, typing } => {
            state.with(|s| {
                let seq = s.next_seq();
                s.reads.push(json!({
                    "seq": seq,
                    "phone_number_id": number.phone_number_id,
                    "message_id": message_id,
                    "typing_indicator": typing,
                    "at": now_rfc3339(),
                }));
            });
            return Ok(Json(json!({"success": true})).into_response());
        }
        Request::Send(accepted) => accepted,
    };

    let category = if accepted.kind == "template" {
        template_category(state, number, body)?
    } else {
        "service".to_string()
    };

    let id = wamid();
    let window_closed = state.config.enforce_window
        && accepted.kind != "template"
        && accepted.to.as_ref().is_none_or(|to| {
            state.with(|s| {
                s.last_inbound
                    .get(&(number.phone_number_id.clone(), to.clone()))
                    .is_none_or(|at| now_unix() - at > WINDOW_SECS)
            })
        });
    state.with(|s| {
        let seq = s.next_seq();
        s.sent.push(Sent {
            seq,
            wamid: id.clone(),
            phone_number_id: number.phone_number_id.clone(),
            to: accepted.to.clone(),
            recipient: accepted.recipient.clone(),
            kind: accepted.kind.clone(),
            category: category.clone(),
            body: body.clone(),
            at: now_rfc3339(),
            statuses: Vec::new(),
        });
    });

    let plan: Vec<(String, Option<Value>)> = if window_closed {
        let (_, details) = default_message(131047);
        vec![(
            "failed".into(),
            Some(json!([{
                "code": 131047,
                "title": title_for(131047),
                "message": title_for(131047),
                "error_data": {"details": details.unwrap_or_default()},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }])),
        )]
    } else if accepted.kind == "reaction" {
        // Meta sends only `sent` for reactions.
        vec![("sent".into(), None)]
    } else {
        ["sent", "delivered", "read"]
            .iter()
            .map(|s| (s.to_string(), None))
            .collect()
    };
    spawn_statuses(
        state.clone(),
        StatusTarget {
            wamid: id.clone(),
            number: number.clone(),
            recipient_id: accepted.to.clone(),
            recipient_user_id: accepted.recipient.clone(),
            biz_opaque_callback_data: body.get("biz_opaque_callback_data").cloned(),
            category,
        },
        plan,
    );

    let contact = match (&accepted.input, &accepted.to) {
        (Some(input), Some(to)) => json!({"input": input, "wa_id": to}),
        _ => {
            let r = accepted.recipient.clone().unwrap_or_default();
            json!({"input": r, "user_id": r})
        }
    };
    Ok(Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [{"id": id, "message_status": "accepted"}],
    }))
    .into_response())
}

/// The pricing category of a template send, after checking the template may be sent.
fn template_category(
    state: &AppState,
    number: &Number,
    body: &Value,
) -> Result<String, GraphError> {
    let template = &body["template"];
    let name = template["name"].as_str().unwrap_or_default();
    let language = template["language"]["code"].as_str().unwrap_or_default();
    let found = state.with(|s| {
        s.templates
            .iter()
            .find(|t| {
                t.waba_id == number.waba_id
                    && t.field("name") == name
                    && t.field("language") == language
            })
            .map(|t| {
                (
                    t.field("status").to_string(),
                    t.field("category").to_lowercase(),
                )
            })
    });
    let fail = |code: i64, details: String| {
        let (message, _) = default_message(code);
        Err(GraphError::new(code, message).with_details(details))
    };
    match found {
        Some((status, category)) if status == "APPROVED" => Ok(if category.is_empty() {
            "utility".into()
        } else {
            category
        }),
        Some((status, _)) if status == "PAUSED" => {
            fail(132015, format!("Template {name} ({language}) is paused."))
        }
        Some((status, _)) if status == "DISABLED" => {
            fail(132016, format!("Template {name} ({language}) is disabled."))
        }
        _ => fail(
            132001,
            format!("template name ({name}) does not exist in {language}"),
        ),
    }
}

/// Recipient digits of a send body, for fault matching.
pub fn recipient_digits(body: &Value) -> Option<String> {
    body.get("to").and_then(Value::as_str).map(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> String {
        validate(&body).unwrap_err().message
    }

    #[test]
    fn text_defaults_and_to_normalises() {
        let r = validate(
            &json!({"messaging_product":"whatsapp","to":"+15551234567","text":{"body":"hi"}}),
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Send(Accepted {
                kind: "text".into(),
                input: Some("+15551234567".into()),
                to: Some("15551234567".into()),
                recipient: None,
            })
        );
    }

    #[test]
    fn each_type_needs_its_object() {
        let base = |kind: &str, obj: Value| json!({"messaging_product":"whatsapp","to":"1555","type":kind, kind: obj});
        assert!(err(base("text", json!({}))).contains("text['body']"));
        assert!(err(base("image", json!({"id":"1","link":"https://x"}))).contains("exactly one"));
        assert!(err(base("image", json!({"caption":"c"}))).contains("image['id']"));
        assert!(err(base("reaction", json!({"emoji":"x"}))).contains("message_id"));
        assert!(err(base("template", json!({"name":"t"}))).contains("language"));
        assert!(err(base("interactive", json!({"type":"button"}))).contains("action"));
        assert!(err(base("location", json!({"latitude":1}))).contains("longitude"));
        assert!(err(base("contacts", json!({}))).contains("non-empty array"));
        assert!(err(base("sticker", json!(null))).contains("sticker is required"));
        assert!(err(base("poll", json!({}))).contains("must be one of"));
        assert!(validate(&base(
            "reaction",
            json!({"message_id":"wamid.1","emoji":""})
        ))
        .is_ok());
    }

    #[test]
    fn envelope_fields_are_checked() {
        assert!(
            err(json!({"to":"1","text":{"body":"x"}})).contains("messaging_product is required")
        );
        assert!(
            err(json!({"messaging_product":"sms","to":"1","text":{"body":"x"}}))
                .contains("WHATSAPP")
        );
        assert!(
            err(json!({"messaging_product":"whatsapp","text":{"body":"x"}}))
                .contains("to is required")
        );
        assert!(
            err(json!({"messaging_product":"whatsapp","to":"12ab","text":{"body":"x"}}))
                .contains("phone number")
        );
        let bsuid = validate(
            &json!({"messaging_product":"whatsapp","recipient":"US.1","text":{"body":"x"}}),
        );
        assert!(matches!(
            bsuid,
            Ok(Request::Send(Accepted {
                recipient: Some(_),
                ..
            }))
        ));
    }

    #[test]
    fn mark_as_read_is_recognised() {
        let r = validate(
            &json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.1","typing_indicator":{"type":"text"}}),
        );
        assert_eq!(
            r.unwrap(),
            Request::MarkRead {
                message_id: "wamid.1".into(),
                typing: true
            }
        );
        assert!(err(json!({"messaging_product":"whatsapp","status":"read"})).contains("message_id"));
    }
}
