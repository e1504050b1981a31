//! Broadcasts: an approved template to a contact segment, now or at a time, sent through the
//! outbox at the number's pace; progress from the messages' statuses; cancel. Admin only.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use app::server::db::broadcasts::{BroadcastRow, NewBroadcast};
use app::server::{now_ms, rfc3339};

use super::contacts::invalid;
use super::paging::{encode, PageQuery};
use super::{ApiCaller, ApiError, ApiJson};
use crate::broadcasts::{check_sources, tier_limit, variables, Audience, Source};
use crate::AppState;

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    /// Such as `en_US`.
    pub language: String,
}

/// The body of `POST /api/v1/broadcasts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcastBody {
    pub number_id: String,
    pub template: TemplateRef,
    /// Template variable → source: `{"1": "name", "2": "attr:order_id"}` (positional) or
    /// `{"first_name": "name"}` (named); header variables as `header:1`. A source is `name`,
    /// `phone`, `wa_id`, `attr:<key>`, or `{"source", "fallback"}` / `{"text"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: BTreeMap<String, Source>,
    pub audience: Audience,
    /// RFC 3339; now when absent or past.
    pub scheduled_at: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema, Default)]
pub struct ProgressDto {
    /// Recipients written so far (the audience is expanded in batches).
    pub recipients: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    /// Contacts that could not be sent to (a variable without a value, no number).
    pub skipped: i64,
    pub cancelled: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FailureDto {
    pub reason: String,
    /// Meta's error code, when Meta refused.
    pub code: Option<i64>,
    pub count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BroadcastDto {
    pub id: String,
    pub name: String,
    pub number_id: String,
    pub template: TemplateRef,
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    pub audience: Audience,
    /// `scheduled`, `sending`, `done`, `cancelled` or `failed`.
    pub state: String,
    /// Contacts in the audience when the broadcast was created.
    pub total: i64,
    /// Counts by each recipient's current message status.
    pub progress: ProgressDto,
    pub failures: Vec<FailureDto>,
    pub error: Option<String>,
    pub scheduled_at: String,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BroadcastList {
    pub data: Vec<BroadcastDto>,
    pub next_cursor: Option<String>,
}

async fn dto(state: &AppState, b: BroadcastRow) -> Result<BroadcastDto, ApiError> {
    let mut b = b;
    if b.state == "sending" && b.expanded == 1 {
        state.db.settle_broadcast(&b.id).await?;
        if let Some(fresh) = state.db.broadcast(&b.workspace_id, &b.id).await? {
            b = fresh;
        }
    }
    let p = state.db.broadcast_progress(&b.id).await?;
    Ok(BroadcastDto {
        progress: ProgressDto {
            recipients: p.recipients,
            queued: p.queued,
            sent: p.sent,
            delivered: p.delivered,
            read: p.read,
            failed: p.failed,
            skipped: p.skipped,
            cancelled: p.cancelled,
        },
        failures: p
            .reasons
            .into_iter()
            .map(|(reason, code, count)| FailureDto {
                reason,
                code,
                count,
            })
            .collect(),
        template: TemplateRef {
            name: b.template_name,
            language: b.template_language,
        },
        variables: serde_json::from_str(&b.variables).unwrap_or_default(),
        audience: serde_json::from_str(&b.audience).unwrap_or_default(),
        scheduled_at: rfc3339(b.scheduled_at),
        created_at: rfc3339(b.created_at),
        cancelled_at: b.cancelled_at.map(rfc3339),
        id: b.id,
        name: b.name,
        number_id: b.number_id,
        state: b.state,
        total: b.total,
        error: b.error,
    })
}

/// An admin caller, checked before the body is read (so an agent gets 403, not a body error).
pub struct Admin(pub ApiCaller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        caller.require_admin()?;
        Ok(Admin(caller))
    }
}

async fn find(state: &AppState, workspace_id: &str, id: &str) -> Result<BroadcastRow, ApiError> {
    state
        .db
        .broadcast(workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such broadcast".into()))
}

fn parse_time(s: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            invalid(
                "scheduled_at",
                "scheduled_at is an RFC 3339 time, such as 2026-12-01T09:00:00Z",
            )
        })
}

/// Creates a broadcast (201): checks the number, the template (approved) and its variables,
/// the audience (non-empty, ids of this workspace) and the number's daily tier.
#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "broadcasts", security(("bearer" = [])),
    request_body = NewBroadcastBody,
    responses((status = 201, body = BroadcastDto), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<NewBroadcastBody>,
) -> Result<(StatusCode, Json<BroadcastDto>), ApiError> {
    let ws = caller.workspace_id.as_str();
    let number = state
        .db
        .number(ws, &body.number_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such number".into()))?;
    let templates = state.db.templates(ws).await?;
    let t = templates
        .iter()
        .find(|t| {
            t.name == body.template.name
                && t.language == body.template.language
                && t.waba_id == number.waba_id
        })
        .ok_or_else(|| {
            invalid(
                "template",
                format!(
                    "the number's WhatsApp Business Account has no template `{}` in `{}`: sync the templates first",
                    body.template.name, body.template.language
                ),
            )
        })?;
    if t.status != "APPROVED" {
        return Err(ApiError::Unprocessable {
            code: "template_not_approved",
            field: "template.name".into(),
            message: format!("the template is {}, not APPROVED", t.status),
        });
    }
    check_sources(&variables(t), &body.variables).map_err(|(f, m)| invalid(f, m))?;
    let a = &body.audience;
    let chosen = usize::from(a.label.is_some())
        + usize::from(a.attribute.is_some())
        + usize::from(a.contact_ids.is_some())
        + usize::from(a.all);
    if chosen != 1 {
        return Err(invalid(
            "audience",
            "choose one audience: label, attribute, contact_ids or all",
        ));
    }
    if let Some(attr) = &a.attribute {
        let key = attr.split_once(':').map_or(attr.as_str(), |(k, _)| k);
        if !crate::imports::valid_attribute_key(key) {
            return Err(invalid("audience.attribute", "use `key` or `key:value`"));
        }
    }
    let filter = a.filter();
    let total = state.db.count_contacts(ws, &filter).await?;
    if let Some(ids) = &a.contact_ids {
        if ids.len() > 10_000 {
            return Err(invalid(
                "audience.contact_ids",
                "at most 10,000 contact ids; use a label for larger audiences",
            ));
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        if (total as usize) < unique.len() {
            return Err(ApiError::NotFound(
                "no such contact in audience.contact_ids".into(),
            ));
        }
    }
    if total == 0 {
        return Err(invalid("audience", "no contact matches this audience"));
    }
    if let Some(limit) = tier_limit(number.messaging_tier.as_deref()) {
        let used = state
            .db
            .broadcast_volume_since(&number.id, now_ms() - 24 * 3600 * 1000)
            .await?;
        if used + total > limit {
            return Err(ApiError::Unprocessable {
                code: "tier_limit",
                field: "audience".into(),
                message: format!(
                    "this number's messaging tier allows {limit} recipients in 24 hours; {used} are planned already and this audience has {total}"
                ),
            });
        }
    }
    let scheduled_at = match body.scheduled_at.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_time(s)?,
        None => now_ms(),
    };
    let name = body
        .name
        .clone()
        .unwrap_or_else(|| format!("{} ({})", t.name, t.language));
    let id = state
        .db
        .create_broadcast(&NewBroadcast {
            workspace_id: ws,
            number_id: &number.id,
            created_by: &caller.user_id,
            name: &name.chars().take(200).collect::<String>(),
            template_name: &t.name,
            template_language: &t.language,
            variables: &serde_json::to_string(&body.variables).unwrap_or_default(),
            audience: &serde_json::to_string(&body.audience).unwrap_or_default(),
            scheduled_at,
            total,
        })
        .await?;
    let row = state
        .db
        .broadcast(ws, &id)
        .await?
        .ok_or_else(|| ApiError::internal("the new broadcast vanished"))?;
    Ok((StatusCode::CREATED, Json(dto(&state, row).await?)))
}

/// Broadcasts, newest first.
#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "broadcasts", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = BroadcastList), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<BroadcastList>, ApiError> {
    caller.require_admin()?;
    let limit = q.limit()?;
    let rows = state
        .db
        .broadcasts(&caller.workspace_id, &q.position()?, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    let mut data = Vec::new();
    let mut last = None;
    for b in rows.into_iter().take(limit as usize) {
        last = Some((b.created_at, b.id.clone()));
        data.push(dto(&state, b).await?);
    }
    Ok(Json(BroadcastList {
        data,
        next_cursor: more.then(|| last.map(|p| encode(&p))).flatten(),
    }))
}

/// A broadcast with its live progress.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "broadcasts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = BroadcastDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<BroadcastDto>, ApiError> {
    caller.require_admin()?;
    let b = find(&state, &caller.workspace_id, &id).await?;
    Ok(Json(dto(&state, b).await?))
}

/// Cancels a broadcast: messages not yet handed to Meta are not sent.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/cancel", tag = "broadcasts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = BroadcastDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<BroadcastDto>, ApiError> {
    caller.require_admin()?;
    state
        .db
        .cancel_broadcast(&caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such broadcast".into()))?;
    state.events.wake(&caller.workspace_id);
    let b = find(&state, &caller.workspace_id, &id).await?;
    Ok(Json(dto(&state, b).await?))
}
