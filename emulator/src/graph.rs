//! The Graph API surface: recording, token checks and injected faults (one middleware), then
//! the node (`/{ver}/{id}`) and edge (`/{ver}/{id}/{edge}`) handlers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::GraphError;
use crate::state::{now_rfc3339, numeric_id, AppState, Fault, Media, Store};
use crate::{send, templates, uploads, BODY_LIMIT};

type Params = Query<Vec<(String, String)>>;

/// The emulated Meta app that subscribes to accounts.
const APP_ID: &str = "1000000000000001";
const APP_NAME: &str = "Qontak (Meta emulator)";

/// Records every request, checks the bearer token (401 / code 190 otherwise), and applies the
/// first matching fault before the handler runs.
pub async fn record_auth_and_faults(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return GraphError::invalid_param("The request body is too large.")
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .into_response()
        }
    };
    let json_body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = parts.method.clone();
    let seq = state.with(|s| {
        let seq = s.next_seq();
        s.requests.push(json!({
            "seq": seq,
            "method": method.as_str(),
            "path": path,
            "query": query,
            "authorization": authorization,
            "body": json_body,
            "at": now_rfc3339(),
            "response_status": null,
        }));
        seq
    });
    let finish = |response: Response| {
        state.with(|s| {
            if let Some(r) = s.requests.iter_mut().rev().find(|r| r["seq"] == seq) {
                r["response_status"] = json!(response.status().as_u16());
            }
        });
        response
    };

    // Exchanging an Embedded Signup code needs the app secret, not a token.
    if !path.ends_with("/oauth/access_token") {
        let token = authorization
            .as_deref()
            .and_then(|a| {
                // Upload sessions take `OAuth <token>`, as Meta's Resumable Upload API documents.
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
                    .or_else(|| a.strip_prefix("OAuth "))
            })
            .map(str::trim)
            .map(str::to_string)
            .or_else(|| query_param(query.as_deref(), "access_token"));
        match token {
            None => {
                return finish(
                    GraphError::bad_token("Invalid OAuth access token - Cannot parse access token")
                        .into_response(),
                )
            }
            Some(t) if !state.token_ok(&t) => {
                return finish(
                    GraphError::bad_token(
                        "Error validating access token: The session is invalid or the token was not issued for this app.",
                    )
                    .into_response(),
                )
            }
            Some(_) => {}
        }
    }

    let to = send::recipient_digits(&json_body);
    let is_send =
        method == Method::POST && path.ends_with("/messages") && json_body.get("status").is_none();
    let action = state.with(|s| take_fault(s, &path, to.as_deref(), is_send));
    let drop_fault = match action {
        FaultAction::Respond(error) => return finish(error.into_response()),
        FaultAction::Drop(id) => Some(id),
        FaultAction::None => None,
    };

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    match drop_fault {
        Some(id) if response.status().is_success() => {
            state.with(|s| consume(s, id));
            tracing::info!(path, "dropping the response of an accepted request (fault)");
            finish(lost_response())
        }
        _ => finish(response),
    }
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://q/?{}", query?)).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

enum FaultAction {
    Respond(GraphError),
    Drop(u64),
    None,
}

/// The first fault matching this request: a response fault is used up now, a drop fault once
/// the request was accepted.
fn take_fault(s: &mut Store, path: &str, to: Option<&str>, is_send: bool) -> FaultAction {
    let found = s.faults.iter().find(|f| {
        f.remaining != Some(0)
            && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
            && f.to.as_deref().is_none_or(|t| Some(t) == to)
            && (!f.drop_after_accept || is_send)
    });
    let Some(fault) = found else {
        return FaultAction::None;
    };
    let (id, respond) = (fault.id, fault.respond.clone());
    match respond {
        Some(error) if !fault.drop_after_accept => {
            consume(s, id);
            FaultAction::Respond(error)
        }
        _ => FaultAction::Drop(id),
    }
}

fn consume(s: &mut Store, id: u64) {
    if let Some(f) = s.faults.iter_mut().find(|f| f.id == id) {
        if let Some(n) = f.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
    }
    s.faults.retain(|f: &Fault| f.remaining != Some(0));
}

/// A response whose body fails at once: the server closes the connection without a usable
/// answer, as when a response is lost on the way back.
fn lost_response() -> Response {
    Response::new(Body::new(LostBody))
}

struct LostBody;

impl http_body::Body for LostBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "emulated lost response",
        ))))
    }
}

