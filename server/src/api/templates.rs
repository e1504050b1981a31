//! Message templates of the workspace's WhatsApp Business Accounts: list (`GET`), create
//! (`POST`, checked with the shared validation first), edit (`PATCH /{name}`, within Meta's
//! rules), delete (`DELETE /{name}`, every language or `?language=` one), sync from Meta (`POST /sync`) and media-header samples
//! (`POST /media`, through Meta's Resumable Upload API). All but the list are admin-only.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use app::server::db::read::TemplateRow;
use app::server::db::templates::WabaConnection;
use app::server::graph::GraphError;
use app::server::rfc3339;
use app::server::templates::{from_meta, is_sample, sync_connection, wake};
use app::templates::validate::validate_json;

use super::{ApiCaller, ApiError, ApiJson};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateDto {
    pub id: String,
    pub waba_id: String,
    /// Meta's template id.
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub category: Option<String>,
    /// As Meta writes it: `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, …
    pub status: String,
    pub parameter_format: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
    pub quality_score: Option<String>,
    pub rejected_reason: Option<String>,
    /// Meta's advice with a rejection, when it gave one.
    pub rejection_recommendation: Option<String>,
    /// One of Meta's sample templates (`hello_world`, `sample_…`).
    pub sample: bool,
    pub updated_at: String,
}

impl From<TemplateRow> for TemplateDto {
    fn from(t: TemplateRow) -> Self {
        TemplateDto {
            components: serde_json::from_str(&t.components).unwrap_or(Value::Array(vec![])),
            updated_at: rfc3339(t.updated_at),
            sample: is_sample(&t.name),
            id: t.id,
            waba_id: t.waba_id,
            meta_id: t.meta_template_id,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            parameter_format: t.parameter_format,
            quality_score: t.quality_score,
            rejected_reason: t.rejected_reason,
            rejection_recommendation: t.rejection_recommendation,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub data: Vec<TemplateDto>,
    pub next_cursor: Option<String>,
}

/// Optional filters of the list.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListFilter {
    pub status: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub waba_id: Option<String>,
    /// `false` leaves out Meta's sample templates.
    pub samples: Option<bool>,
}

/// The workspace's templates, by name and language.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    params(ListFilter),
    responses((status = 200, body = TemplateList), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<ListFilter>,
) -> Result<Json<TemplateList>, ApiError> {
    let eq = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    let data = state
        .db
        .templates(&caller.workspace_id)
        .await?
        .into_iter()
        .filter(|t| {
            eq(&filter.status, Some(&t.status))
                && eq(&filter.category, t.category.as_deref())
                && eq(&filter.language, Some(&t.language))
                && eq(&filter.waba_id, Some(&t.waba_id))
                && (filter.samples != Some(false) || !is_sample(&t.name))
        })
        .map(TemplateDto::from)
        .collect();
    Ok(Json(TemplateList {
        data,
        next_cursor: None,
    }))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    }
}

/// The account a call is about: the one named, or the only one.
async fn connection(
    state: &AppState,
    workspace_id: &str,
    waba_id: Option<&str>,
) -> Result<(WabaConnection, String), ApiError> {
    let all = state.db.waba_connections(workspace_id).await?;
    let chosen = match waba_id {
        Some(w) => all
            .into_iter()
            .find(|c| c.waba_id == w)
            .ok_or_else(|| ApiError::NotFound("no such WhatsApp Business Account".into()))?,
        None => match all.len() {
            0 => {
                return Err(invalid(
                    "waba_id",
                    "connect a WhatsApp number before managing templates",
                ))
            }
            1 => all.into_iter().next().expect("one"),
            _ => return Err(invalid(
                "waba_id",
                "this workspace has several WhatsApp Business Accounts: name one with `waba_id`",
            )),
        },
    };
    let token = state
        .key
        .decrypt(&chosen.access_token_enc)
        .map_err(ApiError::internal)?;
    Ok((chosen, token))
}

