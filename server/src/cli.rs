//! The `qontak` command line: `serve` (the default), `migrate` and the `admin` commands.
//! Exit status: 0 success, 1 a refused or failed command, 2 bad configuration or usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use app::domain::{parse_meta_id, Email, PhoneNumber, Role};
use app::server::crypto::{hash_secret, random_secret};
use app::server::db::{Db, NewNumber};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "qontak",
    version,
    about = "Qontak: a self-hosted WhatsApp Business inbox"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the web app, webhooks and API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage workspaces, users, tokens and numbers from the shell.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Inspect and replay the webhook bodies Meta sent (stored verbatim).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// One line per stored body: id, received, processed, fields, size.
    List {
        /// RFC 3339 time or an age such as 30m, 6h, 2d.
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Print one stored body as Meta sent it.
    Show { id: i64 },
    /// Apply stored bodies again; what was applied already stays applied once.
    Replay {
        /// Bodies received since then (RFC 3339 or an age such as 6h).
        #[arg(long)]
        since: Option<String>,
        /// Or these ids.
        ids: Vec<i64>,
    },
}

/// `30m`, `6h`, `2d`, or an RFC 3339 time, as milliseconds since the epoch.
pub fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let t = text.trim();
    let unit = |c: char| match c {
        's' => Some(1_000),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(last) = t.chars().last() {
        if let (Some(ms), Ok(n)) = (unit(last), t[..t.len() - 1].parse::<i64>()) {
            return Ok(now_ms - n * ms);
        }
    }
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            anyhow::anyhow!(
                "--since takes an RFC 3339 time or an age such as 30m, 6h, 2d; got `{t}`"
            )
        })?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a workspace.
    CreateWorkspace {
        #[arg(long)]
        name: String,
    },
    /// Add a user (created when new) to a workspace with a role.
    AddUser {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "agent"])]
        role: String,
        /// The user's display name, for a new user.
        #[arg(long)]
        name: Option<String>,
    },
    /// Create an API token for a user; prints it once, alone on the last line.
    CreateToken {
        #[arg(long)]
        email: String,
        /// A label to recognise the token by.
        #[arg(long)]
        name: String,
        /// Needed when the user belongs to several workspaces.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Connect a WhatsApp number (its access token is stored encrypted).
    ConnectNumber {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        waba_id: String,
        #[arg(long)]
        phone_number_id: String,
        #[arg(long)]
        access_token: String,
        /// The number in E.164, such as +15551234567.
        #[arg(long)]
        display_phone: Option<String>,
    },
    /// Print a workspace's audit log, newest first: time, actor, action, target, IP.
    Audit {
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only this action (or its prefix, such as `auth`).
        #[arg(long)]
        action: Option<String>,
    },
}

