//! The OpenAPI 3 document of the integration API, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Qontak integration API", description = "WhatsApp Business inbox: numbers, contacts, conversations, messages, templates and live events."),
    paths(super::numbers::list, super::conversations::list, super::conversations::get_one, super::conversations::messages, super::conversations::contacts, super::conversations::contact, super::events::stream_events, super::templates::list, super::templates::create, super::templates::delete, super::templates::sync, super::templates::upload_sample, super::messages::send, super::messages::mark_read, super::messages::typing, super::media::upload,
        super::webhooks::create, super::webhooks::list, super::webhooks::delete, super::webhooks::deliveries),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail, super::numbers::NumberDto, super::numbers::NumberList,
        super::conversations::ConversationList, super::conversations::ConversationDto, super::conversations::MessageList,
        super::conversations::MessageDto, super::conversations::ContactList, super::conversations::ContactDto,
        super::conversations::ConversationContactDto, super::conversations::AssigneeDto, super::conversations::ErrorInfoDto,
        super::conversations::WindowDto, super::templates::TemplateDto, super::templates::TemplateList,
        super::media::UploadedDto, super::webhooks::NewEndpoint, super::webhooks::EndpointDto, super::webhooks::EndpointList, super::webhooks::DeliveryDto, super::webhooks::DeliveryList)),
    modifiers(&BearerAuth),
    tags((name = "numbers", description = "Connected WhatsApp numbers"), (name = "conversations", description = "Conversations and their messages"), (name = "contacts", description = "Customers"), (name = "events", description = "Live changes (Server-Sent Events)"), (name = "templates", description = "Message templates"), (name = "messages", description = "Sending messages"), (name = "webhooks", description = "Outgoing webhooks for integrators"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("qtk_…")
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