/// Meta's refusal in plain words: a duplicate is a conflict, a refused field a 422.
fn meta_error(e: GraphError) -> ApiError {
    match &e {
        GraphError::Meta {
            code: 100,
            subcode: Some(2388024),
            ..
        } => ApiError::Conflict {
            code: "template_exists",
            message: "a template with this name already exists in this language; choose another name or language".into(),
        },
        GraphError::Meta {
            code: 100,
            subcode: Some(2388023),
            ..
        } => ApiError::Conflict {
            code: "template_name_unavailable",
            message: "a template of this name is being deleted; Meta lets the name be reused after 30 days".into(),
        },
        GraphError::Meta { code: 190, .. } => ApiError::Unprocessable {
            code: "meta_token_invalid",
            field: "waba_id".into(),
            message: e.advice(),
        },
        GraphError::Meta {
            status,
            message,
            details,
            user_message,
            ..
        } if *status < 500 && !e.retryable() => ApiError::Unprocessable {
            code: "meta_rejected",
            field: "template".into(),
            message: format!(
                "Meta refused it: {}",
                user_message
                    .clone()
                    .or_else(|| details.clone())
                    .unwrap_or_else(|| message.clone())
            ),
        },
        _ => ApiError::Unavailable(format!("Meta could not be reached or failed: {e}")),
    }
}

/// Creates a template at Meta: Meta's create body (`name`, `language`, `category`,
/// `parameter_format`?, `components`) plus `waba_id` when the workspace has several accounts.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    request_body(content = Object, description = "Meta's create body plus `waba_id` when the workspace has several accounts"),
    responses((status = 201, body = TemplateDto), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<TemplateDto>), ApiError> {
    caller.require_admin()?;
    let Value::Object(mut body) = body else {
        return Err(invalid("body", "send Meta's template object"));
    };
    let waba_id = match body.remove("waba_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(w)) => Some(w),
        Some(_) => return Err(invalid("waba_id", "`waba_id` is a string")),
    };
    let body = Value::Object(body);
    if let Some(first) = validate_json(&body.to_string()).into_iter().next() {
        return Err(invalid(&first.field, first.message));
    }
    let (conn, token) = connection(&state, &caller.workspace_id, waba_id.as_deref()).await?;
    let answer = state
        .graph
        .create_template(&token, &conn.waba_id, &body)
        .await
        .map_err(meta_error)?;
    let mut object = body.clone();
    for key in ["id", "status", "category"] {
        if let Some(v) = answer.get(key) {
            object[key] = v.clone();
        }
    }
    let stored =
        from_meta(&object).ok_or_else(|| invalid("name", "name and language are required"))?;
    let id = state
        .db
        .upsert_template(&caller.workspace_id, &conn.waba_id, &stored)
        .await?;
    wake(&state.db, &state.events, &caller.workspace_id).await;
    let row = state
        .db
        .template(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("template".into()))?;
    Ok((StatusCode::CREATED, Json(TemplateDto::from(row))))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// Delete only this language.
    pub language: Option<String>,
}

/// Deletes a template at Meta: every language, or `?language=` one.
#[utoipa::path(delete, path = "/api/v1/templates/{name}", tag = "templates", security(("bearer" = [])),
    params(("name" = String, Path), DeleteQuery),
    responses((status = 200, description = "`{\"deleted\": N}`"), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let rows = state
        .db
        .templates_named(&caller.workspace_id, &name, q.language.as_deref())
        .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("no such template".into()));
    }
    let mut wabas: Vec<&str> = rows.iter().map(|r| r.waba_id.as_str()).collect();
    wabas.sort_unstable();
    wabas.dedup();
    for waba in wabas {
        let (conn, token) = connection(&state, &caller.workspace_id, Some(waba)).await?;
        let targets: Vec<Option<&str>> = match &q.language {
            None => vec![None],
            Some(_) => rows
                .iter()
                .filter(|r| r.waba_id == waba)
                .map(|r| r.meta_template_id.as_deref())
                .collect(),
        };
        for hsm_id in targets {
            match state
                .graph
                .delete_template(&token, &conn.waba_id, &name, hsm_id)
                .await
            {
                Ok(()) => {}
                // Already gone at Meta: remove our copy too.
                Err(GraphError::Meta {
                    status: 404,
                    code: 100,
                    ..
                }) => {}
                Err(e) => return Err(meta_error(e)),
            }
        }
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    state
        .db
        .delete_templates(&caller.workspace_id, &ids)
        .await?;
    wake(&state.db, &state.events, &caller.workspace_id).await;
    Ok(Json(json!({ "deleted": ids.len() })))
}