/// `v25.0`, `v21`, ….
fn is_version(ver: &str) -> bool {
    ver.strip_prefix('v').is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('.').collect();
        parts.len() <= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    })
}

async fn read_body(req: Request) -> Result<Bytes, GraphError> {
    Bytes::from_request(req, &())
        .await
        .map_err(|_| GraphError::invalid_param("The request body could not be read."))
}

fn body_json(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn media_object(state: &AppState, id: &str, media: &Media) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/_emulator/media/{id}/download", state.public_url()),
        "mime_type": media.mime_type,
        // The media node writes `sha256` as hex (webhooks write base64) and `file_size` as a
        // string, as Meta's reference shows.
        "sha256": media.sha256_hex(),
        "file_size": media.bytes.len().to_string(),
        "id": id,
    })
}

fn with_fields(object: Value, fields: Option<&str>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &object) else {
        return object;
    };
    let mut out = serde_json::Map::new();
    for f in fields.split(',').map(str::trim) {
        if let Some(v) = map.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    out.insert("id".into(), map.get("id").cloned().unwrap_or(Value::Null));
    Value::Object(out)
}

/// A phone number node: Meta's default fields, or exactly the fields asked for (and `id`).
fn number_fields(n: &crate::state::Number, fields: Option<&str>) -> Value {
    match fields {
        Some(_) => with_fields(n.graph_object_all_fields(), fields),
        None => n.graph_object(),
    }
}

/// `GET|POST|DELETE /{ver}/{id}`: a phone number, media, template or account node.
pub async fn object(
    State(state): State<Arc<AppState>>,
    Path((ver, id)): Path<(String, String)>,
    method: Method,
    Query(params): Params,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    if !is_version(&ver) {
        return Err(GraphError::unknown_path(&format!("/{ver}/{id}")));
    }
    if id.starts_with("upload:") {
        return match method {
            Method::POST => uploads::append(&state, &id, &headers, &body).map(Json),
            Method::GET => uploads::status(&state, &id)
                .map(Json)
                .ok_or_else(|| GraphError::unknown_object("GET", &id)),
            _ => Err(GraphError::unknown_object(method.as_str(), &id)),
        };
    }
    let fields = param(&params, "fields");
    let number = state.with(|s| s.number(&id).cloned());
    let media = state.with(|s| s.media.get(&id).cloned());
    let template = state.with(|s| s.templates.iter().find(|t| t.field("id") == id).cloned());
    match method {
        Method::GET => {
            if let Some(n) = number {
                return Ok(Json(number_fields(&n, fields)));
            }
            if let Some(m) = media {
                let owner_ok = match (param(&params, "phone_number_id"), &m.phone_number_id) {
                    (Some(asked), Some(owner)) => asked == owner,
                    _ => true,
                };
                if !owner_ok {
                    return Err(GraphError::unknown_object("GET", &id));
                }
                return Ok(Json(media_object(&state, &id, &m)));
            }
            if let Some(t) = template {
                return Ok(Json(templates::project(&t, fields)));
            }
            if state.with(|s| s.knows_waba(&id)) {
                return Ok(Json(with_fields(
                    json!({
                        "id": id,
                        "name": "Test WhatsApp Business Account",
                        "timezone_id": "1",
                        "message_template_namespace": format!("ns_{id}"),
                        "currency": "USD",
                    }),
                    fields,
                )));
            }
            Err(GraphError::unknown_object("GET", &id))
        }
        Method::POST => {
            if template.is_some() {
                return templates::edit(&state, &id, &body_json(&body)).map(Json);
            }
            if number.is_some() {
                // Settings on the number (e.g. `webhook_configuration`): accepted, not used.
                return Ok(Json(json!({"success": true})));
            }
            Err(GraphError::unknown_object("POST", &id))
        }
        _ => {
            let removed = state.with(|s| {
                let owner_ok = match (param(&params, "phone_number_id"), s.media.get(&id)) {
                    (Some(asked), Some(m)) => {
                        m.phone_number_id.as_deref().is_none_or(|o| o == asked)
                    }
                    _ => true,
                };
                owner_ok && s.media.remove(&id).is_some()
            });
            if removed {
                Ok(Json(json!({"success": true})))
            } else {
                Err(GraphError::unknown_object("DELETE", &id))
            }
        }
    }
}

