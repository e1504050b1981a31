//! The Graph client's administration calls against the emulator: what Meta receives and how
//! its answers and errors are read.

mod common;

use app::server::graph::{Graph, GraphError};
use common::meta::{world, ACCESS_TOKEN, WABA};
use serde_json::{json, Value};

#[tokio::test]
async fn templates_are_listed_across_pages_created_and_deleted() {
    let w = world(&[]).await;
    let graph = Graph::new(&w.emulator, "v25.0");
    let seeded: Vec<Value> = (0..250)
        .map(|i| json!({"name": format!("t_{i:03}"), "language": "en_US", "status": "APPROVED"}))
        .collect();
    w.emu_post(
        "/_emulator/templates",
        json!({"waba_id": WABA, "templates": seeded}),
    )
    .await;
    let all = graph.templates(ACCESS_TOKEN, WABA).await.unwrap();
    assert_eq!(all.len(), 250, "all three pages followed");
    let pages = w
        .emu_get("/_emulator/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == format!("/v25.0/{WABA}/message_templates"))
        .count();
    assert_eq!(pages, 3);

    let body = json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "parameter_format": "named",
        "components": [{"type": "BODY", "text": "Hi {{name}}", "example": {"body_text_named_params": [{"param_name": "name", "example": "Ana"}]}}]});
    let created = graph
        .create_template(ACCESS_TOKEN, WABA, &body)
        .await
        .unwrap();
    assert_eq!(created["status"], "PENDING");
    let sent = w
        .emu_get("/_emulator/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["method"] == "POST")
        .unwrap()
        .clone();
    assert_eq!(sent["body"], body, "Meta receives the create body as given");
    assert_eq!(sent["authorization"], format!("Bearer {ACCESS_TOKEN}"));
    match graph.create_template(ACCESS_TOKEN, WABA, &body).await {
        Err(GraphError::Meta {
            code: 100,
            subcode: Some(2388024),
            ..
        }) => {}
        other => panic!("a duplicate name answers 100/2388024, got {other:?}"),
    }
    graph
        .delete_template(ACCESS_TOKEN, WABA, "order_update", None)
        .await
        .unwrap();
    assert!(
        graph
            .delete_template(ACCESS_TOKEN, WABA, "order_update", None)
            .await
            .is_err(),
        "gone"
    );
}

#[tokio::test]
async fn subscription_phone_number_and_token_errors() {
    let w = world(&[]).await;
    let graph = Graph::new(&w.emulator, "v25.0");
    graph.subscribe_app(ACCESS_TOKEN, WABA).await.unwrap();
    assert!(!graph
        .subscribed_apps(ACCESS_TOKEN, WABA)
        .await
        .unwrap()
        .is_empty());
    graph.unsubscribe_app(ACCESS_TOKEN, WABA).await.unwrap();
    let number = graph
        .phone_number(ACCESS_TOKEN, common::meta::PNID)
        .await
        .unwrap();
    assert_eq!(number["verified_name"], "Acme");
    match graph.phone_number("not-a-token", common::meta::PNID).await {
        Err(e @ GraphError::Meta { code: 190, .. }) => assert!(e.advice().contains("reconnect")),
        other => panic!("a bad token answers 190, got {other:?}"),
    }
    let unreachable = Graph::new("http://127.0.0.1:9", "v25.0");
    assert!(matches!(
        unreachable.phone_number(ACCESS_TOKEN, "1").await,
        Err(GraphError::Unreachable(_))
    ));
}
