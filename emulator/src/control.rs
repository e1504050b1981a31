//! The control API under `/_emulator`: register numbers, play customers, seed templates and
//! media, inject faults, and inspect what the product did. Errors here are plain
//! `{"error": {"message"}}`; only the Graph surface speaks Meta's envelope.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::error::{default_message, status_for, title_for, GraphError};
use crate::state::{digits, now_rfc3339, now_unix, wamid, AppState, Fault, Media, Number};
use crate::templates;
use crate::webhook::{deliver, messages_envelope, post_status, Delivery, StatusTarget};

type Shared = State<Arc<AppState>>;
type Params = Query<Vec<(String, String)>>;

/// A control API error: `{"error": {"message"}}` with a plain status.
pub struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": {"message": self.1}}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ControlError {
    ControlError(StatusCode::NOT_FOUND, message.into())
}

fn parse_object(bytes: &Bytes) -> Result<Map<String, Value>, ControlError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(bad("the body must be a JSON object")),
    }
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn delivery_json(d: &Delivery) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("webhook_status".into(), json!(d.http_status));
    m.insert("webhook_attempts".into(), json!(d.attempts));
    if let Some(e) = &d.error {
        m.insert("webhook_error".into(), json!(e));
    }
    m
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_emulator/health", get(health))
        .route("/_emulator/numbers", get(list_numbers).post(add_number))
        .route("/_emulator/media", post(add_media))
        .route("/_emulator/media/{id}/corrupt", post(corrupt_media))
        .route(
            "/_emulator/templates",
            get(list_templates).post(seed_templates),
        )
        .route("/_emulator/templates/{id}/status", post(template_status))
        .route(
            "/_emulator/customers/{wa_id}/messages",
            post(customer_message),
        )
        .route("/_emulator/statuses", post(status_webhook))
        .route(
            "/_emulator/webhooks",
            get(list_webhooks).post(raw_webhook).delete(clear_webhooks),
        )
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route(
            "/_emulator/requests",
            get(list_requests).delete(clear_requests),
        )
        .route("/_emulator/sent", get(list_sent).delete(clear_sent))
        .route("/_emulator/inbound", get(list_inbound))
        .route("/_emulator/reads", get(list_reads))
        .route("/_emulator/reset", post(reset))
}

/// `GET /` : the customer page.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn health(State(state): Shared) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "webhook_url": state.config.webhook_url,
        "public_url": state.public_url(),
    }))
}

async fn list_numbers(State(state): Shared) -> Json<Value> {
    Json(json!(state.with(|s| s.numbers.clone())))
}

async fn add_number(State(state): Shared, body: Bytes) -> Result<Json<Value>, ControlError> {
    let number: Number = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "expected {{\"phone_number_id\", \"waba_id\", \"display_phone_number\", \"verified_name\"?}}: {e}"
        ))
    })?;
    if number.phone_number_id.is_empty() || number.waba_id.is_empty() {
        return Err(bad("phone_number_id and waba_id must not be empty"));
    }
    state.add_number(number.clone());
    Ok(Json(json!(number)))
}

/// `POST /_emulator/media`: the raw body with its `Content-Type` becomes customer media.
/// `sha256` is base64, as inbound message webhooks write it; `sha256_hex` as `GET /{media_id}`.
async fn add_media(
    State(state): Shared,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let mime_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let media = Media {
        bytes: body,
        mime_type: mime_type.clone(),
        phone_number_id: None,
        filename: param(&params, "filename").map(str::to_string),
        corrupt: false,
    };
    let id = crate::state::numeric_id();
    let answer = json!({
        "id": id,
        "sha256": media.sha256_base64(),
        "sha256_hex": media.sha256_hex(),
        "mime_type": mime_type,
        "file_size": media.bytes.len(),
    });
    state.with(|s| s.media.insert(id, media));
    Json(answer)
}

