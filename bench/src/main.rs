//! `qontak-bench`: load generator and benchmarks behind `./x bench`.
//!
//! Every figure is printed next to a reference measured in the same run on the same machine:
//! a bare axum handler that only verifies the signature and parses the JSON (the ceiling for
//! webhooks), the emulator's own request rate (the ceiling for sends). Servers run as separate
//! processes pinned to one core where the machine allows, the load generator on another.

mod broadcast;
mod chaos;
mod import;
mod inbox;
mod live;
mod load;
mod pages;
mod peers;
mod proxy;
mod report;
mod scenarios;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "qontak-bench", about = "Qontak benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable webhook acknowledgement and processing, on SQLite and Postgres, next to the ceiling.
    Webhooks {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// sqlite, postgres or both.
        #[arg(long, default_value = "both")]
        engine: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        pg: String,
        /// pinned (the server on one core, the load on the other), shared (the server on
        /// every core, beside the load) or both.
        #[arg(long, default_value = "both")]
        placement: String,
    },
    /// Valid webhooks' latency with and without a flood of bad signatures `factor` times their
    /// rate, alternating clean and flooded runs.
    Flood {
        #[arg(long, default_value_t = 6)]
        seconds: u64,
        #[arg(long, default_value_t = 300)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        factor: u32,
        /// Clean and flooded runs alternate this many times.
        #[arg(long, default_value_t = 4)]
        rounds: u32,
    },
    /// Outbox drain to the emulator: fast (rate set high) and paced at 80/s.
    Send {
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        #[arg(long, default_value = "sqlite")]
        engine: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        pg: String,
    },
    /// The inbox's list and search queries on 100,000 conversations and 1,000,000 messages.
    Inbox {
        #[arg(long, default_value_t = 100_000)]
        conversations: i64,
        #[arg(long, default_value_t = 1_000_000)]
        messages: i64,
        /// sqlite, postgres or both.
        #[arg(long, default_value = "both")]
        engine: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        pg: String,
    },
    /// CSV contact import (100k and 400k rows, 1% bad) and export through the HTTP API:
    /// rows/s and the server's peak memory.
    Import {
        /// Comma-separated row counts.
        #[arg(long, default_value = "100000,400000")]
        rows: String,
        /// Comma-separated message counts of the seeded workspaces to export whole.
        #[arg(long, default_value = "100000,1000000")]
        export_messages: String,
        #[arg(long, default_value = "sqlite")]
        engine: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        pg: String,
    },
    /// Webhook-to-SSE-client latency with idle SSE clients connected, next to none.
    Events {
        #[arg(long, default_value_t = 1000)]
        idle: usize,
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Accepted for ./x bench's uniform call; the benchmark runs on SQLite.
        #[arg(long, default_value = "")]
        pg: String,
    },
    /// Server-side render of /login and /inbox (signed in) next to /healthz.
    Ssr {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Accepted for ./x bench's uniform call; the benchmark runs on SQLite.
        #[arg(long, default_value = "")]
        pg: String,
    },
    /// The webhook receivers people build today (FastAPI + sqlite3, pywa, Express +
    /// whatsapp-api-js), with Qontak's corpus and load: throughput, latency, and the acknowledged
    /// messages missing after a SIGKILL.
    Peers {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Comma-separated: qontak, fastapi, pywa, express.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "qontak,fastapi,pywa,express"
        )]
        targets: Vec<String>,
        /// The peers' sources.
        #[arg(long, default_value = "bench/peers")]
        peers_dir: String,
        /// The virtualenv with bench/peers/requirements.txt installed
        /// (default: $HOME/.cache/qontak-peers-venv).
        #[arg(long)]
        venv: Option<String>,
    },
    /// Raw, gzip and brotli sizes of the client's files (the WASM, its JavaScript glue and the
    /// stylesheet: what a browser loads) and their total.
    Wasm {
        #[arg(
            long = "file",
            default_values = ["target/site/pkg/qontak.wasm", "target/site/pkg/qontak.js", "target/site/pkg/qontak.css"]
        )]
        files: Vec<String>,
    },
    /// Tries to lose data: SIGKILLs the server at random moments under webhook and send load,
    /// then checks that nothing acknowledged was lost, doubled or left stuck.
    Chaos {
        #[arg(long, default_value_t = 5)]
        cycles: u32,
        /// Total time under load, over all cycles.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 100)]
        webhook_rate: u32,
        #[arg(long, default_value_t = 20)]
        send_rate: u32,
        /// sqlite or postgres.
        #[arg(long, default_value = "sqlite")]
        engine: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        pg: String,
        /// Append the summary to docs/chaos.md.
        #[arg(long)]
        record: bool,
    },
    /// Fills a workspace of a database (its first number) with conversations and messages.
    Seed {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value_t = 100_000)]
        conversations: i64,
        #[arg(long, default_value_t = 1_000_000)]
        messages: i64,
    },
    /// A round-robin TCP proxy in front of several instances (`./x run --instances N`).
    Proxy {
        #[arg(long)]
        listen: String,
        /// Backends, comma-separated host:port.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// The ceiling: a bare axum handler that verifies the signature and parses JSON (internal).
    Ceiling {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        secret: String,
    },
    /// A template broadcast through the API to `contacts` imported contacts at `rate` messages
    /// a second, against the emulator (which sends Meta's statuses back): time from the first
    /// send to the last as Meta sees it, and the progress the API showed meanwhile. With
    /// `--check`, fails unless it took contacts ÷ rate ± 10%, each contact got exactly one
    /// message, and the progress rose live.
    Broadcast {
        #[arg(long, default_value_t = 1000)]
        contacts: usize,
        #[arg(long, default_value_t = 80)]
        rate: i64,
        #[arg(long)]
        check: bool,
    },
    /// The emulator alone (internal: its own process for the send ceiling).
    Emulator {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        webhook_url: String,
        #[arg(long)]
        secret: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Webhooks {
                seconds,
                connections,
                engine,
                pg,
                placement,
            } => {
                use scenarios::Placement::{Pinned, Shared};
                let placements = match placement.as_str() {
                    "pinned" => vec![Pinned],
                    "shared" => vec![Shared],
                    "both" => vec![Pinned, Shared],
                    other => anyhow::bail!("--placement {other}: pinned, shared or both"),
                };
                scenarios::webhooks(seconds, connections, &engine, &pg, &placements).await
            }
            Command::Flood {
                seconds,
                rate,
                factor,
                rounds,
            } => scenarios::flood(seconds, rate, factor, rounds).await,
            Command::Send {
                messages,
                engine,
                pg,
            } => scenarios::send(messages, &engine, &pg).await,
            Command::Broadcast {
                contacts,
                rate,
                check,
            } => broadcast::run(contacts, rate, check).await,
            Command::Inbox {
                conversations,
                messages,
                engine,
                pg,
            } => inbox::run(&engine, &pg, conversations, messages).await,
            Command::Seed {
                database_url,
                workspace,
                conversations,
                messages,
            } => inbox::seed_into(&database_url, &workspace, conversations, messages).await,
            Command::Import {
                rows,
                export_messages,
                engine,
                pg,
            } => {
                let sizes: Vec<usize> = rows
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect();
                let exports: Vec<i64> = export_messages
                    .split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect();
                import::import(&sizes, &exports, &engine, &pg).await
            }
            Command::Chaos {
                cycles,
                seconds,
                webhook_rate,
                send_rate,
                engine,
                pg,
                record,
            } => {
                chaos::run(chaos::Options {
                    cycles,
                    seconds,
                    webhook_rate,
                    send_rate,
                    engine,
                    pg,
                    record,
                })
                .await
            }
            Command::Events { idle, samples, .. } => live::events(idle, samples).await,
            Command::Ssr {
                seconds,
                connections,
                ..
            } => pages::ssr(seconds, connections).await,
            Command::Peers {
                seconds,
                connections,
                targets,
                peers_dir,
                venv,
            } => {
                let venv = venv.map(Into::into).unwrap_or_else(|| {
                    std::path::Path::new(&std::env::var("HOME").unwrap_or_default())
                        .join(".cache/qontak-peers-venv")
                });
                peers::run(peers::Options {
                    seconds,
                    connections,
                    targets,
                    dir: peers_dir.into(),
                    venv,
                })
                .await
            }
            Command::Wasm { files } => pages::wasm(&files),
            Command::Proxy { listen, to } => proxy::run(&listen, to).await,
            Command::Ceiling { listen, secret } => scenarios::ceiling(&listen, secret).await,
            Command::Emulator {
                listen,
                webhook_url,
                secret,
            } => scenarios::emulator(&listen, &webhook_url, &secret).await,
        }
    })
}
