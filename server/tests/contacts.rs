//! Contacts through the integration API: create/edit/delete with phone numbers normalised to
//! E.164, labels and attributes, search and filters with cursor paging, merging duplicates,
//! workspace scoping and roles; CSV import jobs (a 100,000-row file with 1% bad rows, the
//! error file, preview, resume after a restart) and the streamed CSV export.

mod common;

use std::time::{Duration, Instant};

use common::{error_code, exec, spawn_app, TestApp};
use serde_json::{json, Value};

/// A member with an API token; answers the token.
async fn member(app: &TestApp, workspace_id: &str, email: &str, role: &str) -> String {
    let user = app.db.create_user(email, "Member").await.unwrap();
    app.db
        .add_member(workspace_id, &user.id, role)
        .await
        .unwrap();
    let token = app::server::crypto::random_secret("qtk_");
    app.db
        .create_api_token(
            workspace_id,
            &user.id,
            "t",
            &app::server::crypto::hash_secret(&token),
            "qtk_",
        )
        .await
        .unwrap();
    token
}

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let (s, v) = call(
        app,
        token,
        reqwest::Method::POST,
        "/api/v1/contacts",
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v
}

#[tokio::test]
async fn contacts_are_created_with_e164_numbers_edited_and_deleted() {
    let app = spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    let c = create(
        &app,
        &token,
        json!({"phone": "+62 812-3456-7890", "name": " Ana ", "attributes": {"city": "Jakarta", "orders": 3}, "labels": ["VIP", " vip ", "Jakarta"]}),
    )
    .await;
    assert_eq!(c["phone"], "+6281234567890");
    assert_eq!(c["wa_id"], "6281234567890");
    assert_eq!(c["name"], "Ana");
    assert_eq!(c["labels"], json!(["jakarta", "vip"]));
    assert_eq!(c["attributes"], json!({"city": "Jakarta", "orders": 3}));
    let id = c["id"].as_str().unwrap();

    // The same number in another spelling is a duplicate.
    for dup in [
        json!({"phone": "6281234567890"}),
        json!({"phone": "0812 3456 7890", "default_country": "ID"}),
        json!({"wa_id": "6281234567890"}),
    ] {
        let (s, v) = call(
            &app,
            &token,
            reqwest::Method::POST,
            "/api/v1/contacts",
            Some(dup),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (409, Some("contact_exists")),
            "{v}"
        );
    }
    for (bad, field) in [
        (json!({"phone": "12"}), "phone"),
        (json!({"phone": "0812 3456 7890"}), "phone"),
        (json!({"name": "No number"}), "phone"),
        (
            json!({"phone": "+6281234567891", "attributes": {"bad key": "x"}}),
            "attributes.bad key",
        ),
        (
            json!({"phone": "+6281234567891", "attributes": {"nested": {"a": 1}}}),
            "attributes.nested",
        ),
        (json!({"phone": "+6281234567891", "labels": [""]}), "labels"),
    ] {
        let (s, v) = call(
            &app,
            &token,
            reqwest::Method::POST,
            "/api/v1/contacts",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(s, 422, "{bad} → {v}");
        assert_eq!(v["error"]["field"], field, "{bad} → {v}");
    }

    let path = format!("/api/v1/contacts/{id}");
    let (s, v) = call(&app, &token, reqwest::Method::PATCH, &path,
        Some(json!({"name": "Ana Maria", "attributes": {"city": "Bandung", "orders": null, "tier": "gold"}, "labels": ["customer"]}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "Ana Maria");
    assert_eq!(v["attributes"], json!({"city": "Bandung", "tier": "gold"}));
    assert_eq!(v["labels"], json!(["customer"]));
    let (_, v) = call(
        &app,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"phone": "+6281234567899"})),
    )
    .await;
    assert_eq!(v["phone"], "+6281234567899");
    assert_eq!(v["name"], "Ana Maria", "untouched fields stay");
    let other = create(&app, &token, json!({"phone": "+6281111111111"})).await;
    let (s, v) = call(
        &app,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"phone": other["phone"]})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("contact_exists"))
    );
    let (s, v) = call(
        &app,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"name": null})),
    )
    .await;
    assert_eq!((s, &v["name"]), (200, &Value::Null));

    let (s, _) = call(&app, &token, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    let (s, v) = call(&app, &token, reqwest::Method::GET, &path, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = call(&app, &token, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn another_workspaces_contacts_answer_404_and_agents_cannot_bulk_export_import_or_broadcast()
{
    let app = spawn_app().await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    let (_, other) = app.workspace_with_token("Other").await;
    let c = create(&app, &token, json!({"phone": "+6281234567890"})).await;
    let theirs = create(&app, &other, json!({"phone": "+6281234567891"})).await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/api/v1/contacts/{id}");
    for (m, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PATCH, Some(json!({"name": "x"}))),
        (reqwest::Method::DELETE, None),
    ] {
        let (s, _) = call(&app, &other, m.clone(), &path, body).await;
        assert_eq!(s, 404, "{m}");
    }
    let (s, _) = call(
        &app,
        &token,
        reqwest::Method::POST,
        &format!("{path}/merge"),
        Some(json!({"from": theirs["id"]})),
    )
    .await;
    assert_eq!(s, 404, "a contact of another workspace cannot be merged in");
    let (_, list) = call(&app, &other, reqwest::Method::GET, "/api/v1/contacts", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Agents manage contacts …
    let agent = member(&app, &ws, "agent@acme.test", "agent").await;
    let made = create(&app, &agent, json!({"phone": "+6281234567892"})).await;
    let (s, _) = call(
        &app,
        &agent,
        reqwest::Method::PATCH,
        &format!("/api/v1/contacts/{}", made["id"].as_str().unwrap()),
        Some(json!({"labels": ["x"]})),
    )
    .await;
    assert_eq!(s, 200);
    // … but the bulk tools are the admins'.
    for (m, p) in [
        (reqwest::Method::GET, "/api/v1/contacts/export.csv"),
        (reqwest::Method::GET, "/api/v1/contacts/imports"),
        (reqwest::Method::POST, "/api/v1/contacts/imports"),
        (reqwest::Method::POST, "/api/v1/contacts/imports/preview"),
        (reqwest::Method::GET, "/api/v1/broadcasts"),
        (reqwest::Method::POST, "/api/v1/broadcasts"),
    ] {
        let mut req = app
            .client
            .request(m.clone(), format!("{}{p}", app.url))
            .bearer_auth(&agent);
        if m == reqwest::Method::POST {
            req = req
                .header("content-type", "text/csv")
                .body("phone\n+6281234567893\n");
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{m} {p}");
        assert_eq!(error_code(res).await, "forbidden");
    }
}

#[tokio::test]
async fn the_list_searches_filters_by_label_attribute_and_open_conversation_and_pages() {
    let app = spawn_app().await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    let people = [
        (
            "+6281200000001",
            "Ana Lopez",
            vec!["vip"],
            json!({"city": "Jakarta"}),
        ),
        (
            "+6281200000002",
            "Budi",
            vec!["vip", "late"],
            json!({"city": "Bandung"}),
        ),
        (
            "+6281200000003",
            "Citra",
            vec![],
            json!({"city": "Jakarta", "tier": "gold"}),
        ),
        ("+6281200000004", "Dewi 50%", vec!["late"], json!({})),
        ("+6281200000005", "Eko", vec![], json!({})),
    ];
    let mut ids = Vec::new();
    for (phone, name, labels, attrs) in &people {
        let c = create(
            &app,
            &token,
            json!({"phone": phone, "name": name, "labels": labels, "attributes": attrs}),
        )
        .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    // Budi has an open conversation, Citra a resolved one.
    let number = app
        .db
        .connect_number(&app::server::db::NewNumber {
            workspace_id: &ws,
            waba_id: "1",
            phone_number_id: "2",
            display_phone: None,
            access_token_enc: "x",
            key_id: "k",
        })
        .await
        .unwrap();
    for (i, status) in [(1, "open"), (2, "resolved")] {
        exec(&app.db, format!(
            "INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, created_at, updated_at) VALUES ('conv{i}', '{ws}', '{}', '{}', '{status}', 1, 1, 1)",
            number.id, ids[i]
        )).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (query, want) in [
        ("q=ana", vec!["Ana Lopez"]),
        ("q=LOPEZ", vec!["Ana Lopez"]),
        ("q=0000003", vec!["Citra"]),
        ("q=%2B62%20812%200000%200004", vec!["Dewi 50%"]),
        ("q=50%25", vec!["Dewi 50%"]),
        ("q=%25", vec!["Dewi 50%"]),
        ("label=VIP", vec!["Budi", "Ana Lopez"]),
        ("label=late&q=budi", vec!["Budi"]),
        ("attribute=city:Jakarta", vec!["Citra", "Ana Lopez"]),
        ("attribute=tier", vec!["Citra"]),
        ("has_open_conversation=true", vec!["Budi"]),
        ("has_open_conversation=false&label=vip", vec!["Ana Lopez"]),
    ] {
        let (s, v) = call(
            &app,
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/contacts?{query}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{query}: {v}");
        assert_eq!(names(&v), want, "{query}");
    }
    for bad in [
        "has_open_conversation=maybe",
        "attribute=bad%20key",
        "limit=0",
        "cursor=nope",
    ] {
        let (s, _) = call(
            &app,
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/contacts?{bad}"),
            None,
        )
        .await;
        assert_eq!(s, 400, "{bad}");
    }
    // Cursor paging, newest first, no repeats.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, v) = call(
            &app,
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/contacts?limit=2&cursor={cursor}"),
            None,
        )
        .await;
        seen.extend(names(&v));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["Eko", "Dewi 50%", "Citra", "Budi", "Ana Lopez"]);
    let (_, labels) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/contacts/labels",
        None,
    )
    .await;
    assert_eq!(
        labels["data"],
        json!([{"label": "late", "contacts": 2}, {"label": "vip", "contacts": 2}])
    );
}

#[tokio::test]
async fn merging_moves_conversations_and_messages_then_deletes_the_duplicate() {
    let app = spawn_app().await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    let keep = create(&app, &token, json!({"phone": "+6281200000001", "name": "Ana", "labels": ["vip"], "attributes": {"city": "Jakarta"}})).await;
    let dup = create(&app, &token, json!({"phone": "+6281200000002", "labels": ["late"], "attributes": {"city": "Bandung", "tier": "gold"}})).await;
    let (keep_id, dup_id) = (keep["id"].as_str().unwrap(), dup["id"].as_str().unwrap());
    let mut numbers = Vec::new();
    for n in ["11", "12"] {
        let number = app
            .db
            .connect_number(&app::server::db::NewNumber {
                workspace_id: &ws,
                waba_id: "1",
                phone_number_id: n,
                display_phone: None,
                access_token_enc: "x",
                key_id: "k",
            })
            .await
            .unwrap();
        numbers.push(number.id);
    }
    // Both have a thread on the first number; the duplicate also on the second.
    let threads = [
        ("ck1", keep_id, &numbers[0], 100),
        ("cd1", dup_id, &numbers[0], 200),
        ("cd2", dup_id, &numbers[1], 50),
    ];
    for (conv, contact, number, at) in threads {
        exec(&app.db, format!("INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, unread_count, created_at, updated_at) \
            VALUES ('{conv}', '{ws}', '{number}', '{contact}', 'open', {at}, 1, 1, 1)")).await;
        exec(&app.db, format!("INSERT INTO messages (id, workspace_id, conversation_id, number_id, direction, type, content, status, timestamp, created_at, updated_at) \
            VALUES ('m-{conv}', '{ws}', '{conv}', '{number}', 'inbound', 'text', '{{\"body\":\"hi\"}}', 'received', {at}, {at}, {at})")).await;
        exec(
            &app.db,
            format!("UPDATE conversations SET last_message_id = 'm-{conv}' WHERE id = '{conv}'"),
        )
        .await;
    }
    let (s, merged) = call(
        &app,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/contacts/{keep_id}/merge"),
        Some(json!({"from": dup_id})),
    )
    .await;
    assert_eq!(s, 200, "{merged}");
    assert_eq!(merged["labels"], json!(["late", "vip"]));
    assert_eq!(
        merged["attributes"],
        json!({"city": "Jakarta", "tier": "gold"}),
        "the kept contact's values win"
    );
    assert_eq!(merged["name"], "Ana");
    let (s, _) = call(
        &app,
        &token,
        reqwest::Method::GET,
        &format!("/api/v1/contacts/{dup_id}"),
        None,
    )
    .await;
    assert_eq!(s, 404, "the duplicate is gone");
    let (_, convs) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/conversations",
        None,
    )
    .await;
    let convs = convs["data"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "{convs:?}");
    assert!(convs.iter().all(|c| c["contact"]["id"] == keep_id));
    let joined = convs
        .iter()
        .find(|c| c["id"] == "ck1")
        .expect("the kept thread on the shared number");
    assert_eq!(joined["unread_count"], 2);
    assert_eq!(
        joined["last_message"]["id"], "m-cd1",
        "the newer message is the thread's last"
    );
    let (_, msgs) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/conversations/ck1/messages",
        None,
    )
    .await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 2);
    let (s, v) = call(
        &app,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/contacts/{keep_id}/merge"),
        Some(json!({"from": keep_id})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
}

#[tokio::test]
async fn deleting_a_contact_deletes_its_conversations_and_messages() {
    let app = spawn_app().await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    let c = create(&app, &token, json!({"phone": "+6281200000001"})).await;
    let id = c["id"].as_str().unwrap();
    let number = app
        .db
        .connect_number(&app::server::db::NewNumber {
            workspace_id: &ws,
            waba_id: "1",
            phone_number_id: "2",
            display_phone: None,
            access_token_enc: "x",
            key_id: "k",
        })
        .await
        .unwrap();
    exec(&app.db, format!("INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_message_at, created_at, updated_at) VALUES ('c1', '{ws}', '{}', '{id}', 'open', 1, 1, 1)", number.id)).await;
    exec(&app.db, format!("INSERT INTO messages (id, workspace_id, conversation_id, number_id, direction, type, status, timestamp, created_at, updated_at) VALUES ('m1', '{ws}', 'c1', '{}', 'inbound', 'text', 'received', 1, 1, 1)", number.id)).await;
    let (s, _) = call(
        &app,
        &token,
        reqwest::Method::DELETE,
        &format!("/api/v1/contacts/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert!(app.db.conversation(&ws, "c1").await.unwrap().is_none());
    assert!(app.db.message(&ws, "m1").await.unwrap().is_none());
}

/// Uploads a CSV as a raw body; answers the job.
async fn upload(app: &TestApp, token: &str, csv: String, query: &str) -> Value {
    let res = app
        .post(&format!("/api/v1/contacts/imports?{query}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    v
}

async fn until_finished(app: &TestApp, token: &str, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (s, v) = call(
            app,
            token,
            reqwest::Method::GET,
            &format!("/api/v1/contacts/imports/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["state"] == "done" || v["state"] == "failed" {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "the import did not finish in {limit:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phone(i: usize) -> String {
    format!("+62812{:08}", i)
}

#[tokio::test]
async fn a_100k_row_import_with_one_percent_bad_rows_finishes_with_the_right_counts_and_error_file()
{
    let app = spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    // Ten contacts exist already: their rows update them.
    for i in 0..10 {
        create(
            &app,
            &token,
            json!({"phone": phone(i * 7 + 1), "name": "Old", "attributes": {"keep": "yes"}}),
        )
        .await;
    }
    let rows = 100_000;
    let mut csv = String::with_capacity(rows * 48);
    csv.push_str("Name,Mobile Number,Tags,City\n");
    for i in 0..rows {
        if i % 100 == 99 {
            csv.push_str(&format!("Bad {i},not-a-phone-{i},,Nowhere\n"));
        } else {
            csv.push_str(&format!(
                "Customer {i},{},\"vip;batch-{}\",City {}\n",
                phone(i),
                i % 3,
                i % 50
            ));
        }
    }
    let started = Instant::now();
    let job = upload(&app, &token, csv, "labels=imported").await;
    // The worker may already have picked it up by the time the answer is read.
    assert!(
        job["state"] == "queued" || job["state"] == "running",
        "{job}"
    );
    assert_eq!(job["total"], rows, "estimated from the lines");
    let id = job["id"].as_str().unwrap();
    // Progress rises while the job runs, and the page can be reloaded: it is a stored job.
    let done = until_finished(&app, &token, id, Duration::from_secs(240)).await;
    let took = started.elapsed();
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["total"], rows);
    assert_eq!(done["processed"], rows);
    assert_eq!(done["failed"], 1000);
    assert_eq!(done["updated"], 10);
    assert_eq!(done["created"], rows - 1000 - 10);
    eprintln!("100k rows imported in {took:?}");

    let (_, updated) = call(
        &app,
        &token,
        reqwest::Method::GET,
        &format!("/api/v1/contacts?q={}", &phone(8)[1..]),
        None,
    )
    .await;
    let c = &updated["data"][0];
    assert_eq!(c["name"], "Customer 8");
    assert_eq!(
        c["attributes"],
        json!({"keep": "yes", "city": "City 8"}),
        "attributes merge"
    );
    assert_eq!(c["labels"], json!(["batch-2", "imported", "vip"]));
    let (_, vip) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/contacts/labels",
        None,
    )
    .await;
    assert!(vip["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["label"] == "imported" && l["contacts"] == rows - 1000));

    let res = app
        .get(&format!("/api/v1/contacts/imports/{id}/errors.csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        vec!["row", "error", "Name", "Mobile Number", "Tags", "City"]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1000);
    // Data row 100 (index 99) is line 101 of the file.
    assert_eq!(&records[0][0], "101");
    assert!(
        records[0][1].contains("not a phone number"),
        "{:?}",
        &records[0]
    );
    assert_eq!(&records[0][3], "not-a-phone-99");
    assert_eq!(&records[999][0], "100001");
}

#[tokio::test]
async fn a_preview_shows_the_head_and_suggests_a_mapping_and_bad_uploads_are_refused() {
    let app = spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    let mut csv = String::from("\u{feff}Nama;No HP;Kota;Label\n");
    for i in 0..50 {
        csv.push_str(&format!("Orang {i};0812{:08};Jakarta;vip\n", i));
    }
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.clone().into_bytes()).file_name("kontak.csv"),
    );
    let res = app
        .post("/api/v1/contacts/imports/preview")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["headers"], json!(["Nama", "No HP", "Kota", "Label"]));
    assert_eq!(v["rows"].as_array().unwrap().len(), 10);
    assert_eq!(
        v["rows"][0],
        json!(["Orang 0", "081200000000", "Jakarta", "vip"])
    );
    assert_eq!(v["delimiter"], ";");
    assert_eq!(
        v["mapping"],
        json!({"name": "Nama", "phone": "No HP", "attr:kota": "Kota", "labels": "Label"})
    );

    // A multipart import with the mapping and a default country for national numbers.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("kontak.csv"),
        )
        .text(
            "mapping",
            json!({"phone": "No HP", "name": "Nama"}).to_string(),
        )
        .text("default_country", "ID");
    let res = app
        .post("/api/v1/contacts/imports")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["filename"], "kontak.csv");
    let done = until_finished(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        (done["created"].as_i64(), done["failed"].as_i64()),
        (Some(50), Some(0)),
        "{done}"
    );
    let (_, list) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/contacts?q=Orang%207",
        None,
    )
    .await;
    assert_eq!(list["data"][0]["phone"], "+6281200000007");
    assert_eq!(
        list["data"][0]["attributes"],
        json!({}),
        "only mapped columns are imported"
    );

    for (query, body, field) in [
        (
            "mapping=%7B%22phone%22%3A%22Nope%22%7D",
            "phone\n+6281200000001\n",
            "mapping.phone",
        ),
        ("", "name,city\nAna,Jakarta\n", "mapping.phone"),
        ("mapping=not-json", "phone\n+6281200000001\n", "mapping"),
        (
            "default_country=XX",
            "phone\n+6281200000001\n",
            "default_country",
        ),
        ("", "", "file"),
    ] {
        let res = app
            .post(&format!("/api/v1/contacts/imports?{query}"))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{query} {body:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let res = app
        .post("/api/v1/contacts/imports")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let (s, _) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/contacts/imports/nope",
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_import_interrupted_by_a_restart_resumes_after_its_last_committed_batch() {
    let app = spawn_app().await;
    let (ws, _) = app.workspace_with_token("Acme").await;
    let user = app
        .db
        .user_by_email("admin@acme.test")
        .await
        .unwrap()
        .unwrap();
    let rows = 2500;
    let mut csv = String::from("phone,name\n");
    let mut offset_after_1000 = 0;
    for i in 0..rows {
        if i == 1000 {
            offset_after_1000 = csv.len();
        }
        csv.push_str(&format!("{},P{i}\n", phone(i)));
    }
    let dir = app.config.data_dir.join("imports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crashed.csv"), &csv).unwrap();
    // As a crashed server leaves it: running, its lease expired, the first batch committed.
    let id = app
        .db
        .create_import(&app::server::db::contacts::NewImport {
            workspace_id: &ws,
            user_id: &user.id,
            filename: None,
            storage_key: "crashed.csv",
            headers: r#"["phone","name"]"#,
            mapping: r#"{"phone":"phone","name":"name"}"#,
            options: "{}",
            total: rows as i64,
            byte_offset: offset_after_1000 as i64,
        })
        .await
        .unwrap();
    exec(&app.db, format!("UPDATE contact_imports SET state = 'running', processed = 1000, created = 1000, locked_by = 'gone', locked_until = 1 WHERE id = '{id}'")).await;
    server::imports::wake();
    let started = Instant::now();
    let job = loop {
        let j = app.db.import(&ws, &id).await.unwrap().unwrap();
        if j.state == "done" || started.elapsed() > Duration::from_secs(60) {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.state, "done");
    assert_eq!((job.processed, job.created, job.failed), (2500, 2500, 0));
    let count = app
        .db
        .count_contacts(&ws, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        count, 1500,
        "only the rows after the committed batch were read again"
    );
    assert!(
        !dir.join("crashed.csv").exists(),
        "the file is removed when done"
    );

    // A job whose file is gone fails with a reason instead of hanging.
    let lost = app
        .db
        .create_import(&app::server::db::contacts::NewImport {
            workspace_id: &ws,
            user_id: &user.id,
            filename: None,
            storage_key: "lost.csv",
            headers: r#"["phone"]"#,
            mapping: r#"{"phone":"phone"}"#,
            options: "{}",
            total: 1,
            byte_offset: 6,
        })
        .await
        .unwrap();
    server::imports::wake();
    let started = Instant::now();
    let job = loop {
        let j = app.db.import(&ws, &lost).await.unwrap().unwrap();
        if j.state != "queued" && j.state != "running"
            || started.elapsed() > Duration::from_secs(30)
        {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.state, "failed");
    assert!(job.error.unwrap().contains("upload it again"));
}

#[tokio::test]
async fn the_export_streams_all_or_filtered_contacts_and_imports_back() {
    let app = spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    let n = 2345;
    let mut csv = String::from("phone,name,labels,attr:city,attr:note\n");
    for i in 0..n {
        let label = if i % 5 == 0 { "vip" } else { "" };
        csv.push_str(&format!(
            "{},Customer {i},{label},City {},\"=1+{i}\"\n",
            phone(i),
            i % 7
        ));
    }
    let job = upload(&app, &token, csv, "").await;
    let done = until_finished(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["created"], n);

    let res = app
        .get("/api/v1/contacts/export.csv")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"contacts.csv\""
    );
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        vec![
            "id",
            "phone",
            "wa_id",
            "name",
            "profile_name",
            "username",
            "bsuid",
            "labels",
            "created_at",
            "attr:city",
            "attr:note"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), n);
    let mut phones: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    phones.sort();
    phones.dedup();
    assert_eq!(phones.len(), n, "every contact once, across pages");
    let first = records.iter().find(|r| &r[1] == phone(5).as_str()).unwrap();
    assert_eq!(
        (&first[3], &first[7], &first[9], &first[10]),
        ("Customer 5", "vip", "City 5", "'=1+5"),
        "formulas are defused"
    );

    let res = app
        .get("/api/v1/contacts/export.csv?label=vip")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert_eq!(
        csv::Reader::from_reader(body.as_bytes()).records().count(),
        n.div_ceil(5)
    );

    // The export imports into another workspace unchanged (its `attr:` columns map themselves).
    let (_, other) = app.workspace_with_token("Other").await;
    let job = upload(&app, &other, body, "").await;
    let done = until_finished(
        &app,
        &other,
        job["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        (done["created"].as_i64(), done["failed"].as_i64()),
        (Some(n.div_ceil(5) as i64), Some(0)),
        "{done}"
    );
    let (_, c) = call(
        &app,
        &other,
        reqwest::Method::GET,
        &format!("/api/v1/contacts?q={}", &phone(5)[1..]),
        None,
    )
    .await;
    assert_eq!(
        c["data"][0]["attributes"],
        json!({"city": "City 5", "note": "=1+5"})
    );
    assert_eq!(c["data"][0]["labels"], json!(["vip"]));
}

/// Browsers and API clients ask for compression: the streamed CSVs must finish cleanly through
/// the compression layer (a finished stream polled once more used to panic and cut the
/// download), for an empty workspace and for one with contacts.
#[tokio::test]
async fn the_csv_downloads_finish_cleanly_when_compressed() {
    let app = spawn_app().await;
    let (_, token) = app.workspace_with_token("Acme").await;
    for round in 0..2 {
        if round == 1 {
            let job = upload(&app, &token, format!("phone,name\n{},Ann\n", phone(1)), "").await;
            until_finished(
                &app,
                &token,
                job["id"].as_str().unwrap(),
                Duration::from_secs(60),
            )
            .await;
        }
        for path in [
            "/api/v1/contacts/export.csv",
            "/api/v1/contacts/export.csv?label=&attribute=&has_open_conversation=&cursor=",
        ] {
            let res = app
                .get(path)
                .bearer_auth(&token)
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-encoding"], "gzip");
            let body = res
                .bytes()
                .await
                .expect("the whole compressed body arrives");
            assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip");
        }
    }
}