/// An edit: the whole new set of `components` (Meta replaces them all), and `category` for a
/// rejected or paused template. `language` (and `waba_id`) pick the template when the name has
/// several.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TemplateEdit {
    pub language: Option<String>,
    pub waba_id: Option<String>,
    pub category: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub components: Value,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Edits a template at Meta (`POST /{template-id}`), after the checks Meta would make: only an
/// approved, rejected or paused template; an approved one keeps its category and may be edited
/// once per 24 hours and ten times per 30 days; the new content passes the same validation as a
/// create. The template goes back to `PENDING` while Meta reviews it.
#[utoipa::path(patch, path = "/api/v1/templates/{name}", tag = "templates", security(("bearer" = [])),
    params(("name" = String, Path)),
    request_body = TemplateEdit,
    responses((status = 200, body = TemplateDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TemplateEdit>,
) -> Result<Json<TemplateDto>, ApiError> {
    caller.require_admin()?;
    let rows: Vec<TemplateRow> = state
        .db
        .templates_named(&caller.workspace_id, &name, body.language.as_deref())
        .await?
        .into_iter()
        .filter(|t| body.waba_id.as_deref().is_none_or(|w| t.waba_id == w))
        .collect();
    let t = match rows.len() {
        0 => return Err(ApiError::NotFound("no such template".into())),
        1 => rows.into_iter().next().expect("one"),
        _ => {
            return Err(invalid(
                "language",
                "this template exists in several languages (or accounts): say which with `language` (and `waba_id`)",
            ))
        }
    };
    let status = t.status.to_ascii_uppercase();
    if !matches!(status.as_str(), "APPROVED" | "REJECTED" | "PAUSED") {
        return Err(ApiError::Conflict {
            code: "template_not_editable",
            message: format!(
                "Meta lets only approved, rejected or paused templates be edited; this one is {status}"
            ),
        });
    }
    let category = body
        .category
        .as_deref()
        .map(str::to_ascii_uppercase)
        .filter(|c| Some(c.as_str()) != t.category.as_deref());
    if category.is_some() && status == "APPROVED" {
        return Err(invalid(
            "category",
            "the category of an approved template cannot change; create a new template instead",
        ));
    }
    if status == "APPROVED" {
        let now = app::server::now_ms();
        let edits = state
            .db
            .approved_template_edits_since(&caller.workspace_id, &t.id, now - 30 * DAY_MS)
            .await?;
        if let Some(last) = edits.last().filter(|&&at| at > now - DAY_MS) {
            return Err(ApiError::Conflict {
                code: "template_edit_limit",
                message: format!(
                    "Meta allows an approved template one edit per 24 hours; the next edit is possible after {}",
                    rfc3339(last + DAY_MS)
                ),
            });
        }
        if edits.len() >= 10 {
            return Err(ApiError::Conflict {
                code: "template_edit_limit",
                message: format!(
                    "Meta allows an approved template ten edits per 30 days; the next edit is possible after {}",
                    rfc3339(edits[edits.len() - 10] + 30 * DAY_MS)
                ),
            });
        }
    }
    if !body.components.is_array() {
        return Err(invalid(
            "components",
            "`components` is the whole new list of components",
        ));
    }
    // The same validation as a create, on the template as it would be after the edit.
    let mut whole = json!({
        "name": t.name,
        "language": t.language,
        "category": category.clone().or(t.category.clone()),
        "components": body.components,
    });
    if let Some(f) = &t.parameter_format {
        whole["parameter_format"] = json!(f);
    }
    if let Some(first) = validate_json(&whole.to_string()).into_iter().next() {
        return Err(invalid(&first.field, first.message));
    }
    let Some(meta_id) = t
        .meta_template_id
        .clone()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Err(ApiError::Conflict {
            code: "template_not_synced",
            message: "Meta's id of this template is not known yet: sync the templates first".into(),
        });
    };
    let (_, token) = connection(&state, &caller.workspace_id, Some(&t.waba_id)).await?;
    let mut graph_body = json!({ "components": body.components });
    if let Some(c) = &category {
        graph_body["category"] = json!(c);
    }
    state
        .graph
        .edit_template(&token, &meta_id, &graph_body)
        .await
        .map_err(meta_error)?;
    state
        .db
        .record_template_edit(
            &caller.workspace_id,
            &t.id,
            &status,
            category.as_deref(),
            &body.components.to_string(),
        )
        .await?;
    wake(&state.db, &state.events, &caller.workspace_id).await;
    let row = state
        .db
        .template(&caller.workspace_id, &t.id)
        .await?
        .ok_or_else(|| ApiError::NotFound("template".into()))?;
    Ok(Json(TemplateDto::from(row)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SyncQuery {
    /// Sync only this account.
    pub waba_id: Option<String>,
}

/// Fetches every template of the workspace's accounts from Meta (all pages) and stores them;
/// answers how many Meta listed.
#[utoipa::path(post, path = "/api/v1/templates/sync", tag = "templates", security(("bearer" = [])),
    params(SyncQuery),
    responses((status = 200, description = "`{\"synced\": N}`"), (status = 403, body = super::error::ErrorBody)))]
pub async fn sync(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<SyncQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let connections: Vec<WabaConnection> = state
        .db
        .waba_connections(&caller.workspace_id)
        .await?
        .into_iter()
        .filter(|c| q.waba_id.as_deref().is_none_or(|w| w == c.waba_id))
        .collect();
    if q.waba_id.is_some() && connections.is_empty() {
        return Err(ApiError::NotFound(
            "no such WhatsApp Business Account".into(),
        ));
    }
    let mut synced = 0;
    for c in &connections {
        synced += sync_connection(&state.db, &state.graph, &state.key, &state.events, c)
            .await
            .map_err(|e| match e {
                app::server::templates::SyncError::Graph(g) => meta_error(g),
                other => ApiError::internal(other),
            })?;
    }
    Ok(Json(json!({ "synced": synced })))
}

/// The types Meta's upload sessions accept for header samples.
const SAMPLE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "video/mp4", "application/pdf"];
/// Header samples are small; Meta's own limit for a video header is 16 MB.
pub const MAX_SAMPLE_BYTES: usize = 16 * 1024 * 1024;