async fn corrupt_media(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>, ControlError> {
    state
        .with(|s| s.media.get_mut(&id).map(|m| m.corrupt = true))
        .ok_or_else(|| not_found(format!("no media {id}")))?;
    Ok(Json(json!({"id": id, "corrupt": true})))
}

async fn list_templates(State(state): Shared) -> Json<Value> {
    Json(Value::Array(state.with(|s| {
        s.templates
            .iter()
            .map(|t| {
                let mut o = t.object.clone();
                o.insert("waba_id".into(), json!(t.waba_id));
                Value::Object(o)
            })
            .collect()
    })))
}

async fn seed_templates(State(state): Shared, body: Bytes) -> Result<Json<Value>, ControlError> {
    let body: Value = serde_json::from_slice(&body).map_err(|_| bad("the body must be JSON"))?;
    let created = templates::seed(&state, &body).map_err(bad)?;
    Ok(Json(json!({ "data": created })))
}

/// `POST /_emulator/templates/{id}/status {"status", "reason"?, "rejection_info"?, …}`.
async fn template_status(
    State(state): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let mut body = parse_object(&body)?;
    let status = match body.remove("status") {
        Some(Value::String(s)) if !s.is_empty() => s.to_ascii_uppercase(),
        _ => return Err(bad("\"status\" is required, e.g. \"APPROVED\"")),
    };
    let (template, delivery) = templates::set_status(&state, &id, &status, body)
        .await
        .ok_or_else(|| not_found(format!("no template {id}")))?;
    let mut answer = delivery_json(&delivery);
    answer.insert("template".into(), template);
    Ok(Json(Value::Object(answer)))
}

const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document", "sticker"];

/// `POST /_emulator/customers/{wa_id}/messages`: the customer writes; the product gets Meta's
/// signed inbound webhook. Answers `{"wamid", "webhook_status", …}` once delivery ended.
async fn customer_message(
    State(state): Shared,
    Path(wa_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let body = parse_object(&body)?;
    let number = {
        let asked = body.get("phone_number_id").and_then(Value::as_str);
        state
            .with(|s| match asked {
                Some(id) => s.number(id).cloned(),
                None => s.numbers.first().cloned(),
            })
            .ok_or_else(|| match asked {
                Some(id) => not_found(format!("no number {id} is registered")),
                None => bad("no number is registered: POST /_emulator/numbers first"),
            })?
    };
    let omit_phone = body
        .get("omit_phone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let user_id = body
        .get("user_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let wa_id = digits(&wa_id);
    if omit_phone && user_id.is_none() {
        return Err(bad("omit_phone needs a user_id (BSUID)"));
    }
    if !omit_phone && wa_id.is_empty() {
        return Err(bad("the customer's wa_id must contain digits"));
    }

    let kind = match body.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        None if body.contains_key("text") => "text".into(),
        _ => return Err(bad("\"type\" is required (text, image, location, …)")),
    };
    let mut object = match body.get(&kind) {
        Some(Value::String(s)) if kind == "text" => json!({ "body": s }),
        Some(v) => v.clone(),
        None if kind == "unsupported" => Value::Null,
        None => return Err(bad(format!("the \"{kind}\" object is required"))),
    };
    if MEDIA_TYPES.contains(&kind.as_str()) {
        fill_media(&state, &kind, &mut object)?;
    }

    let id = body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(wamid);
    let timestamp = match body.get("timestamp") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => s.clone(),
        Some(_) => return Err(bad("\"timestamp\" must be unix seconds")),
        None => now_unix().to_string(),
    };

    let mut message = Map::new();
    if let Some(Value::Object(ctx)) = body.get("context") {
        let mut ctx = ctx.clone();
        if let Some(mid) = ctx.remove("message_id") {
            ctx.entry("id").or_insert(mid);
        }
        if ctx.contains_key("id") {
            ctx.entry("from")
                .or_insert_with(|| json!(number.display_digits()));
        }
        message.insert("context".into(), Value::Object(ctx));
    }
    if !omit_phone {
        message.insert("from".into(), json!(wa_id));
    }
    if let Some(u) = &user_id {
        message.insert("from_user_id".into(), json!(u));
    }
    message.insert("id".into(), json!(id));
    message.insert("timestamp".into(), json!(timestamp));
    message.insert("type".into(), json!(kind));
    if !object.is_null() {
        message.insert(kind.clone(), object);
    }
    for key in ["errors", "referral", "identity"] {
        if let Some(v) = body.get(key).filter(|_| key != kind) {
            message.insert(key.into(), v.clone());
        }
    }

    let mut profile = Map::new();
    let name = body
        .get("profile_name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let tail = &wa_id[wa_id.len().saturating_sub(4)..];
            format!("Customer {tail}").trim().to_string()
        });
    profile.insert("name".into(), json!(name));
    if let Some(u) = body.get("username") {
        profile.insert("username".into(), u.clone());
    }
    let mut contact = Map::new();
    contact.insert("profile".into(), Value::Object(profile));
    if !omit_phone {
        contact.insert("wa_id".into(), json!(wa_id));
    }
    if let Some(u) = &user_id {
        contact.insert("user_id".into(), json!(u));
    }

    let mut members = Map::new();
    members.insert("contacts".into(), json!([contact]));
    members.insert("messages".into(), json!([message]));
    let envelope = messages_envelope(&number, members);

    let customer_key = if omit_phone {
        user_id.clone().unwrap_or_default()
    } else {
        wa_id.clone()
    };
    state.with(|s| {
        let seq = s.next_seq();
        s.inbound.push(json!({
            "seq": seq,
            "wamid": id,
            "wa_id": (!omit_phone).then_some(&wa_id),
            "user_id": user_id,
            "phone_number_id": number.phone_number_id,
            "type": kind,
            "message": message,
            "at": now_rfc3339(),
        }));
        let ts = timestamp.parse().unwrap_or_else(|_| now_unix());
        let last = s
            .last_inbound
            .entry((number.phone_number_id.clone(), customer_key))
            .or_insert(ts);
        *last = (*last).max(ts);
    });

    let delivery = deliver(&state, "messages", &envelope).await;
    state.with(|s| {
        if let Some(m) = s.inbound.iter_mut().rev().find(|m| m["wamid"] == id) {
            m["webhook_status"] = json!(delivery.http_status);
        }
    });
    let mut answer = delivery_json(&delivery);
    answer.insert("wamid".into(), json!(id));
    answer.insert("payload".into(), envelope);
    Ok(Json(Value::Object(answer)))
}

/// Completes a customer media object from the bytes registered for its id: `mime_type` and
/// `sha256` (base64, as webhooks write it) unless given.
fn fill_media(state: &AppState, kind: &str, object: &mut Value) -> Result<(), ControlError> {
    let Value::Object(o) = object else {
        return Err(bad(format!("\"{kind}\" must be an object with an \"id\"")));
    };
    let id = o
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(format!(
                "\"{kind}\" needs the \"id\" of a POST /_emulator/media"
            ))
        })?
        .to_string();
    if let Some(media) = state.with(|s| s.media.get(&id).cloned()) {
        o.entry("mime_type")
            .or_insert_with(|| json!(media.mime_type));
        o.entry("sha256")
            .or_insert_with(|| json!(media.sha256_base64()));
        if kind == "document" {
            if let Some(f) = &media.filename {
                o.entry("filename").or_insert_with(|| json!(f));
            }
        }
    }
    Ok(())
}

