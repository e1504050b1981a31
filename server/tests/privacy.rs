//! Data rights against the emulator, on the engine under test: exports hold exactly the
//! workspace's (or contact's, or user's) data; erasure leaves no row and no file behind
//! (every table scanned); Meta's deletion callback; retention; the audit browser.

mod common;

use std::time::Duration;

use app::server::db::NewNumber;
use serde_json::{json, Value};

use common::error_code;
use common::meta::{world, World, PNID, SECRET, WABA};

const PNID_B: &str = "109999999999999";
const WABA_B: &str = "108888888888888";
const ANA: &str = "6281111111111";
const BUDI: &str = "6282222222222";
const CITRA: &str = "6283333333333";
const BODY_A: &str = "acme-secret-order-4411";
const BODY_A2: &str = "acme-budi-note-5522";
const BODY_B: &str = "beta-private-chat-9933";
const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\n-acme-image-bytes-for-export";

struct Two {
    w: World,
    b_workspace: String,
    b_token: String,
}

/// Workspace A (the world's "Acme", token `w.token`) and workspace B ("Beta") on a second
/// number, each with a customer who wrote; A also has an image.
async fn two_workspaces() -> Two {
    let w = world(&[]).await;
    w.emu_post(
        "/_emulator/numbers",
        json!({"phone_number_id": PNID_B, "waba_id": WABA_B, "display_phone_number": "+1 555-000-0002"}),
    )
    .await;
    let (b_workspace, b_token) = w.app.workspace_with_token("Beta").await;
    w.app
        .db
        .connect_number(&NewNumber {
            workspace_id: &b_workspace,
            waba_id: WABA_B,
            phone_number_id: PNID_B,
            display_phone: Some("+15550000002"),
            access_token_enc: &w.app.state.key.encrypt(common::meta::ACCESS_TOKEN),
            key_id: w.app.state.key.id(),
        })
        .await
        .unwrap();
    w.customer_says(ANA, BODY_A).await;
    w.customer_says(BUDI, BODY_A2).await;
    let r = w
        .emu_post(
            &format!("/_emulator/customers/{CITRA}/messages"),
            json!({"type": "text", "text": {"body": BODY_B}, "phone_number_id": PNID_B}),
        )
        .await;
    assert_eq!(r["webhook_status"], 200);
    wait_for(&w, &b_token, BODY_B).await;
    // Ana sends an image too.
    let media: Value = w
        .http
        .post(format!("{}/_emulator/media", w.emulator))
        .header("content-type", "image/png")
        .body(IMAGE.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    w.emu_post(
        &format!("/_emulator/customers/{ANA}/messages"),
        json!({"type": "image", "image": {"id": media["id"], "caption": "the receipt"}}),
    )
    .await;
    let mut ready = false;
    for _ in 0..300 {
        let n: i64 = w
            .app
            .db
            .table_rows("media")
            .await
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "ready")
            .count() as i64;
        if n == 1 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the image was never stored");
    Two {
        w,
        b_workspace,
        b_token,
    }
}

async fn wait_for(w: &World, token: &str, body: &str) {
    for _ in 0..200 {
        let v: Value = w
            .app
            .get("/api/v1/conversations")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v.to_string().contains(body) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{body} never showed");
}

async fn get(w: &World, token: &str, path: &str) -> reqwest::Response {
    w.app.get(path).bearer_auth(token).send().await.unwrap()
}

async fn contact_id(w: &World, wa_id: &str) -> String {
    let v: Value = get(w, &w.token, "/api/v1/contacts?limit=200")
        .await
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["wa_id"] == wa_id)
        .expect("contact")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every row of every table as text, table by table.
async fn dump(w: &World) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in w.app.db.table_names().await.unwrap() {
        for row in w.app.db.table_rows(&t).await.unwrap() {
            out.push((t.clone(), row.to_string()));
        }
    }
    out
}

fn media_files(w: &World) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&w.app.config.data_dir.join("media"), &mut out);
    out
}