/// `GET|POST|DELETE /{ver}/{id}/{edge}`.
pub async fn edge(
    State(state): State<Arc<AppState>>,
    Path((ver, id, edge)): Path<(String, String, String)>,
    Query(params): Params,
    req: Request,
) -> Result<Response, GraphError> {
    if !is_version(&ver) {
        return Err(GraphError::unknown_path(&format!("/{ver}/{id}/{edge}")));
    }
    let method = req.method().clone();
    let number = state.with(|s| s.number(&id).cloned());
    let waba_known = state.with(|s| s.knows_waba(&id));
    match (method.as_str(), edge.as_str()) {
        ("POST", "messages") => {
            let number = number.ok_or_else(|| GraphError::unknown_object("POST", &id))?;
            send::handle(&state, &number, &body_json(&read_body(req).await?))
        }
        ("POST", "media") => {
            let number = number.ok_or_else(|| GraphError::unknown_object("POST", &id))?;
            let multipart = Multipart::from_request(req, &state).await.map_err(|_| {
                GraphError::invalid_param("The request must be multipart/form-data with a file.")
            })?;
            upload(&state, &number.phone_number_id, multipart)
                .await
                .map(IntoResponse::into_response)
        }
        ("POST", "uploads") => Ok(Json(uploads::start(&state, &params)?).into_response()),
        ("DELETE", "contact_book") => {
            number.ok_or_else(|| GraphError::unknown_object("DELETE", &id))?;
            if param(&params, "messaging_product") != Some("whatsapp") {
                return Err(GraphError::invalid_param(
                    "The parameter messaging_product is required.",
                ));
            }
            if param(&params, "bsuid").is_none_or(str::is_empty) {
                return Err(GraphError::invalid_param(
                    "The parameter bsuid is required.",
                ));
            }
            Ok(Json(json!({"success": true})).into_response())
        }
        ("POST", "register" | "deregister") => {
            number.ok_or_else(|| GraphError::unknown_object("POST", &id))?;
            Ok(Json(json!({"success": true})).into_response())
        }
        (_, "message_templates") => {
            if !waba_known {
                return Err(GraphError::unknown_object(method.as_str(), &id));
            }
            let answer = match method {
                Method::GET => templates::list(&state, &ver, &id, &params)?,
                Method::POST => templates::create(&state, &id, &body_json(&read_body(req).await?))?,
                _ => templates::delete(&state, &id, &params)?,
            };
            Ok(Json(answer).into_response())
        }
        ("GET", "phone_numbers") => {
            if !waba_known {
                return Err(GraphError::unknown_object("GET", &id));
            }
            let fields = param(&params, "fields");
            let data: Vec<Value> = state.with(|s| {
                s.numbers
                    .iter()
                    .filter(|n| n.waba_id == id)
                    .map(|n| number_fields(n, fields))
                    .collect()
            });
            let cursors = json!({"before": "QVFIUmVmb3Jl", "after": "QVFIUmFmdGVy"});
            Ok(Json(json!({"data": data, "paging": {"cursors": cursors}})).into_response())
        }
        (_, "subscribed_apps") => {
            if !waba_known {
                return Err(GraphError::unknown_object(method.as_str(), &id));
            }
            let answer = match method {
                Method::GET => {
                    let sub = state.with(|s| s.subscriptions.get(&id).cloned());
                    let data: Vec<Value> = sub
                        .map(|settings| {
                            let mut entry = json!({"whatsapp_business_api_data": {
                                "id": APP_ID,
                                "link": format!("https://www.facebook.com/games/?app_id={APP_ID}"),
                                "name": APP_NAME,
                            }});
                            if let Some(uri) = settings.get("override_callback_uri") {
                                entry["override_callback_uri"] = uri.clone();
                            }
                            entry
                        })
                        .into_iter()
                        .collect();
                    json!({ "data": data })
                }
                Method::POST => {
                    let mut settings = body_json(&read_body(req).await?);
                    if !settings.is_object() {
                        settings = json!({});
                    }
                    state.with(|s| s.subscriptions.insert(id.clone(), settings));
                    json!({"success": true})
                }
                _ => {
                    state.with(|s| s.subscriptions.remove(&id));
                    json!({"success": true})
                }
            };
            Ok(Json(answer).into_response())
        }
        ("GET", "access_token") if id == "oauth" => {
            exchange_code(&state, &params).map(IntoResponse::into_response)
        }
        (m, _) => {
            if number.is_none() && !waba_known {
                return Err(GraphError::unknown_object(m, &id));
            }
            let node = if number.is_some() {
                "WhatsAppBusinessPhoneNumber"
            } else {
                "WhatsAppBusinessAccount"
            };
            Err(GraphError::new(
                100,
                format!("(#100) Tried accessing nonexisting field ({edge}) on node type ({node})"),
            ))
        }
    }
}

