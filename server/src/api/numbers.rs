//! `/api/v1/numbers`: the workspace's connected WhatsApp numbers. Every member lists them;
//! admins connect one (checked with Meta first), replace its access token, see its health and
//! the webhook settings to paste into Meta's dashboard.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use app::domain::parse_meta_id;
use app::server::db::teams::NumberDetails;
use app::server::db::{NewNumber, NumberRow};
use app::server::graph::GraphError;
use app::server::rfc3339;

use super::teams::audit;
use super::{ApiCaller, ApiError, ApiJson};
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

impl From<NumberRow> for NumberDto {
    fn from(n: NumberRow) -> Self {
        NumberDto {
            id: n.id,
            phone_number_id: n.phone_number_id,
            waba_id: n.waba_id,
            display_phone: n.display_phone,
            verified_name: n.verified_name,
            quality_rating: n.quality_rating,
            messaging_tier: n.messaging_tier,
            throughput_mps: n.throughput_mps,
            created_at: rfc3339(n.created_at),
        }
    }
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
        .map(NumberDto::from)
        .collect();
    Ok(Json(NumberList {
        data,
        next_cursor: None,
    }))
}

/// A number of the caller's workspace, or 404.
async fn owned_number(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<NumberRow, ApiError> {
    state
        .db
        .number(&caller.workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such number".into()))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "validation_failed",
        field: field.into(),
        message: message.into(),
    }
}

fn access_token(text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "access_token",
            "access_token must be the token Meta issued (printable characters, no spaces)",
        ));
    }
    Ok(t.to_string())
}

/// Meta's refusal of a token or an id, in plain words, as a 422 on the field at fault.
fn graph_refusal(e: GraphError, id_field: &str) -> ApiError {
    match &e {
        GraphError::Meta { code: 190, .. } => invalid(
            "access_token",
            "Meta refused this access token: it is wrong, expired or revoked. Create a System User token with the whatsapp_business_messaging and whatsapp_business_management permissions.",
        ),
        GraphError::Meta { code: 10 | 200 | 3, .. } => invalid(
            "access_token",
            format!("this access token lacks a permission this number needs (whatsapp_business_messaging, whatsapp_business_management): {}", meta_message(&e)),
        ),
        GraphError::Meta { code: 100, .. } => invalid(
            id_field,
            format!("Meta does not know this {id_field}, or this token cannot see it: {}", meta_message(&e)),
        ),
        GraphError::Meta { .. } => invalid(id_field, format!("Meta refused: {}", meta_message(&e))),
        GraphError::Unreachable(_) | GraphError::Unknown(_) => ApiError::Unavailable(
            "Meta's Graph API could not be reached; try again in a moment".into(),
        ),
        GraphError::Decode(_) => ApiError::Unavailable(format!("Meta answered unexpectedly: {e}")),
    }
}

