//! The privacy policy's rights, as routes: export (workspace, contact, own account), erasure
//! (workspace, contact, own account), Meta's Data Deletion Request Callback with its public
//! status page, retention settings and their background job, and the audit log's browser.
//! Every export and erasure is recorded in the audit log, without the content it concerns.

use std::io::Write;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use app::server::crypto::{hash_secret, random_secret};
use app::server::db::privacy::{
    AuditFilter, Cursor, ExportTable, Retention, Scope, WORKSPACE_TABLES,
};
use app::server::db::AuditEntry;
use app::server::media::MediaStore;
use app::server::{now_ms, rfc3339, signed_request};

use crate::api::{ApiCaller, ApiError, ApiJson};
use crate::limits::ClientIp;
use crate::AppState;

/// The OpenAPI paths of these routes, merged into the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(export, export_contact, export_me, erase_contact, delete_workspace, delete_me, get_retention, put_retention, audit),
    components(schemas(RetentionDto, DeleteWorkspace)),
    tags((name = "privacy", description = "Data export, erasure, retention and the audit log"))
)]
pub struct PrivacyDoc;

/// Rows per export page: memory stays flat however large the workspace.
const EXPORT_PAGE: i64 = 500;
/// Bytes buffered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;

/// The public routes: Meta's callback and the status page it links to.
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route("/meta/data-deletion", post(data_deletion))
        .route("/meta/data-deletion/{code}", get(deletion_status))
}

// ---- who is asking ----------------------------------------------------------------------

struct Client {
    ip: Option<String>,
    user_agent: Option<String>,
}