/// `GET /{ver}/oauth/access_token?client_id&client_secret&code` (Embedded Signup).
fn exchange_code(state: &AppState, params: &[(String, String)]) -> Result<Json<Value>, GraphError> {
    if param(params, "client_secret") != Some(state.config.app_secret.as_str()) {
        return Err(GraphError::new(1, "Error validating client secret."));
    }
    if param(params, "code").is_none() {
        return Err(GraphError::invalid_param("The parameter code is required."));
    }
    let token = state
        .config
        .access_tokens
        .first()
        .cloned()
        .unwrap_or_else(|| format!("EAAemulator{}", numeric_id()));
    Ok(Json(json!({"access_token": token, "token_type": "bearer"})))
}

/// `POST /{ver}/{phone_number_id}/media`: multipart `messaging_product`, `type`, `file`.
async fn upload(
    state: &AppState,
    phone_number_id: &str,
    mut multipart: Multipart,
) -> Result<Json<Value>, GraphError> {
    let (mut product, mut kind, mut file) = (None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                return Err(GraphError::invalid_param(
                    "The request must be multipart/form-data with a file.",
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "messaging_product" => product = field.text().await.ok(),
            "type" => kind = field.text().await.ok(),
            "file" => {
                let content_type = field.content_type().map(str::to_string);
                let filename = field.file_name().map(str::to_string);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| GraphError::invalid_param("The file could not be read."))?;
                file = Some((bytes, content_type, filename));
            }
            _ => {}
        }
    }
    if product.as_deref() != Some("whatsapp") {
        return Err(GraphError::invalid_param(
            "The parameter messaging_product is required.",
        ));
    }
    let Some((bytes, content_type, filename)) = file else {
        return Err(GraphError::invalid_param("The parameter file is required."));
    };
    let Some(mime_type) = kind.filter(|k| !k.is_empty()).or(content_type) else {
        return Err(GraphError::invalid_param("The parameter type is required."));
    };
    let id = numeric_id();
    state.with(|s| {
        s.media.insert(
            id.clone(),
            Media {
                bytes,
                mime_type,
                phone_number_id: Some(phone_number_id.to_string()),
                filename,
                corrupt: false,
            },
        )
    });
    Ok(Json(json!({ "id": id })))
}

/// `GET <media url>` with the bearer token: the bytes (different ones once corrupted).
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let media = state
        .with(|s| s.media.get(&id).cloned())
        .ok_or_else(|| GraphError::unknown_object("GET", &id).with_status(StatusCode::NOT_FOUND))?;
    let mut bytes = media.bytes.to_vec();
    if media.corrupt {
        bytes.extend_from_slice(b"\n-- corrupted by the Meta emulator --");
    }
    Ok((
        [
            (header::CONTENT_TYPE, media.mime_type),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_recognised() {
        for v in ["v25.0", "v21.0", "v7", "v100.12"] {
            assert!(is_version(v), "{v}");
        }
        for v in ["25.0", "v", "v1.2.3", "vx", "_emulator", "v1."] {
            assert!(!is_version(v), "{v}");
        }
    }

    fn fault(id: u64, remaining: Option<u64>, drop_after_accept: bool) -> Fault {
        Fault {
            id,
            path_contains: Some("/messages".into()),
            to: None,
            remaining,
            respond: (!drop_after_accept).then(|| GraphError::new(130429, "x")),
            drop_after_accept,
            spec: Value::Null,
        }
    }

    #[test]
    fn response_faults_are_used_up_in_order() {
        let mut s = Store::default();
        s.faults.push(fault(1, Some(2), false));
        for _ in 0..2 {
            assert!(matches!(
                take_fault(&mut s, "/v25.0/1/messages", None, true),
                FaultAction::Respond(_)
            ));
        }
        assert!(matches!(
            take_fault(&mut s, "/v25.0/1/messages", None, true),
            FaultAction::None
        ));
        assert!(s.faults.is_empty());
    }

    #[test]
    fn drop_faults_only_match_sends() {
        let mut s = Store::default();
        s.faults.push(fault(1, None, true));
        assert!(matches!(
            take_fault(&mut s, "/v25.0/1/messages", None, false),
            FaultAction::None
        ));
        assert!(matches!(
            take_fault(&mut s, "/v25.0/1/messages", None, true),
            FaultAction::Drop(1)
        ));
    }
}
