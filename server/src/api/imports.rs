//! CSV imports of contacts: preview (headers, first rows, a suggested mapping), upload (the file
//! is written to disk as it arrives and imported by a server-side job), progress, and the
//! refused rows as CSV. Admin only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use app::server::db::contacts::{normalize_label, ImportRow, NewImport};
use app::server::{new_id, rfc3339};

use super::contacts::invalid;
use super::{ApiCaller, ApiError};
use crate::imports::{self, Mapping, Options};
use crate::AppState;

/// How much of the file a preview reads at most.
const PREVIEW_BYTES: usize = 1024 * 1024;
/// Rows a preview shows.
const PREVIEW_ROWS: usize = 10;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportDto {
    pub id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub filename: Option<String>,
    /// Rows in the file: an estimate from its lines while running, exact when done.
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub failed: i64,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    #[schema(value_type = Object)]
    pub mapping: serde_json::Value,
    /// Where the refused rows are, as CSV.
    pub errors_url: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<ImportRow> for ImportDto {
    fn from(r: ImportRow) -> Self {
        ImportDto {
            errors_url: format!("/api/v1/contacts/imports/{}/errors.csv", r.id),
            mapping: serde_json::from_str(&r.mapping).unwrap_or_default(),
            created_at: rfc3339(r.created_at),
            finished_at: r.finished_at.map(rfc3339),
            id: r.id,
            state: r.state,
            filename: r.filename,
            total: r.total.max(r.processed),
            processed: r.processed,
            created: r.created,
            updated: r.updated,
            failed: r.failed,
            error: r.error,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportList {
    pub data: Vec<ImportDto>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewDto {
    pub headers: Vec<String>,
    /// The first rows, as in the file.
    pub rows: Vec<Vec<String>>,
    /// Target (`phone`, `name`, `labels`, `attr:<key>`) → column header.
    #[schema(value_type = Object)]
    pub mapping: BTreeMap<String, String>,
    /// The separator found: `,`, `;`, tab or `|`.
    pub delimiter: String,
}

/// Options of an upload given in the query string (with a raw `text/csv` body).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// JSON: `{"phone": "<header>", "name": "<header>", "labels": "<header>", "attr:<key>": "<header>"}`;
    /// the suggested mapping when absent.
    pub mapping: Option<String>,
    /// ISO 3166 alpha-2 country for numbers written without a country code.
    pub default_country: Option<String>,
    /// Labels (comma-separated) added to every imported contact.
    pub labels: Option<String>,
    pub filename: Option<String>,
}

/// The upload's parts: the file (on disk), and the options from the form or the query.
struct Upload {
    path: PathBuf,
    query: ImportQuery,
}

fn bad_body(e: impl std::fmt::Display) -> ApiError {
    let text = e.to_string();
    if text.contains("length limit") || text.contains("too large") {
        ApiError::PayloadTooLarge("the file is too large".into())
    } else {
        ApiError::BadRequest(format!("the upload broke off: {text}"))
    }
}

/// Writes chunks to `path`. Past `limit` bytes: an error, or (`truncate`, for a preview that
/// needs only the head) the end of the file.
async fn write_chunks<S, E>(
    mut chunks: S,
    path: &std::path::Path,
    limit: usize,
    truncate: bool,
) -> Result<(), ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = std::fs::File::create(path).map_err(ApiError::internal)?;
    let mut written = 0usize;
    while let Some(chunk) = chunks.next().await {
        let mut chunk = chunk.map_err(bad_body)?;
        if written + chunk.len() > limit {
            if !truncate {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the file is larger than {} MiB",
                    limit / 1024 / 1024
                )));
            }
            chunk.truncate(limit - written);
            file.write_all(&chunk).map_err(ApiError::internal)?;
            break;
        }
        written += chunk.len();
        file.write_all(&chunk).map_err(ApiError::internal)?;
    }
    file.sync_all().map_err(ApiError::internal)?;
    Ok(())
}

