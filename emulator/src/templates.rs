//! Message templates: `GET/POST/DELETE /{waba_id}/message_templates`, `GET/POST /{template_id}`,
//! and the control calls that seed them and change their status.

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::GraphError;
use crate::state::{numeric_id, AppState, Template};
use crate::webhook::{deliver, template_status_envelope, Delivery};

const CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];
/// Graph's default page size.
const DEFAULT_LIMIT: usize = 25;

fn encode_cursor(position: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("tpl:{position}"))
}

fn decode_cursor(cursor: &str) -> Result<usize, GraphError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("tpl:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| GraphError::invalid_param(format!("Invalid cursor: {cursor}")))
}

fn query<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A template object limited to `fields` (Graph always adds `id`).
pub fn project(template: &Template, fields: Option<&str>) -> Value {
    match fields {
        None => Value::Object(template.object.clone()),
        Some(fields) => {
            let mut out = Map::new();
            for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                if let Some(v) = template.object.get(f) {
                    out.insert(f.to_string(), v.clone());
                }
            }
            out.insert("id".into(), json!(template.field("id")));
            Value::Object(out)
        }
    }
}

/// `GET /{ver}/{waba_id}/message_templates`: Meta's cursor paging, with `next` (a full URL)
/// only when more follow and `previous` only when some precede.
pub fn list(
    state: &AppState,
    ver: &str,
    waba_id: &str,
    params: &[(String, String)],
) -> Result<Value, GraphError> {
    let limit =
        match query(params, "limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l.parse::<usize>().ok().filter(|l| *l > 0).ok_or_else(|| {
                GraphError::invalid_param("Param limit must be a positive integer.")
            })?,
        };
    let status = query(params, "status");
    let name = query(params, "name");
    let language = query(params, "language");
    let category = query(params, "category");
    let items: Vec<Template> = state.with(|s| {
        s.templates
            .iter()
            .filter(|t| t.waba_id == waba_id)
            .filter(|t| status.is_none_or(|v| t.field("status").eq_ignore_ascii_case(v)))
            .filter(|t| name.is_none_or(|v| t.field("name").contains(v)))
            .filter(|t| language.is_none_or(|v| t.field("language") == v))
            .filter(|t| category.is_none_or(|v| t.field("category").eq_ignore_ascii_case(v)))
            .cloned()
            .collect()
    });
    let (start, end) = if let Some(after) = query(params, "after") {
        let start = decode_cursor(after)? + 1;
        (start, (start + limit).min(items.len()))
    } else if let Some(before) = query(params, "before") {
        let end = decode_cursor(before)?.min(items.len());
        (end.saturating_sub(limit), end)
    } else {
        (0, limit.min(items.len()))
    };
    let start = start.min(items.len());
    let fields = query(params, "fields");
    let data: Vec<Value> = items[start..end.max(start)]
        .iter()
        .map(|t| project(t, fields))
        .collect();
    if data.is_empty() {
        return Ok(json!({"data": []}));
    }
    let link = |cursor_key: &str, cursor: &str| -> String {
        let base = format!("{}/{ver}/{waba_id}/message_templates", state.public_url());
        let mut url = match reqwest::Url::parse(&base) {
            Ok(u) => u,
            Err(_) => return base,
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                if !matches!(k.as_str(), "after" | "before" | "limit") {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("limit", &limit.to_string());
            q.append_pair(cursor_key, cursor);
        }
        url.to_string()
    };
    let before = encode_cursor(start);
    let after = encode_cursor(end - 1);
    let mut paging = Map::new();
    paging.insert("cursors".into(), json!({"before": before, "after": after}));
    if start > 0 {
        paging.insert("previous".into(), json!(link("before", &before)));
    }
    if end < items.len() {
        paging.insert("next".into(), json!(link("after", &after)));
    }
    Ok(json!({"data": data, "paging": paging}))
}