/// Uploads a media header's sample (multipart `file`, optional `waba_id`) through Meta's
/// Resumable Upload API; answers `{"handle"}` for `example.header_handle`.
#[utoipa::path(post, path = "/api/v1/templates/media", tag = "templates", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "fields `file` (JPEG, PNG, MP4 or PDF) and `waba_id`?"),
    responses((status = 200, description = "`{\"handle\"}`"), (status = 422, body = super::error::ErrorBody)))]
pub async fn upload_sample(
    State(state): State<AppState>,
    caller: ApiCaller,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let mut form =
        form.map_err(|e| ApiError::BadRequest(format!("send multipart/form-data: {e}")))?;
    let (mut file, mut waba_id) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("unreadable multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_lowercase();
                let name = field
                    .file_name()
                    .map(|n| {
                        n.chars()
                            .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
                            .take(100)
                            .collect::<String>()
                    })
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "sample".into());
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("unreadable file: {e}")))?;
                file = Some((mime, name, bytes));
            }
            Some("waba_id") => {
                waba_id = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                )
            }
            _ => {}
        }
    }
    let (mime, name, bytes) = file.ok_or_else(|| invalid("file", "a `file` field is required"))?;
    if !SAMPLE_TYPES.contains(&mime.as_str()) {
        return Err(invalid(
            "file",
            format!("a header sample is a JPEG or PNG image, an MP4 video or a PDF document, not `{mime}`"),
        ));
    }
    if bytes.is_empty() || bytes.len() > MAX_SAMPLE_BYTES {
        return Err(invalid(
            "file",
            "a header sample is between 1 byte and 16 MB",
        ));
    }
    let (_, token) = connection(
        &state,
        &caller.workspace_id,
        waba_id.as_deref().map(str::trim),
    )
    .await?;
    let app_id = state.meta.app_id.as_deref().unwrap_or("app");
    let handle = state
        .graph
        .upload_handle(&token, app_id, &name, &mime, bytes.to_vec())
        .await
        .map_err(meta_error)?;
    Ok(Json(json!({ "handle": handle })))
}