/// Reads the request into `path` (a raw body, or the `file` field of a multipart form with
/// the options as other fields), at most `limit` bytes (a preview stops there quietly).
async fn receive(
    state: &AppState,
    request: Request,
    path: PathBuf,
    query: ImportQuery,
    limit: usize,
    truncate: bool,
) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut query = query;
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(request, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut got_file = false;
        while let Some(field) = form.next_field().await.map_err(bad_body)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                if query.filename.is_none() {
                    query.filename = field.file_name().map(str::to_string);
                }
                write_chunks(Box::pin(field), &path, limit, truncate).await?;
                got_file = true;
                if truncate {
                    break;
                }
            } else {
                let value = field.text().await.map_err(bad_body)?;
                match name.as_str() {
                    "mapping" => query.mapping = Some(value),
                    "default_country" => query.default_country = Some(value),
                    "labels" => query.labels = Some(value),
                    "filename" => query.filename = Some(value),
                    _ => {}
                }
            }
        }
        if !got_file {
            return Err(invalid("file", "send the CSV in the form field `file`"));
        }
    } else if content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.starts_with("application/octet-stream")
        || content_type.starts_with("application/csv")
        || content_type.starts_with("application/vnd.ms-excel")
    {
        let stream = request.into_body().into_data_stream();
        write_chunks(Box::pin(stream), &path, limit, truncate).await?;
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send the CSV as the body (`Content-Type: text/csv`) or as the `file` field of a multipart form".into(),
        ));
    }
    Ok(Upload { path, query })
}

fn scratch(state: &AppState) -> Result<PathBuf, ApiError> {
    let dir = imports::folder(&state.site.data_dir);
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    Ok(dir)
}

