//! The integration API's base: bearer tokens, the error shape, numbers, the OpenAPI document.

mod common;

use app::server::db::NewNumber;
use common::{error_code, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn a_valid_token_lists_only_its_own_workspaces_numbers() {
    let app = spawn_app().await;
    let (ws, token) = app.workspace_with_token("Acme").await;
    let (other_ws, other_token) = app.workspace_with_token("Globex").await;
    for (w, pnid) in [(&ws, "1111"), (&other_ws, "2222")] {
        app.db
            .connect_number(&NewNumber {
                workspace_id: w,
                waba_id: "900",
                phone_number_id: pnid,
                display_phone: Some("+15550001111"),
                access_token_enc: &app.state.key.encrypt("EAAtoken"),
                key_id: app.state.key.id(),
            })
            .await
            .unwrap();
    }

    let res = app
        .get("/api/v1/numbers")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["phone_number_id"], "1111");
    assert_eq!(data[0]["waba_id"], "900");
    assert_eq!(data[0]["display_phone"], "+15550001111");
    assert!(body["next_cursor"].is_null());
    assert!(
        !body.to_string().contains("EAAtoken"),
        "no token in the answer"
    );

    let other: Value = app
        .get("/api/v1/numbers")
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["data"][0]["phone_number_id"], "2222");
}

#[tokio::test]
async fn missing_malformed_and_wrong_tokens_answer_401_in_the_json_error_shape() {
    let app = spawn_app().await;
    let (_ws, token) = app.workspace_with_token("Acme").await;

    let missing = app.get("/api/v1/numbers").send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(missing).await, "unauthorized");

    let wrong = app
        .get("/api/v1/numbers")
        .bearer_auth("qtk_not_a_real_token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_code(wrong).await, "unauthorized");

    let basic = app
        .get("/api/v1/numbers")
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(error_code(basic).await, "unauthorized");
}

#[tokio::test]
async fn unknown_routes_and_methods_under_the_api_answer_json_errors() {
    let app = spawn_app().await;
    let (_ws, token) = app.workspace_with_token("Acme").await;
    let res = app
        .get("/api/v1/no-such-thing")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, "not_found");

    let res = app
        .client
        .delete(format!("{}/api/v1/numbers", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(error_code(res).await, "method_not_allowed");
}

#[tokio::test]
async fn the_openapi_document_is_openapi_3_and_every_reference_resolves() {
    let app = spawn_app().await;
    let res = app.get("/api/v1/openapi.json").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "version {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let get = &doc["paths"]["/api/v1/numbers"]["get"];
    assert!(get["responses"]["200"].is_object());
    assert_eq!(get["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
}