/// Parses arguments and configuration, runs the command, and maps failures to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qontak: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qontak: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qontak: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json_logs(
        std::env::var("QONTAK_LOG_FORMAT").ok().as_deref(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ) {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// JSON lines with `QONTAK_LOG_FORMAT=json`, or by default when stderr is not a terminal (a
/// service manager, a container, a file); `QONTAK_LOG_FORMAT=text` keeps plain text anywhere.
pub fn json_logs(format: Option<&str>, terminal: bool) -> bool {
    match format.map(str::trim) {
        Some("json") => true,
        Some("text") => false,
        _ => !terminal,
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => crate::http::serve(config).await,
        Command::Migrate => {
            let db = crate::http::connect_and_migrate(&config).await?;
            db.close().await;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Webhooks(cmd) => {
            let db = crate::http::connect_and_migrate(&config).await?;
            let result = run_webhooks(&db, cmd).await;
            db.close().await;
            result
        }
        Command::Admin(admin) => {
            let db = crate::http::connect_and_migrate(&config).await?;
            let result = run_admin(&db, &config, admin).await;
            db.close().await;
            result
        }
    }
}

async fn workspace_id(db: &Db, name: &str) -> anyhow::Result<String> {
    Ok(db
        .workspace_by_name(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no workspace is named `{name}`"))?
        .id)
}

/// Runs one `webhooks` command against an open database.
pub async fn run_webhooks(db: &Db, command: WebhooksCommand) -> anyhow::Result<()> {
    let now = app::server::now_ms();
    match command {
        WebhooksCommand::List { since, limit } => {
            let rows = db
                .webhook_events_since(parse_since(&since, now)?, limit.clamp(1, 10_000))
                .await?;
            for (id, received, processed, error, body) in rows {
                let fields: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("entry").cloned())
                    .and_then(|e| e.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|e| {
                        e.get("changes")
                            .and_then(|c| c.as_array())
                            .cloned()
                            .unwrap_or_default()
                    })
                    .filter_map(|c| c.get("field").and_then(|f| f.as_str()).map(str::to_string))
                    .collect();
                let state = match (processed, error) {
                    (_, Some(e)) => format!("error: {e}"),
                    (Some(_), None) => "applied".to_string(),
                    (None, None) => "pending".to_string(),
                };
                println!(
                    "{id}\t{}\t{state}\t{}\t{} bytes",
                    app::server::rfc3339(received),
                    fields.join(","),
                    body.len()
                );
            }
        }
        WebhooksCommand::Show { id } => {
            let (_, _, _, _, body) = db
                .webhook_event(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no stored webhook has id {id}"))?;
            println!("{body}");
        }
        WebhooksCommand::Replay { since, ids } => {
            anyhow::ensure!(
                since.is_some() || !ids.is_empty(),
                "say what to replay: --since 6h, or ids"
            );
            let since = since
                .as_deref()
                .map(|s| parse_since(s, now))
                .transpose()?
                .unwrap_or(i64::MAX);
            let n = db.requeue_webhook_events(since, &ids).await?;
            app::server::ingest::drain(db, &app::server::events::EventBus::new()).await;
            println!("replayed {n} stored webhook(s)");
        }
    }
    Ok(())
}

/// Runs one admin command against an open database.
pub async fn run_admin(db: &Db, config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Audit {
            workspace,
            limit,
            action,
        } => {
            let ws = workspace_id(db, &workspace).await?;
            let filter = app::server::db::privacy::AuditFilter {
                action,
                limit: limit.clamp(1, 10_000),
                ..Default::default()
            };
            for e in db.audit_search(&ws, &filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    app::server::rfc3339(e.created_at),
                    e.actor,
                    e.action,
                    e.target.as_deref().unwrap_or("-"),
                    e.ip.as_deref().unwrap_or("-"),
                    e.detail
                );
            }
        }
        AdminCommand::CreateWorkspace { name } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "the workspace name cannot be empty");
            let w = db.create_workspace(name).await?;
            println!("created workspace `{}` ({})", w.name, w.id);
        }
        AdminCommand::AddUser {
            workspace,
            email,
            role,
            name,
        } => {
            let email = Email::parse(&email)?;
            let role: Role = role.parse()?;
            let ws = workspace_id(db, &workspace).await?;
            let user = match db.user_by_email(email.as_str()).await? {
                Some(u) => u,
                None => {
                    db.create_user(email.as_str(), name.as_deref().unwrap_or(""))
                        .await?
                }
            };
            db.add_member(&ws, &user.id, role.as_str())
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{} is already a member of `{workspace}`", email.as_str())
                })?;
            println!(
                "added {} to `{workspace}` as {}",
                email.as_str(),
                role.as_str()
            );
        }
        AdminCommand::CreateToken {
            email,
            name,
            workspace,
        } => {
            let email = Email::parse(&email)?;
            let user = db
                .user_by_email(email.as_str())
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user has the e-mail {}", email.as_str()))?;
            let memberships = db.memberships_of(&user.id).await?;
            let ws = match workspace {
                Some(w) => memberships
                    .iter()
                    .find(|m| m.workspace_name == w)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{} is not a member of `{w}`", email.as_str())
                    })?,
                None => match memberships.as_slice() {
                    [only] => only,
                    [] => anyhow::bail!(
                        "{} belongs to no workspace; add them with `qontak admin add-user`",
                        email.as_str()
                    ),
                    _ => anyhow::bail!(
                        "{} belongs to several workspaces; choose one with --workspace",
                        email.as_str()
                    ),
                },
            };
            let token = random_secret("qtk_");
            db.create_api_token(
                &ws.workspace_id,
                &user.id,
                name.trim(),
                &hash_secret(&token),
                &token[..8],
            )
            .await?;
            println!(
                "created API token `{}` for {} in `{}`; it is shown only now:",
                name.trim(),
                email.as_str(),
                ws.workspace_name
            );
            println!("{token}");
        }
        AdminCommand::ConnectNumber {
            workspace,
            waba_id,
            phone_number_id,
            access_token,
            display_phone,
        } => {
            let waba_id = parse_meta_id("--waba-id", &waba_id)?;
            let phone_number_id = parse_meta_id("--phone-number-id", &phone_number_id)?;
            let display = display_phone
                .as_deref()
                .map(PhoneNumber::parse)
                .transpose()?;
            anyhow::ensure!(
                !access_token.trim().is_empty(),
                "--access-token cannot be empty"
            );
            let ws = workspace_id(db, &workspace).await?;
            let number = db
                .connect_number(&NewNumber {
                    workspace_id: &ws,
                    waba_id: &waba_id,
                    phone_number_id: &phone_number_id,
                    display_phone: display.as_ref().map(|d| d.as_str()),
                    access_token_enc: &config.secret_key.encrypt(access_token.trim()),
                    key_id: config.secret_key.id(),
                })
                .await?;
            println!(
                "connected phone number id {} to `{workspace}` ({})",
                number.phone_number_id, number.id
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod log_format_tests {
    use super::json_logs;

    #[test]
    fn logs_are_json_when_asked_or_when_not_on_a_terminal() {
        assert!(json_logs(Some("json"), true));
        assert!(!json_logs(Some("text"), false));
        assert!(
            json_logs(None, false),
            "a service manager or a pipe gets JSON"
        );
        assert!(!json_logs(None, true), "a person at a terminal gets text");
    }
}