/// The header, the first rows and a suggested mapping of a CSV (only its first MiB is read).
#[utoipa::path(post, path = "/api/v1/contacts/imports/preview", tag = "contacts", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "The CSV, or a multipart form with `file`"),
    responses((status = 200, body = PreviewDto), (status = 422, body = super::error::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    caller: ApiCaller,
    request: Request,
) -> Result<Json<PreviewDto>, ApiError> {
    caller.require_admin()?;
    let path = scratch(&state)?.join(format!("preview-{}.csv", new_id()));
    let received = receive(
        &state,
        request,
        path.clone(),
        ImportQuery::default(),
        PREVIEW_BYTES,
        true,
    )
    .await;
    let result = received.and_then(|u| {
        let file = std::fs::File::open(&u.path).map_err(ApiError::internal)?;
        imports::head(file, PREVIEW_ROWS + 1).map_err(|m| invalid("file", m))
    });
    let _ = std::fs::remove_file(&path);
    let mut head = result?;
    // The last row may be cut off by the preview's limit.
    head.rows.truncate(PREVIEW_ROWS);
    Ok(Json(PreviewDto {
        mapping: imports::suggest(&head.headers).0,
        delimiter: match head.delimiter {
            b'\t' => "\t".into(),
            d => (d as char).to_string(),
        },
        headers: head.headers,
        rows: head.rows,
    }))
}

/// Starts an import (202 with the job): the CSV as a raw `text/csv` body (options in the query)
/// or as the `file` field of a multipart form (options as fields `mapping`, `default_country`,
/// `labels`). Rows are upserted by phone number; refused rows are kept for `errors.csv`.
#[utoipa::path(post, path = "/api/v1/contacts/imports", tag = "contacts", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV, or a multipart form with `file` and the options"),
    responses((status = 202, body = ImportDto), (status = 403, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<ImportQuery>,
    request: Request,
) -> Result<(StatusCode, Json<ImportDto>), ApiError> {
    caller.require_admin()?;
    let key = format!("{}.csv", new_id());
    let path = scratch(&state)?.join(&key);
    let result = start_import(&state, &caller, request, query, &path, &key).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let id = result?;
    imports::wake();
    let row = state
        .db
        .import(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the new import vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

async fn start_import(
    state: &AppState,
    caller: &ApiCaller,
    request: Request,
    query: ImportQuery,
    path: &std::path::Path,
    key: &str,
) -> Result<String, ApiError> {
    let upload = receive(
        state,
        request,
        path.to_path_buf(),
        query,
        super::media::MAX_UPLOAD_BYTES,
        false,
    )
    .await?;
    let q = upload.query;
    let file = std::fs::File::open(&upload.path).map_err(ApiError::internal)?;
    let head = imports::head(file, 0).map_err(|m| invalid("file", m))?;
    let mapping = match q.mapping.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(m) => Mapping(serde_json::from_str(m).map_err(|e| {
            invalid(
                "mapping",
                format!("mapping is a JSON object of target → column header: {e}"),
            )
        })?),
        None => imports::suggest(&head.headers),
    };
    imports::resolve(&mapping, &head.headers).map_err(|(f, m)| invalid(f, m))?;
    let default_country = q.default_country.filter(|c| !c.trim().is_empty());
    if let Some(c) = &default_country {
        crate::phone::parse_country(c).map_err(|m| invalid("default_country", m))?;
    }
    let labels: Vec<String> = q
        .labels
        .unwrap_or_default()
        .split(',')
        .map(normalize_label)
        .filter(|l| !l.is_empty())
        .collect();
    if labels
        .iter()
        .any(|l| l.chars().count() > imports::MAX_LABEL)
    {
        return Err(invalid("labels", "labels are at most 64 characters"));
    }
    let options = Options {
        default_country,
        labels,
        delimiter: head.delimiter,
    };
    let lines = imports::count_lines(&upload.path).map_err(ApiError::internal)?;
    let filename: Option<String> = q.filename.map(|f| f.chars().take(255).collect());
    let id = state
        .db
        .create_import(&NewImport {
            workspace_id: &caller.workspace_id,
            user_id: &caller.user_id,
            filename: filename.as_deref(),
            storage_key: key,
            headers: &serde_json::to_string(&head.headers).unwrap_or_default(),
            mapping: &serde_json::to_string(&mapping).unwrap_or_default(),
            options: &serde_json::to_string(&options).unwrap_or_default(),
            total: (lines - 1).max(0),
            byte_offset: head.data_offset as i64,
        })
        .await?;
    Ok(id)
}

/// The workspace's recent imports, newest first.
#[utoipa::path(get, path = "/api/v1/contacts/imports", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = ImportList), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<ImportList>, ApiError> {
    caller.require_admin()?;
    let data = state
        .db
        .imports(&caller.workspace_id, 50)
        .await?
        .into_iter()
        .map(ImportDto::from)
        .collect();
    Ok(Json(ImportList { data }))
}

/// An import's progress.
#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ImportDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ImportDto>, ApiError> {
    caller.require_admin()?;
    let row = state
        .db
        .import(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such import".into()))?;
    Ok(Json(row.into()))
}

struct ErrorPages {
    state: AppState,
    import_id: String,
    headers: Option<Vec<String>>,
    after: Option<i64>,
}

async fn error_page(mut p: ErrorPages) -> Option<(Result<Bytes, std::io::Error>, ErrorPages)> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
    if let Some(h) = p.headers.take() {
        let mut row = vec!["row".to_string(), "error".to_string()];
        row.extend(h);
        let _ = w.write_record(&row);
    }
    let after = p.after.take()?;
    let rows = match p.state.db.import_errors(&p.import_id, after, 1000).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reading import errors failed");
            return Some((Err(std::io::Error::other("export failed")), p));
        }
    };
    if rows.len() == 1000 {
        p.after = rows.last().map(|r| r.0);
    }
    for (row, error, fields) in rows {
        let mut r = vec![row.to_string(), error];
        r.extend(serde_json::from_str::<Vec<String>>(&fields).unwrap_or_default());
        let _ = w.write_record(&r);
    }
    Some((Ok(Bytes::from(w.into_inner().unwrap_or_default())), p))
}

/// The refused rows as CSV: `row` (the header is row 1), `error`, then the row as it was.
#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}/errors.csv", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv", description = "The refused rows"), (status = 404, body = super::error::ErrorBody)))]
pub async fn errors_csv(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let row = state
        .db
        .import(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such import".into()))?;
    let pages = ErrorPages {
        state: state.clone(),
        headers: Some(serde_json::from_str(&row.headers).unwrap_or_default()),
        import_id: row.id,
        after: Some(0),
    };
    Ok(super::contacts::csv_download(
        "import-errors.csv",
        // Fused, like the contacts export: polled after its end it must not panic.
        Body::from_stream(futures_util::StreamExt::fuse(futures_util::stream::unfold(
            pages, error_page,
        ))),
    ))
}
