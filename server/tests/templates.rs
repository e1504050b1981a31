//! Template management against the Meta emulator: sync across pages, create with a media
//! header uploaded through the Resumable Upload API (the exact JSON Meta receives), delete one
//! language or all, a status webhook that approves a template live, validation before Meta,
//! and admin-only access.

mod common;

use std::time::Duration;

use common::meta::{world, World, WABA};
use serde_json::{json, Value};

/// A PNG's first bytes are enough for the emulator's upload session.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-template-header-sample-";

impl World {
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// Graph requests whose path ends with `suffix`.
    async fn graph_requests(&self, method: &str, suffix: &str) -> Vec<Value> {
        self.emu_get("/_emulator/requests")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == method && r["path"].as_str().unwrap().ends_with(suffix))
            .cloned()
            .collect()
    }

    async fn templates(&self, query: &str) -> Vec<Value> {
        self.api_get(&format!("/api/v1/templates{query}")).await["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn sync_pages_through_every_template_meta_lists() {
    let w = world(&[]).await;
    let mut seeded: Vec<Value> = (0..248)
        .map(|i| {
            json!({"name": format!("promo_{i:03}"), "language": "en_US", "category": "MARKETING",
            "components": [{"type": "BODY", "text": format!("Offer {i}")}]})
        })
        .collect();
    seeded.push(
        json!({"name": "rejected_one", "language": "es_ES", "status": "REJECTED",
        "rejected_reason": "INVALID_FORMAT", "quality_score": {"score": "UNKNOWN", "date": 1}}),
    );
    seeded.push(json!({"name": "hello_world", "language": "en_US"}));
    w.emu_post(
        "/_emulator/templates",
        json!({"waba_id": WABA, "templates": seeded}),
    )
    .await;

    let res = w
        .api(reqwest::Method::POST, "/api/v1/templates/sync", None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"synced": 250}));
    let pages = w
        .graph_requests("GET", &format!("/{WABA}/message_templates"))
        .await;
    assert_eq!(pages.len(), 3, "100 + 100 + 50, following paging.next");
    assert!(pages[1]["query"].as_str().unwrap().contains("after="));

    let all = w.templates("").await;
    assert_eq!(all.len(), 250);
    let rejected = all.iter().find(|t| t["name"] == "rejected_one").unwrap();
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["rejected_reason"], "INVALID_FORMAT");
    assert_eq!(rejected["quality_score"], "UNKNOWN");
    assert_eq!(rejected["language"], "es_ES");
    assert_eq!(
        w.templates("?samples=false").await.len(),
        249,
        "Meta's sample is left out"
    );
    assert_eq!(w.templates("?status=rejected").await.len(), 1);
    assert_eq!(
        w.templates("?language=en_US&category=MARKETING")
            .await
            .len(),
        248
    );

    // Meta deleted one elsewhere: the next sync removes our copy, and syncing again is stable.
    w.http
        .delete(format!(
            "{}/v25.0/{WABA}/message_templates?name=promo_000",
            w.emulator
        ))
        .bearer_auth(common::meta::ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    let res = w
        .api(reqwest::Method::POST, "/api/v1/templates/sync", None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"synced": 249}));
    assert_eq!(w.templates("").await.len(), 249);
}

/// Uploads a header sample through our API; answers Meta's handle.
async fn upload_sample(w: &World) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(PNG.to_vec())
            .file_name("header.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let res = w
        .app
        .post("/api/v1/templates/media")
        .bearer_auth(&w.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        status,
        200,
        "{answer} {}",
        w.emu_get("/_emulator/requests").await
    );
    let handle = answer["handle"].as_str().unwrap().to_string();
    let session = &w.graph_requests("POST", "/app/uploads").await[0];
    let query = session["query"].as_str().unwrap();
    assert!(
        query.contains(&format!("file_length={}", PNG.len()))
            && query.contains("file_type=image%2Fpng"),
        "{query}"
    );
    let upload = w.graph_requests("POST", "").await;
    let bytes = upload
        .iter()
        .find(|r| r["path"].as_str().unwrap().contains("/upload:"))
        .expect("the bytes went to the upload session");
    assert_eq!(
        bytes["authorization"],
        format!("OAuth {}", common::meta::ACCESS_TOKEN),
        "upload sessions take `OAuth`, as Meta documents"
    );
    handle
}