#[tokio::test]
async fn the_export_holds_exactly_the_workspaces_data_and_no_secret() {
    let t = two_workspaces().await;
    let w = &t.w;
    let res = get(w, &w.token, "/api/v1/export").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(v["workspace"]["name"], "Acme");
    for key in [
        "members",
        "numbers",
        "contacts",
        "conversations",
        "messages",
        "templates",
        "audit_log",
    ] {
        assert!(v[key].is_array(), "{key} in the export");
    }
    assert_eq!(v["members"][0]["email"], "admin@acme.test");
    assert_eq!(v["numbers"][0]["phone_number_id"], PNID);
    assert_eq!(v["contacts"].as_array().unwrap().len(), 2);
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    assert!(v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["content"]["body"] == BODY_A && m["status"] == "received"));
    for ours in [BODY_A, BODY_A2, ANA, BUDI] {
        assert!(text.contains(ours), "{ours} is exported");
    }
    for theirs in [
        BODY_B,
        CITRA,
        PNID_B,
        WABA_B,
        t.b_workspace.as_str(),
        "Beta",
        common::meta::ACCESS_TOKEN,
        w.token.as_str(),
        "access_token_enc",
        "token_hash",
    ] {
        assert!(!text.contains(theirs), "{theirs} must not be in A's export");
    }

    // The zip adds contacts.csv and the media files.
    let res = get(w, &w.token, "/api/v1/export?format=zip").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    assert!(names.contains(&"export.json".to_string()), "{names:?}");
    assert!(names.contains(&"contacts.csv".to_string()), "{names:?}");
    let media: Vec<&String> = names.iter().filter(|n| n.starts_with("media/")).collect();
    assert_eq!(media.len(), 1, "{names:?}");
    let mut file = zip.by_name(&media[0].clone()).unwrap();
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut content).unwrap();
    assert_eq!(content, IMAGE);
    drop(file);
    let mut csv = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("contacts.csv").unwrap(), &mut csv).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(ANA) && csv.contains(BUDI) && !csv.contains(CITRA));

    // B's export is B's.
    let b: Value = get(w, &t.b_token, "/api/v1/export")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["workspace"]["name"], "Beta");
    assert!(b.to_string().contains(BODY_B) && !b.to_string().contains(BODY_A));

    // Bad format, agents, no token.
    assert_eq!(
        get(w, &w.token, "/api/v1/export?format=xml").await.status(),
        400
    );
    assert_eq!(
        w.app.get("/api/v1/export").send().await.unwrap().status(),
        401
    );
    let audit: Value = get(w, &w.token, "/api/v1/audit?action=data.exported")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"].as_array().unwrap().len(), 2, "{audit}");
}

