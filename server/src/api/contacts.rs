//! Contacts: list with search and filters, create, edit, delete, labels, merge, and the CSV
//! export (streamed page by page). Agents and admins alike manage contacts; the bulk export is
//! admin-only.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use app::server::db::contacts::{normalize_label, ContactFilter, ContactPatch, NewContact};
use app::server::db::read::{start, ContactRow, Position};
use app::server::db::{AuditEntry, DbError};
use app::server::rfc3339;

use super::conversations::{ContactDto, ContactList};
use super::paging::{encode, PageQuery};
use super::{ApiCaller, ApiError, ApiJson};
use crate::imports::{
    valid_attribute_key, MAX_ATTRIBUTES, MAX_ATTRIBUTE_VALUE, MAX_LABEL, MAX_LABELS, MAX_NAME,
};
use crate::AppState;

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    }
}

/// The filters of the list, the export and (as an audience) broadcasts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ContactQuery {
    /// Part of the name, the WhatsApp profile name or the phone number.
    pub q: Option<String>,
    /// Contacts with this label.
    pub label: Option<String>,
    /// `key` (set) or `key:value` (set to this value).
    pub attribute: Option<String>,
    /// `true`: contacts with a conversation that is not resolved; `false`: without one.
    pub has_open_conversation: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ContactQuery {
    pub fn filter(&self) -> Result<ContactFilter, ApiError> {
        let attribute = match self.attribute.as_deref().filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => {
                let (k, v) = match a.split_once(':') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (a, None),
                };
                if !valid_attribute_key(k) {
                    return Err(ApiError::BadRequest(format!(
                        "attribute must be `key` or `key:value`; `{k}` is not an attribute key"
                    )));
                }
                Some((k.to_string(), v))
            }
        };
        let has_open_conversation = match self.has_open_conversation.as_deref() {
            None | Some("") => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "has_open_conversation must be true or false, got `{other}`"
                )))
            }
        };
        Ok(ContactFilter {
            q: self.q.clone().filter(|q| !q.trim().is_empty()),
            label: self.label.clone().filter(|l| !l.trim().is_empty()),
            attribute,
            has_open_conversation,
            ids: None,
        })
    }

    fn page(&self) -> PageQuery {
        PageQuery {
            limit: self.limit.clone(),
            cursor: self.cursor.clone(),
        }
    }
}

/// Contacts with their labels, in the order given.
pub(crate) async fn with_labels(
    state: &AppState,
    rows: Vec<ContactRow>,
) -> Result<Vec<ContactDto>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
    let mut labels: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (id, l) in state.db.labels_of(&ids).await? {
        labels.entry(id).or_default().push(l);
    }
    Ok(rows
        .into_iter()
        .map(|c| {
            let l = labels.remove(&c.id).unwrap_or_default();
            let mut dto = ContactDto::from(c);
            dto.labels = l;
            dto
        })
        .collect())
}

