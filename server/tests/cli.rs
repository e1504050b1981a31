//! The `qontak` binary: configuration errors, migrations and the admin commands.

mod common;

use std::process::{Command, Output};

use common::{engine, fresh_database_url, scratch_dir, spawn_with_config, test_config};

struct Qontak {
    database_url: String,
    data_dir: std::path::PathBuf,
    key: String,
}

impl Qontak {
    async fn new() -> Self {
        Qontak {
            database_url: fresh_database_url(engine()).await,
            data_dir: scratch_dir(),
            key: app::server::crypto::SecretKey::generate_base64(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_env(
            args,
            &[
                ("DATABASE_URL", &self.database_url),
                ("QONTAK_DATA_DIR", &self.data_dir.display().to_string()),
                ("QONTAK_SECRET_KEY", &self.key),
            ],
        )
    }
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qontak"));
    cmd.args(args)
        .current_dir(scratch_dir())
        .env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("QONTAK_") || k.starts_with("META_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("qontak runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_unsupported_database_scheme_prints_one_line_and_exits_2() {
    let out = run_with_env(&["migrate"], &[("DATABASE_URL", "mysql://x")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("mysql") && err.contains("DATABASE_URL"),
        "{err}"
    );
}

#[test]
fn a_malformed_database_url_prints_one_line_and_exits_2() {
    for url in ["not a url", "postgres://user@host:notaport/db"] {
        let out = run_with_env(&["migrate"], &[("DATABASE_URL", url)]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
    }
}

#[test]
fn a_short_secret_key_prints_one_line_and_exits_2() {
    let out = run_with_env(
        &["migrate"],
        &[
            ("DATABASE_URL", "sqlite::memory:"),
            ("QONTAK_SECRET_KEY", "c2hvcnQ="),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("QONTAK_SECRET_KEY"));
}

#[test]
fn help_lists_the_admin_commands() {
    let out = run_with_env(&["admin", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for c in [
        "create-workspace",
        "add-user",
        "create-token",
        "connect-number",
    ] {
        assert!(text.contains(c), "{c} in {text}");
    }
}

#[tokio::test]
async fn admin_commands_create_a_workspace_user_and_a_token_that_the_api_accepts() {
    let q = Qontak::new().await;
    let out = q.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert!(q
        .run(&["admin", "create-workspace", "--name", "Acme"])
        .status
        .success());
    let again = q.run(&["admin", "create-workspace", "--name", "Acme"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let add = q.run(&[
        "admin",
        "add-user",
        "--workspace",
        "Acme",
        "--email",
        "Ana@Acme.test",
        "--role",
        "admin",
    ]);
    assert!(add.status.success(), "{}", stderr(&add));
    let again = q.run(&[
        "admin",
        "add-user",
        "--workspace",
        "Acme",
        "--email",
        "ana@acme.test",
        "--role",
        "agent",
    ]);
    assert_eq!(again.status.code(), Some(1));
    let missing = q.run(&[
        "admin",
        "add-user",
        "--workspace",
        "Nope",
        "--email",
        "b@acme.test",
        "--role",
        "agent",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("Nope"));
    let bad_role = q.run(&[
        "admin",
        "add-user",
        "--workspace",
        "Acme",
        "--email",
        "b@acme.test",
        "--role",
        "owner",
    ]);
    assert_eq!(
        bad_role.status.code(),
        Some(2),
        "clap refuses an unknown role"
    );

    let out = q.run(&[
        "admin",
        "create-token",
        "--email",
        "ana@acme.test",
        "--name",
        "ci",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text.trim_end().lines().last().unwrap().to_string();
    assert!(
        token.starts_with("qtk_") && !token.contains(' '),
        "token alone on the last line: {text}"
    );
    let dup = q.run(&[
        "admin",
        "create-token",
        "--email",
        "ana@acme.test",
        "--name",
        "ci",
    ]);
    assert_eq!(
        dup.status.code(),
        Some(1),
        "a second token with the same name is refused"
    );

    let out = q.run(&[
        "admin",
        "connect-number",
        "--workspace",
        "Acme",
        "--waba-id",
        "102290129340398",
        "--phone-number-id",
        "106540352242922",
        "--access-token",
        "EAAJB-secret-access-token",
        "--display-phone",
        "+1 555 010 0001",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let config = test_config(&q.database_url, &[("QONTAK_SECRET_KEY", &q.key)]);
    let app = spawn_with_config(config).await;
    let res = app
        .get("/api/v1/numbers")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"][0]["phone_number_id"], "106540352242922");
    assert_eq!(body["data"][0]["display_phone"], "+15550100001");
}

#[tokio::test]
async fn a_connected_numbers_access_token_is_not_readable_in_the_database() {
    let q = Qontak::new().await;
    assert!(q
        .run(&["admin", "create-workspace", "--name", "Acme"])
        .status
        .success());
    let secret = "EAAJB-very-secret-access-token-1234567890";
    let out = q.run(&[
        "admin",
        "connect-number",
        "--workspace",
        "Acme",
        "--waba-id",
        "1",
        "--phone-number-id",
        "2",
        "--access-token",
        secret,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains(secret) && !stderr(&out).contains(secret),
        "never echoed"
    );

    let db = app::server::db::Db::connect(&q.database_url).await.unwrap();
    let enc = db
        .number_access_token_enc(
            &db.numbers(&db.workspace_by_name("Acme").await.unwrap().unwrap().id)
                .await
                .unwrap()[0]
                .id,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!enc.contains(secret) && !enc.contains("EAAJB"));
    let key = app::server::crypto::SecretKey::from_base64(&q.key).unwrap();
    assert_eq!(key.decrypt(&enc).unwrap(), secret);
    db.close().await;

    if let Some(path) = q.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        for file in [path.to_string(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "plaintext token in {file}"
                );
            }
        }
    }
}

#[tokio::test]
async fn webhooks_list_show_and_replay_work_on_the_stored_bodies() {
    let q = Qontak::new().await;
    assert!(q.run(&["migrate"]).status.success());
    let db = app::server::db::Db::connect(&q.database_url).await.unwrap();
    let ws = db.create_workspace("Acme").await.unwrap();
    db.connect_number(&app::server::db::NewNumber {
        workspace_id: &ws.id,
        waba_id: "1",
        phone_number_id: "42",
        display_phone: None,
        access_token_enc: "k:x",
        key_id: "k",
    })
    .await
    .unwrap();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "42"}, "contacts": [{"wa_id": "15551234567"}],
        "messages": [{"from": "15551234567", "id": "wamid.CLI", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}}]}}]}]})
    .to_string();
    db.insert_webhook_events(&[body.as_str()]).await.unwrap();

    let list = q.run(&["webhooks", "list", "--since", "1h"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let line = stdout(&list);
    assert!(line.contains("\tpending\tmessages\t"), "{line}");
    let id = line.split('\t').next().unwrap().to_string();
    let show = q.run(&["webhooks", "show", &id]);
    assert_eq!(stdout(&show).trim(), body);

    for _ in 0..2 {
        let replay = q.run(&["webhooks", "replay", "--since", "1h"]);
        assert!(replay.status.success(), "{}", stderr(&replay));
        assert!(stdout(&replay).contains("replayed 1"));
    }
    let counts = db.wamid_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![("wamid.CLI".to_string(), 1)],
        "replayed twice, stored once"
    );
    assert!(stdout(&q.run(&["webhooks", "list"])).contains("\tapplied\t"));
    assert_eq!(
        q.run(&["webhooks", "show", "999999"]).status.code(),
        Some(1)
    );
    assert_eq!(
        q.run(&["webhooks", "list", "--since", "yesterday"])
            .status
            .code(),
        Some(1)
    );
    db.close().await;
}