/// `POST /{ver}/{waba_id}/message_templates` with Meta's create body.
pub fn create(state: &Arc<AppState>, waba_id: &str, body: &Value) -> Result<Value, GraphError> {
    let name = match body.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n,
        _ => return Err(GraphError::invalid_param("The parameter name is required.")),
    };
    if name.len() > 512
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(GraphError::invalid_param("Invalid parameter").with_user(
            "Invalid template name",
            "Template names can only contain lowercase alphanumeric characters and underscores.",
        ));
    }
    let language = match body.get("language").and_then(Value::as_str) {
        Some(l) if !l.is_empty() => l,
        _ => {
            return Err(GraphError::invalid_param(
                "The parameter language is required.",
            ))
        }
    };
    let category = match body.get("category").and_then(Value::as_str) {
        Some(c) if CATEGORIES.contains(&c.to_ascii_uppercase().as_str()) => c.to_ascii_uppercase(),
        Some(c) => {
            return Err(GraphError::invalid_param(format!(
            "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{c}\"."
        )))
        }
        None => {
            return Err(GraphError::invalid_param(
                "The parameter category is required.",
            ))
        }
    };
    let Some(components) = body.get("components").and_then(Value::as_array) else {
        return Err(GraphError::invalid_param(
            "The parameter components is required.",
        ));
    };
    let has_body = components.iter().any(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("body"))
    });
    if !has_body {
        return Err(GraphError::invalid_param("Invalid parameter").with_user(
            "Message template body is required",
            "A message template needs a BODY component.",
        ));
    }
    // A media header's example must be a handle from the Resumable Upload API.
    for c in components {
        let media = c.get("type").and_then(Value::as_str) == Some("HEADER")
            && c.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !matches!(f, "TEXT" | "LOCATION"));
        if !media {
            continue;
        }
        let handle = c
            .pointer("/example/header_handle/0")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !crate::uploads::known_handle(state, handle) {
            return Err(GraphError::invalid_param("Invalid parameter").with_user(
                "Invalid media handle",
                "The header's example must be a handle from the Resumable Upload API.",
            ));
        }
    }
    let parameter_format = body
        .get("parameter_format")
        .and_then(Value::as_str)
        .unwrap_or("positional")
        .to_ascii_uppercase();
    let id = numeric_id();
    let mut object = Map::new();
    object.insert("name".into(), json!(name));
    object.insert("parameter_format".into(), json!(parameter_format));
    object.insert("components".into(), Value::Array(components.clone()));
    object.insert("language".into(), json!(language));
    object.insert("status".into(), json!("PENDING"));
    object.insert("category".into(), json!(category));
    object.insert("id".into(), json!(id));
    let duplicate = state.with(|s| {
        let dup = s.templates.iter().any(|t| {
            t.waba_id == waba_id && t.field("name") == name && t.field("language") == language
        });
        if !dup {
            s.templates.push(Template {
                waba_id: waba_id.to_string(),
                object,
            });
        }
        dup
    });
    if duplicate {
        return Err(GraphError::new(100, "Invalid parameter")
            .with_subcode(2388024)
            .with_user(
                "Message template already exists",
                format!(
                    "There is already {language} content for this template. You can create a new \
                     template and try again."
                ),
            ));
    }
    if let Some(delay) = state.config.template_review {
        let state = state.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let pending = state.with(|s| {
                s.templates
                    .iter()
                    .any(|t| t.field("id") == id && t.field("status") == "PENDING")
            });
            if pending {
                let _ = set_status(&state, &id, "APPROVED", Map::new()).await;
            }
        });
    }
    Ok(json!({"id": id, "status": "PENDING", "category": category}))
}

/// `DELETE /{ver}/{waba_id}/message_templates?name=…[&hsm_id=…|&hsm_ids=[…]]`.
pub fn delete(
    state: &AppState,
    waba_id: &str,
    params: &[(String, String)],
) -> Result<Value, GraphError> {
    let Some(name) = query(params, "name") else {
        return Err(GraphError::invalid_param("The parameter name is required."));
    };
    let mut ids: Vec<String> = query(params, "hsm_id")
        .map(str::to_string)
        .into_iter()
        .collect();
    if let Some(list) = query(params, "hsm_ids") {
        match serde_json::from_str::<Vec<Value>>(list) {
            Ok(list) => ids.extend(list.iter().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })),
            Err(_) => {
                return Err(GraphError::invalid_param(
                    "Param hsm_ids must be a JSON array.",
                ))
            }
        }
    }
    let removed = state.with(|s| {
        let before = s.templates.len();
        s.templates.retain(|t| {
            !(t.waba_id == waba_id
                && t.field("name") == name
                && (ids.is_empty() || ids.iter().any(|id| id == t.field("id"))))
        });
        before - s.templates.len()
    });
    if removed == 0 {
        return Err(
            GraphError::invalid_param(format!("Message template \"{name}\" not found."))
                .with_user(
                    "Message template not found",
                    format!("There is no message template named \"{name}\" to delete."),
                )
                .with_status(StatusCode::NOT_FOUND),
        );
    }
    Ok(json!({"success": true}))
}

