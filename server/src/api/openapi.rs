//! The OpenAPI 3 document of the integration API, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Qontak integration API", description = "WhatsApp Business inbox: numbers, contacts, conversations, messages, templates and live events."),
    paths(super::numbers::list, super::conversations::list, super::conversations::get_one, super::conversations::messages, super::contacts::list, super::contacts::get_one, super::contacts::create, super::contacts::update, super::contacts::delete, super::contacts::merge, super::contacts::labels, super::contacts::export,
        super::imports::preview, super::imports::create, super::imports::list, super::imports::get_one, super::imports::errors_csv,
        super::broadcasts::create, super::broadcasts::list, super::broadcasts::get_one, super::broadcasts::cancel, super::events::stream_events, super::templates::list, super::templates::create, super::templates::delete, super::templates::edit, super::templates::sync, super::templates::upload_sample, super::messages::send, super::messages::mark_read, super::messages::typing, super::media::upload,
        super::webhooks::create, super::webhooks::list, super::webhooks::delete, super::webhooks::deliveries),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail, super::numbers::NumberDto, super::numbers::NumberList,
        super::conversations::ConversationList, super::conversations::ConversationDto, super::conversations::MessageList,
        super::conversations::MessageDto, super::conversations::ContactList, super::conversations::ContactDto,
        super::conversations::ConversationContactDto, super::conversations::AssigneeDto, super::conversations::ErrorInfoDto,
        super::conversations::WindowDto, super::templates::TemplateDto, super::templates::TemplateList, super::templates::TemplateEdit,
        super::media::UploadedDto, super::webhooks::NewEndpoint, super::webhooks::EndpointDto, super::webhooks::EndpointList, super::webhooks::DeliveryDto, super::webhooks::DeliveryList,
        super::contacts::NewContactBody, super::contacts::ContactPatchBody, super::contacts::MergeBody, super::contacts::LabelDto, super::contacts::LabelList,
        super::imports::ImportDto, super::imports::ImportList, super::imports::PreviewDto,
        super::broadcasts::NewBroadcastBody, super::broadcasts::TemplateRef, super::broadcasts::BroadcastDto, super::broadcasts::BroadcastList, super::broadcasts::ProgressDto, super::broadcasts::FailureDto, crate::broadcasts::Audience, crate::broadcasts::Source)),
    modifiers(&BearerAuth),
    tags((name = "numbers", description = "Connected WhatsApp numbers"), (name = "conversations", description = "Conversations and their messages"), (name = "contacts", description = "Customers"), (name = "events", description = "Live changes (Server-Sent Events)"), (name = "templates", description = "Message templates"), (name = "messages", description = "Sending messages"), (name = "webhooks", description = "Outgoing webhooks for integrators"), (name = "broadcasts", description = "A template to a contact segment, at the number's pace"))
)]
pub struct ApiDoc;

/// Members, invitations, API tokens, the caller's profile, and number administration.
#[derive(OpenApi)]
#[openapi(
    paths(super::numbers::connect, super::numbers::replace_token, super::numbers::setup, super::numbers::health,
        super::teams::list_members, super::teams::change_role, super::teams::remove_member, super::teams::invite,
        super::teams::list_invitations, super::teams::revoke_invitation, super::teams::list_tokens,
        super::teams::create_token, super::teams::revoke_token, super::teams::me, super::teams::update_me),
    components(schemas(super::numbers::ConnectNumber, super::numbers::ConnectedNumber, super::numbers::ReplaceToken,
        super::numbers::WebhookSetup, super::numbers::HealthCheck, super::numbers::NumberHealth,
        super::teams::MemberDto, super::teams::MemberList, super::teams::RoleChange, super::teams::NewInvitation,
        super::teams::InvitationDto, super::teams::InvitationList, super::teams::NewToken, super::teams::TokenDto,
        super::teams::TokenList, super::teams::MeDto, super::teams::ProfileChange)),
    tags((name = "members", description = "Members, roles, invitations and one's own profile"), (name = "tokens", description = "API tokens"))
)]
pub struct TeamsDoc;

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
    Json(full())
}

/// The whole document: the core paths plus each area's own part.
pub fn full() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::inbox::InboxDoc::openapi());
    doc.merge(TeamsDoc::openapi());
    doc.merge(crate::privacy::PrivacyDoc::openapi());
    doc
}