/// `POST /_emulator/statuses {"wamid", "status", "errors"? | "error_code"?, …}`.
async fn status_webhook(State(state): Shared, body: Bytes) -> Result<Json<Value>, ControlError> {
    let body = parse_object(&body)?;
    let wamid = body
        .get("wamid")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("\"wamid\" is required"))?
        .to_string();
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("\"status\" is required (sent, delivered, read, played, failed)"))?
        .to_string();
    let known = state.with(|s| {
        s.sent.iter().find(|m| m.wamid == wamid).map(|m| {
            (
                m.phone_number_id.clone(),
                m.to.clone(),
                m.recipient.clone(),
                m.body.get("biz_opaque_callback_data").cloned(),
                m.category.clone(),
            )
        })
    });
    let (phone_number_id, to, recipient, biz, category) = match known {
        Some(k) => k,
        None => (
            body.get("phone_number_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| state.with(|s| s.numbers.first().map(|n| n.phone_number_id.clone())))
                .ok_or_else(|| bad("no number is registered"))?,
            body.get("recipient_id").and_then(Value::as_str).map(digits),
            body.get("recipient_user_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            body.get("biz_opaque_callback_data").cloned(),
            "service".to_string(),
        ),
    };
    let number = state
        .with(|s| s.number(&phone_number_id).cloned())
        .ok_or_else(|| not_found(format!("no number {phone_number_id} is registered")))?;
    let errors = match (
        body.get("errors"),
        body.get("error_code").and_then(Value::as_i64),
    ) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(code)) => {
            let (_, details) = default_message(code);
            Some(json!([{
                "code": code,
                "title": title_for(code),
                "message": title_for(code),
                "error_data": {"details": details.unwrap_or(title_for(code))},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]))
        }
        (None, None) => None,
    };
    let target = StatusTarget {
        wamid: wamid.clone(),
        number,
        recipient_id: to,
        recipient_user_id: recipient,
        biz_opaque_callback_data: biz,
        category,
    };
    let delivery = post_status(&state, &target, &status, errors.as_ref()).await;
    let mut answer = delivery_json(&delivery);
    answer.insert("wamid".into(), json!(wamid));
    Ok(Json(Value::Object(answer)))
}

/// `POST /_emulator/webhooks`: signs and posts any JSON body as a webhook.
async fn raw_webhook(State(state): Shared, body: Bytes) -> Result<Json<Value>, ControlError> {
    let body: Value = serde_json::from_slice(&body).map_err(|_| bad("the body must be JSON"))?;
    let field = body["entry"][0]["changes"][0]["field"]
        .as_str()
        .unwrap_or("raw")
        .to_string();
    let delivery = deliver(&state, &field, &body).await;
    Ok(Json(Value::Object(delivery_json(&delivery))))
}

async fn list_webhooks(State(state): Shared) -> Json<Value> {
    Json(Value::Array(state.with(|s| s.webhooks.clone())))
}

async fn clear_webhooks(State(state): Shared) -> StatusCode {
    state.with(|s| s.webhooks.clear());
    StatusCode::NO_CONTENT
}