fn order_template(handle: &str) -> Value {
    json!({
        "name": "order_shipped",
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "named",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}},
            {"type": "BODY", "text": "Hi {{first_name}}, order {{order_id}} is on its way.",
             "example": {"body_text_named_params": [
                 {"param_name": "first_name", "example": "Pablo"},
                 {"param_name": "order_id", "example": "335628"}]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://example.com/t/{{1}}",
                 "example": ["https://example.com/t/335628"]},
                {"type": "QUICK_REPLY", "text": "Talk to us"}]}
        ]
    })
}

#[tokio::test]
async fn a_named_template_with_a_media_header_and_url_button_reaches_meta_exactly() {
    let w = world(&[]).await;
    let handle = upload_sample(&w).await;
    let template = order_template(&handle);
    let mut with_waba = template.clone();
    with_waba["waba_id"] = json!(WABA);
    let res = w
        .api(reqwest::Method::POST, "/api/v1/templates", Some(with_waba))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["category"], "UTILITY");
    assert_eq!(created["waba_id"], WABA);
    assert!(created["meta_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(created["components"], template["components"]);

    let creates = w
        .graph_requests("POST", &format!("/{WABA}/message_templates"))
        .await;
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0]["body"], template,
        "Meta receives exactly Meta's create body, without our waba_id"
    );

    // The same name and language again: Meta's duplicate error, in plain words.
    let res = w
        .api(reqwest::Method::POST, "/api/v1/templates", Some(template))
        .await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "template_exists");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
}

#[tokio::test]
async fn invalid_templates_answer_422_naming_the_field_and_never_reach_meta() {
    let w = world(&[]).await;
    for (body, field) in [
        (
            json!({"name": "Bad Name", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi"}]}),
            "name",
        ),
        (
            json!({"name": "ok", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}{{2}} there", "example": {"body_text": [["a", "b"]]}}]}),
            "body.text",
        ),
        (
            json!({"name": "ok", "language": "en_US", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi"}, {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "A"}, {"type": "URL", "text": "B", "url": "https://x.example/"},
                {"type": "QUICK_REPLY", "text": "C"}]}]}),
            "buttons",
        ),
        (
            json!({"name": "ok", "language": "en_US", "category": "UTILITY", "waba_id": 5,
            "components": [{"type": "BODY", "text": "Hi"}]}),
            "waba_id",
        ),
        (json!(["not", "a", "template"]), "body"),
    ] {
        let res = w
            .api(
                reqwest::Method::POST,
                "/api/v1/templates",
                Some(body.clone()),
            )
            .await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["field"], field, "{err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(w
        .graph_requests("POST", &format!("/{WABA}/message_templates"))
        .await
        .is_empty());

    // Meta's own refusal (an unknown media handle) comes back in Meta's plain words.
    let res = w
        .api(
            reqwest::Method::POST,
            "/api/v1/templates",
            Some(order_template("4::not-uploaded")),
        )
        .await;
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "meta_rejected");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid media handle"),
        "{err}"
    );
}

