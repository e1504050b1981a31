//! `/api/v1/webhooks`: a workspace's outgoing webhook endpoints and their delivery logs.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use app::server::crypto::random_secret;
use app::server::db::integrations::{DeliveryRow, EndpointRow};
use app::server::rfc3339;

use super::{ApiCaller, ApiError, ApiJson};
use crate::AppState;

/// The event types an endpoint may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "message.created",
    "message.updated",
    "conversation.updated",
    "template.updated",
];

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewEndpoint {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Event types to receive; empty or absent means all.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointDto {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Shown once, when created: the HMAC key of `X-Qontak-Signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub data: Vec<EndpointDto>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryDto {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `in_flight`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryDto>,
    pub next_cursor: Option<String>,
}

fn dto(e: EndpointRow, secret: Option<String>) -> EndpointDto {
    EndpointDto {
        events: serde_json::from_str(&e.events).unwrap_or_default(),
        id: e.id,
        url: e.url,
        secret,
        created_at: rfc3339(e.created_at),
    }
}

fn delivery(d: DeliveryRow) -> DeliveryDto {
    DeliveryDto {
        id: d.id,
        event_id: d.event_id.to_string(),
        event_type: d.event_type,
        state: d.state,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
    }
}

fn admin(caller: &ApiCaller) -> Result<(), ApiError> {
    if caller.role == "admin" {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only a workspace admin manages webhooks".into(),
        ))
    }
}

/// Refuses URLs that point into this machine or a private network, unless allowed by
/// configuration (development, tests).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), ApiError> {
    let invalid = |m: &str| ApiError::Unprocessable {
        code: "validation_failed",
        field: "url".into(),
        message: m.into(),
    };
    let parsed =
        reqwest::Url::parse(url).map_err(|_| invalid("url must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("url must be http or https"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("url needs a host"))?
        .trim_matches(|c| c == '[' || c == ']');
    if allow_private {
        return Ok(());
    }
    let private = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
        }
        Err(_) => {
            host.eq_ignore_ascii_case("localhost")
                || host.ends_with(".localhost")
                || host.ends_with(".internal")
        }
    };
    if private {
        Err(invalid("url points to a private or local address"))
    } else {
        Ok(())
    }
}

/// Registers an endpoint (admins). The answer holds the signing secret, shown only now.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = NewEndpoint,
    responses((status = 201, body = EndpointDto), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointDto>), ApiError> {
    admin(&caller)?;
    check_url(&body.url, state.site.allow_private_urls)?;
    if let Some(bad) = body
        .events
        .iter()
        .find(|e| !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(ApiError::Unprocessable {
            code: "validation_failed",
            field: "events".into(),
            message: format!("unknown event type `{bad}`; use {}", EVENT_TYPES.join(", ")),
        });
    }
    let secret = random_secret("whsec_");
    let events = serde_json::to_string(&body.events).unwrap_or_else(|_| "[]".into());
    let row = state
        .db
        .create_endpoint(
            &caller.workspace_id,
            &body.url,
            &state.key.encrypt(&secret),
            &events,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(dto(row, Some(secret)))))
}

/// The workspace's endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), responses((status = 200, body = EndpointList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<EndpointList>, ApiError> {
    admin(&caller)?;
    let data = state
        .db
        .endpoints(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|e| dto(e, None))
        .collect();
    Ok(Json(EndpointList {
        data,
        next_cursor: None,
    }))
}

/// Removes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    if state.db.delete_endpoint(&caller.workspace_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such webhook".into()))
    }
}

/// The newest deliveries of an endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = DeliveryList), (status = 404, body = super::error::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    admin(&caller)?;
    if !state
        .db
        .endpoints(&caller.workspace_id)
        .await?
        .iter()
        .any(|e| e.id == id)
    {
        return Err(ApiError::NotFound("no such webhook".into()));
    }
    let data = state
        .db
        .deliveries(&caller.workspace_id, &id, 200)
        .await?
        .into_iter()
        .map(delivery)
        .collect();
    Ok(Json(DeliveryList {
        data,
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn private_and_local_urls_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1/x",
            "http://localhost:8080",
            "http://10.0.0.5/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://192.168.1.2",
            "ftp://example.com",
            "nonsense",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/qontak", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }
}
