//! Teams: invitations that work once, members and the last admin, API tokens, switching
//! workspaces, one's profile, and connecting numbers (token encrypted at rest).

mod common;

use app::server::crypto::{hash_secret, random_secret};
use app::server::db::Db;
use app::server::now_ms;
use common::meta::{world, World, ACCESS_TOKEN};
use common::{error_code, spawn_app_with, TestApp};
use serde_json::{json, Value};

/// The status of a request's answer.
async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// The audit log's actions in a workspace, newest first.
async fn actions(db: &Db, workspace_id: &str) -> Vec<String> {
    db.audit_entries(workspace_id, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect()
}

/// A session cookie (`name=value`) for a user, in a workspace.
async fn cookie(app: &TestApp, user_id: &str, workspace_id: Option<&str>) -> String {
    let set = app::server::session::start(&app.state, user_id, workspace_id, None, None)
        .await
        .unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn admin_of(app: &TestApp, name: &str) -> (String, String, String) {
    let (ws, token) = app.workspace_with_token(name).await;
    let admin = app
        .db
        .user_by_email(&format!("admin@{}.test", name.to_lowercase()))
        .await
        .unwrap()
        .unwrap();
    (ws, token, admin.id)
}

/// A signed-in browser's JSON request: the cookie and our own origin.
fn browser(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.url))
        .header("cookie", cookie)
        .header("origin", &app.url)
}

async fn invite(app: &TestApp, token: &str, email: &str, role: &str) -> Value {
    let res = app
        .post("/api/v1/members/invitations")
        .bearer_auth(token)
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn link_token(invitation: &Value) -> String {
    invitation["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

async fn accept(app: &TestApp, link: &str, cookie: &str) -> reqwest::Response {
    browser(
        app,
        reqwest::Method::POST,
        &format!("/auth/invitations/{link}/accept"),
        cookie,
    )
    .header("accept", "application/json")
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn an_invitation_is_accepted_once_by_the_invited_email_case_insensitively() {
    let app = spawn_app_with(&[]).await;
    let (ws, token, _) = admin_of(&app, "Acme").await;
    let inv = invite(&app, &token, "Ana@Example.test", "agent").await;
    assert_eq!(inv["email"], "ana@example.test");
    assert!(inv["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/invite/", app.config.public_url)));
    let link = link_token(&inv);
    let week = 7 * 24 * 3600 * 1000;
    let row = app
        .db
        .invitation_by_hash(&hash_secret(&link))
        .await
        .unwrap()
        .unwrap();
    assert!(
        (row.expires_at - (now_ms() + week)).abs() < 60_000,
        "expires after 7 days"
    );

    let ana = app
        .db
        .create_user("ANA@example.TEST".to_lowercase().as_str(), "Ana")
        .await
        .unwrap();
    let c = cookie(&app, &ana.id, None).await;
    let res = accept(&app, &link, &c).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["workspace_id"], ws.as_str());
    assert_eq!(body["role"], "agent");

    let session: Value = app
        .get("/auth/session")
        .header("cookie", &c)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["current_workspace"], ws.as_str());
    assert_eq!(session["workspaces"][0]["role"], "agent");

    // The same link again, by the same person or anyone: refused, nothing changes.
    let again = accept(&app, &link, &c).await;
    assert_eq!(again.status(), 410);
    assert_eq!(error_code(again).await, "invitation_used");
    assert_eq!(app.db.members(&ws).await.unwrap().len(), 2);

    // The list of open invitations no longer holds it; the audit log names the acceptance.
    let open: Value = app
        .get("/api/v1/members/invitations")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(open["data"].as_array().unwrap().is_empty());
    let audit = app.db.audit_entries(&ws, 20).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "invitation.created"));
    assert!(audit
        .iter()
        .any(|a| a.action == "invitation.accepted" && a.actor == "ana@example.test"));
}