async fn one(state: &AppState, workspace_id: &str, id: &str) -> Result<ContactDto, ApiError> {
    let row = state
        .db
        .contact(workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such contact".into()))?;
    Ok(with_labels(state, vec![row]).await?.remove(0))
}

/// Contacts, newest first, with search and filters.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", security(("bearer" = [])),
    params(ContactQuery),
    responses((status = 200, body = ContactList), (status = 400, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<ContactQuery>,
) -> Result<Json<ContactList>, ApiError> {
    let page = q.page();
    let limit = page.limit()?;
    let rows = state
        .db
        .list_contacts(
            &caller.workspace_id,
            &q.filter()?,
            &page.position()?,
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<ContactRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| page.last().map(|c| encode(&(c.created_at, c.id.clone()))))
        .flatten();
    Ok(Json(ContactList {
        data: with_labels(&state, page).await?,
        next_cursor,
    }))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ContactDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ContactDto>, ApiError> {
    Ok(Json(one(&state, &caller.workspace_id, &id).await?))
}

/// The body of `POST /api/v1/contacts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContactBody {
    /// E.164 (`+6281234567890`), Meta's digits, or a national number with `default_country`.
    pub phone: Option<String>,
    /// Meta's digits-only id; an alternative to `phone`.
    pub wa_id: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    pub labels: Option<Vec<String>>,
    /// ISO 3166 alpha-2 (`ID`) for a national number.
    pub default_country: Option<String>,
}

/// The body of `PATCH /api/v1/contacts/{id}`: only the fields given change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchBody {
    /// `null` clears the name.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub phone: Option<String>,
    pub default_country: Option<String>,
    /// Merged into the attributes; a key set to `null` is removed.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    /// Replaces the labels.
    pub labels: Option<Vec<String>>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn phone_of(input: &str, country: Option<&str>, field: &str) -> Result<(String, String), ApiError> {
    let p = crate::phone::normalize(input, country).map_err(|m| invalid(field, m))?;
    Ok((p.digits().to_string(), p.as_str().to_string()))
}

fn check_name(name: &Option<String>) -> Result<Option<String>, ApiError> {
    let name = name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
        return Err(invalid(
            "name",
            format!("the name is at most {MAX_NAME} characters"),
        ));
    }
    Ok(name)
}

/// Attribute changes: keys 1–64 of letters, digits, `_ . -`; values text, number, boolean (or
/// null to remove, when `allow_null`).
fn check_attributes(a: &Map<String, Value>, allow_null: bool) -> Result<(), ApiError> {
    if a.len() > MAX_ATTRIBUTES {
        return Err(invalid(
            "attributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    for (k, v) in a {
        let field = format!("attributes.{k}");
        if !valid_attribute_key(k) {
            return Err(invalid(
                field,
                "attribute keys are 1–64 letters, digits, _ . or -",
            ));
        }
        match v {
            Value::String(s) if s.chars().count() > MAX_ATTRIBUTE_VALUE => {
                return Err(invalid(
                    field,
                    format!("at most {MAX_ATTRIBUTE_VALUE} characters"),
                ))
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            Value::Null if allow_null => {}
            _ => {
                return Err(invalid(
                    field,
                    "attribute values are text, numbers or true/false",
                ))
            }
        }
    }
    Ok(())
}

fn check_labels(labels: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let l = normalize_label(l);
        if l.is_empty() || l.chars().count() > MAX_LABEL {
            return Err(invalid(
                "labels",
                format!("labels are 1–{MAX_LABEL} characters"),
            ));
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > MAX_LABELS {
        return Err(invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    Ok(out)
}

/// Records a change to a contact in the audit log.
async fn audit(
    state: &AppState,
    caller: &ApiCaller,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), ApiError> {
    let actor = if caller.is_session() {
        "user"
    } else {
        "api_token"
    };
    Ok(state
        .db
        .audit(&AuditEntry {
            workspace_id: Some(&caller.workspace_id),
            user_id: Some(&caller.user_id),
            actor,
            action,
            target: Some(target),
            detail,
            ..Default::default()
        })
        .await?)
}

/// A streamed CSV download.
pub(crate) fn csv_download(filename: &str, body: Body) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

fn duplicate(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(_) => ApiError::Conflict {
            code: "contact_exists",
            message: "a contact with this phone number exists; edit it, or merge the two".into(),
        },
        other => other.into(),
    }
}

/// Creates a contact (201); a phone number the workspace has answers 409 `contact_exists`.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", security(("bearer" = [])),
    request_body = NewContactBody,
    responses((status = 201, body = ContactDto), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewContactBody>,
) -> Result<(StatusCode, Json<ContactDto>), ApiError> {
    let (wa_id, phone) = match (body.phone.as_deref(), body.wa_id.as_deref()) {
        (Some(p), _) => phone_of(p, body.default_country.as_deref(), "phone")?,
        (None, Some(w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
            phone_of(&format!("+{w}"), None, "wa_id")?
        }
        (None, Some(_)) => return Err(invalid("wa_id", "wa_id is digits only, as Meta writes it")),
        (None, None) => {
            return Err(invalid(
                "phone",
                "phone is required (E.164, such as +6281234567890)",
            ))
        }
    };
    let name = check_name(&body.name)?;
    let attributes = body.attributes.unwrap_or_default();
    check_attributes(&attributes, false)?;
    let labels = check_labels(&body.labels.unwrap_or_default())?;
    let id = state
        .db
        .create_contact(
            &caller.workspace_id,
            &NewContact {
                wa_id: &wa_id,
                phone: &phone,
                name: name.as_deref(),
                attributes: &attributes,
                labels: &labels,
            },
        )
        .await
        .map_err(duplicate)?;
    Ok((
        StatusCode::CREATED,
        Json(one(&state, &caller.workspace_id, &id).await?),
    ))
}

/// Changes a contact's name, phone number, attributes (merged) or labels (replaced).
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ContactPatchBody,
    responses((status = 200, body = ContactDto), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContactPatchBody>,
) -> Result<Json<ContactDto>, ApiError> {
    let mut patch = ContactPatch::default();
    if let Some(name) = &body.name {
        patch.name = Some(check_name(name)?);
    }
    if let Some(p) = &body.phone {
        patch.phone = Some(phone_of(p, body.default_country.as_deref(), "phone")?);
    }
    if let Some(a) = body.attributes {
        check_attributes(&a, true)?;
        patch.attributes = Some(a);
    }
    if let Some(l) = &body.labels {
        patch.labels = Some(check_labels(l)?);
    }
    let found = state
        .db
        .update_contact(&caller.workspace_id, &id, &patch)
        .await
        .map_err(duplicate)?;
    if !found {
        return Err(ApiError::NotFound("no such contact".into()));
    }
    Ok(Json(one(&state, &caller.workspace_id, &id).await?))
}

/// Deletes a contact with its conversations and messages (204).
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.db.delete_contact(&caller.workspace_id, &id).await? {
        return Err(ApiError::NotFound("no such contact".into()));
    }
    audit(&state, &caller, "contact.deleted", &id, "{}").await?;
    state.events.wake(&caller.workspace_id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The duplicate, merged into the contact of the path and then deleted.
    pub from: String,
}

/// Merges a duplicate into this contact: its conversations and messages move here, labels
/// and attributes are united (this contact's values win), and the duplicate is deleted.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = MergeBody,
    responses((status = 200, body = ContactDto), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn merge(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<ContactDto>, ApiError> {
    if body.from == id {
        return Err(invalid("from", "a contact cannot be merged into itself"));
    }
    state
        .db
        .merge_contacts(&caller.workspace_id, &id, &body.from)
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => ApiError::NotFound("no such contact".into()),
            other => other.into(),
        })?;
    audit(
        &state,
        &caller,
        "contact.merged",
        &id,
        &json!({"from": body.from}).to_string(),
    )
    .await?;
    state.events.wake(&caller.workspace_id);
    Ok(Json(one(&state, &caller.workspace_id, &id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LabelDto {
    pub label: String,
    pub contacts: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LabelList {
    pub data: Vec<LabelDto>,
}

/// The workspace's contact labels with how many contacts carry each.
#[utoipa::path(get, path = "/api/v1/contacts/labels", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = LabelList)))]
pub async fn labels(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<LabelList>, ApiError> {
    let data = state
        .db
        .workspace_labels(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|(label, contacts)| LabelDto { label, contacts })
        .collect();
    Ok(Json(LabelList { data }))
}

/// Rows per page of the export.
const EXPORT_PAGE: i64 = 1000;

/// A spreadsheet would run a cell that starts with `=`, `+`, `-` or `@` as a formula.
fn guard(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn attribute_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => guard(s),
        Some(other) => other.to_string(),
    }
}

struct Export {
    state: AppState,
    workspace_id: String,
    filter: ContactFilter,
    keys: Vec<String>,
    position: Option<Position>,
    header: bool,
}

async fn export_page(mut e: Export) -> Option<(Result<Bytes, std::io::Error>, Export)> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(256 * 1024));
    if e.header {
        e.header = false;
        let mut h: Vec<String> = [
            "id",
            "phone",
            "wa_id",
            "name",
            "profile_name",
            "username",
            "bsuid",
            "labels",
            "created_at",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        h.extend(e.keys.iter().map(|k| format!("attr:{k}")));
        let _ = w.write_record(&h);
    }
    let position = e.position.take()?;
    let rows = match e
        .state
        .db
        .list_contacts(&e.workspace_id, &e.filter, &position, EXPORT_PAGE)
        .await
    {
        Ok(r) => r,
        Err(err) => {
            tracing::error!(error = %err, "export page failed");
            return Some((Err(std::io::Error::other("export failed")), e));
        }
    };
    if rows.len() as i64 == EXPORT_PAGE {
        e.position = rows.last().map(|c| (c.created_at, c.id.clone()));
    }
    let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
    let mut labels: std::collections::HashMap<String, Vec<String>> = Default::default();
    match e.state.db.labels_of(&ids).await {
        Ok(l) => l
            .into_iter()
            .for_each(|(id, l)| labels.entry(id).or_default().push(l)),
        Err(err) => {
            tracing::error!(error = %err, "export labels failed");
            return Some((Err(std::io::Error::other("export failed")), e));
        }
    }
    for c in rows {
        let attrs: Map<String, Value> = serde_json::from_str(&c.attributes).unwrap_or_default();
        let mut r = vec![
            c.id.clone(),
            c.phone.unwrap_or_default(),
            c.wa_id.unwrap_or_default(),
            guard(&c.name.unwrap_or_default()),
            guard(&c.profile_name.unwrap_or_default()),
            c.username.unwrap_or_default(),
            c.bsuid.unwrap_or_default(),
            labels.remove(&c.id).unwrap_or_default().join(";"),
            rfc3339(c.created_at),
        ];
        r.extend(e.keys.iter().map(|k| attribute_text(attrs.get(k))));
        let _ = w.write_record(&r);
    }
    let bytes = w.into_inner().unwrap_or_default();
    Some((Ok(Bytes::from(bytes)), e))
}

/// All contacts, or those matching the filters, as CSV (streamed: memory stays flat however
/// many contacts there are). Columns: id, phone, wa_id, name, profile_name, username, bsuid,
/// labels (`;`-separated), created_at, then `attr:<key>` per attribute. Admin only.
#[utoipa::path(get, path = "/api/v1/contacts/export.csv", tag = "contacts", security(("bearer" = [])),
    params(ContactQuery),
    responses((status = 200, content_type = "text/csv", description = "The contacts as CSV"), (status = 403, body = super::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<ContactQuery>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let filter = q.filter()?;
    let keys = state.db.attribute_keys(&caller.workspace_id, 200).await?;
    let export = Export {
        state: state.clone(),
        workspace_id: caller.workspace_id.clone(),
        filter,
        keys,
        position: Some(start()),
        header: true,
    };
    // Fused: the compression layer may poll a finished body once more, and a bare `unfold`
    // panics then (the connection breaks mid-download).
    let stream = futures_util::StreamExt::fuse(futures_util::stream::unfold(export, export_page));
    Ok(csv_download("contacts.csv", Body::from_stream(stream)))
}