#[tokio::test]
async fn a_status_webhook_approves_a_created_template_live() {
    let w = world(&[]).await;
    let handle = upload_sample(&w).await;
    let res = w
        .api(
            reqwest::Method::POST,
            "/api/v1/templates",
            Some(order_template(&handle)),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let meta_id = created["meta_id"].as_str().unwrap().to_string();

    let mut events = w
        .app
        .get("/api/v1/events")
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let fired = w
        .emu_post(
            &format!("/_emulator/templates/{meta_id}/status"),
            json!({"status": "APPROVED"}),
        )
        .await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");

    // The SSE stream carries template.updated with the approved template.
    let approved = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = String::new();
        loop {
            let chunk = events
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            for block in buf.split("\n\n") {
                if !block.contains("event: template.updated") {
                    continue;
                }
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .unwrap_or_default();
                if let Ok(v) = serde_json::from_str::<Value>(data) {
                    if v["data"]["status"] == "APPROVED" {
                        return v;
                    }
                }
            }
        }
    })
    .await
    .expect("template.updated arrives within seconds");
    assert_eq!(approved["data"]["id"], created["id"]);
    assert_eq!(approved["data"]["name"], "order_shipped");
    let listed = w.templates("").await;
    assert_eq!(listed[0]["status"], "APPROVED");

    // A rejection keeps Meta's reason and recommendation.
    w.emu_post(
        &format!("/_emulator/templates/{meta_id}/status"),
        json!({"status": "REJECTED", "reason": "INVALID_FORMAT",
               "rejection_info": {"reason": "INVALID_FORMAT", "recommendation": "Remove adjacent variables."}}),
    )
    .await;
    for _ in 0..100 {
        let t = &w.templates("").await[0];
        if t["status"] == "REJECTED" {
            assert_eq!(t["rejected_reason"], "INVALID_FORMAT");
            assert_eq!(t["rejection_recommendation"], "Remove adjacent variables.");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the rejection never showed");
}

#[tokio::test]
async fn delete_removes_one_language_or_every_language() {
    let w = world(&[]).await;
    w.emu_post(
        "/_emulator/templates",
        json!({"waba_id": WABA, "templates": [
            {"name": "promo", "language": "en_US"}, {"name": "promo", "language": "es_ES"},
            {"name": "other", "language": "en_US"}]}),
    )
    .await;
    w.api(reqwest::Method::POST, "/api/v1/templates/sync", None)
        .await;
    let es_id = w.templates("?language=es_ES").await.first().unwrap()["meta_id"].clone();

    let res = w
        .api(
            reqwest::Method::DELETE,
            "/api/v1/templates/promo?language=es_ES",
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"deleted": 1}));
    let calls = w
        .graph_requests("DELETE", &format!("/{WABA}/message_templates"))
        .await;
    assert_eq!(
        calls[0]["query"],
        format!("name=promo&hsm_id={}", es_id.as_str().unwrap()),
        "one language goes by Meta's hsm_id"
    );
    let left: Vec<String> = w
        .emu_get("/_emulator/templates")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["name"].as_str().unwrap(),
                t["language"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        left.contains(&"promo/en_US".to_string()) && !left.contains(&"promo/es_ES".to_string())
    );

    let res = w
        .api(reqwest::Method::DELETE, "/api/v1/templates/promo", None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"deleted": 1}));
    let calls = w
        .graph_requests("DELETE", &format!("/{WABA}/message_templates"))
        .await;
    assert_eq!(
        calls[1]["query"], "name=promo",
        "every language goes by name"
    );
    let names: Vec<Value> = w
        .templates("")
        .await
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("other")]);

    let res = w
        .api(reqwest::Method::DELETE, "/api/v1/templates/promo", None)
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn agents_cannot_manage_templates_and_other_workspaces_see_nothing() {
    let w = world(&[]).await;
    w.emu_post(
        "/_emulator/templates",
        json!({"waba_id": WABA, "templates": [{"name": "promo"}]}),
    )
    .await;
    w.api(reqwest::Method::POST, "/api/v1/templates/sync", None)
        .await;
    let ws = w
        .app
        .db
        .api_token_by_hash(&app::server::crypto::hash_secret(&w.token))
        .await
        .unwrap()
        .unwrap()
        .workspace_id;
    let agent = w
        .app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    w.app.db.add_member(&ws, &agent.id, "agent").await.unwrap();
    let agent_token = app::server::crypto::random_secret("qtk_");
    w.app
        .db
        .create_api_token(
            &ws,
            &agent.id,
            "agent",
            &app::server::crypto::hash_secret(&agent_token),
            &agent_token[..8],
        )
        .await
        .unwrap();
    let call = |method: reqwest::Method, path: &str| {
        w.app
            .client
            .request(method, format!("{}{path}", w.app.url))
            .bearer_auth(&agent_token)
    };
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/templates"),
        (reqwest::Method::POST, "/api/v1/templates/sync"),
        (reqwest::Method::POST, "/api/v1/templates/media"),
        (reqwest::Method::DELETE, "/api/v1/templates/promo"),
    ] {
        let res = call(method.clone(), path)
            .json(&order_template("h"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
    }
    let res = call(reqwest::Method::GET, "/api/v1/templates")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "agents read templates (the composer needs them)"
    );

    let (_, other) = w.app.workspace_with_token("Other").await;
    let res = w
        .app
        .client
        .delete(format!("{}/api/v1/templates/promo", w.app.url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "another workspace's template does not exist for it"
    );
    let res = w
        .app
        .post("/api/v1/templates/sync")
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"synced": 0}));
}

