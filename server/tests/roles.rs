//! The role and tenancy table: every route under `/api/v1`, the `/auth` routes and `/media`,
//! called by an admin of workspace A, an agent of A, an admin of workspace B (on A's objects)
//! and nobody, once with bearer tokens and once with session cookies.
//!
//! To cover a new route, add a row to [`table`]: the route's pattern as the router writes it,
//! the concrete path (fixtures in braces: `{conversation}`, `{number}`, …), a body, and the
//! four expected statuses. `every_route_of_the_router_is_in_the_table` fails until you do.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use app::server::crypto::{hash_secret, random_secret};
use app::server::db::broadcasts::NewBroadcast;
use app::server::db::contacts::NewContact;
use app::server::now_ms;
use common::meta::{world, World, ACCESS_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// A request body.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON, with fixtures in braces replaced.
    Json(&'static str),
    /// A multipart upload of a small PNG for `{number}`.
    Upload,
    /// A form, with fixtures in braces replaced.
    Form(&'static str),
    /// A CSV file as the raw body.
    Csv(&'static str),
}

/// Who may do what: the expected status for each caller.
#[derive(Clone, Copy, Debug)]
struct Expect {
    admin_a: u16,
    agent_a: u16,
    admin_b: u16,
    nobody: u16,
}

const fn expect(admin_a: u16, agent_a: u16, admin_b: u16, nobody: u16) -> Expect {
    Expect {
        admin_a,
        agent_a,
        admin_b,
        nobody,
    }
}

/// Any answer but 401, 403 or a server error: for a row written before its route exists,
/// where only the role checks are certain.
const ANY: u16 = 0;

/// Any member reads their own workspace; B gets its own (empty) list.
const MEMBERS_READ_LIST: Expect = expect(200, 200, 200, 401);
/// Any member reads A's object; B does not see it.
const MEMBERS_READ_ONE: Expect = expect(200, 200, 404, 401);
/// Admin-only, on A's object.
const ADMIN_ONE: Expect = expect(200, 403, 404, 401);
/// Admin-only, on the caller's own workspace.
const ADMIN_LIST: Expect = expect(200, 403, 200, 401);
const ADMIN_CREATE: Expect = expect(201, 403, 201, 401);
const ADMIN_DELETE: Expect = expect(204, 403, 404, 401);

struct Row {
    method: Method,
    /// The route as the router declares it (`/api/v1` included).
    pattern: &'static str,
    /// The path to call, with fixtures in braces.
    path: &'static str,
    body: Body,
    expect: Expect,
    /// Only a signed-in browser can call it: bearer callers get 401 whatever their role.
    session_only: bool,
    /// It consumes the caller itself (deletes their account): the agent of A and the admin of
    /// B are throwaway people made for this row; A's admin stays the real one.
    throwaway_callers: bool,
}

fn row(
    method: Method,
    pattern: &'static str,
    path: &'static str,
    body: Body,
    expect: Expect,
) -> Row {
    Row {
        method,
        pattern,
        path,
        body,
        expect,
        session_only: false,
        throwaway_callers: false,
    }
}

fn session_row(
    method: Method,
    pattern: &'static str,
    path: &'static str,
    body: Body,
    expect: Expect,
) -> Row {
    Row {
        session_only: true,
        ..row(method, pattern, path, body, expect)
    }
}

fn throwaway_row(
    method: Method,
    pattern: &'static str,
    path: &'static str,
    body: Body,
    expect: Expect,
) -> Row {
    Row {
        throwaway_callers: true,
        ..row(method, pattern, path, body, expect)
    }
}

/// Every route, in an order where destructive calls come after the reads of the same object.
/// Callers run nobody → agent A → admin B → admin A, so only the last may consume an object.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Body::*;
    let get = Method::GET;
    let post = Method::POST;
    let patch = Method::PATCH;
    let put = Method::PUT;
    let delete = Method::DELETE;
    vec![
        row(get.clone(), "/api/v1/openapi.json", "/api/v1/openapi.json", None, expect(200, 200, 200, 200)),
        // numbers
        row(get.clone(), "/api/v1/numbers", "/api/v1/numbers", None, MEMBERS_READ_LIST),
        // A malformed connect passes the role check and fails validation: 422 for admins.
        row(post.clone(), "/api/v1/numbers", "/api/v1/numbers", Json(r#"{"waba_id":"not-an-id","phone_number_id":"1","access_token":"x"}"#), expect(422, 403, 422, 401)),
        row(get.clone(), "/api/v1/numbers/setup", "/api/v1/numbers/setup", None, ADMIN_LIST),
        row(patch.clone(), "/api/v1/numbers/{id}", "/api/v1/numbers/{number}", Json(r#"{"access_token":"{access_token}"}"#), ADMIN_ONE),
        row(get.clone(), "/api/v1/numbers/{id}/health", "/api/v1/numbers/{number}/health", None, ADMIN_ONE),
        // conversations, contacts, messages, media
        row(get.clone(), "/api/v1/conversations", "/api/v1/conversations", None, MEMBERS_READ_LIST),
        row(get.clone(), "/api/v1/conversations/{id}", "/api/v1/conversations/{conversation}", None, MEMBERS_READ_ONE),
        row(patch.clone(), "/api/v1/conversations/{id}", "/api/v1/conversations/{conversation}", Json(r#"{"labels":["role-check"]}"#), MEMBERS_READ_ONE),
        row(post.clone(), "/api/v1/conversations/{id}/unread", "/api/v1/conversations/{conversation}/unread", None, MEMBERS_READ_ONE),
        row(get.clone(), "/api/v1/conversations/{id}/notes", "/api/v1/conversations/{conversation}/notes", None, MEMBERS_READ_ONE),
        row(post.clone(), "/api/v1/conversations/{id}/notes", "/api/v1/conversations/{conversation}/notes", Json(r#"{"body":"a note from the role check"}"#), expect(201, 201, 404, 401)),
        row(get.clone(), "/api/v1/search", "/api/v1/search?q=look", None, MEMBERS_READ_LIST),
        // canned responses: members read them, admins manage them
        row(get.clone(), "/api/v1/canned-responses", "/api/v1/canned-responses", None, MEMBERS_READ_LIST),
        row(post.clone(), "/api/v1/canned-responses", "/api/v1/canned-responses", Json(r#"{"shortcut":"role-{pass}","body":"Thanks!"}"#), ADMIN_CREATE),
        row(delete.clone(), "/api/v1/canned-responses/{id}", "/api/v1/canned-responses/{canned}", None, ADMIN_DELETE),
        row(get.clone(), "/api/v1/conversations/{id}/messages", "/api/v1/conversations/{conversation}/messages", None, MEMBERS_READ_ONE),
        row(post.clone(), "/api/v1/conversations/{id}/read", "/api/v1/conversations/{conversation}/read", None, MEMBERS_READ_ONE),
        row(post.clone(), "/api/v1/conversations/{id}/typing", "/api/v1/conversations/{conversation}/typing", None, expect(202, 202, 404, 401)),
        row(post.clone(), "/api/v1/messages", "/api/v1/messages", Json(r#"{"number_id":"{number}","to":"+{customer}","type":"text","text":{"body":"hello"}}"#), expect(202, 202, 404, 401)),
        row(post.clone(), "/api/v1/media", "/api/v1/media", Upload, expect(201, 201, 404, 401)),
        row(get.clone(), "/media/{message_id}", "/media/{media_message}", None, MEMBERS_READ_ONE),
        row(get.clone(), "/api/v1/contacts", "/api/v1/contacts", None, MEMBERS_READ_LIST),
        row(get.clone(), "/api/v1/contacts/{id}", "/api/v1/contacts/{contact}", None, MEMBERS_READ_ONE),
        // Members manage contacts. Rows that consume a contact give the agent its own
        // (`agent_own` fixtures), so B's admin still meets A's object and A's admin consumes it.
        row(post.clone(), "/api/v1/contacts", "/api/v1/contacts", Json(r#"{"phone":"{new_phone}","name":"New"}"#), expect(201, 201, 201, 401)),
        row(patch.clone(), "/api/v1/contacts/{id}", "/api/v1/contacts/{contact}", Json(r#"{"attributes":{"tier":"gold"}}"#), MEMBERS_READ_ONE),
        row(get.clone(), "/api/v1/contacts/labels", "/api/v1/contacts/labels", None, MEMBERS_READ_LIST),
        row(post.clone(), "/api/v1/contacts/{id}/merge", "/api/v1/contacts/{merge_into}/merge", Json(r#"{"from":"{merge_from}"}"#), MEMBERS_READ_ONE),
        row(delete.clone(), "/api/v1/contacts/{id}", "/api/v1/contacts/{doomed_contact}", None, expect(204, 204, 404, 401)),
        // exports and imports of contacts: admins
        row(get.clone(), "/api/v1/contacts/export.csv", "/api/v1/contacts/export.csv", None, ADMIN_LIST),
        row(get.clone(), "/api/v1/contacts/{id}/export", "/api/v1/contacts/{contact}/export", None, ADMIN_ONE),
        row(post.clone(), "/api/v1/contacts/{id}/erase", "/api/v1/contacts/{erased_contact}/erase", None, ADMIN_ONE),
        row(post.clone(), "/api/v1/contacts/imports/preview", "/api/v1/contacts/imports/preview", Csv("phone,name\n+6281230000099,Preview\n"), ADMIN_LIST),
        row(post.clone(), "/api/v1/contacts/imports", "/api/v1/contacts/imports", Csv("phone,name\n+6281230000098,Imported\n"), expect(202, 403, 202, 401)),
        row(get.clone(), "/api/v1/contacts/imports", "/api/v1/contacts/imports", None, ADMIN_LIST),
        row(get.clone(), "/api/v1/contacts/imports/{id}", "/api/v1/contacts/imports/{import}", None, ADMIN_ONE),
        row(get.clone(), "/api/v1/contacts/imports/{id}/errors.csv", "/api/v1/contacts/imports/{import}/errors.csv", None, ADMIN_ONE),
        // broadcasts: admins. A template the number does not have passes the role check and
        // fails validation (422); A's number is not B's (404).
        row(post.clone(), "/api/v1/broadcasts", "/api/v1/broadcasts", Json(r#"{"number_id":"{number}","template":{"name":"no_such_template","language":"en_US"},"audience":{"all":true}}"#), expect(422, 403, 404, 401)),
        row(get.clone(), "/api/v1/broadcasts", "/api/v1/broadcasts", None, ADMIN_LIST),
        row(get.clone(), "/api/v1/broadcasts/{id}", "/api/v1/broadcasts/{broadcast}", None, ADMIN_ONE),
        row(post.clone(), "/api/v1/broadcasts/{id}/cancel", "/api/v1/broadcasts/{broadcast}/cancel", None, ADMIN_ONE),
        row(get.clone(), "/api/v1/events", "/api/v1/events", None, MEMBERS_READ_LIST),
        // templates
        row(get.clone(), "/api/v1/templates", "/api/v1/templates", None, MEMBERS_READ_LIST),
        // A header sample for the workspace's only WABA; B has none to upload to (422).
        row(post.clone(), "/api/v1/templates/media", "/api/v1/templates/media", Upload, expect(200, 403, 422, 401)),
        // outgoing webhooks
        row(get.clone(), "/api/v1/webhooks", "/api/v1/webhooks", None, ADMIN_LIST),
        row(post.clone(), "/api/v1/webhooks", "/api/v1/webhooks", Json(r#"{"url":"http://127.0.0.1:9/hook"}"#), ADMIN_CREATE),
        row(get.clone(), "/api/v1/webhooks/{id}/deliveries", "/api/v1/webhooks/{webhook}/deliveries", None, ADMIN_ONE),
        row(delete.clone(), "/api/v1/webhooks/{id}", "/api/v1/webhooks/{webhook}", None, ADMIN_DELETE),
        // members and invitations
        row(get.clone(), "/api/v1/members", "/api/v1/members", None, MEMBERS_READ_LIST),
        row(patch.clone(), "/api/v1/members/{user_id}", "/api/v1/members/{member}", Json(r#"{"role":"agent"}"#), ADMIN_ONE),
        row(delete.clone(), "/api/v1/members/{user_id}", "/api/v1/members/{member}", None, ADMIN_DELETE),
        row(get.clone(), "/api/v1/members/invitations", "/api/v1/members/invitations", None, ADMIN_LIST),
        row(post.clone(), "/api/v1/members/invitations", "/api/v1/members/invitations", Json(r#"{"email":"newcomer-{pass}@example.test","role":"agent"}"#), ADMIN_CREATE),
        row(delete.clone(), "/api/v1/members/invitations/{id}", "/api/v1/members/invitations/{invitation}", None, ADMIN_DELETE),
        // API tokens
        row(get.clone(), "/api/v1/tokens", "/api/v1/tokens", None, ADMIN_LIST),
        row(post.clone(), "/api/v1/tokens", "/api/v1/tokens", Json(r#"{"name":"made-in-pass-{pass}"}"#), ADMIN_CREATE),
        row(delete.clone(), "/api/v1/tokens/{id}", "/api/v1/tokens/{token}", None, ADMIN_DELETE),
        // one's own profile
        row(get.clone(), "/api/v1/me", "/api/v1/me", None, MEMBERS_READ_LIST),
        row(patch.clone(), "/api/v1/me", "/api/v1/me", Json(r#"{"name":"Renamed"}"#), MEMBERS_READ_LIST),
        row(get.clone(), "/api/v1/me/export", "/api/v1/me/export", None, MEMBERS_READ_LIST),
        // privacy and settings: admins
        row(get.clone(), "/api/v1/audit", "/api/v1/audit", None, ADMIN_LIST),
        row(get.clone(), "/api/v1/settings/retention", "/api/v1/settings/retention", None, ADMIN_LIST),
        row(put.clone(), "/api/v1/settings/retention", "/api/v1/settings/retention", Json(r#"{"messages_days":null,"media_days":null,"webhook_events_days":36500,"audit_days":36500,"audit_ip_days":36500}"#), ADMIN_LIST),
        // A wrong confirmation passes the role check and deletes nothing (422).
        row(delete.clone(), "/api/v1/workspace", "/api/v1/workspace", Json(r#"{"confirm":"not the workspace's name"}"#), expect(422, 403, 422, 401)),
        // Metrics are off unless QONTAK_METRICS or QONTAK_METRICS_TOKEN is set: 404 to all.
        row(get.clone(), "/metrics", "/metrics", None, expect(404, 404, 404, 404)),
        // /auth: sign-in methods not configured here answer 404 to everyone.
        row(post.clone(), "/auth/dev", "/auth/dev", Form("email=x%40example.test"), expect(404, 404, 404, 404)),
        row(post.clone(), "/auth/google", "/auth/google", Json(r#"{"credential":"x"}"#), expect(404, 404, 404, 404)),
        row(post.clone(), "/auth/firebase", "/auth/firebase", Json(r#"{"id_token":"x"}"#), expect(404, 404, 404, 404)),
        session_row(get.clone(), "/auth/session", "/auth/session", None, expect(200, 200, 200, 401)),
        // Switching into A: its members may, B's admin is not a member.
        session_row(post.clone(), "/auth/workspace", "/auth/workspace", Json(r#"{"workspace_id":"{workspace_a}"}"#), expect(200, 200, 404, 401)),
        // An invitation for someone else's e-mail: nobody signed in may use it.
        session_row(post.clone(), "/auth/invitations/{token}/accept", "/auth/invitations/{stranger_invite}/accept", None, expect(403, 403, 403, 401)),
        // Promised by the contract, written before the routes exist: a row whose route the
        // router does not declare is skipped. Replace ANY with the exact status once it does.
        row(post.clone(), "/api/v1/templates", "/api/v1/templates", Json(r#"{"name":"role_check","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"Hi"}]}"#),
            expect(ANY, 403, ANY, 401),
        ),
        row(post.clone(), "/api/v1/templates/sync", "/api/v1/templates/sync", None, expect(ANY, 403, ANY, 401)),
        // An edit of a template still in review: Meta's rule refuses it (409), B has none (404).
        row(patch.clone(), "/api/v1/templates/{name}", "/api/v1/templates/role_check", Json(r#"{"components":[{"type":"BODY","text":"Hi again"}]}"#), expect(ANY, 403, 404, 401)),
        row(delete.clone(), "/api/v1/templates/{name}", "/api/v1/templates/role_check", None, expect(ANY, 403, ANY, 401)),
        row(get.clone(), "/api/v1/export", "/api/v1/export", None, ADMIN_LIST),
        // Deleting one's account: the throwaway agent and B's admin (B's only member, so B
        // goes too) may; A's admin, the only admin of a workspace with other members, may not.
        throwaway_row(delete.clone(), "/api/v1/me", "/api/v1/me", None, expect(409, 200, 200, 401)),
        // Last: it ends the session of the caller.
        session_row(post.clone(), "/auth/logout", "/auth/logout", None, expect(303, 303, 303, 303)),
    ]
}

/// How a caller proves who they are.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Cookie(String),
    Nobody,
}

struct Callers {
    admin_a: Auth,
    agent_a: Auth,
    admin_b: Auth,
}

/// Objects the table's paths name. Objects a row may consume are made fresh for each pass.
struct Fixtures {
    values: Vec<(&'static str, String)>,
    /// The agent's own copy of objects any member may consume (the agent calls first).
    agent_own: Vec<(&'static str, String)>,
}

impl Fixtures {
    fn fill(&self, text: &str, agent: bool) -> String {
        let mut out = text.to_string();
        let own = if agent { &self.agent_own[..] } else { &[] };
        for (name, value) in own.iter().chain(&self.values) {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !out.contains("{") || text.starts_with('{'),
            "unfilled fixture in {out}"
        );
        out
    }
}

struct Scene {
    w: World,
    workspace_a: String,
    workspace_b: String,
    admin_a: String,
    agent_a: String,
    admin_b: String,
    agent_token: String,
    b_token: String,
    conversation: String,
    contact: String,
    media_message: String,
}

const CUSTOMER: &str = "15551234567";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-a-tiny-picture";

async fn user_id(w: &World, email: &str) -> String {
    w.app.db.user_by_email(email).await.unwrap().unwrap().id
}

/// Workspace A (the world's "Acme", with a number and a customer's conversation holding an
/// image), an agent in A, and workspace B with its own admin.
async fn scene() -> Scene {
    // The sign-in rate limit is not a role or tenancy matter: this table posts to /auth
    // more often than a person would.
    let w = world(&[
        ("QONTAK_ALLOW_PRIVATE_URLS", "1"),
        ("QONTAK_RATE_SIGNIN", "0"),
    ])
    .await;
    let db = &w.app.db;
    let admin_a = user_id(&w, "admin@acme.test").await;
    let workspace_a = db.memberships_of(&admin_a).await.unwrap()[0]
        .workspace_id
        .clone();
    let agent = db.create_user("agent@acme.test", "Agent").await.unwrap();
    db.add_member(&workspace_a, &agent.id, "agent")
        .await
        .unwrap();
    let agent_token = random_secret("qtk_");
    db.create_api_token(
        &workspace_a,
        &agent.id,
        "agent",
        &hash_secret(&agent_token),
        &agent_token[..8],
    )
    .await
    .unwrap();
    let (workspace_b, b_token) = w.app.workspace_with_token("Globex").await;
    let admin_b = user_id(&w, "admin@globex.test").await;

    // An image from the customer: a conversation, a contact and a media message.
    let media: Value = w
        .http
        .post(format!("{}/_emulator/media", w.emulator))
        .header("content-type", "image/png")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = w
        .emu_post(
            &format!("/_emulator/customers/{CUSTOMER}/messages"),
            json!({"type": "image", "image": {"id": media["id"], "caption": "look"}}),
        )
        .await;
    assert_eq!(sent["webhook_status"], 200);
    let mut found = None;
    for _ in 0..300 {
        let convs = w.api_get("/api/v1/conversations").await;
        if let Some(c) = convs["data"].as_array().unwrap().first() {
            if c["last_message"]["wamid"] == sent["wamid"] {
                found = Some(c.clone());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conv = found.expect("the customer's image arrives");
    let conversation = conv["id"].as_str().unwrap().to_string();
    let media_message = conv["last_message"]["id"].as_str().unwrap().to_string();
    w.message_until(&conversation, &media_message, |m| {
        m["content"]["download_state"] == "ready"
    })
    .await;
    Scene {
        contact: conv["contact"]["id"].as_str().unwrap().to_string(),
        conversation,
        media_message,
        workspace_a,
        workspace_b,
        admin_a,
        agent_a: agent.id,
        admin_b,
        agent_token,
        b_token,
        w,
    }
}

impl Scene {
    async fn cookie(&self, user_id: &str, workspace_id: &str) -> Auth {
        let set =
            app::server::session::start(&self.w.app.state, user_id, Some(workspace_id), None, None)
                .await
                .unwrap();
        Auth::Cookie(set.split(';').next().unwrap().to_string())
    }

    async fn callers(&self, cookies: bool) -> Callers {
        if cookies {
            Callers {
                admin_a: self.cookie(&self.admin_a, &self.workspace_a).await,
                agent_a: self.cookie(&self.agent_a, &self.workspace_a).await,
                admin_b: self.cookie(&self.admin_b, &self.workspace_b).await,
            }
        } else {
            Callers {
                admin_a: Auth::Bearer(self.w.token.clone()),
                agent_a: Auth::Bearer(self.agent_token.clone()),
                admin_b: Auth::Bearer(self.b_token.clone()),
            }
        }
    }

    /// Fresh objects for one pass: what a row may delete, and an invitation for a stranger.
    async fn fixtures(&self, pass: &str) -> Fixtures {
        let db = &self.w.app.db;
        let ws = &self.workspace_a;
        let webhook = db
            .create_endpoint(
                ws,
                "http://127.0.0.1:9/x",
                &self.w.app.state.key.encrypt("whsec_x"),
                "[]",
            )
            .await
            .unwrap();
        let spare = random_secret("qtk_");
        let token = db
            .create_api_token(
                ws,
                &self.admin_a,
                &format!("spare-{pass}"),
                &hash_secret(&spare),
                &spare[..8],
            )
            .await
            .unwrap();
        let expires = now_ms() + 3_600_000;
        let invitation = db
            .create_invitation(
                ws,
                &format!("invitee-{pass}@example.test"),
                "agent",
                &hash_secret(&random_secret("")),
                &self.admin_a,
                expires,
            )
            .await
            .unwrap();
        let stranger_invite = random_secret("");
        db.create_invitation(
            ws,
            &format!("stranger-{pass}@example.test"),
            "agent",
            &hash_secret(&stranger_invite),
            &self.admin_a,
            expires,
        )
        .await
        .unwrap();
        let member = db
            .create_user(&format!("member-{pass}@acme.test"), "Member")
            .await
            .unwrap();
        db.add_member(ws, &member.id, "agent").await.unwrap();
        let canned = db
            .create_canned_response(ws, &format!("spare-{pass}"), "Spare")
            .await
            .unwrap();
        // Contacts a row consumes, numbered apart per pass.
        let p = if pass == "bearer" { 1 } else { 2 };
        let phone = |n: u32| format!("+628123{p}00000{n}");
        let contact = |n: u32| {
            let phone = phone(n);
            async move {
                db.create_contact(
                    ws,
                    &NewContact {
                        wa_id: &phone[1..],
                        phone: &phone,
                        name: Some("Spare"),
                        attributes: &Default::default(),
                        labels: &[],
                    },
                )
                .await
                .unwrap()
            }
        };
        let doomed_contact = contact(1).await;
        let agent_doomed_contact = contact(2).await;
        let erased_contact = contact(3).await;
        let merge_into = contact(4).await;
        let merge_from = contact(5).await;
        let agent_merge_from = contact(6).await;
        let import: Value = self
            .w
            .app
            .client
            .post(format!("{}/api/v1/contacts/imports", self.w.app.url))
            .bearer_auth(&self.w.token)
            .header("content-type", "text/csv")
            .body(format!(
                "phone,name\n{},Imported\nnot-a-phone,Bad\n",
                phone(9)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let broadcast = db
            .create_broadcast(&NewBroadcast {
                workspace_id: ws,
                number_id: &self.w.number_id,
                created_by: &self.admin_a,
                name: "Spare",
                template_name: "spare",
                template_language: "en_US",
                variables: "{}",
                audience: r#"{"all":true}"#,
                scheduled_at: now_ms() + 86_400_000,
                total: 0,
            })
            .await
            .unwrap();
        Fixtures {
            values: vec![
                ("pass", pass.to_string()),
                ("workspace_a", ws.clone()),
                ("number", self.w.number_id.clone()),
                ("access_token", ACCESS_TOKEN.to_string()),
                ("conversation", self.conversation.clone()),
                ("contact", self.contact.clone()),
                ("customer", CUSTOMER.to_string()),
                ("media_message", self.media_message.clone()),
                ("webhook", webhook.id),
                ("token", token),
                ("invitation", invitation.id),
                ("stranger_invite", stranger_invite),
                ("member", member.id),
                ("canned", canned.id),
                ("doomed_contact", doomed_contact),
                ("erased_contact", erased_contact),
                ("merge_into", merge_into),
                ("merge_from", merge_from),
                ("new_phone", phone(7)),
                (
                    "import",
                    import["id"].as_str().expect("an import").to_string(),
                ),
                ("broadcast", broadcast),
            ],
            agent_own: vec![
                ("doomed_contact", agent_doomed_contact),
                ("merge_from", agent_merge_from),
                ("new_phone", phone(8)),
            ],
        }
    }

    /// Throwaway people for a row that consumes its caller: an agent of A, and the admin of a
    /// new workspace of their own.
    async fn throwaway_callers(&self, pass: &str, cookies: bool, admin_a: Auth) -> Callers {
        let db = &self.w.app.db;
        let agent = db
            .create_user(&format!("leaver-{pass}@acme.test"), "Leaver")
            .await
            .unwrap();
        db.add_member(&self.workspace_a, &agent.id, "agent")
            .await
            .unwrap();
        let agent_token = random_secret("qtk_");
        db.create_api_token(
            &self.workspace_a,
            &agent.id,
            "leaver",
            &hash_secret(&agent_token),
            &agent_token[..8],
        )
        .await
        .unwrap();
        let (workspace, b_token) = self
            .w
            .app
            .workspace_with_token(&format!("Leaving {pass}"))
            .await;
        let admin_b = user_id(&self.w, &format!("admin@leaving-{pass}.test")).await;
        if cookies {
            Callers {
                admin_a,
                agent_a: self.cookie(&agent.id, &self.workspace_a).await,
                admin_b: self.cookie(&admin_b, &workspace).await,
            }
        } else {
            Callers {
                admin_a,
                agent_a: Auth::Bearer(agent_token),
                admin_b: Auth::Bearer(b_token),
            }
        }
    }

    async fn call(&self, row: &Row, f: &Fixtures, auth: &Auth, agent: bool) -> u16 {
        let fill = |text: &str| f.fill(text, agent);
        let url = format!("{}{}", self.w.app.url, fill(row.path));
        let mut req = self.w.app.client.request(row.method.clone(), &url);
        match auth {
            Auth::Bearer(t) => req = req.bearer_auth(t),
            // The browser names our origin on every request that changes something.
            Auth::Cookie(c) => req = req.header("cookie", c).header("origin", &self.w.app.url),
            Auth::Nobody => {}
        }
        req = match row.body {
            Body::None => req,
            Body::Json(j) => req.header("content-type", "application/json").body(fill(j)),
            Body::Form(text) => req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fill(text)),
            Body::Csv(text) => req.header("content-type", "text/csv").body(text),
            Body::Upload => {
                let part = reqwest::multipart::Part::bytes(PNG.to_vec())
                    .file_name("p.png")
                    .mime_str("image/png")
                    .unwrap();
                let form = reqwest::multipart::Form::new()
                    .text("number_id", self.w.number_id.clone())
                    .part("file", part);
                req.multipart(form)
            }
        };
        // An event stream stays open: the status is all this test needs.
        let res = tokio::time::timeout(Duration::from_secs(20), req.send())
            .await
            .unwrap_or_else(|_| panic!("{} {} timed out", row.method, row.path))
            .unwrap();
        let status = res.status().as_u16();
        if status >= 400 {
            let body = tokio::time::timeout(Duration::from_secs(5), res.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| {
                panic!(
                    "{} {}: {status} without a JSON error: {body}",
                    row.method, row.path
                )
            });
            assert!(
                v["error"]["code"].is_string(),
                "{} {}: error shape {v}",
                row.method,
                row.path
            );
        }
        status
    }

    /// Runs the whole table with one kind of credential; answers every mismatch and how many
    /// rows ran.
    async fn run(&self, cookies: bool) -> (Vec<String>, usize) {
        let pass = if cookies { "cookie" } else { "bearer" };
        let f = self.fixtures(pass).await;
        let callers = self.callers(cookies).await;
        let mut failures = Vec::new();
        let declared = router_routes();
        let mut ran = 0;
        for row in table() {
            let key = (row.method.to_string(), row.pattern.to_string());
            if !declared.contains(&key) {
                continue;
            }
            ran += 1;
            let bearer_refused = row.session_only && !cookies;
            let e = if bearer_refused {
                // Bearer callers are not signed in: the same as nobody, whatever their role.
                let n = row.expect.nobody;
                expect(n, n, n, n)
            } else {
                row.expect
            };
            let throwaway;
            let callers = if row.throwaway_callers {
                throwaway = self
                    .throwaway_callers(pass, cookies, callers.admin_a.clone())
                    .await;
                &throwaway
            } else {
                &callers
            };
            for (who, auth, want) in [
                ("nobody", Auth::Nobody, e.nobody),
                ("agent of A", callers.agent_a.clone(), e.agent_a),
                ("admin of B", callers.admin_b.clone(), e.admin_b),
                ("admin of A", callers.admin_a.clone(), e.admin_a),
            ] {
                let agent = who == "agent of A";
                let got = self.call(&row, &f, &auth, agent).await;
                let matches = if want == ANY {
                    got != 401 && got != 403 && got < 500
                } else {
                    got == want
                };
                if !matches {
                    failures.push(format!(
                        "[{pass}] {who}: {} {} answered {got}, expected {want}",
                        row.method, row.path
                    ));
                }
            }
        }
        (failures, ran)
    }
}

#[tokio::test]
async fn every_route_answers_each_role_and_workspace_as_the_table_says() {
    let s = scene().await;
    let (mut failures, ran) = s.run(false).await;
    let (more, _) = s.run(true).await;
    failures.extend(more);
    assert_eq!(ran, router_routes().len(), "every declared route ran");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The (method, pattern) pairs a router source file declares with `.route("…", …)`.
fn declared_routes(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for start in source
        .match_indices(".route(")
        .map(|(i, _)| i + ".route(".len())
    {
        // The call's arguments, up to its closing parenthesis.
        let mut depth = 1;
        let mut end = start;
        for (i, c) in source[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + i;
                break;
            }
        }
        let call = &source[start..end];
        let Some(path) = call.split('"').nth(1) else {
            continue;
        };
        for method in ["get", "post", "patch", "put", "delete"] {
            let needle = format!("{method}(");
            let declared = call.match_indices(&needle).any(|(i, _)| {
                call[..i]
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            });
            if declared {
                out.insert((method.to_uppercase(), format!("{prefix}{path}")));
            }
        }
    }
    out
}

/// The routes the router's source declares under `/api/v1`, `/auth` and in the top router
/// (health probes aside: they are not a role or tenancy matter).
fn router_routes() -> BTreeSet<(String, String)> {
    let mut declared = declared_routes(include_str!("../src/api/mod.rs"), "/api/v1");
    declared.extend(declared_routes(include_str!("../src/auth.rs"), ""));
    declared.extend(declared_routes(include_str!("../src/http.rs"), ""));
    declared.retain(|(_, p)| !matches!(p.as_str(), "/healthz" | "/readyz"));
    declared
}

#[test]
fn every_route_of_the_router_is_in_the_table() {
    let declared = router_routes();
    let covered: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| (r.method.to_string(), r.pattern.to_string()))
        .collect();
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the table: {missing:?}"
    );
    assert!(
        declared.len() >= 30,
        "the route scan found only {declared:?}"
    );
}