fn meta_message(e: &GraphError) -> String {
    match e {
        GraphError::Meta { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// What Meta says about a number, ready to store.
struct Facts {
    display_phone: Option<String>,
    verified_name: Option<String>,
    quality_rating: Option<String>,
    messaging_tier: Option<String>,
}

fn facts(v: &Value) -> Facts {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Facts {
        // Meta writes `+1 555-078-3881`; we keep E.164.
        display_phone: text("display_phone_number").map(|d| {
            format!(
                "+{}",
                d.chars().filter(char::is_ascii_digit).collect::<String>()
            )
        }),
        verified_name: text("verified_name"),
        quality_rating: text("quality_rating"),
        messaging_tier: text("whatsapp_business_manager_messaging_limit")
            .or_else(|| text("messaging_limit_tier")),
    }
}

async fn store_facts(
    state: &AppState,
    workspace_id: &str,
    id: &str,
    f: &Facts,
) -> Result<(), ApiError> {
    state
        .db
        .update_number_details(
            workspace_id,
            id,
            &NumberDetails {
                display_phone: f.display_phone.as_deref(),
                verified_name: f.verified_name.as_deref(),
                quality_rating: f.quality_rating.as_deref(),
                messaging_tier: f.messaging_tier.as_deref(),
            },
        )
        .await?;
    Ok(())
}

/// Checks a token against Meta: the number answers, and belongs to the WABA.
async fn validate(
    state: &AppState,
    token: &str,
    waba_id: &str,
    phone_number_id: &str,
) -> Result<Facts, ApiError> {
    let number = state
        .graph
        .phone_number(token, phone_number_id)
        .await
        .map_err(|e| graph_refusal(e, "phone_number_id"))?;
    let ids = state
        .graph
        .waba_phone_number_ids(token, waba_id)
        .await
        .map_err(|e| graph_refusal(e, "waba_id"))?;
    if !ids.iter().any(|i| i == phone_number_id) {
        return Err(invalid(
            "waba_id",
            "this phone number is not under this WhatsApp Business Account: check both ids in WhatsApp Manager",
        ));
    }
    Ok(facts(&number))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConnectNumber {
    /// Meta's WhatsApp Business Account id.
    pub waba_id: String,
    /// Meta's phone number id.
    pub phone_number_id: String,
    /// A System User access token; stored encrypted and never shown again.
    pub access_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectedNumber {
    #[serde(flatten)]
    pub number: NumberDto,
    /// Whether our app is now subscribed to the WABA's webhooks.
    pub subscribed: bool,
}

/// Connects a number (admins): checked with Meta first (the token works, the number is under
/// the WABA), the token stored encrypted, the app subscribed to the WABA's webhooks.
#[utoipa::path(post, path = "/api/v1/numbers", tag = "numbers", security(("bearer" = [])), request_body = ConnectNumber,
    responses((status = 201, body = ConnectedNumber), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<ConnectNumber>,
) -> Result<(StatusCode, Json<ConnectedNumber>), ApiError> {
    caller.require_admin()?;
    let waba_id =
        parse_meta_id("waba_id", &body.waba_id).map_err(|e| invalid("waba_id", e.to_string()))?;
    let phone_number_id = parse_meta_id("phone_number_id", &body.phone_number_id)
        .map_err(|e| invalid("phone_number_id", e.to_string()))?;
    let token = access_token(&body.access_token)?;
    let facts = validate(&state, &token, &waba_id, &phone_number_id).await?;
    let row = state
        .db
        .connect_number(&NewNumber {
            workspace_id: &caller.workspace_id,
            waba_id: &waba_id,
            phone_number_id: &phone_number_id,
            display_phone: facts.display_phone.as_deref(),
            access_token_enc: &state.key.encrypt(&token),
            key_id: state.key.id(),
        })
        .await?;
    store_facts(&state, &caller.workspace_id, &row.id, &facts).await?;
    let subscribed = match state.graph.subscribe_app(&token, &waba_id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, waba_id = %waba_id, "subscribing the app to the WABA failed");
            false
        }
    };
    audit(
        &state,
        &caller,
        "number.connected",
        Some(&row.id),
        serde_json::json!({"waba_id": waba_id, "phone_number_id": phone_number_id}),
    )
    .await?;
    let number = state
        .db
        .number(&caller.workspace_id, &row.id)
        .await?
        .ok_or_else(|| ApiError::internal("a connected number is missing"))?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectedNumber {
            number: number.into(),
            subscribed,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReplaceToken {
    /// The new access token; checked with Meta before it replaces the old one.
    pub access_token: String,
}

/// Replaces a number's access token (admins), after Meta accepts the new one. Numbers under
/// the same WABA share it.
#[utoipa::path(patch, path = "/api/v1/numbers/{id}", tag = "numbers", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReplaceToken,
    responses((status = 200, body = NumberDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_token(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplaceToken>,
) -> Result<Json<NumberDto>, ApiError> {
    caller.require_admin()?;
    let number = owned_number(&state, &caller, &id).await?;
    let token = access_token(&body.access_token)?;
    let facts = validate(&state, &token, &number.waba_id, &number.phone_number_id).await?;
    state
        .db
        .replace_number_token(
            &caller.workspace_id,
            &id,
            &state.key.encrypt(&token),
            state.key.id(),
        )
        .await?;
    store_facts(&state, &caller.workspace_id, &id, &facts).await?;
    audit(
        &state,
        &caller,
        "number.token_replaced",
        Some(&id),
        serde_json::json!({}),
    )
    .await?;
    let number = owned_number(&state, &caller, &id).await?;
    Ok(Json(number.into()))
}

/// The settings to paste into Meta's dashboard (App → WhatsApp → Configuration).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookSetup {
    /// `QONTAK_PUBLIC_URL` + `/webhooks/whatsapp`.
    pub webhook_url: String,
    /// `META_VERIFY_TOKEN`, or null while it is not set.
    pub verify_token: Option<String>,
    /// Whether `META_APP_SECRET` is set (without it every webhook is refused).
    pub app_secret_set: bool,
}

fn webhook_setup(state: &AppState) -> WebhookSetup {
    WebhookSetup {
        webhook_url: format!(
            "{}/webhooks/whatsapp",
            state.site.public_url.trim_end_matches('/')
        ),
        verify_token: state.meta.verify_token.clone(),
        app_secret_set: state.meta.app_secret.is_some(),
    }
}

/// The webhook URL and verify token for Meta's dashboard (admins).
#[utoipa::path(get, path = "/api/v1/numbers/setup", tag = "numbers", security(("bearer" = [])),
    responses((status = 200, body = WebhookSetup), (status = 403, body = super::error::ErrorBody)))]
pub async fn setup(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<WebhookSetup>, ApiError> {
    caller.require_admin()?;
    Ok(Json(webhook_setup(&state)))
}

/// One check of a number's health, explained.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthCheck {
    /// `access_token`, `subscription`, `webhook`.
    pub name: String,
    pub ok: bool,
    /// What was found, in plain words; when not ok, what to do about it.
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberHealth {
    pub ok: bool,
    pub checks: Vec<HealthCheck>,
    /// The number, with quality rating and messaging tier as Meta reports them now.
    pub number: NumberDto,
    pub webhook: WebhookSetup,
}

fn check(name: &str, ok: bool, message: impl Into<String>) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        ok,
        message: message.into(),
    }
}

/// Why Meta refused, in plain words, for the health page.
fn explain(e: &GraphError) -> String {
    match e {
        GraphError::Meta { code: 190, .. } => "Meta refused the access token: it expired or was revoked (a user token lasts hours; a System User token lasts until revoked). Create a new token and replace it here.".into(),
        GraphError::Meta { code: 10 | 200 | 3, .. } => format!("The access token lacks a permission (whatsapp_business_messaging and whatsapp_business_management are needed): {}", meta_message(e)),
        GraphError::Meta { code: 100, .. } => format!("Meta does not know this id, or the token cannot see it: {}", meta_message(e)),
        GraphError::Meta { code: 4 | 80007 | 613, .. } => "Meta is rate-limiting this app right now; check again in a few minutes.".into(),
        GraphError::Meta { .. } => format!("Meta refused: {}", meta_message(e)),
        GraphError::Unreachable(_) | GraphError::Unknown(_) => "Meta's Graph API could not be reached from this server; check its outbound network access.".into(),
        GraphError::Decode(_) => format!("Meta answered something unexpected: {e}"),
    }
}

/// Checks a number with Meta (admins): the token works, the app is subscribed to the WABA's
/// webhooks, the webhook settings are complete. Each failure says what to do.
#[utoipa::path(get, path = "/api/v1/numbers/{id}/health", tag = "numbers", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = NumberHealth), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn health(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<NumberHealth>, ApiError> {
    caller.require_admin()?;
    let number = owned_number(&state, &caller, &id).await?;
    let token = state
        .db
        .number_access_token_enc(&id)
        .await?
        .map(|enc| state.key.decrypt(&enc));
    let mut checks = Vec::new();
    match token {
        Some(Ok(token)) => {
            match state.graph.phone_number(&token, &number.phone_number_id).await {
                Ok(v) => {
                    store_facts(&state, &caller.workspace_id, &id, &facts(&v)).await?;
                    checks.push(check("access_token", true, "The access token works and Meta knows this number."));
                }
                Err(e) => checks.push(check("access_token", false, explain(&e))),
            }
            match state.graph.subscribed_apps(&token, &number.waba_id).await {
                Ok(apps) if !apps.is_empty() => checks.push(check(
                    "subscription",
                    true,
                    "An app is subscribed to this WhatsApp Business Account, so Meta sends its webhooks.",
                )),
                Ok(_) => checks.push(check(
                    "subscription",
                    false,
                    "No app is subscribed to this WhatsApp Business Account, so Meta sends no webhooks for it. Reconnect the number (which subscribes the app) or call POST /{waba-id}/subscribed_apps with its token.",
                )),
                Err(e) => checks.push(check("subscription", false, explain(&e))),
            }
        }
        Some(Err(_)) => checks.push(check(
            "access_token",
            false,
            "The stored access token cannot be decrypted with this server's QONTAK_SECRET_KEY (the key changed). Replace the token.",
        )),
        None => checks.push(check("access_token", false, "No access token is stored for this number. Replace the token.")),
    }
    let webhook = webhook_setup(&state);
    checks.push(match (&webhook.verify_token, webhook.app_secret_set) {
        (Some(_), true) => check("webhook", true, "The verify token and the app secret are set: paste the webhook URL and verify token into Meta's dashboard."),
        (None, _) => check("webhook", false, "META_VERIFY_TOKEN is not set, so Meta cannot verify the webhook URL. Set it and restart Qontak."),
        (_, false) => check("webhook", false, "META_APP_SECRET is not set, so every webhook from Meta is refused. Set it to the app secret from Meta's dashboard and restart Qontak."),
    });
    let number = owned_number(&state, &caller, &id).await?;
    Ok(Json(NumberHealth {
        ok: checks.iter().all(|c| c.ok),
        checks,
        number: number.into(),
        webhook,
    }))
}
