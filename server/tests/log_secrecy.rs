//! No secret and no content in the logs: the real `qontak` binary runs a whole scenario with
//! `RUST_LOG=trace` (sign-in, a number connected with its access token, a customer's message
//! through a signed webhook, a send, API token use), and its stderr must hold none of the API
//! token, the app secret, the access token, the session id, a message body or the customer's
//! phone number.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use qontak_meta_emulator::{Config as EmulatorConfig, Number};
use serde_json::{json, Value};

use common::{engine, fresh_database_url, scratch_dir};

const APP_SECRET: &str = "log-secrecy-app-secret-5f1c";
const ACCESS_TOKEN: &str = "EAAGlogsecrecyaccesstoken77";
const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const CUSTOMER: &str = "6281234567890";
const INBOUND_BODY: &str = "inbound-body-kopi-susu-88";
const OUTBOUND_BODY: &str = "outbound-body-teh-manis-99";
const EMAIL: &str = "ana@acme.test";

struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn command(&self, args: &[&str], log: &std::path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qontak"));
        cmd.args(args).current_dir(scratch_dir());
        for (k, _) in std::env::vars() {
            if k.starts_with("QONTAK_") || k.starts_with("META_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"));
        cmd
    }

    fn admin(&self, args: &[&str], log: &std::path::Path) -> Output {
        let out = self.command(args, log).output().expect("qontak runs");
        assert!(out.status.success(), "{args:?} failed");
        out
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_scenario_at_trace_level_logs_no_secret_and_no_content() {
    let logs = scratch_dir();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let emu_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = format!("http://{}", emu_listener.local_addr().unwrap());
    let mut config = EmulatorConfig::new(format!("{base}/webhooks/whatsapp"), APP_SECRET);
    config.access_tokens = vec![ACCESS_TOKEN.to_string()];
    config.status_delay = Duration::from_millis(30);
    config.numbers = vec![Number {
        phone_number_id: PNID.into(),
        waba_id: WABA.into(),
        display_phone_number: "+1 555-078-3881".into(),
        verified_name: "Acme".into(),
    }];
    tokio::spawn(async move {
        qontak_meta_emulator::serve(emu_listener, config)
            .await
            .unwrap()
    });

    let env = Env {
        vars: vec![
            ("DATABASE_URL".into(), fresh_database_url(engine()).await),
            (
                "QONTAK_DATA_DIR".into(),
                scratch_dir().display().to_string(),
            ),
            (
                "QONTAK_SECRET_KEY".into(),
                app::server::crypto::SecretKey::generate_base64(),
            ),
            ("META_APP_SECRET".into(), APP_SECRET.into()),
            (
                "META_VERIFY_TOKEN".into(),
                "log-secrecy-verify-token".into(),
            ),
            ("META_GRAPH_URL".into(), emulator.clone()),
            ("LEPTOS_SITE_ADDR".into(), format!("127.0.0.1:{port}")),
            ("QONTAK_PUBLIC_URL".into(), base.clone()),
            ("QONTAK_DEV_LOGIN".into(), "1".into()),
            ("QONTAK_OUTBOX_BACKOFF_MS".into(), "40".into()),
        ],
    };

    // The shell: a workspace, its admin, a token (printed on stdout, not logged) and a number.
    env.admin(
        &["admin", "create-workspace", "--name", "Acme"],
        &logs.join("1.log"),
    );
    env.admin(
        &[
            "admin",
            "add-user",
            "--workspace",
            "Acme",
            "--email",
            EMAIL,
            "--role",
            "admin",
        ],
        &logs.join("2.log"),
    );
    let out = env.admin(
        &["admin", "create-token", "--email", EMAIL, "--name", "ci"],
        &logs.join("3.log"),
    );
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    env.admin(
        &[
            "admin",
            "connect-number",
            "--workspace",
            "Acme",
            "--waba-id",
            WABA,
            "--phone-number-id",
            PNID,
            "--access-token",
            ACCESS_TOKEN,
            "--display-phone",
            "+15550783881",
        ],
        &logs.join("4.log"),
    );

    let server_log = logs.join("serve.log");
    let _server = Server(
        env.command(&["serve"], &server_log)
            .stdout(Stdio::null())
            .spawn()
            .expect("qontak serve"),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                up = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server never became ready");

    // Sign in (dev form) and use the session.
    let res = http
        .post(format!("{base}/auth/dev"))
        .form(&[("email", EMAIL)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let session_id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("qontak_session=")
        .to_string();
    assert!(session_id.len() >= 20, "{cookie}");
    let me = http
        .get(format!("{base}/auth/session"))
        .header("cookie", format!("qontak_session={session_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // The customer writes; the message shows through the API.
    let r: Value = http
        .post(format!(
            "{emulator}/_emulator/customers/{CUSTOMER}/messages"
        ))
        .json(&json!({"type": "text", "text": {"body": INBOUND_BODY}, "profile_name": "Siti"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["webhook_status"], 200, "{r}");
    let mut seen = false;
    for _ in 0..200 {
        let convs: Value = http
            .get(format!("{base}/api/v1/conversations"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if convs["data"][0]["last_message"]["content"]["body"] == INBOUND_BODY {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the customer's message never showed");

    // Send a reply and wait until Meta (the emulator) has it delivered.
    let numbers: Value = http
        .get(format!("{base}/api/v1/numbers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number_id = numbers["data"][0]["id"].as_str().unwrap().to_string();
    let sent = http
        .post(format!("{base}/api/v1/messages"))
        .bearer_auth(&token)
        .json(&json!({"number_id": number_id, "to": format!("+{CUSTOMER}"), "type": "text", "text": {"body": OUTBOUND_BODY}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let mut delivered = false;
    for _ in 0..200 {
        let s: Value = http
            .get(format!("{emulator}/_emulator/sent"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s.as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m["status"] == "read" || m["status"] == "delivered")
        }) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(delivered, "the reply never reached the emulator");
    // Let the status webhooks land and be logged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = http
        .post(format!("{base}/auth/logout"))
        .header("cookie", format!("qontak_session={session_id}"))
        .send()
        .await
        .unwrap();
    drop(_server);

    // The audit log, from the shell: sign-in and sign-out are there, with the client address.
    let audit = env.admin(
        &["admin", "audit", "--workspace", "Acme"],
        &logs.join("5.log"),
    );
    let audit = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        audit.contains("auth.sign_in") && audit.contains("auth.sign_out"),
        "{audit}"
    );
    assert!(audit.contains("127.0.0.1"), "{audit}");

    let mut all = String::new();
    for name in ["1.log", "2.log", "3.log", "4.log", "5.log", "serve.log"] {
        all.push_str(&std::fs::read_to_string(logs.join(name)).unwrap_or_default());
    }
    assert!(
        all.contains("TRACE") && all.contains("DEBUG"),
        "the scenario ran at trace level"
    );
    let lines = all.lines().count();
    eprintln!("{lines} log lines");
    assert!(
        lines > 100,
        "the logs are not trivially short: {lines} lines"
    );
    let secrets = [
        ("the API token", token.as_str()),
        ("the app secret", APP_SECRET),
        ("the access token", ACCESS_TOKEN),
        ("the session id", session_id.as_str()),
        ("an inbound message body", INBOUND_BODY),
        ("an outbound message body", OUTBOUND_BODY),
        ("the customer's phone number", CUSTOMER),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        if let Some(line) = all.lines().find(|l| l.contains(secret)) {
            leaks.push(format!("{what} in: {}", &line[..line.len().min(400)]));
        }
    }
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}
