//! `qontak-bench inbox`: the inbox's two hot queries — the conversation list and search — on a
//! workspace seeded with 100,000 conversations and 1,000,000 messages, on SQLite and Postgres.
//! `qontak-bench seed` fills any database the same way (for trying the UI at that size).

use std::time::Instant;

use hdrhistogram::Histogram;

use app::server::db::inbox::{AssigneeFilter, ConversationFilter};
use app::server::db::read::start;
use app::server::db::Db;

use crate::report;

/// Words of the seeded messages: `invoice` is in 1 of 20, `refund` in 1 of 1,000, and every
/// message carries its own order number (`ord<n>`), so searches cover common, rare and unique.
const WORDS: [&str; 20] = [
    "invoice",
    "hello",
    "thanks",
    "shipping",
    "price",
    "available",
    "size",
    "color",
    "tomorrow",
    "payment",
    "address",
    "please",
    "delivery",
    "status",
    "photo",
    "morning",
    "discount",
    "stock",
    "question",
    "order",
];

/// Seeds a workspace with `conversations` conversations and `messages` messages
/// in SQL (no round trip per row), ids starting with `prefix`. Returns the time it took, in seconds.
pub async fn seed(
    db: &Db,
    number_id: &str,
    workspace_id: &str,
    prefix: &str,
    conversations: i64,
    messages: i64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let p = prefix;
    let t0: i64 = 1_780_000_000_000;
    let pg = matches!(db, Db::Postgres(_));
    let series = |n: i64| {
        if pg {
            format!("(SELECT i::bigint AS i FROM generate_series(1, {n}) AS g(i)) AS n")
        } else {
            format!("(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS n")
        }
    };
    let words = WORDS
        .iter()
        .enumerate()
        .map(|(k, w)| format!("WHEN {k} THEN '{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let statements = [
        format!(
            "INSERT INTO contacts (id, workspace_id, wa_id, phone, name, attributes, created_at, updated_at) \
             SELECT 'k{p}' || i, '{workspace_id}', CAST(6281000000000 + i AS TEXT), '+' || CAST(6281000000000 + i AS TEXT), \
             'Customer ' || i, '{{}}', {t0} + i, {t0} + i FROM {}",
            series(conversations)
        ),
        format!(
            "INSERT INTO conversations (id, workspace_id, number_id, contact_id, status, last_inbound_at, last_message_id, \
             last_message_at, unread_count, created_at, updated_at) \
             SELECT 'c{p}' || i, '{workspace_id}', '{number_id}', 'k{p}' || i, \
             CASE WHEN i % 10 = 0 THEN 'resolved' WHEN i % 10 = 1 THEN 'pending' ELSE 'open' END, \
             {t0} + (i + {m} - {c}) * 1000, 'm{p}' || (i + {m} - {c}), {t0} + (i + {m} - {c}) * 1000, i % 3, {t0} + i, {t0} + i FROM {}",
            series(conversations),
            m = messages,
            c = conversations
        ),
        format!(
            "INSERT INTO messages (id, workspace_id, conversation_id, number_id, wamid, direction, type, content, status, \
             timestamp, created_at, updated_at) \
             SELECT 'm{p}' || i, '{workspace_id}', 'c{p}' || ((i - 1) % {c} + 1), '{number_id}', 'wamid.seed{p}.' || i, \
             CASE WHEN i % 2 = 0 THEN 'inbound' ELSE 'outbound' END, 'text', \
             '{{\"body\": \"' || (CASE i % 20 {words} END) || ' ' || (CASE WHEN i % 1000 = 7 THEN 'refund ' ELSE '' END) || \
             'about ord' || i || ' for customer ' || ((i - 1) % {c} + 1) || '\"}}', \
             CASE WHEN i % 2 = 0 THEN 'received' ELSE 'read' END, {t0} + i * 1000, {t0} + i * 1000, {t0} + i * 1000 FROM {}",
            series(messages),
            c = conversations
        ),
    ];
    for sql in statements {
        match db {
            Db::Sqlite(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
            Db::Postgres(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
        }
    }
    match db {
        Db::Sqlite(p) => {
            sqlx::query("ANALYZE").execute(p).await?;
        }
        Db::Postgres(p) => {
            sqlx::query("ANALYZE").execute(p).await?;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.2} ms", h.value_at_quantile(q) as f64 / 1000.0)
}

/// Seeds each engine and measures the list and search queries.
pub async fn run(engine: &str, pg: &str, conversations: i64, messages: i64) -> anyhow::Result<()> {
    let engines: Vec<&str> = match engine {
        "both" => vec!["sqlite", "postgres"],
        e => vec![e],
    };
    let key = app::server::crypto::SecretKey::from_base64(
        &app::server::crypto::SecretKey::generate_base64(),
    )?;
    let mut rows = Vec::new();
    for engine in engines {
        let (_url, db, number_id, pg_name) = crate::scenarios::fresh_db(engine, pg, &key).await?;
        let workspace_id = db
            .workspace_by_name("Bench")
            .await?
            .map(|w| w.id)
            .unwrap_or_default();
        eprintln!("seeding {engine}: {conversations} conversations, {messages} messages…");
        let seeded = seed(&db, &number_id, &workspace_id, "", conversations, messages).await?;
        eprintln!("seeded in {seeded:.1} s");

        let filters = [
            ConversationFilter {
                status: Some("open".into()),
                ..Default::default()
            },
            ConversationFilter::default(),
            ConversationFilter {
                status: Some("open".into()),
                assignee: AssigneeFilter::Unassigned,
                number_id: Some(number_id.clone()),
            },
        ];
        let mut list = hist();
        // The first page of each filter, and pages deep in the list (keyset cursors).
        for round in 0..600_i64 {
            let filter = &filters[(round % 3) as usize];
            let after = if round % 2 == 0 {
                start()
            } else {
                let k = (round * 7919) % conversations + 1;
                let t = 1_780_000_000_000 + (k + messages - conversations) * 1000;
                (t, format!("c{k}"))
            };
            let t = Instant::now();
            let page = db
                .inbox_conversations(&workspace_id, filter, &after, 51)
                .await?;
            list.record(t.elapsed().as_micros().max(1) as u64)?;
            assert!(
                !page.is_empty() || round % 2 == 1,
                "the first page has rows"
            );
        }
        let queries = [
            "invoice",
            "refund",
            "ord424242",
            "inv",
            "invoice refund",
            "customer 99",
        ];
        let mut search = hist();
        let mut hits = Vec::new();
        for round in 0..600 {
            let q = queries[round % queries.len()];
            let t = Instant::now();
            let found = db.search_messages(&workspace_id, q, 30).await?;
            search.record(t.elapsed().as_micros().max(1) as u64)?;
            if round < queries.len() {
                hits.push(format!("{q}: {}", found.len()));
            }
        }
        eprintln!("search hits per query: {}", hits.join(", "));
        rows.push(vec![
            engine.to_string(),
            format!("{conversations} / {messages}"),
            format!("{seeded:.1} s"),
            ms(&list, 0.5),
            ms(&list, 0.99),
            ms(&search, 0.5),
            ms(&search, 0.99),
        ]);
        db.close().await;
        crate::scenarios::drop_pg(pg, pg_name).await;
    }
    report::publish(
        "Inbox queries (list of 50 and search, 600 each)",
        "./x bench inbox",
        &[
            "engine",
            "conversations / messages",
            "seed",
            "list p50",
            "list p99 (target < 10 ms on SQLite)",
            "search p50",
            "search p99 (target < 50 ms on SQLite)",
        ],
        &rows,
    );
    Ok(())
}

/// `qontak-bench seed`: fills an existing workspace (its first number) of any database.
pub async fn seed_into(
    database_url: &str,
    workspace: &str,
    conversations: i64,
    messages: i64,
) -> anyhow::Result<()> {
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    let ws = db
        .workspace_by_name(workspace)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no workspace named {workspace}"))?;
    let number = db
        .numbers(&ws.id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("connect a number to {workspace} first"))?;
    let prefix = format!("s{}-", &app::server::new_id()[..8]);
    let took = seed(&db, &number.id, &ws.id, &prefix, conversations, messages).await?;
    println!("seeded {conversations} conversations and {messages} messages into {workspace} in {took:.1} s");
    Ok(())
}
