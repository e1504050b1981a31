//! Development sign-in, sessions and sign-out.

mod common;

use common::{error_code, spawn_app_with};

fn session_cookie(res: &reqwest::Response) -> String {
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn dev_sign_in_is_404_unless_enabled() {
    let app = spawn_app_with(&[]).await;
    let res = app
        .post("/auth/dev")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.headers().contains_key("set-cookie"));
}

#[tokio::test]
async fn dev_sign_in_creates_a_user_with_a_workspace_and_a_session_cookie() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let res = app
        .post("/auth/dev")
        .form(&[("email", "Ana@Acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/inbox");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("qontak_session=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Lax")
    );
    let cookie = session_cookie(&res);

    let me = app
        .get("/auth/session")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ana@acme.test");
    assert_eq!(body["workspaces"][0]["role"], "admin");
    assert!(body["workspaces"][0]["name"]
        .as_str()
        .unwrap()
        .contains("ana"));

    // A second sign-in reuses the user and workspace, with a new session id.
    let again = app
        .post("/auth/dev")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    assert_ne!(session_cookie(&again), cookie);
    let body2: serde_json::Value = app
        .get("/auth/session")
        .header("cookie", session_cookie(&again))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body2["workspaces"], body["workspaces"]);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let res = app
        .post("/auth/dev")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&res);
    let out = app
        .post("/auth/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let me = app
        .get("/auth/session")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(error_code(me).await, "unauthorized");
}

#[tokio::test]
async fn a_cross_site_sign_in_post_is_refused() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let res = app
        .post("/auth/dev")
        .header("origin", "https://evil.example")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!res.headers().contains_key("set-cookie"));
}

#[tokio::test]
async fn an_invalid_email_is_a_422_naming_the_field() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let res = app
        .post("/auth/dev")
        .form(&[("email", "not-an-email")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["field"], "email");
}

#[tokio::test]
async fn pages_redirect_by_session() {
    let app = spawn_app_with(&[("QONTAK_DEV_LOGIN", "1")]).await;
    let inbox = app.get("/inbox").send().await.unwrap();
    let html = inbox.text().await.unwrap();
    assert!(
        !html.contains("No conversations yet"),
        "the inbox is not shown without a session"
    );
    let res = app
        .post("/auth/dev")
        .form(&[("email", "ana@acme.test")])
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&res);
    let inbox = app
        .get("/inbox")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), 200);
    let html = inbox.text().await.unwrap();
    assert!(
        html.contains("Inbox") && html.contains("ana@acme.test"),
        "signed-in shell"
    );
}
