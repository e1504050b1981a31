//! `GET /api/v1/numbers`: the workspace's connected WhatsApp numbers.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use app::server::rfc3339;

use super::{ApiCaller, ApiError};
use crate::AppState;

/// A connected WhatsApp number. Its access token is never part of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberDto {
    /// Qontak's id of the number.
    pub id: String,
    /// Meta's phone number id.
    pub phone_number_id: String,
    /// Meta's WhatsApp Business Account id.
    pub waba_id: String,
    /// The number as people dial it, E.164.
    pub display_phone: Option<String>,
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED` as Meta reports it.
    pub quality_rating: Option<String>,
    pub messaging_tier: Option<String>,
    /// Messages per second the outbox allows for this number.
    pub throughput_mps: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// A list page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberList {
    pub data: Vec<NumberDto>,
    pub next_cursor: Option<String>,
}

/// The workspace's numbers, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/numbers",
    tag = "numbers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspace's numbers", body = NumberList),
        (status = 401, description = "Missing or invalid token", body = super::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<NumberList>, ApiError> {
    let data = state
        .db
        .numbers(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|n| NumberDto {
            id: n.id,
            phone_number_id: n.phone_number_id,
            waba_id: n.waba_id,
            display_phone: n.display_phone,
            verified_name: n.verified_name,
            quality_rating: n.quality_rating,
            messaging_tier: n.messaging_tier,
            throughput_mps: n.throughput_mps,
            created_at: rfc3339(n.created_at),
        })
        .collect();
    Ok(Json(NumberList {
        data,
        next_cursor: None,
    }))
}
