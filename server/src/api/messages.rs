//! `POST /api/v1/messages`: validate, check the 24-hour window, honour the idempotency key,
//! and store the message with its send job in one transaction; the outbox sends it.
//! `POST /api/v1/conversations/{id}/read` marks a conversation read (and tells Meta).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use app::domain::PhoneNumber;
use app::server::db::outbox::NewOutbound;
use app::server::db::DbError;
use app::server::now_ms;
use app::server::send::{check, needs_window, placeholder_count, FieldError};

use super::conversations::{conversation_dto, window, ConversationDto, MessageDto};
use super::{ApiCaller, ApiError, ApiJson};
use crate::AppState;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        invalid(e.field, e.message)
    }
}

fn text<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(key, format!("{key} must be a string"))),
    }
}

/// Sends a message (answered 202 with the stored, `queued` message).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", security(("bearer" = [])),
    request_body(content = Object, description = "`{number_id, to | contact_id, type, <type>: {Meta's object}, reply_to?, idempotency_key?}`",
        example = json!({"number_id": "0190…", "to": "+15551234567", "type": "text", "text": {"body": "Your order shipped"}, "idempotency_key": "order-335628-shipped"})),
    responses(
        (status = 202, description = "Stored and queued", body = MessageDto),
        (status = 200, description = "A repeated idempotency key: the first message", body = MessageDto),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, description = "Invalid field, or `window_closed`", body = super::error::ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let ws = caller.workspace_id.as_str();
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let number_id =
        text(&body, "number_id")?.ok_or_else(|| invalid("number_id", "number_id is required"))?;
    let kind = text(&body, "type")?.ok_or_else(|| invalid("type", "type is required"))?;
    let key = text(&body, "idempotency_key")?.filter(|k| !k.is_empty());
    if key.is_some_and(|k| k.len() > 255) {
        return Err(invalid(
            "idempotency_key",
            "idempotency_key is at most 255 characters",
        ));
    }
    let mut hashed = body.clone();
    hashed.as_object_mut().map(|o| o.remove("idempotency_key"));
    let request_hash = app::server::crypto::hex(&Sha256::digest(hashed.to_string().as_bytes()));
    if let Some(k) = key {
        if let Some(found) = repeat(&state, ws, k, &request_hash).await? {
            return Ok(found);
        }
    }

    let number = state
        .db
        .number(ws, number_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such number".into()))?;
    let object = body.get(kind).cloned().ok_or_else(|| {
        invalid(
            kind,
            format!("a `{kind}` object is required for type {kind}"),
        )
    })?;
    if let Some(link) = object.get("link").and_then(Value::as_str) {
        // Meta fetches the link; still, never hand out a URL into our own network.
        let refuse = app::server::safe_url::policy(state.site.allow_private_urls);
        use app::server::safe_url::UrlError;
        if let Err(e @ (UrlError::Internal | UrlError::Invalid)) =
            app::server::safe_url::check(link, &refuse).await
        {
            return Err(invalid(format!("{kind}.link"), e.to_string()));
        }
    }
    let mut object = check(kind, &object)?;

    let (contact_id, to_digits, bsuid) = match (text(&body, "to")?, text(&body, "contact_id")?) {
        (Some(to), _) => {
            let phone = PhoneNumber::parse(to).map_err(|e| invalid("to", e.to_string()))?;
            let id = state.db.contact_for_wa_id(ws, phone.digits()).await?;
            (id, Some(phone.digits().to_string()), None)
        }
        (None, Some(cid)) => {
            let c = state
                .db
                .contact(ws, cid)
                .await?
                .ok_or_else(|| ApiError::NotFound("no such contact".into()))?;
            if c.wa_id.is_none() && c.bsuid.is_none() {
                return Err(invalid(
                    "contact_id",
                    "this contact has neither a WhatsApp number nor a BSUID",
                ));
            }
            (c.id, c.wa_id, c.bsuid)
        }
        (None, None) => {
            return Err(invalid(
                "to",
                "give `to` (E.164, such as +15551234567) or `contact_id`",
            ))
        }
    };

    let mut reaction_target = None;
    if kind == "reaction" {
        let target_id = object["message_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = state
            .db
            .message(ws, &target_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such message to react to".into()))?;
        let wamid = target.wamid.ok_or_else(|| {
            invalid(
                "reaction.message_id",
                "that message has not reached WhatsApp yet",
            )
        })?;
        reaction_target = Some((
            target.id,
            object["emoji"].as_str().unwrap_or_default().to_string(),
        ));
        object["message_id"] = Value::String(wamid);
    }
    if kind == "template" {
        check_template(&state, ws, &object).await?;
    }
    // An uploaded file: Meta knows it by its own media id.
    let mut attach = None;
    if let Some(ours) = object
        .get("media_id")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        let (meta_id, _, media_number, _) =
            state.db.uploaded_media(ws, &ours).await?.ok_or_else(|| {
                ApiError::NotFound("no such media; upload it with POST /api/v1/media".into())
            })?;
        if media_number.as_deref() != Some(number.id.as_str()) {
            return Err(invalid(
                format!("{kind}.media_id"),
                "this file was uploaded for another number",
            ));
        }
        let meta_id = meta_id.ok_or_else(|| {
            invalid(
                format!("{kind}.media_id"),
                "this media did not come from an upload",
            )
        })?;
        if let Some(o) = object.as_object_mut() {
            o.remove("media_id");
            o.insert("id".into(), Value::String(meta_id));
        }
        attach = Some(ours);
    }
    let mut context = None;
    if let Some(reply_to) = text(&body, "reply_to")? {
        if kind == "reaction" {
            return Err(invalid("reply_to", "a reaction cannot be a reply"));
        }
        let m = state
            .db
            .message(ws, reply_to)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such message to reply to".into()))?;
        let wamid = m
            .wamid
            .clone()
            .ok_or_else(|| invalid("reply_to", "that message has not reached WhatsApp yet"))?;
        context = Some((m.id, wamid));
    }
    if needs_window(kind) {
        let w = window(
            state.db.last_inbound_at(&number.id, &contact_id).await?,
            now_ms(),
        );
        if !w.open {
            return Err(ApiError::Unprocessable {
                code: "window_closed",
                field: "type".into(),
                message: "The customer has not written in the last 24 hours, so WhatsApp only accepts a template: send an approved template instead.".into(),
            });
        }
    }

    let mut content = match kind {
        // What the thread shows: our id of the target, not Meta's.
        "reaction" => {
            json!({"message_id": reaction_target.as_ref().map(|t| t.0.clone()), "emoji": object["emoji"]})
        }
        "contacts" => json!({"contacts": object}),
        _ => object.clone(),
    };
    if let (Some(ours), Some(c)) = (&attach, content.as_object_mut()) {
        c.insert("media_id".into(), Value::String(ours.clone()));
    }
    let mut graph = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "type": kind, kind: object});
    match (&to_digits, &bsuid) {
        (Some(d), _) => graph["to"] = json!(d),
        (None, Some(b)) => graph["recipient"] = json!(b),
        (None, None) => {}
    }
    if let Some((_, wamid)) = &context {
        graph["context"] = json!({"message_id": wamid});
    }
    let enqueued = state
        .db
        .enqueue_message(&NewOutbound {
            workspace_id: ws,
            number_id: &number.id,
            contact_id: &contact_id,
            kind,
            content: &content,
            graph_body: &graph,
            reply_to_id: context.as_ref().map(|c| c.0.as_str()),
            idempotency_key: key,
            request_hash: &request_hash,
            sent_by: Some(&caller.user_id),
            reaction_target: reaction_target
                .as_ref()
                .map(|(t, e)| (t.as_str(), e.as_str())),
        })
        .await;
    let id = match enqueued {
        Ok(id) => id,
        // Two requests with one key raced: the loser answers like a repeat.
        Err(DbError::Conflict(_)) if key.is_some() => {
            if let Some(found) = repeat(&state, ws, key.unwrap_or_default(), &request_hash).await? {
                return Ok(found);
            }
            return Err(ApiError::Conflict {
                code: "idempotency_conflict",
                message: "this idempotency key is in use".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(ours) = &attach {
        state.db.attach_media(ours, &id).await?;
    }
    state.outbox.wake();
    state.events.wake(ws);
    let message = state
        .db
        .message(ws, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the stored message vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(MessageDto::from(message))).into_response())
}

/// A repeated idempotency key: 200 with the first message, or 409 when the body differs.
async fn repeat(
    state: &AppState,
    ws: &str,
    key: &str,
    hash: &str,
) -> Result<Option<Response>, ApiError> {
    let Some((id, first_hash)) = state.db.message_by_idempotency_key(ws, key).await? else {
        return Ok(None);
    };
    if first_hash.as_deref() != Some(hash) {
        return Err(ApiError::Conflict {
            code: "idempotency_conflict",
            message: "this idempotency_key was used with a different request in the last 24 hours"
                .into(),
        });
    }
    let m = state
        .db
        .message(ws, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the first message vanished"))?;
    Ok(Some(
        (StatusCode::OK, Json(MessageDto::from(m))).into_response(),
    ))
}

/// A stored template must be approved, and body parameters must match its variables.
async fn check_template(state: &AppState, ws: &str, t: &Value) -> Result<(), ApiError> {
    let name = t["name"].as_str().unwrap_or_default();
    let language = t
        .pointer("/language/code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let templates = state.db.templates(ws).await?;
    let Some(stored) = templates
        .iter()
        .find(|x| x.name == name && x.language == language)
    else {
        if templates.iter().any(|x| x.name == name) {
            return Err(invalid(
                "template.language",
                format!("template `{name}` has no `{language}` version"),
            ));
        }
        // Not synced yet: Meta is the judge.
        return Ok(());
    };
    if stored.status != "APPROVED" {
        return Err(ApiError::Unprocessable {
            code: "template_not_approved",
            field: "template.name".into(),
            message: format!(
                "template `{name}` ({language}) is {}, not APPROVED",
                stored.status
            ),
        });
    }
    let components: Value = serde_json::from_str(&stored.components).unwrap_or_default();
    let expected = components
        .as_array()
        .and_then(|c| {
            c.iter().find(|x| {
                x["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("body"))
            })
        })
        .and_then(|b| b["text"].as_str())
        .map(placeholder_count)
        .unwrap_or(0);
    let given = t["components"]
        .as_array()
        .and_then(|c| {
            c.iter().find(|x| {
                x["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("body"))
            })
        })
        .and_then(|b| b["parameters"].as_array())
        .map(Vec::len)
        .unwrap_or(0);
    if expected != given {
        return Err(invalid(
            "template.components",
            format!("template `{name}` has {expected} body variable(s); {given} given"),
        ));
    }
    Ok(())
}

/// Shows "typing…" to the customer while an agent writes (it also marks their last message
/// read). At most one call per conversation every 5 seconds reaches Meta; WhatsApp shows the
/// indicator for about 25 seconds or until the reply.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/typing", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 202, description = "`{\"typing\": true}`, or false with a reason"), (status = 404, body = super::error::ErrorBody)))]
pub async fn typing(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};
    static LAST: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let conv = state
        .db
        .conversation(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    {
        let mut last = LAST
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last
            .get(&conv.id)
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({"typing": false, "reason": "throttled"})),
            ));
        }
        last.retain(|_, t| t.elapsed() < Duration::from_secs(60));
        last.insert(conv.id.clone(), Instant::now());
    }
    let Some((wamid, message_id)) = state.db.newest_inbound(&conv.id).await? else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"typing": false, "reason": "the customer has not written"})),
        ));
    };
    let target = state
        .db
        .job_target(&message_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    let token = state
        .key
        .decrypt(&target.access_token_enc)
        .map_err(ApiError::internal)?;
    match state
        .graph
        .mark_read(&token, &target.phone_number_id, &wamid, true)
        .await
    {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(json!({"typing": true})))),
        Err(e) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"typing": false, "reason": e.advice()})),
        )),
    }
}

/// Marks a conversation read: its unread count goes to zero and Meta shows blue ticks.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ConversationDto>, ApiError> {
    if !state
        .db
        .mark_conversation_read(&caller.workspace_id, &id, true)
        .await?
    {
        return Err(ApiError::NotFound("no such conversation".into()));
    }
    state.outbox.wake();
    state.events.wake(&caller.workspace_id);
    let row = state
        .db
        .conversation(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    Ok(Json(
        conversation_dto(&state, &caller.workspace_id, row).await?,
    ))
}