#[tokio::test]
async fn a_contact_export_and_erase_cover_that_customer_only() {
    let t = two_workspaces().await;
    let w = &t.w;
    let ana = contact_id(w, ANA).await;

    let export: Value = get(w, &w.token, &format!("/api/v1/contacts/{ana}/export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(export["messages"].as_array().unwrap().len(), 2);
    let s = export.to_string();
    assert!(s.contains(BODY_A) && !s.contains(BODY_A2) && !s.contains(BUDI));
    assert!(export.get("members").is_none());
    // Another workspace's contact is not found.
    assert_eq!(
        get(w, &t.b_token, &format!("/api/v1/contacts/{ana}/export"))
            .await
            .status(),
        404
    );

    assert_eq!(media_files(w).len(), 1);
    let res = w
        .app
        .post(&format!("/api/v1/contacts/{ana}/erase"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["messages"], 2);
    assert_eq!(body["media_files"], 1);
    assert!(media_files(w).is_empty(), "the image file is gone");
    let rows = dump(w).await;
    for (table, row) in &rows {
        if table == "audit_log" {
            continue;
        }
        assert!(
            !row.contains(BODY_A) && !row.contains(ANA) && !row.contains(&ana),
            "{table} still holds Ana: {row}"
        );
    }
    // Budi and Beta are untouched; the erase is in the audit log without content.
    assert!(rows.iter().any(|(_, r)| r.contains(BODY_A2)));
    assert!(rows.iter().any(|(_, r)| r.contains(BODY_B)));
    let audit: Value = get(w, &w.token, "/api/v1/audit?action=contact.erased")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"][0]["target"], ana.as_str());
    assert!(!audit.to_string().contains(ANA) && !audit.to_string().contains(BODY_A));
    // Erasing again: 404.
    let again = w
        .app
        .post(&format!("/api/v1/contacts/{ana}/erase"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn deleting_a_workspace_leaves_no_row_and_no_file_of_it() {
    let t = two_workspaces().await;
    let w = &t.w;
    let (a_ws, _) = {
        let v: Value = get(w, &w.token, "/api/v1/export")
            .await
            .json()
            .await
            .unwrap();
        (v["workspace"]["id"].as_str().unwrap().to_string(), ())
    };
    let ids: Vec<String> = dump(w)
        .await
        .into_iter()
        .filter(|(t, r)| {
            matches!(
                t.as_str(),
                "contacts" | "conversations" | "messages" | "media"
            ) && r.contains(&a_ws)
        })
        .map(|(_, r)| {
            serde_json::from_str::<Value>(&r).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.len() >= 7, "{ids:?}");

    // The name must be typed; agents may not.
    let wrong = w
        .app
        .client
        .delete(format!("{}/api/v1/workspace", w.app.url))
        .bearer_auth(&w.token)
        .json(&json!({"confirm": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
    assert_eq!(error_code(wrong).await, "confirmation_mismatch");

    let res = w
        .app
        .client
        .delete(format!("{}/api/v1/workspace", w.app.url))
        .bearer_auth(&w.token)
        .json(&json!({"confirm": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["wabas_unsubscribed"], 1, "{body}");

    let mut needles = vec![
        a_ws.clone(),
        PNID.to_string(),
        WABA.to_string(),
        ANA.to_string(),
        BUDI.to_string(),
        BODY_A.to_string(),
        BODY_A2.to_string(),
        "Acme".to_string(),
    ];
    needles.extend(ids);
    let rows = dump(w).await;
    let tables = w.app.db.table_names().await.unwrap();
    assert!(tables.len() >= 20, "{tables:?}");
    for (table, row) in &rows {
        for n in &needles {
            assert!(!row.contains(n.as_str()), "{table} still holds {n}: {row}");
        }
    }
    assert!(media_files(w).is_empty(), "no media file of A remains");
    // Beta is whole.
    assert!(rows.iter().any(|(_, r)| r.contains(BODY_B)));
    wait_for(w, &t.b_token, BODY_B).await;
    // Meta was told: the app is unsubscribed from A's WABA.
    let requests = w.emu_get("/_emulator/requests").await;
    assert!(requests
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["method"] == "DELETE"
            && r["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{WABA}/subscribed_apps"))));
    // The old token is gone with the workspace.
    assert_eq!(get(w, &w.token, "/api/v1/numbers").await.status(), 401);
    // The deletion is on record, naming nothing of the workspace.
    let audit = w.app.db.table_rows("audit_log").await.unwrap();
    assert!(audit.iter().any(|a| a["action"] == "workspace.deleted"));
}

#[tokio::test]
async fn deleting_my_account_takes_my_own_workspace_and_refuses_to_orphan_others() {
    let w = world(&[]).await;
    // A second admin-only workspace user: deleting them takes their solo workspace.
    let (solo_ws, solo_token) = w.app.workspace_with_token("Solo").await;
    let res = w
        .app
        .client
        .delete(format!("{}/api/v1/me", w.app.url))
        .bearer_auth(&solo_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(w.app.db.workspace(&solo_ws).await.unwrap().is_none());
    assert!(w
        .app
        .db
        .user_by_email("admin@solo.test")
        .await
        .unwrap()
        .is_none());
    let rows = dump(&w).await;
    assert!(
        !rows.iter().any(|(_, r)| r.contains("admin@solo.test")),
        "no trace of the e-mail"
    );

    // Acme's admin with an agent beside them must hand over first.
    let agent = w
        .app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    let acme = w.app.db.workspace_by_name("Acme").await.unwrap().unwrap();
    w.app
        .db
        .add_member(&acme.id, &agent.id, "agent")
        .await
        .unwrap();
    let res = w
        .app
        .client
        .delete(format!("{}/api/v1/me", w.app.url))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(error_code(res).await, "sole_admin");

    // My own data, as JSON.
    let me: Value = get(&w, &w.token, "/api/v1/me/export")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "admin@acme.test");
    assert_eq!(me["memberships"][0]["role"], "admin");
    assert!(me["api_tokens"][0]["prefix"].is_string());
    assert!(!me.to_string().contains(&w.token) && !me.to_string().contains("token_hash"));
}

fn signed(payload: Value) -> String {
    app::server::signed_request::sign(SECRET.as_bytes(), &payload)
}

async fn deletion(w: &World, signed_request: &str) -> reqwest::Response {
    w.app
        .post("/meta/data-deletion")
        .form(&[("signed_request", signed_request)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn metas_data_deletion_callback_verifies_erases_and_shows_a_status_page() {
    let w = world(&[]).await;
    // A customer known by their business-scoped user id.
    let bsuid = "US.13491208655302741918";
    let r = w
        .emu_post(
            &format!("/_emulator/customers/{ANA}/messages"),
            json!({"type": "text", "text": {"body": BODY_A}, "user_id": bsuid}),
        )
        .await;
    assert_eq!(r["webhook_status"], 200);
    wait_for(&w, &w.token, BODY_A).await;
    let now = app::server::now_ms() / 1000;

    // Tampered, expired, wrong algorithm, malformed: 4xx JSON, nothing deleted.
    let good = signed(json!({"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": bsuid}));
    let (sig, payload) = good.split_once('.').unwrap();
    let other =
        signed(json!({"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "someone-else"}));
    let tampered = format!("{sig}.{}", other.split_once('.').unwrap().1);
    let cases = [
        (tampered, 401, "invalid_signature"),
        (
            signed(
                json!({"algorithm": "HMAC-SHA256", "issued_at": now - 2 * 86_400, "user_id": bsuid}),
            ),
            400,
            "expired",
        ),
        (
            signed(json!({"algorithm": "HMAC-SHA1", "issued_at": now, "user_id": bsuid})),
            400,
            "unsupported_algorithm",
        ),
        (
            "not-a-signed-request".to_string(),
            400,
            "malformed_signed_request",
        ),
        (
            format!("{sig}.{payload}.x"),
            400,
            "malformed_signed_request",
        ),
        (String::new(), 400, "malformed_signed_request"),
    ];
    for (input, status, code) in cases {
        let res = deletion(&w, &input).await;
        assert_eq!(res.status(), status, "{code}");
        assert_eq!(error_code(res).await, code);
    }
    let missing = w.app.post("/meta/data-deletion").send().await.unwrap();
    assert!(missing.status().is_client_error());
    assert!(
        dump(&w).await.iter().any(|(_, r)| r.contains(BODY_A)),
        "nothing deleted yet"
    );

    let res = deletion(&w, &good).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let code = body["confirmation_code"].as_str().unwrap().to_string();
    let url = body["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/meta/data-deletion/{code}")),
        "{url}"
    );
    for (table, row) in dump(&w).await {
        assert!(
            !row.contains(BODY_A) && !row.contains(bsuid),
            "{table}: {row}"
        );
    }
    let page = w
        .app
        .get(&format!("/meta/data-deletion/{code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&code) && html.contains("completed"), "{html}");
    let unknown = w
        .app
        .get("/meta/data-deletion/nosuchcode")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn retention_deletes_exactly_what_is_older_than_each_limit() {
    let w = world(&[]).await;
    let day = 86_400_000i64;
    let now = app::server::now_ms();
    for (body, age_days) in [("older-than-30", 31), ("younger-than-30", 29)] {
        let ts = (now - age_days * day) / 1000;
        let r = w
            .emu_post(
                &format!("/_emulator/customers/{ANA}/messages"),
                json!({"type": "text", "text": {"body": body}, "timestamp": ts.to_string()}),
            )
            .await;
        assert_eq!(r["webhook_status"], 200);
    }
    wait_for(&w, &w.token, "younger-than-30").await;
    // Settings: admins only, validated.
    let put = |body: Value| {
        w.app
            .client
            .put(format!("{}/api/v1/settings/retention", w.app.url))
            .bearer_auth(&w.token)
            .json(&body)
            .send()
    };
    let bad = put(json!({"messages_days": 0, "media_days": null, "webhook_events_days": 7, "audit_days": 90, "audit_ip_days": 30})).await.unwrap();
    assert_eq!(bad.status(), 422);
    let ok = put(json!({"messages_days": 30, "media_days": null, "webhook_events_days": 7, "audit_days": 90, "audit_ip_days": 30})).await.unwrap();
    assert_eq!(ok.status(), 200);
    let got: Value = get(&w, &w.token, "/api/v1/settings/retention")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["messages_days"], 30);

    let messages = |rows: &[(String, String)]| {
        rows.iter()
            .filter(|(t, _)| t == "messages")
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    let swept = server::privacy::run_retention(&w.app.state, now)
        .await
        .unwrap();
    assert_eq!(swept.messages, 1);
    let rows = dump(&w).await;
    let left = messages(&rows);
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("younger-than-30"));
    let events = rows.iter().filter(|(t, _)| t == "webhook_events").count();
    assert!(events >= 2);

    // Raw webhook bodies: kept for 7 days, gone after.
    let swept = server::privacy::run_retention(&w.app.state, now + 7 * day - 60_000)
        .await
        .unwrap();
    assert_eq!(swept.webhook_events, 0);
    let swept = server::privacy::run_retention(&w.app.state, now + 7 * day + 60_000)
        .await
        .unwrap();
    assert_eq!(swept.webhook_events as usize, events);

    // Audit entries: the IP is cut after 30 days, the entry goes after 90.
    let audit_ips = || async {
        w.app
            .db
            .table_rows("audit_log")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|a| a["ip"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let ips = audit_ips().await;
    assert!(ips.iter().any(|ip| ip == "127.0.0.1"), "{ips:?}");
    server::privacy::run_retention(&w.app.state, now + 29 * day)
        .await
        .unwrap();
    assert!(audit_ips().await.iter().any(|ip| ip == "127.0.0.1"));
    server::privacy::run_retention(&w.app.state, now + 31 * day)
        .await
        .unwrap();
    let ips = audit_ips().await;
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip == "127.0.0.0/24"),
        "{ips:?}"
    );
    let swept = server::privacy::run_retention(&w.app.state, now + 89 * day)
        .await
        .unwrap();
    assert_eq!(swept.audit, 0);
    let swept = server::privacy::run_retention(&w.app.state, now + 91 * day)
        .await
        .unwrap();
    assert!(swept.audit >= 1);
    assert!(w.app.db.table_rows("audit_log").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_audit_log_is_filtered_paged_and_for_admins_only() {
    let w = world(&[]).await;
    for _ in 0..3 {
        assert_eq!(get(&w, &w.token, "/api/v1/me/export").await.status(), 200);
    }
    let page: Value = get(&w, &w.token, "/api/v1/audit?action=data&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"][0]["action"], "data.exported");
    assert_eq!(page["data"][0]["actor"], "admin@acme.test");
    assert_eq!(page["data"][0]["ip"], "127.0.0.1");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = get(
        &w,
        &w.token,
        &format!("/api/v1/audit?action=data&limit=2&cursor={cursor}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    let none: Value = get(&w, &w.token, "/api/v1/audit?actor=nobody@x.test")
        .await
        .json()
        .await
        .unwrap();
    assert!(none["data"].as_array().unwrap().is_empty());
    let future: Value = get(&w, &w.token, "/api/v1/audit?since=2999-01-01T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert!(future["data"].as_array().unwrap().is_empty());
    assert_eq!(
        get(&w, &w.token, "/api/v1/audit?since=yesterday")
            .await
            .status(),
        400
    );
    assert_eq!(
        get(&w, &w.token, "/api/v1/audit?limit=x").await.status(),
        400
    );

    let agent = w
        .app
        .db
        .create_user("agent@acme.test", "Agent")
        .await
        .unwrap();
    let acme = w.app.db.workspace_by_name("Acme").await.unwrap().unwrap();
    w.app
        .db
        .add_member(&acme.id, &agent.id, "agent")
        .await
        .unwrap();
    let token = app::server::crypto::random_secret("qtk_");
    w.app
        .db
        .create_api_token(
            &acme.id,
            &agent.id,
            "agent",
            &app::server::crypto::hash_secret(&token),
            &token[..8],
        )
        .await
        .unwrap();
    for path in [
        "/api/v1/audit",
        "/api/v1/export",
        "/api/v1/settings/retention",
    ] {
        let res = get(&w, &token, path).await;
        assert_eq!(res.status(), 403, "{path}");
        assert_eq!(error_code(res).await, "forbidden");
    }
}

/// A customer Meta knows by a business-scoped user id: erasing them also asks Meta to drop
/// the number's contact-book entry (`DELETE /{phone-number-id}/contact_book`), and says so.
#[tokio::test]
async fn erasing_a_customer_known_by_bsuid_removes_metas_contact_book_entry() {
    let w = world(&[]).await;
    const BSUID: &str = "US.13491208655302741918";
    let r = w
        .emu_post(
            "/_emulator/customers/6284444444444/messages",
            json!({"type": "text", "text": {"body": "please forget me"}, "user_id": BSUID}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let mut id = None;
    for _ in 0..100 {
        let v: Value = get(&w, &w.token, "/api/v1/contacts?limit=200")
            .await
            .json()
            .await
            .unwrap();
        id = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["bsuid"] == BSUID)
            .map(|c| c["id"].as_str().unwrap().to_string());
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the customer is stored with their BSUID");
    let res = w
        .app
        .post(&format!("/api/v1/contacts/{id}/erase"))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["meta_contact_book"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(body["meta_contact_book"][0]["removed"], true, "{body}");
    let calls: Vec<Value> = w
        .emu_get("/_emulator/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["method"] == "DELETE"
                && r["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/{PNID}/contact_book"))
        })
        .cloned()
        .collect();
    assert_eq!(calls.len(), 1, "one contact-book removal at Meta");
    assert_eq!(
        calls[0]["query"],
        format!("messaging_product=whatsapp&bsuid={BSUID}")
    );
}
