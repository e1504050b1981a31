//! Working conversations through the API: filters, assignment, status, labels, unread marks,
//! internal notes, canned responses, search — and the browser's session-cookie access with its
//! same-origin rule.

mod common;

use std::time::Duration;

use common::error_code;
use common::meta::{world, World};
use serde_json::{json, Value};

async fn patch(w: &World, id: &str, body: Value) -> reqwest::Response {
    w.app
        .client
        .patch(format!("{}/api/v1/conversations/{id}", w.app.url))
        .bearer_auth(&w.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ids(w: &World, query: &str) -> Vec<String> {
    w.api_get(&format!("/api/v1/conversations?{query}")).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn admin_id(w: &World) -> String {
    w.app
        .db
        .user_by_email("admin@acme.test")
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn conversations_filter_by_status_assignee_and_number() {
    let w = world(&[]).await;
    let a = w.customer_says("15550001001", "first").await;
    let b = w.customer_says("15550001002", "second").await;
    let c = w.customer_says("15550001003", "third").await;
    let me = admin_id(&w).await;

    assert_eq!(ids(&w, "").await, vec![c.clone(), b.clone(), a.clone()]);
    let r = patch(&w, &a, json!({"status": "resolved"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "resolved");
    let r = patch(&w, &b, json!({"assignee_id": me, "status": "pending"})).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["assignee"]["email"], "admin@acme.test");

    assert_eq!(ids(&w, "status=open").await, vec![c.clone()]);
    assert_eq!(ids(&w, "status=resolved").await, vec![a.clone()]);
    assert_eq!(ids(&w, "assignee=me").await, vec![b.clone()]);
    assert_eq!(
        ids(&w, "assignee=unassigned").await,
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        ids(&w, "assignee=me&status=open").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&w, &format!("number_id={}", w.number_id)).await.len(),
        3
    );
    assert!(ids(&w, "number_id=someone-elses").await.is_empty());
    // Paging keeps the filter.
    let page = w
        .api_get("/api/v1/conversations?assignee=unassigned&limit=1")
        .await;
    assert_eq!(page["data"][0]["id"], c.as_str());
    let next = page["next_cursor"].as_str().unwrap();
    assert_eq!(
        ids(&w, &format!("assignee=unassigned&limit=1&cursor={next}")).await,
        vec![a.clone()]
    );
    let bad = w
        .app
        .get("/api/v1/conversations?status=closed")
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Unassigning.
    let r = patch(&w, &b, json!({"assignee_id": null})).await;
    assert!(r.json::<Value>().await.unwrap()["assignee"].is_null());
}

#[tokio::test]
async fn changes_are_validated_and_scoped_to_the_workspace() {
    let w = world(&[]).await;
    let a = w.customer_says("15550002001", "hello").await;
    let r = patch(&w, &a, json!({"status": "closed"})).await;
    assert_eq!(r.status(), 422);
    let r = patch(&w, &a, json!({"assignee_id": 42})).await;
    assert_eq!(r.status(), 422);
    let r = patch(&w, &a, json!({"labels": ["x".repeat(41)]})).await;
    assert_eq!(r.status(), 422);
    // Someone who is not a member cannot be assigned.
    let stranger = w
        .app
        .db
        .create_user("stranger@else.test", "S")
        .await
        .unwrap();
    let r = patch(&w, &a, json!({"assignee_id": stranger.id})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
    // Another workspace's token sees none of it.
    let (_, other) = w.app.workspace_with_token("Other").await;
    for (method, path) in [
        ("PATCH", format!("/api/v1/conversations/{a}")),
        ("POST", format!("/api/v1/conversations/{a}/unread")),
        ("GET", format!("/api/v1/conversations/{a}/notes")),
        ("POST", format!("/api/v1/conversations/{a}/notes")),
    ] {
        let r = w
            .app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", w.app.url))
            .bearer_auth(&other)
            .json(&json!({"status": "resolved", "body": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    let labels = patch(&w, &a, json!({"labels": [" VIP ", "vip", "refund"]})).await;
    assert_eq!(
        labels.json::<Value>().await.unwrap()["labels"],
        json!(["VIP", "refund"])
    );
    let unchanged = w.api_get(&format!("/api/v1/conversations/{a}")).await;
    assert_eq!(unchanged["status"], "open", "nothing else changed");
}

#[tokio::test]
async fn unread_marks_and_notes_reach_the_event_stream() {
    let w = world(&[]).await;
    let a = w.customer_says("15550003001", "hello").await;
    let read = w
        .app
        .post(&format!("/api/v1/conversations/{a}/read"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.json::<Value>().await.unwrap()["unread_count"], 0);
    let last = w
        .app
        .db
        .last_event_id(
            &w.app
                .db
                .workspace_by_name("Acme")
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap();

    let unread = w
        .app
        .post(&format!("/api/v1/conversations/{a}/unread"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(unread.json::<Value>().await.unwrap()["unread_count"], 1);
    let note = w
        .app
        .post(&format!("/api/v1/conversations/{a}/notes"))
        .bearer_auth(&w.token)
        .json(&json!({"body": "  Customer is a VIP, refund approved  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), 201);
    let note: Value = note.json().await.unwrap();
    assert_eq!(note["body"], "Customer is a VIP, refund approved");
    assert_eq!(note["author"]["email"], "admin@acme.test");
    let empty = w
        .app
        .post(&format!("/api/v1/conversations/{a}/notes"))
        .bearer_auth(&w.token)
        .json(&json!({"body": "   "}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    let notes = w.api_get(&format!("/api/v1/conversations/{a}/notes")).await;
    assert_eq!(notes["data"].as_array().unwrap().len(), 1);
    // Notes are never sent to WhatsApp.
    assert!(w.graph_sends().await.is_empty());

    // The stream replays both changes after the position before them.
    let mut res = w
        .app
        .get("/api/v1/events")
        .bearer_auth(&w.token)
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(text.contains("event: note.created") && text.contains("\"unread_count\":1")) {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("Customer is a VIP"), "{text}");
    // The same position given as a query parameter (for clients that cannot set headers).
    let mut res = w
        .app
        .get(&format!("/api/v1/events?last_event_id={last}"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("conversation.updated"));
    let bad = w
        .app
        .get("/api/v1/events?last_event_id=abc")
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn canned_responses_are_managed_by_admins_and_read_by_everyone() {
    let w = world(&[]).await;
    let create = |body: Value, token: String| {
        let app = &w.app;
        async move {
            app.post("/api/v1/canned-responses")
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = create(
        json!({"shortcut": "/Thanks", "body": "Thank you for shopping with us!"}),
        w.token.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["shortcut"], "thanks");
    let dup = create(
        json!({"shortcut": "thanks", "body": "again"}),
        w.token.clone(),
    )
    .await;
    assert_eq!(dup.status(), 409);
    let bad = create(
        json!({"shortcut": "has space", "body": "x"}),
        w.token.clone(),
    )
    .await;
    assert_eq!(bad.status(), 422);

    // An agent of the workspace reads them but cannot change them.
    let ws = w.app.db.workspace_by_name("Acme").await.unwrap().unwrap();
    let agent = w
        .app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    w.app
        .db
        .add_member(&ws.id, &agent.id, "agent")
        .await
        .unwrap();
    let agent_token = app::server::crypto::random_secret("qtk_");
    w.app
        .db
        .create_api_token(
            &ws.id,
            &agent.id,
            "agent",
            &app::server::crypto::hash_secret(&agent_token),
            &agent_token[..8],
        )
        .await
        .unwrap();
    let forbidden = create(
        json!({"shortcut": "hi", "body": "Hi!"}),
        agent_token.clone(),
    )
    .await;
    assert_eq!(forbidden.status(), 403);
    assert_eq!(error_code(forbidden).await, "forbidden");
    let list: Value = w
        .app
        .get("/api/v1/canned-responses")
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["body"], "Thank you for shopping with us!");
    let id = made["id"].as_str().unwrap();
    let del = |token: String| {
        let app = &w.app;
        let path = format!("{}/api/v1/canned-responses/{id}", app.url);
        async move {
            app.client
                .delete(path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(del(agent_token).await.status(), 403);
    assert_eq!(del(w.token.clone()).await.status(), 204);
    assert_eq!(del(w.token.clone()).await.status(), 404);
}

#[tokio::test]
async fn search_finds_messages_by_words_and_contacts_by_name_or_number() {
    let w = world(&[]).await;
    let a = w
        .customer_says("15550004001", "Please resend invoice INV-44718, thanks")
        .await;
    w.customer_says("15550004002", "Is the blue shirt available?")
        .await;
    w.customer_says("15550004003", "Invoicing question about order 99")
        .await;

    let search = |q: &str| {
        let q = q.to_string();
        let w = &w;
        async move {
            w.api_get(&format!(
                "/api/v1/search?q={}",
                q.replace(' ', "%20")
                    .replace('"', "%22")
                    .replace('*', "%2A")
            ))
            .await
        }
    };
    let r = search("invoice 44718").await;
    let hits = r["messages"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{r}");
    assert_eq!(hits[0]["conversation_id"], a.as_str());
    assert!(hits[0]["snippet"].as_str().unwrap().contains("INV-44718"));
    // Every word is a prefix: `invoic` finds both invoice and invoicing.
    assert_eq!(
        search("invoic").await["messages"].as_array().unwrap().len(),
        2
    );
    // Query syntax is not injected: quotes, stars and operators are just characters.
    assert_eq!(
        search("\"blue\" OR *").await["messages"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        search("blue").await["messages"].as_array().unwrap().len(),
        1
    );
    // Contacts by profile name and by digits of their number.
    let by_number = search("4002").await;
    assert_eq!(by_number["contacts"][0]["phone"], "+15550004002");
    assert_eq!(search("ana").await["contacts"].as_array().unwrap().len(), 3);
    assert!(search("").await["messages"].as_array().unwrap().is_empty());
    // Another workspace finds nothing of this one.
    let (_, other) = w.app.workspace_with_token("Other").await;
    let theirs: Value = w
        .app
        .get("/api/v1/search?q=invoice")
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(theirs["messages"].as_array().unwrap().is_empty());
    assert!(theirs["contacts"].as_array().unwrap().is_empty());
    // An edit changes what search finds.
    let wamid = w
        .api_get(&format!("/api/v1/conversations/{a}/messages"))
        .await["data"][0]["wamid"]
        .as_str()
        .unwrap()
        .to_string();
    w.emu_post(
        "/_emulator/customers/15550004001/messages",
        json!({"type": "edit", "edit": {"original_message_id": wamid, "message": {"type": "text", "text": {"body": "Never mind, found the receipt"}}}}),
    )
    .await;
    let mut found = Value::Null;
    for _ in 0..100 {
        found = search("receipt").await;
        if !found["messages"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        found["messages"][0]["conversation_id"],
        a.as_str(),
        "{found}"
    );
    let long = w
        .app
        .get(&format!("/api/v1/search?q={}", "a".repeat(201)))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
}

#[tokio::test]
async fn the_browser_uses_the_api_with_its_session_cookie_from_its_own_origin_only() {
    let w = world(&[
        ("QONTAK_DEV_LOGIN", "1"),
        ("QONTAK_PUBLIC_URL", "http://127.0.0.1:9"),
    ])
    .await;
    let a = w.customer_says("15550005001", "hi").await;
    // Sign in as the workspace's admin through the development form.
    let signin = w
        .app
        .post("/auth/dev")
        .form(&[("email", "admin@acme.test")])
        .send()
        .await
        .unwrap();
    let cookie = signin
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("qontak_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let list: Value = w
        .app
        .get("/api/v1/conversations")
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], a.as_str());
    let change = |origin: Option<&str>| {
        let mut req = w
            .app
            .client
            .patch(format!("{}/api/v1/conversations/{a}", w.app.url))
            .header("Cookie", &cookie)
            .json(&json!({"status": "pending"}));
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        req.send()
    };
    let no_origin = change(None).await.unwrap();
    assert_eq!(no_origin.status(), 403);
    let cross = change(Some("https://evil.example")).await.unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(error_code(cross).await, "forbidden");
    let ours = change(Some(&w.app.url)).await.unwrap();
    assert_eq!(ours.status(), 200);
    // Without a cookie or token: 401.
    let nobody = w.app.get("/api/v1/conversations").send().await.unwrap();
    assert_eq!(nobody.status(), 401);
    // A forged cookie is nobody.
    let forged = w
        .app
        .get("/api/v1/conversations")
        .header("Cookie", "qontak_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}