#[tokio::test]
async fn an_expired_revoked_or_unknown_invitation_is_refused() {
    let app = spawn_app_with(&[]).await;
    let (ws, token, admin) = admin_of(&app, "Acme").await;
    let bob = app.db.create_user("bob@example.test", "Bob").await.unwrap();
    let c = cookie(&app, &bob.id, None).await;

    let expired = random_secret("");
    app.db
        .create_invitation(
            &ws,
            "bob@example.test",
            "agent",
            &hash_secret(&expired),
            &admin,
            now_ms() - 1,
        )
        .await
        .unwrap();
    let res = accept(&app, &expired, &c).await;
    assert_eq!(res.status(), 410);
    assert_eq!(error_code(res).await, "invitation_expired");

    let inv = invite(&app, &token, "bob@example.test", "agent").await;
    let res = app
        .client
        .delete(format!(
            "{}/api/v1/members/invitations/{}",
            app.url,
            inv["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = accept(&app, &link_token(&inv), &c).await;
    assert_eq!(res.status(), 410);
    assert_eq!(error_code(res).await, "invitation_revoked");

    let res = accept(&app, "no-such-invitation", &c).await;
    assert_eq!(res.status(), 404);
    assert!(app.db.memberships_of(&bob.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_invitation_for_another_email_is_refused_and_still_works_for_its_owner() {
    let app = spawn_app_with(&[]).await;
    let (ws, token, _) = admin_of(&app, "Acme").await;
    let inv = invite(&app, &token, "carol@example.test", "admin").await;
    let link = link_token(&inv);
    let mallory = app
        .db
        .create_user("mallory@example.test", "M")
        .await
        .unwrap();
    let res = accept(&app, &link, &cookie(&app, &mallory.id, None).await).await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_code(res).await, "email_mismatch");
    assert!(app.db.memberships_of(&mallory.id).await.unwrap().is_empty());

    // Not signed in at all: 401 to JSON, and the form post is sent to sign in first.
    let res = app
        .post(&format!("/auth/invitations/{link}/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .post(&format!("/auth/invitations/{link}/accept"))
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("/login?next=/invite/{link}")
    );

    let carol = app
        .db
        .create_user("carol@example.test", "Carol")
        .await
        .unwrap();
    let c = cookie(&app, &carol.id, None).await;
    // The invitation page's form: 303 to the inbox.
    let res = browser(
        &app,
        reqwest::Method::POST,
        &format!("/auth/invitations/{link}/accept"),
        &c,
    )
    .form(&[("x", "")])
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/inbox");
    assert_eq!(
        app.db.memberships_of(&carol.id).await.unwrap()[0].workspace_id,
        ws
    );
    assert_eq!(
        app.db.memberships_of(&carol.id).await.unwrap()[0].role,
        "admin"
    );
    // A second form post goes back to the page with the reason.
    let res = browser(
        &app,
        reqwest::Method::POST,
        &format!("/auth/invitations/{link}/accept"),
        &c,
    )
    .form(&[("x", "")])
    .send()
    .await
    .unwrap();
    assert_eq!(
        res.headers()["location"],
        format!("/invite/{link}?error=invitation_used")
    );
}

#[tokio::test]
async fn an_invited_person_signing_in_first_gets_no_workspace_of_their_own_and_comes_back() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let (ws, token, _) = admin_of(&app, "Acme").await;
    let inv = invite(&app, &token, "dana@example.test", "agent").await;
    let link = link_token(&inv);
    let res = app
        .post("/auth/dev")
        .form(&[
            ("email", "dana@example.test"),
            ("next", &format!("/invite/{link}")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], format!("/invite/{link}"));
    let c = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let dana = app
        .db
        .user_by_email("dana@example.test")
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.db.memberships_of(&dana.id).await.unwrap().is_empty(),
        "no workspace of her own"
    );
    assert_eq!(accept(&app, &link, &c).await.status(), 200);
    let m = app.db.memberships_of(&dana.id).await.unwrap();
    assert_eq!(
        (m.len(), m[0].workspace_id.as_str(), m[0].role.as_str()),
        (1, ws.as_str(), "agent")
    );

    // `next` never leads off-site.
    let res = app
        .post("/auth/dev")
        .form(&[("email", "eve@example.test"), ("next", "//evil.example/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/inbox");
}

#[tokio::test]
async fn the_last_admin_can_be_neither_demoted_nor_removed_and_changes_are_audited() {
    let app = spawn_app_with(&[]).await;
    let (ws, token, admin) = admin_of(&app, "Acme").await;
    let agent = app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    app.db.add_member(&ws, &agent.id, "agent").await.unwrap();

    let members: Value = app
        .get("/api/v1/members")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members["data"].as_array().unwrap().len(), 2);
    assert_eq!(members["data"][0]["role"], "admin");

    let patch = |user: &str, role: &str| {
        app.client
            .patch(format!("{}/api/v1/members/{user}", app.url))
            .bearer_auth(&token)
            .json(&json!({"role": role}))
    };
    let res = patch(&admin, "agent").send().await.unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "last_admin");
    let res = app
        .client
        .delete(format!("{}/api/v1/members/{admin}", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = patch(&agent.id, "owner").send().await.unwrap();
    assert_eq!(res.status(), 422);

    // With a second admin, the first may step down; then the second is the last.
    let res = patch(&agent.id, "admin").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "admin");
    assert_eq!(patch(&admin, "agent").send().await.unwrap().status(), 200);
    // The demoted admin's token now acts as an agent.
    assert_eq!(
        patch(&agent.id, "agent").send().await.unwrap().status(),
        403
    );

    let t2 = random_secret("qtk_");
    app.db
        .create_api_token(&ws, &agent.id, "t2", &hash_secret(&t2), &t2[..8])
        .await
        .unwrap();
    let res = app
        .client
        .delete(format!("{}/api/v1/members/{}", app.url, agent.id))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "the last admin cannot remove themselves");
    let res = app
        .client
        .delete(format!("{}/api/v1/members/{admin}", app.url))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // A removed member's token stops working.
    assert_eq!(
        status(app.get("/api/v1/numbers").bearer_auth(&token)).await,
        401
    );

    let actions = actions(&app.db, &ws).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "member.role_changed")
            .count(),
        2
    );
    assert!(actions.contains(&"member.removed".to_string()));
}

#[tokio::test]
async fn api_tokens_are_shown_once_listed_without_the_secret_and_revoked() {
    let app = spawn_app_with(&[]).await;
    let (ws, token, _) = admin_of(&app, "Acme").await;
    let res = app
        .post("/api/v1/tokens")
        .bearer_auth(&token)
        .json(&json!({"name": "zapier"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("qtk_"));
    assert_eq!(made["created_by"], "admin@acme.test");

    assert_eq!(
        status(app.get("/api/v1/numbers").bearer_auth(&secret)).await,
        200
    );
    let list: Value = app
        .get("/api/v1/tokens")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&secret), "the list never shows a token");
    let zapier = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "zapier")
        .unwrap();
    assert!(!zapier["last_used_at"].is_null(), "last use is recorded");
    assert_eq!(zapier["prefix"], &secret[..8]);

    let dup = app
        .post("/api/v1/tokens")
        .bearer_auth(&token)
        .json(&json!({"name": "zapier"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let empty = app
        .post("/api/v1/tokens")
        .bearer_auth(&token)
        .json(&json!({"name": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);

    let res = app
        .client
        .delete(format!(
            "{}/api/v1/tokens/{}",
            app.url,
            made["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        status(app.get("/api/v1/numbers").bearer_auth(&secret)).await,
        401
    );
    let actions = actions(&app.db, &ws).await;
    assert!(
        actions.contains(&"token.created".to_string())
            && actions.contains(&"token.revoked".to_string())
    );
}

#[tokio::test]
async fn a_member_of_two_workspaces_switches_between_them() {
    let app = spawn_app_with(&[]).await;
    let (a, _, admin_a) = admin_of(&app, "Acme").await;
    let (b, _, _) = admin_of(&app, "Globex").await;
    let (c_ws, _, _) = admin_of(&app, "Initech").await;
    app.db.add_member(&b, &admin_a, "agent").await.unwrap();
    let c = cookie(&app, &admin_a, Some(&a)).await;
    let me = |c: String| {
        let app = &app;
        async move {
            app.get("/api/v1/me")
                .header("cookie", c)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(me(c.clone()).await["role"], "admin");

    let res = browser(&app, reqwest::Method::POST, "/auth/workspace", &c)
        .json(&json!({"workspace_id": b}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let now = me(c.clone()).await;
    assert_eq!(
        (
            now["workspace_id"].as_str().unwrap(),
            now["role"].as_str().unwrap()
        ),
        (b.as_str(), "agent")
    );
    let session: Value = app
        .get("/auth/session")
        .header("cookie", &c)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["current_workspace"], b.as_str());

    // Not a member: 404, and the session stays where it was.
    let res = browser(&app, reqwest::Method::POST, "/auth/workspace", &c)
        .json(&json!({"workspace_id": c_ws}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(me(c.clone()).await["workspace_id"], b.as_str());
    // The switcher's form post answers 303 to the inbox; another site's post is refused.
    let res = browser(&app, reqwest::Method::POST, "/auth/workspace", &c)
        .form(&[("workspace_id", a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(me(c.clone()).await["workspace_id"], a.as_str());
    let res = app
        .post("/auth/workspace")
        .header("cookie", &c)
        .header("origin", "https://evil.example")
        .form(&[("workspace_id", b.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_user_corrects_their_name_and_email_and_the_change_is_audited() {
    let app = spawn_app_with(&[]).await;
    let (ws, _, admin) = admin_of(&app, "Acme").await;
    app.db.create_user("taken@example.test", "T").await.unwrap();
    let c = cookie(&app, &admin, Some(&ws)).await;
    let res = browser(&app, reqwest::Method::PATCH, "/api/v1/me", &c)
        .json(&json!({"name": "  Ada Lovelace ", "email": "Ada@Example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: Value = app
        .get("/api/v1/me")
        .header("cookie", &c)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str().unwrap(), me["email"].as_str().unwrap()),
        ("Ada Lovelace", "ada@example.test")
    );

    let res = browser(&app, reqwest::Method::PATCH, "/api/v1/me", &c)
        .json(&json!({"email": "taken@example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = browser(&app, reqwest::Method::PATCH, "/api/v1/me", &c)
        .json(&json!({"email": "not-an-email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["field"],
        "email"
    );
    // Without our Origin, a cookie cannot change anything.
    let res = app
        .client
        .patch(format!("{}/api/v1/me", app.url))
        .header("cookie", &c)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let entry = app
        .db
        .audit_entries(&ws, 5)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.action == "profile.updated")
        .unwrap();
    assert!(entry.detail.contains("email") && entry.detail.contains("name"));
}

// ---- numbers ------------------------------------------------------------------------------

const WABA2: &str = "200000000000001";
const PNID2: &str = "300000000000001";

async fn second_emulated_number(w: &World) {
    w.emu_post(
        "/_emulator/numbers",
        json!({"phone_number_id": PNID2, "waba_id": WABA2, "display_phone_number": "+1 555-010-2030", "verified_name": "Acme Two"}),
    )
    .await;
}

async fn connect(w: &World, body: Value) -> reqwest::Response {
    w.app
        .post("/api/v1/numbers")
        .bearer_auth(&w.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Every stored byte of the database, as text: the SQLite file and its WAL, or every row of
/// every table on Postgres.
async fn raw_database(w: &World) -> String {
    match &w.app.db {
        Db::Sqlite(pool) => {
            sqlx::query("PRAGMA wal_checkpoint(FULL)")
                .execute(pool)
                .await
                .unwrap();
            let url = &w.app.config.database_url;
            let path = url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap();
            let mut bytes = std::fs::read(path).unwrap();
            if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "meta_connections"));
            let mut out = String::new();
            for t in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT row_to_json(x)::text FROM \"{t}\" x"
                )))
                .fetch_all(pool)
                .await
                .unwrap();
                out.push_str(&rows.join("\n"));
            }
            out
        }
    }
}

#[tokio::test]
async fn an_admin_connects_a_number_checked_with_meta_and_the_token_is_unreadable_at_rest() {
    let w = world(&[("META_VERIFY_TOKEN", "verify-me")]).await;
    second_emulated_number(&w).await;

    let res = connect(
        &w,
        json!({"waba_id": WABA2, "phone_number_id": PNID2, "access_token": "EAA-wrong"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["field"], "access_token");
    let res = connect(&w, json!({"waba_id": common::meta::WABA, "phone_number_id": PNID2, "access_token": ACCESS_TOKEN})).await;
    assert_eq!(res.status(), 422, "the number is not under that WABA");
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["field"],
        "waba_id"
    );
    let res = connect(
        &w,
        json!({"waba_id": WABA2, "phone_number_id": "999000", "access_token": ACCESS_TOKEN}),
    )
    .await;
    assert_eq!(res.status(), 422);

    let res = connect(
        &w,
        json!({"waba_id": WABA2, "phone_number_id": PNID2, "access_token": ACCESS_TOKEN}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let n: Value = res.json().await.unwrap();
    assert_eq!(n["display_phone"], "+15550102030");
    assert_eq!(n["verified_name"], "Acme Two");
    assert_eq!(n["quality_rating"], "GREEN");
    assert_eq!(n["messaging_tier"], "TIER_2K");
    assert_eq!(n["subscribed"], true);
    assert!(!n.to_string().contains(ACCESS_TOKEN));
    let again = connect(
        &w,
        json!({"waba_id": WABA2, "phone_number_id": PNID2, "access_token": ACCESS_TOKEN}),
    )
    .await;
    assert_eq!(again.status(), 409);

    let raw = raw_database(&w).await;
    assert!(raw.contains(PNID2), "the search does see the stored rows");
    assert!(
        !raw.contains(ACCESS_TOKEN),
        "the access token is stored encrypted only"
    );

    let id = n["id"].as_str().unwrap();
    let health: Value = w
        .app
        .get(&format!("/api/v1/numbers/{id}/health"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true, "{health}");
    let check = |name: &str| {
        health["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(check("access_token")["ok"], true);
    assert_eq!(check("subscription")["ok"], true);
    assert_eq!(check("webhook")["ok"], true);
    assert_eq!(
        health["webhook"]["webhook_url"],
        format!("{}/webhooks/whatsapp", w.app.config.public_url)
    );
    assert_eq!(health["webhook"]["verify_token"], "verify-me");
    assert!(!health.to_string().contains(ACCESS_TOKEN));
}

#[tokio::test]
async fn health_explains_a_revoked_token_and_a_missing_subscription_and_a_new_token_fixes_it() {
    let w = world(&[("META_VERIFY_TOKEN", "verify-me")]).await;
    let id = w.number_id.clone();
    let health = |w: &World| {
        let url = format!("/api/v1/numbers/{id}/health");
        let req = w.app.get(&url).bearer_auth(&w.token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let find = |h: &Value, name: &str| {
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };

    // The world's number: token fine, no app subscribed yet.
    let h = health(&w).await;
    assert_eq!(find(&h, "access_token")["ok"], true);
    let sub = find(&h, "subscription");
    assert_eq!(sub["ok"], false);
    assert!(
        sub["message"].as_str().unwrap().contains("no webhooks"),
        "{sub}"
    );
    assert_eq!(find(&h, "webhook")["ok"], true);
    assert_eq!(h["number"]["quality_rating"], "GREEN");

    // A token Meta no longer accepts.
    let admin = w
        .app
        .db
        .user_by_email("admin@acme.test")
        .await
        .unwrap()
        .unwrap();
    let ws = w.app.db.memberships_of(&admin.id).await.unwrap()[0]
        .workspace_id
        .clone();
    let key = &w.app.state.key;
    assert!(w
        .app
        .db
        .replace_number_token(&ws, &id, &key.encrypt("EAA-revoked"), key.id())
        .await
        .unwrap());
    let h = health(&w).await;
    assert_eq!(h["ok"], false);
    let token = find(&h, "access_token");
    assert_eq!(token["ok"], false);
    assert!(
        token["message"]
            .as_str()
            .unwrap()
            .contains("expired or was revoked"),
        "{token}"
    );

    let replace = |t: &str| {
        w.app
            .client
            .patch(format!("{}/api/v1/numbers/{id}", w.app.url))
            .bearer_auth(&w.token)
            .json(&json!({"access_token": t}))
            .send()
    };
    let res = replace("EAA-still-wrong").await.unwrap();
    assert_eq!(
        res.status(),
        422,
        "a replacement is checked with Meta first"
    );
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["field"],
        "access_token"
    );
    let res = replace(ACCESS_TOKEN).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(find(&health(&w).await, "access_token")["ok"], true);
    assert!(actions(&w.app.db, &ws)
        .await
        .contains(&"number.token_replaced".to_string()));
}