/// `POST /_emulator/faults`: `times` absent means once, `null` means until cleared.
async fn add_fault(State(state): Shared, body: Bytes) -> Result<Json<Value>, ControlError> {
    let spec = parse_object(&body)?;
    let remaining = match spec.get("times") {
        None => Some(1),
        Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => {
                return Err(bad(
                    "\"times\" must be a positive integer or null (forever)",
                ))
            }
        },
    };
    let text = |key: &str| -> Result<Option<String>, ControlError> {
        match spec.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("\"{key}\" must be a string"))),
        }
    };
    let path_contains = text("path_contains")?;
    let to = text("to")?.map(|t| digits(&t));
    let drop_after_accept = spec
        .get("drop_after_accept")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let respond = match spec.get("respond") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let code = r
                .get("code")
                .and_then(Value::as_i64)
                .ok_or_else(|| bad("\"respond.code\" (Meta's error code) is required"))?;
            let (message, details) = default_message(code);
            let mut error = GraphError::new(
                code,
                r.get("message").and_then(Value::as_str).unwrap_or(message),
            );
            if let Some(d) = r.get("details").and_then(Value::as_str).or(details) {
                error = error.with_details(d);
            }
            if let Some(sub) = r.get("error_subcode").and_then(Value::as_i64) {
                error = error.with_subcode(sub);
            }
            if let Some(t) = r.get("type").and_then(Value::as_str) {
                error.kind = t.to_string();
            }
            let status = match r.get("http_status").and_then(Value::as_u64) {
                Some(s) => u16::try_from(s)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| bad("\"respond.http_status\" is not an HTTP status"))?,
                None => status_for(code),
            };
            Some(error.with_status(status))
        }
    };
    if respond.is_none() && !drop_after_accept {
        return Err(bad(
            "a fault needs \"respond\" or \"drop_after_accept\": true",
        ));
    }
    let id = state.with(|s| {
        let id = s.next_seq();
        s.faults.push(Fault {
            id,
            path_contains,
            to,
            remaining,
            respond,
            drop_after_accept,
            spec: Value::Object(spec.clone()),
        });
        id
    });
    Ok(Json(json!({"id": id, "times": remaining})))
}

async fn list_faults(State(state): Shared) -> Json<Value> {
    Json(Value::Array(state.with(|s| {
        s.faults
            .iter()
            .map(|f| json!({"id": f.id, "remaining": f.remaining, "spec": f.spec}))
            .collect()
    })))
}

async fn clear_faults(State(state): Shared) -> StatusCode {
    state.with(|s| s.faults.clear());
    StatusCode::NO_CONTENT
}

async fn list_requests(State(state): Shared) -> Json<Value> {
    Json(Value::Array(state.with(|s| s.requests.clone())))
}

async fn clear_requests(State(state): Shared) -> StatusCode {
    state.with(|s| s.requests.clear());
    StatusCode::NO_CONTENT
}

/// `GET /_emulator/sent[?to=…][&phone_number_id=…][&after_seq=…]`.
async fn list_sent(State(state): Shared, Query(params): Params) -> Json<Value> {
    let to = param(&params, "to").map(digits);
    let pnid = param(&params, "phone_number_id");
    let after: u64 = param(&params, "after_seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Json(Value::Array(state.with(|s| {
        s.sent
            .iter()
            .filter(|m| m.seq > after)
            .filter(|m| to.as_ref().is_none_or(|t| m.to.as_ref() == Some(t)))
            .filter(|m| pnid.is_none_or(|p| m.phone_number_id == p))
            .map(|m| m.json())
            .collect()
    })))
}

async fn clear_sent(State(state): Shared) -> StatusCode {
    state.with(|s| s.sent.clear());
    StatusCode::NO_CONTENT
}

/// `GET /_emulator/inbound[?wa_id=…]`: what customers sent through the control API.
async fn list_inbound(State(state): Shared, Query(params): Params) -> Json<Value> {
    let wa_id = param(&params, "wa_id").map(digits);
    Json(Value::Array(state.with(|s| {
        s.inbound
            .iter()
            .filter(|m| wa_id.as_ref().is_none_or(|w| m["wa_id"] == json!(w)))
            .cloned()
            .collect()
    })))
}

async fn list_reads(State(state): Shared) -> Json<Value> {
    Json(Value::Array(state.with(|s| s.reads.clone())))
}

/// `POST /_emulator/reset`: forgets requests, sends, inbound messages, reads, webhooks and
/// faults; numbers, media and templates stay.
async fn reset(State(state): Shared) -> StatusCode {
    state.with(|s| {
        s.requests.clear();
        s.sent.clear();
        s.inbound.clear();
        s.reads.clear();
        s.webhooks.clear();
        s.faults.clear();
        s.last_inbound.clear();
    });
    StatusCode::NO_CONTENT
}