/// `POST /{ver}/{template_id}`: an edit (`category` and/or `components`) sends it back to review.
pub fn edit(state: &AppState, id: &str, body: &Value) -> Result<Value, GraphError> {
    state.with(|s| {
        let Some(t) = s.templates.iter_mut().find(|t| t.field("id") == id) else {
            return Err(GraphError::unknown_object("POST", id));
        };
        let status = t.field("status").to_string();
        if !matches!(status.as_str(), "APPROVED" | "REJECTED" | "PAUSED") {
            return Err(GraphError::invalid_param(format!(
                "Message template with status {status} can't be edited."
            ))
            .with_user(
                "Template can't be edited",
                "Only templates that are approved, rejected or paused can be edited.",
            ));
        }
        if status == "APPROVED"
            && body
                .get("category")
                .is_some_and(|c| c.as_str() != Some(t.field("category")))
        {
            return Err(GraphError::invalid_param(
                "The category of an approved message template can't be changed.",
            ));
        }
        if let Some(c) = body.get("components").filter(|c| c.is_array()) {
            t.object.insert("components".into(), c.clone());
        }
        if let Some(c) = body.get("category").and_then(Value::as_str) {
            t.object
                .insert("category".into(), json!(c.to_ascii_uppercase()));
        }
        t.object.insert("status".into(), json!("PENDING"));
        Ok(json!({"success": true}))
    })
}

/// Seeds Meta template objects (control API): fills `id`, `status` (APPROVED), `language`
/// (en_US), `category` (UTILITY) and `components` when absent; replaces an existing
/// name+language on the same account.
pub fn seed(state: &AppState, body: &Value) -> Result<Vec<Value>, String> {
    let (list, default_waba) = match body {
        Value::Array(list) => (list.clone(), None),
        Value::Object(o) if o.contains_key("templates") => (
            o["templates"].as_array().cloned().unwrap_or_default(),
            o.get("waba_id").and_then(Value::as_str).map(str::to_string),
        ),
        Value::Object(_) => (vec![body.clone()], None),
        _ => return Err("expected a template object, an array, or {\"templates\": [...]}".into()),
    };
    let first_waba = state.with(|s| s.numbers.first().map(|n| n.waba_id.clone()));
    let mut created = Vec::new();
    for item in list {
        let Value::Object(mut object) = item else {
            return Err("each template must be an object".into());
        };
        let waba_id = object
            .remove("waba_id")
            .and_then(|v| v.as_str().map(str::to_string))
            .or_else(|| default_waba.clone())
            .or_else(|| first_waba.clone())
            .ok_or("no waba_id given and no number registered")?;
        if !object.get("name").is_some_and(Value::is_string) {
            return Err("each template needs a \"name\"".into());
        }
        object.entry("id").or_insert_with(|| json!(numeric_id()));
        object.entry("status").or_insert_with(|| json!("APPROVED"));
        object.entry("language").or_insert_with(|| json!("en_US"));
        object.entry("category").or_insert_with(|| json!("UTILITY"));
        object.entry("components").or_insert_with(|| json!([]));
        if let Some(id) = object.get("id").filter(|v| v.is_number()).cloned() {
            object.insert("id".into(), json!(id.to_string()));
        }
        let template = Template { waba_id, object };
        created.push(Value::Object(template.object.clone()));
        state.with(|s| {
            s.templates.retain(|t| {
                !(t.waba_id == template.waba_id
                    && t.field("name") == template.field("name")
                    && t.field("language") == template.field("language"))
            });
            s.templates.push(template);
        });
    }
    Ok(created)
}

/// Changes a template's status and posts the `message_template_status_update` webhook; `extra`
/// goes into the webhook's value (`reason`, `rejection_info`, `disable_info`, `other_info`).
pub async fn set_status(
    state: &AppState,
    id: &str,
    status: &str,
    extra: Map<String, Value>,
) -> Option<(Value, Delivery)> {
    let template = state.with(|s| {
        let t = s.templates.iter_mut().find(|t| t.field("id") == id)?;
        t.object.insert("status".into(), json!(status));
        match extra.get("reason").and_then(Value::as_str) {
            Some(reason) if status == "REJECTED" => {
                t.object.insert("rejected_reason".into(), json!(reason));
            }
            _ => {
                t.object.remove("rejected_reason");
            }
        }
        Some(t.clone())
    })?;
    let body = template_status_envelope(&template, status, extra);
    let delivery = deliver(state, "message_template_status_update", &body).await;
    Some((Value::Object(template.object), delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(41)).unwrap(), 41);
        assert!(decode_cursor("nope").is_err());
    }
}