#[tokio::test]
async fn an_edit_follows_metas_rules_and_sends_the_template_back_to_review() {
    let w = world(&[]).await;
    w.emu_post(
        "/_emulator/templates",
        json!({"waba_id": WABA, "templates": [
            {"name": "shipping", "language": "en_US", "category": "UTILITY",
             "components": [{"type": "BODY", "text": "Your order {{1}} ships today.", "example": {"body_text": [["A-1"]]}}]},
            {"name": "draft", "language": "en_US", "status": "PENDING"},
            {"name": "refused", "language": "en_US", "status": "REJECTED", "category": "MARKETING"},
            {"name": "twice", "language": "en_US"}, {"name": "twice", "language": "id"}]}),
    )
    .await;
    w.api(reqwest::Method::POST, "/api/v1/templates/sync", None)
        .await;
    let shipping = w.templates("?status=APPROVED").await;
    let meta_id = shipping.iter().find(|t| t["name"] == "shipping").unwrap()["meta_id"]
        .as_str()
        .unwrap()
        .to_string();
    let components = json!([{"type": "BODY", "text": "Good news: order {{1}} ships today.", "example": {"body_text": [["A-1"]]}}]);
    let world = &w;
    let patch = move |path: &str, body: Value| {
        let path = path.to_string();
        async move { world.api(reqwest::Method::PATCH, &path, Some(body)).await }
    };

    // Approved: Meta receives exactly the new components at POST /{template-id}.
    let res = patch(
        "/api/v1/templates/shipping",
        json!({"components": components}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["status"], "PENDING", "an edit goes back to review");
    assert_eq!(edited["components"], components);
    let calls = w.graph_requests("POST", &format!("/{meta_id}")).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["body"], json!({"components": components}));
    let at_meta = w.emu_get("/_emulator/templates").await;
    let at_meta = at_meta
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shipping")
        .unwrap()
        .clone();
    assert_eq!(at_meta["components"], components);
    assert_eq!(at_meta["status"], "PENDING");

    // Meta approves it again; a second edit the same day is refused before Meta, with when.
    w.emu_post(
        &format!("/_emulator/templates/{meta_id}/status"),
        json!({"status": "APPROVED"}),
    )
    .await;
    for _ in 0..100 {
        if w.templates("?status=APPROVED")
            .await
            .iter()
            .any(|t| t["name"] == "shipping")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = patch(
        "/api/v1/templates/shipping",
        json!({"components": components}),
    )
    .await;
    assert_eq!(res.status(), 409);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "template_edit_limit");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("24 hours"),
        "{e}"
    );
    assert_eq!(
        w.graph_requests("POST", &format!("/{meta_id}")).await.len(),
        1
    );

    // An approved template keeps its category.
    let res = patch(
        "/api/v1/templates/shipping",
        json!({"category": "MARKETING", "components": components}),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["field"],
        "category"
    );

    // In review: not editable.
    let res = patch("/api/v1/templates/draft", json!({"components": components})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "template_not_editable"
    );

    // Rejected: edits without a limit, the category may change.
    for text in ["Hi {{1}}, 10% off today.", "Hi {{1}}, 20% off today."] {
        let c = json!([{"type": "BODY", "text": text, "example": {"body_text": [["Ann"]]}}]);
        let res = patch(
            "/api/v1/templates/refused",
            json!({"category": "utility", "components": c}),
        )
        .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        w.emu_post(
            &format!(
                "/_emulator/templates/{}/status",
                w.templates("")
                    .await
                    .iter()
                    .find(|t| t["name"] == "refused")
                    .unwrap()["meta_id"]
                    .as_str()
                    .unwrap()
            ),
            json!({"status": "REJECTED", "reason": "PROMOTIONAL"}),
        )
        .await;
        for _ in 0..100 {
            if w.templates("?status=REJECTED")
                .await
                .iter()
                .any(|t| t["name"] == "refused")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let refused = w.templates("").await;
    let refused = refused.iter().find(|t| t["name"] == "refused").unwrap();
    assert_eq!(refused["category"], "UTILITY");

    // The same validation as a create; several languages need `language`; unknown names 404.
    let res = patch(
        "/api/v1/templates/refused",
        json!({"components": [{"type": "BODY", "text": "Hi {{1}}"}]}),
    )
    .await;
    assert_eq!(res.status(), 422, "a variable without an example");
    let res = patch("/api/v1/templates/twice", json!({"components": components})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["field"],
        "language"
    );
    let res = patch(
        "/api/v1/templates/twice",
        json!({"language": "id", "components": components}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = patch(
        "/api/v1/templates/nothing_here",
        json!({"components": components}),
    )
    .await;
    assert_eq!(res.status(), 404);
}
