//! `GET /api/v1/templates`: the message templates of the workspace's WhatsApp Business Accounts.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use app::server::db::read::TemplateRow;
use app::server::rfc3339;

use super::{ApiCaller, ApiError};
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
    pub updated_at: String,
}

impl From<TemplateRow> for TemplateDto {
    fn from(t: TemplateRow) -> Self {
        TemplateDto {
            components: serde_json::from_str(&t.components).unwrap_or(Value::Array(vec![])),
            updated_at: rfc3339(t.updated_at),
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
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub data: Vec<TemplateDto>,
    pub next_cursor: Option<String>,
}

/// The workspace's templates, by name and language.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, body = TemplateList), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<TemplateList>, ApiError> {
    let data = state
        .db
        .templates(&caller.workspace_id)
        .await?
        .into_iter()
        .map(TemplateDto::from)
        .collect();
    Ok(Json(TemplateList {
        data,
        next_cursor: None,
    }))
}