fn client(headers: &HeaderMap, ip: Option<axum::Extension<ClientIp>>) -> Client {
    Client {
        ip: ip.map(|i| i.0 .0.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

async fn actor_email(state: &AppState, caller: &ApiCaller) -> String {
    match state.db.user(&caller.user_id).await {
        Ok(Some(u)) => u.email,
        _ => format!("user {}", caller.user_id),
    }
}

/// Appends an audit entry for the caller's workspace.
async fn record(
    state: &AppState,
    caller: &ApiCaller,
    who: &Client,
    workspace_id: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Value,
) -> Result<(), ApiError> {
    let actor = actor_email(state, caller).await;
    state
        .db
        .audit(&AuditEntry {
            workspace_id,
            user_id: Some(&caller.user_id),
            actor: &actor,
            action,
            target,
            detail: &detail.to_string(),
            ip: who.ip.as_deref(),
            user_agent: who.user_agent.as_deref(),
        })
        .await?;
    Ok(())
}

// ---- streaming exports --------------------------------------------------------------------

/// A `Write` whose bytes go to the HTTP body in chunks; it blocks (on a blocking thread) while
/// the client is slow, which is what keeps memory flat.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// What one export covers.
#[derive(Clone)]
struct ExportJob {
    state: AppState,
    workspace_id: String,
    scope: Scope,
}

impl ExportJob {
    /// Writes the export JSON: small parts whole, tables page by page.
    fn write_json(&self, rt: &tokio::runtime::Handle, out: &mut dyn Write) -> std::io::Result<()> {
        let db = &self.state.db;
        let ws = &self.workspace_id;
        write!(
            out,
            "{{\"format\":\"qontak-export/1\",\"exported_at\":{}",
            json!(rfc3339(now_ms()))
        )?;
        if let Scope::Workspace = self.scope {
            let workspace = rt.block_on(db.export_workspace(ws)).map_err(io_err)?;
            write!(out, ",\"workspace\":{}", json!(workspace))?;
            let members = rt.block_on(db.export_members(ws)).map_err(io_err)?;
            write!(out, ",\"members\":{}", json!(members))?;
            let numbers = rt.block_on(db.export_numbers(ws)).map_err(io_err)?;
            write!(out, ",\"numbers\":{}", json!(numbers))?;
        }
        for table in WORKSPACE_TABLES {
            if matches!(self.scope, Scope::Contact(_))
                && !matches!(
                    table.name,
                    "contacts" | "conversations" | "messages" | "media"
                )
            {
                continue;
            }
            write!(out, ",\"{}\":[", table.key)?;
            let mut first = true;
            self.each_row(rt, table, |row| {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                serde_json::to_writer(&mut *out, row).map_err(io_err)
            })?;
            out.write_all(b"]")?;
        }
        out.write_all(b"}")?;
        Ok(())
    }

    fn each_row(
        &self,
        rt: &tokio::runtime::Handle,
        table: &ExportTable,
        mut f: impl FnMut(&Value) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut cursor = Cursor::start(table);
        loop {
            let (rows, next) = rt
                .block_on(self.state.db.export_page(
                    table,
                    &self.workspace_id,
                    &self.scope,
                    &cursor,
                    EXPORT_PAGE,
                ))
                .map_err(io_err)?;
            for row in &rows {
                f(row)?;
            }
            match next {
                Some(c) => cursor = c,
                None => return Ok(()),
            }
        }
    }

    /// `contacts.csv`: one line per contact.
    fn write_csv(&self, rt: &tokio::runtime::Handle, out: &mut dyn Write) -> std::io::Result<()> {
        const COLUMNS: [&str; 10] = [
            "id",
            "wa_id",
            "bsuid",
            "phone",
            "username",
            "profile_name",
            "name",
            "attributes",
            "created_at",
            "updated_at",
        ];
        writeln!(out, "{}", COLUMNS.join(","))?;
        let table = WORKSPACE_TABLES
            .iter()
            .find(|t| t.name == "contacts")
            .expect("contacts");
        self.each_row(rt, table, |row| {
            let line: Vec<String> = COLUMNS
                .iter()
                .map(|c| match &row[*c] {
                    Value::Null => String::new(),
                    Value::String(s) => csv_field(s),
                    other => csv_field(&other.to_string()),
                })
                .collect();
            writeln!(out, "{}", line.join(","))
        })
    }

    /// The zip: `export.json`, `contacts.csv` and every stored media file.
    fn write_zip(
        &self,
        rt: &tokio::runtime::Handle,
        out: ChannelWriter,
    ) -> std::io::Result<ChannelWriter> {
        use zip::write::SimpleFileOptions;
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        let mut zip = zip::ZipWriter::new_stream(out);
        zip.start_file("export.json", options).map_err(io_err)?;
        self.write_json(rt, &mut zip)?;
        zip.start_file("contacts.csv", options).map_err(io_err)?;
        self.write_csv(rt, &mut zip)?;
        let mut after = String::new();
        loop {
            let files = rt
                .block_on(self.state.db.export_media_files(
                    &self.workspace_id,
                    &self.scope,
                    &after,
                    EXPORT_PAGE,
                ))
                .map_err(io_err)?;
            let Some(last) = files.last() else { break };
            after = last.0.clone();
            for (media_id, message_id, filename, key) in &files {
                let Ok(bytes) = self.state.media.get(key) else {
                    continue;
                };
                let name = filename
                    .as_deref()
                    .map(safe_name)
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| media_id.clone());
                let stored = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .large_file(true);
                let dir = if message_id.is_empty() {
                    "uploads"
                } else {
                    message_id.as_str()
                };
                zip.start_file(format!("media/{dir}/{name}"), stored)
                    .map_err(io_err)?;
                zip.write_all(&bytes)?;
            }
        }
        let stream = zip.finish().map_err(io_err)?;
        Ok(stream.into_inner())
    }
}

/// A filename safe inside a zip: no folders, no control characters.
fn safe_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if matches!(c, '/' | '\\' | ':') {
                '_'
            } else {
                c
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .chars()
        .take(120)
        .collect()
}

/// One CSV field (RFC 4180), with a leading formula character neutralised for spreadsheets.
pub fn csv_field(s: &str) -> String {
    let formula = s.starts_with(['=', '@', '\t', '\r'])
        || (s.starts_with(['+', '-']) && !s[1..].starts_with(|c: char| c.is_ascii_digit()));
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Starts the export on a blocking thread and answers its stream.
fn stream_export(job: ExportJob, zip: bool, filename: &str) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = if zip {
            job.write_zip(&rt, out).and_then(|mut w| w.flush())
        } else {
            job.write_json(&rt, &mut out).and_then(|_| out.flush())
        };
        if let Err(e) = result {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "export failed midway");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    // `poll_recv` keeps answering `None` once the channel is done, however often the body is
    // polled after its end (an `unfold` stream panics then).
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let (content_type, ext) = if zip {
        ("application/zip", "zip")
    } else {
        ("application/json", "json")
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

fn wants_zip(q: &ExportQuery) -> Result<bool, ApiError> {
    match q.format.as_deref() {
        None | Some("json") => Ok(false),
        Some("zip") => Ok(true),
        Some(_) => Err(ApiError::BadRequest("format is json or zip".into())),
    }
}

/// `GET /api/v1/export[?format=zip]`: everything the workspace holds (admins).
#[utoipa::path(get, path = "/api/v1/export", tag = "privacy", security(("bearer" = [])),
    params(("format" = Option<String>, Query, description = "json (default) or zip")),
    responses((status = 200, description = "the export, streamed", content_type = "application/json"),
        (status = 400, body = crate::api::error::ErrorBody), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let zip = wants_zip(&q)?;
    let who = client(&headers, ip);
    start_export(state, &caller, &who, Scope::Workspace, zip).await
}

/// Records the export in the audit log and starts streaming it.
async fn start_export(
    state: AppState,
    caller: &ApiCaller,
    who: &Client,
    scope: Scope,
    zip: bool,
) -> Result<Response, ApiError> {
    let (name, target, filename) = match &scope {
        Scope::Workspace => ("workspace", None, "qontak-export"),
        Scope::Contact(id) => ("contact", Some(id.as_str()), "qontak-contact-export"),
    };
    let format = if zip { "zip" } else { "json" };
    record(
        &state,
        caller,
        who,
        Some(&caller.workspace_id),
        "data.exported",
        target,
        json!({"scope": name, "format": format}),
    )
    .await?;
    let job = ExportJob {
        state,
        workspace_id: caller.workspace_id.clone(),
        scope,
    };
    Ok(stream_export(job, zip, filename))
}

/// `GET /api/v1/contacts/{id}/export[?format=zip]`: one customer's data (admins).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/export", tag = "privacy", security(("bearer" = [])),
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "json (default) or zip")),
    responses((status = 200, description = "the contact's data, streamed", content_type = "application/json"),
        (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn export_contact(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let zip = wants_zip(&q)?;
    contact_exists(&state, &caller.workspace_id, &id).await?;
    let who = client(&headers, ip);
    start_export(state, &caller, &who, Scope::Contact(id), zip).await
}

async fn contact_exists(state: &AppState, workspace_id: &str, id: &str) -> Result<(), ApiError> {
    let table = WORKSPACE_TABLES
        .iter()
        .find(|t| t.name == "contacts")
        .expect("contacts");
    let (rows, _) = state
        .db
        .export_page(
            table,
            workspace_id,
            &Scope::Contact(id.to_string()),
            &Cursor::start(table),
            1,
        )
        .await?;
    if rows.is_empty() {
        Err(ApiError::NotFound("contact not found".into()))
    } else {
        Ok(())
    }
}

/// `GET /api/v1/me/export`: the caller's own account data.
#[utoipa::path(get, path = "/api/v1/me/export", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, description = "the caller's account data", body = Object)))]
pub async fn export_me(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
) -> Result<Response, ApiError> {
    let who = client(&headers, ip);
    record(
        &state,
        &caller,
        &who,
        Some(&caller.workspace_id),
        "data.exported",
        None,
        json!({"scope": "account"}),
    )
    .await?;
    let data = state.db.export_user(&caller.user_id).await?;
    Ok((
        [
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"qontak-account.json\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Json(data),
    )
        .into_response())
}

// ---- erasure ------------------------------------------------------------------------------

fn remove_files(media: &dyn MediaStore, keys: &[String]) -> usize {
    let mut failed = 0;
    for key in keys {
        if let Err(e) = media.delete(key) {
            failed += 1;
            tracing::warn!(error = %e, "a media file could not be removed");
        }
    }
    failed
}

/// `POST /api/v1/contacts/{id}/erase`: a customer's contact, messages and media, gone (admins);
/// when the contact has a business-scoped user id, each number's contact-book entry at Meta too
/// (`meta_contact_book` lists Meta's answer per number).
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "privacy", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "what was erased", body = Object),
        (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn erase_contact(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let bsuid = state
        .db
        .contact(&caller.workspace_id, &id)
        .await?
        .and_then(|c| c.bsuid);
    let (files, messages) = state
        .db
        .erase_contact(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("contact not found".into()))?;
    remove_files(state.media.as_ref(), &files);
    // Meta's contact book of each number keeps a business-scoped user it knows; ask Meta to
    // forget it too. Our copy is gone whatever Meta answers; the answer says which failed.
    let mut contact_book = Vec::new();
    if let Some(bsuid) = &bsuid {
        for n in state.db.numbers(&caller.workspace_id).await? {
            let outcome = match state.db.number_access_token_enc(&n.id).await? {
                Some(enc) => match state.key.decrypt(&enc) {
                    Ok(token) => state
                        .graph
                        .delete_contact_book_entry(&token, &n.phone_number_id, bsuid)
                        .await
                        .map_err(|e| e.advice()),
                    Err(_) => Err("the number's access token cannot be decrypted".to_string()),
                },
                None => Err("the number has no connection".to_string()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(number_id = %n.id, error = %e, "removing a contact-book entry at Meta failed");
            }
            contact_book.push(json!({
                "number_id": n.id,
                "removed": outcome.is_ok(),
                "error": outcome.err(),
            }));
        }
    }
    let who = client(&headers, ip);
    let detail = json!({"messages": messages, "media_files": files.len(), "meta_contact_book": contact_book.len()});
    record(
        &state,
        &caller,
        &who,
        Some(&caller.workspace_id),
        "contact.erased",
        Some(&id),
        detail.clone(),
    )
    .await?;
    Ok(Json(
        json!({"erased": true, "contact_id": id, "messages": messages, "media_files": files.len(),
            "meta_contact_book": contact_book}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteWorkspace {
    /// The workspace's name, typed to confirm.
    confirm: String,
}

/// Deletes a workspace with everything of it, then unsubscribes the app from its WABAs.
async fn delete_workspace_data(
    state: &AppState,
    workspace_id: &str,
) -> Result<(usize, u64, usize), ApiError> {
    let connections = state.db.workspace_connections(workspace_id).await?;
    let (files, messages) = state.db.delete_workspace(workspace_id).await?;
    remove_files(state.media.as_ref(), &files);
    let mut unsubscribed = 0;
    for (waba, token_enc) in connections {
        let Ok(token) = state.key.decrypt(&token_enc) else {
            continue;
        };
        match state.graph.unsubscribe_app(&token, &waba).await {
            Ok(()) => unsubscribed += 1,
            Err(e) => tracing::warn!(error = %e, "unsubscribing the app from a WABA failed"),
        }
    }
    Ok((files.len(), messages, unsubscribed))
}

/// `DELETE /api/v1/workspace`: the whole workspace, after its name is typed (admins).
#[utoipa::path(delete, path = "/api/v1/workspace", tag = "privacy", security(("bearer" = [])), request_body = DeleteWorkspace,
    responses((status = 200, description = "deleted", body = Object), (status = 403, body = crate::api::error::ErrorBody),
        (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    ApiJson(body): ApiJson<DeleteWorkspace>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let workspace = state
        .db
        .workspace(&caller.workspace_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("workspace not found".into()))?;
    if body.confirm != workspace.name {
        return Err(ApiError::Unprocessable {
            code: "confirmation_mismatch",
            field: "confirm".into(),
            message: "type the workspace's exact name to confirm".into(),
        });
    }
    let (files, messages, unsubscribed) = delete_workspace_data(&state, &workspace.id).await?;
    let who = client(&headers, ip);
    // Kept outside the deleted workspace, naming nothing of it.
    record(
        &state,
        &caller,
        &who,
        None,
        "workspace.deleted",
        None,
        json!({"messages": messages, "media_files": files, "wabas_unsubscribed": unsubscribed}),
    )
    .await?;
    Ok(Json(
        json!({"deleted": true, "messages": messages, "media_files": files, "wabas_unsubscribed": unsubscribed}),
    ))
}

/// `DELETE /api/v1/me`: the caller's account. Workspaces where they are the only member go
/// with it; one where they are the only admin of other members must get another admin first.
#[utoipa::path(delete, path = "/api/v1/me", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, description = "deleted", body = Object), (status = 409, body = crate::api::error::ErrorBody)))]
pub async fn delete_me(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Response, ApiError> {
    let owned = state.db.sole_admin_workspaces(&caller.user_id).await?;
    if owned.iter().any(|(_, members)| *members > 1) {
        return Err(ApiError::Conflict {
            code: "sole_admin",
            message: "you are the only admin of a workspace with other members: make someone else admin first".into(),
        });
    }
    let mut workspaces = 0;
    for (ws, _) in &owned {
        delete_workspace_data(&state, ws).await?;
        workspaces += 1;
    }
    state.db.delete_user(&caller.user_id).await?;
    state
        .db
        .audit(&AuditEntry {
            actor: "deleted user",
            action: "account.deleted",
            detail: &json!({"workspaces_deleted": workspaces}).to_string(),
            ..Default::default()
        })
        .await?;
    // The record names no one: the account is gone.
    let cookie = app::server::session::clear_cookie(state.site.secure_cookies);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"deleted": true, "workspaces_deleted": workspaces})),
    )
        .into_response())
}

// ---- Meta's data deletion callback -----------------------------------------------------------

#[derive(Deserialize)]
struct DeletionForm {
    #[serde(default)]
    signed_request: String,
}

fn deletion_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// `POST /meta/data-deletion`: Meta asks us to delete what we hold of an app-scoped user.
async fn data_deletion(State(state): State<AppState>, request: Request) -> Response {
    let Some(secret) = state.meta.app_secret.clone() else {
        return ApiError::Unavailable("META_APP_SECRET is not set".into()).into_response();
    };
    let form = match Form::<DeletionForm>::from_request(request, &state).await {
        Ok(Form(f)) => f,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::PayloadTooLarge("the request body is too large".into())
                .into_response()
        }
        Err(e) => {
            return deletion_error(
                e.status(),
                "bad_request",
                "send signed_request as a form field",
            )
        }
    };
    let parsed =
        match signed_request::parse(&form.signed_request, secret.as_bytes(), now_ms() / 1000) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(reason = e.code(), "data deletion request refused");
                let status = match e {
                    signed_request::SignedRequestError::BadSignature => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::BAD_REQUEST,
                };
                return deletion_error(status, e.code(), &e.to_string());
            }
        };
    let (files, contacts) = match state.db.erase_meta_user(&parsed.user_id).await {
        Ok(r) => r,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    remove_files(state.media.as_ref(), &files);
    let code: String = random_secret("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    if let Err(e) = state
        .db
        .record_deletion_request(&code, &hash_secret(&parsed.user_id), contacts)
        .await
    {
        return ApiError::internal(e).into_response();
    }
    let _ = state
        .db
        .audit(&AuditEntry {
            actor: "meta",
            action: "meta.data_deletion",
            target: Some(&code),
            detail: &json!({"contacts_erased": contacts}).to_string(),
            ..Default::default()
        })
        .await;
    tracing::info!(contacts, "data deletion request completed");
    Json(json!({
        "url": format!("{}/meta/data-deletion/{code}", state.site.public_url),
        "confirmation_code": code,
    }))
    .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /meta/data-deletion/{code}`: the public status page of a deletion request.
async fn deletion_status(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let row = if code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric()) {
        state.db.deletion_request(&code).await.ok().flatten()
    } else {
        None
    };
    let company = escape(&state.site.company_name);
    let (status, body) = match row {
        Some(r) => (
            StatusCode::OK,
            format!(
                "<h1>Data deletion request</h1><p>Confirmation code: <code>{}</code></p>\
                 <p>Received: {}</p><p>Status: <strong>{}</strong>{}</p>\
                 <p>{} record(s) linked to this Meta user were erased from {company}.</p>",
                escape(&r.code),
                rfc3339(r.created_at),
                escape(&r.status),
                r.completed_at
                    .map(|t| format!(" on {}", rfc3339(t)))
                    .unwrap_or_default(),
                r.erased,
            ),
        ),
        None => (
            StatusCode::NOT_FOUND,
            "<h1>Unknown confirmation code</h1><p>No data deletion request has this code.</p>"
                .to_string(),
        ),
    };
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data deletion · {company}</title></head>\
             <body>{body}</body></html>"
        )),
    )
        .into_response()
}

// ---- retention ------------------------------------------------------------------------------

/// `GET /api/v1/settings/retention` (admins).
#[utoipa::path(get, path = "/api/v1/settings/retention", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, body = RetentionDto), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn get_retention(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<RetentionDto>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.db.retention(&caller.workspace_id).await?.into()))
}

/// Retention in days; `null` keeps forever (messages, media).
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionDto {
    pub messages_days: Option<i64>,
    pub media_days: Option<i64>,
    pub webhook_events_days: i64,
    pub audit_days: i64,
    pub audit_ip_days: i64,
}

impl From<Retention> for RetentionDto {
    fn from(r: Retention) -> Self {
        RetentionDto {
            messages_days: r.messages_days,
            media_days: r.media_days,
            webhook_events_days: r.webhook_events_days,
            audit_days: r.audit_days,
            audit_ip_days: r.audit_ip_days,
        }
    }
}

/// `PUT /api/v1/settings/retention` (admins): each value 1..=36500 days.
#[utoipa::path(put, path = "/api/v1/settings/retention", tag = "privacy", security(("bearer" = [])), request_body = RetentionDto,
    responses((status = 200, body = RetentionDto), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn put_retention(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    ApiJson(body): ApiJson<RetentionDto>,
) -> Result<Json<RetentionDto>, ApiError> {
    caller.require_admin()?;
    let check = |field: &str, v: Option<i64>| match v {
        Some(d) if !(1..=36_500).contains(&d) => Err(ApiError::Unprocessable {
            code: "validation_failed",
            field: field.into(),
            message: format!("{field} must be between 1 and 36500 days"),
        }),
        _ => Ok(()),
    };
    check("messages_days", body.messages_days)?;
    check("media_days", body.media_days)?;
    check("webhook_events_days", Some(body.webhook_events_days))?;
    check("audit_days", Some(body.audit_days))?;
    check("audit_ip_days", Some(body.audit_ip_days))?;
    let r = Retention {
        messages_days: body.messages_days,
        media_days: body.media_days,
        webhook_events_days: body.webhook_events_days,
        audit_days: body.audit_days,
        audit_ip_days: body.audit_ip_days,
    };
    state.db.set_retention(&caller.workspace_id, &r).await?;
    let who = client(&headers, ip);
    record(
        &state,
        &caller,
        &who,
        Some(&caller.workspace_id),
        "settings.retention_changed",
        None,
        json!(body),
    )
    .await?;
    Ok(Json(r.into()))
}

/// One retention pass at `now` (ms): rows deleted in batches, then their media files.
pub async fn run_retention(
    state: &AppState,
    now: i64,
) -> Result<app::server::db::privacy::Swept, ApiError> {
    let swept = state.db.apply_retention(now).await?;
    remove_files(state.media.as_ref(), &swept.files);
    Ok(swept)
}

/// Runs retention every `every` in the background.
pub fn start_retention(state: AppState, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match run_retention(&state, now_ms()).await {
                Ok(s) => tracing::debug!(
                    messages = s.messages,
                    media = s.media,
                    webhook_events = s.webhook_events,
                    audit = s.audit,
                    "retention pass"
                ),
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    });
}

// ---- audit browser ----------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn time_param(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| ApiError::BadRequest(format!("{field} must be an RFC 3339 time")))
}

/// `GET /api/v1/audit`: the workspace's audit log, newest first (admins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "privacy", security(("bearer" = [])),
    params(("actor" = Option<String>, Query), ("action" = Option<String>, Query, description = "an action, or its prefix such as auth"),
        ("since" = Option<String>, Query), ("until" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "`{data, next_cursor}`", body = Object), (status = 400, body = crate::api::error::ErrorBody),
        (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::BadRequest("limit must be a positive number".into()))?
            .min(200),
    };
    let before_id = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))?,
        ),
    };
    let filter = AuditFilter {
        actor: q.actor.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        before_id,
        limit,
    };
    let rows = state.db.audit_search(&caller.workspace_id, &filter).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id.to_string(), "actor": r.actor, "user_id": r.user_id, "action": r.action, "target": r.target,
                "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
                "ip": r.ip, "user_agent": r.user_agent, "created_at": rfc3339(r.created_at),
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("+6281234"), "+6281234");
        assert_eq!(csv_field("-x"), "'-x");
    }

    #[test]
    fn zip_names_cannot_climb() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("photo.jpg"), "photo.jpg");
    }
}
