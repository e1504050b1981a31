//! `qontak-bench broadcast`: a template broadcast to imported contacts at the number's pace,
//! through the release server and the API, against the emulator in a process of its own (which
//! sends Meta's three statuses back for every message). Measures the pace as Meta sees it (the
//! emulator's clock, first send to last) and watches the progress the API reports meanwhile.
//! `./x test` runs it with `--check`: the release build's figure, since a debug build on two
//! cores cannot keep an 80/s pace while it also takes 240 status webhooks a second.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};

use crate::report::{print_table, publish};
use crate::scenarios::{
    emulator_args, exe, free_port, fresh_db, start_qontak, wait_ready, Proc, WABA,
};

pub async fn run(contacts: usize, rate: i64, check: bool) -> anyhow::Result<()> {
    ensure!(
        contacts >= 2 && rate >= 1,
        "at least 2 contacts and 1 message a second"
    );
    let key_b64 = app::server::crypto::SecretKey::generate_base64();
    std::env::set_var("BENCH_KEY", &key_b64);
    let key = app::server::crypto::SecretKey::from_base64(&key_b64)?;
    let (db_url, db, number_id, _) = fresh_db("sqlite", "", &key).await?;
    db.set_throughput(&number_id, rate).await?;
    let token = crate::import::token(&db).await?;

    let port = free_port();
    let emu_port = free_port();
    // Not pinned: the server has the last core to itself, as in the other benchmarks.
    let mut emulator = std::process::Command::new(exe("qontak-bench"));
    emulator
        .args(emulator_args(emu_port, port))
        .stdout(std::process::Stdio::null());
    let _emulator = Proc::spawn(emulator)?;
    let emu = format!("http://127.0.0.1:{emu_port}");
    wait_ready(&format!("{emu}/_emulator/health")).await;
    let data = std::env::temp_dir().join(format!("qontak-bench-data-{}", app::server::new_id()));
    let _server = start_qontak(&db_url, port, &data, &[("META_GRAPH_URL", emu.clone())]);
    let api = format!("http://127.0.0.1:{port}/api/v1");
    wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{api}{path}"))
            .bearer_auth(&token)
    };

    // An approved template at Meta, synced in as an admin would.
    let seeded = http
        .post(format!("{emu}/_emulator/templates"))
        .json(
            &json!({"waba_id": WABA, "templates": [{"name": "order_update", "language": "en_US",
            "status": "APPROVED", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"}]}]}),
        )
        .send()
        .await?;
    ensure!(
        seeded.status().is_success(),
        "seeding the template: {}",
        seeded.status()
    );
    let synced = call(reqwest::Method::POST, "/templates/sync")
        .send()
        .await?;
    ensure!(
        synced.status().is_success(),
        "template sync: {}",
        synced.text().await?
    );

    // The audience, imported as a CSV with a label.
    let mut csv = String::from("phone,name,order\n");
    for i in 0..contacts {
        csv.push_str(&format!("+62813{i:08},Customer {i},A-{i}\n"));
    }
    let job: Value = call(reqwest::Method::POST, "/contacts/imports?labels=everyone")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?
        .json()
        .await?;
    let job_id = job["id"].as_str().context("an import id")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j: Value = call(reqwest::Method::GET, &format!("/contacts/imports/{job_id}"))
            .send()
            .await?
            .json()
            .await?;
        if j["state"] == "done" {
            ensure!(j["created"] == contacts, "imported: {j}");
            break;
        }
        ensure!(Instant::now() < deadline, "the import never finished: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let res = call(reqwest::Method::POST, "/broadcasts")
        .json(&json!({"number_id": number_id, "template": {"name": "order_update", "language": "en_US"},
            "variables": {"1": "name", "2": "attr:order"}, "audience": {"label": "everyone"}}))
        .send()
        .await?;
    ensure!(
        res.status() == 201,
        "creating the broadcast: {}",
        res.text().await?
    );
    let b: Value = res.json().await?;
    ensure!(b["total"] == contacts, "the broadcast's audience: {b}");
    let path = format!(
        "/broadcasts/{}",
        b["id"].as_str().context("a broadcast id")?
    );
    let expected = contacts as f64 / rate as f64;
    // Progress as an agent watching the page sees it: out (sent, delivered or read) every 250 ms.
    let mut samples: Vec<i64> = Vec::new();
    let finished = loop {
        let v: Value = call(reqwest::Method::GET, &path)
            .send()
            .await?
            .json()
            .await?;
        let p = &v["progress"];
        let count = |k: &str| p[k].as_i64().unwrap_or(0);
        samples.push(count("sent") + count("delivered") + count("read"));
        if p["recipients"] == contacts && p["queued"] == 0 {
            break v;
        }
        if started.elapsed().as_secs_f64() > expected * 2.0 + 30.0 {
            bail!("the broadcast is stuck: {v}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = started.elapsed().as_secs_f64();

    // The pace as Meta sees it: the emulator's clock at each send request.
    let requests: Value = http
        .get(format!("{emu}/_emulator/requests"))
        .send()
        .await?
        .json()
        .await?;
    let sends: Vec<&Value> = requests
        .as_array()
        .context("the emulator's requests")?
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().is_some_and(|p| p.ends_with("/messages"))
                && r["body"]["status"].is_null()
        })
        .collect();
    let mut times = Vec::with_capacity(sends.len());
    for s in &sends {
        let at = s["at"].as_str().context("a request time")?;
        let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("the request time {at}"))?;
        times.push(t);
    }
    times.sort();
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => (*b - *a).as_seconds_f64(),
        _ => 0.0,
    };
    let mut recipients: Vec<&str> = sends
        .iter()
        .filter_map(|s| s["body"]["to"].as_str())
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    let rises = samples.windows(2).filter(|p| p[1] > p[0]).count();
    let backwards = samples.windows(2).any(|p| p[1] < p[0]);
    // The figure: 1,000 at 80/s finish in 12.5 s ± 10%.
    let ideal = expected;
    let (low, high) = (ideal * 0.9, ideal * 1.1);
    let title =
        format!("broadcast: {contacts} contacts at {rate}/s through the API, against the emulator");
    let header = [
        "first to last send (Meta's clock)",
        "target",
        "request to last send",
        "send requests",
        "distinct recipients",
        "failed",
        "progress samples rising",
    ];
    let rows = [vec![
        format!("{span:.2} s"),
        format!("{ideal:.2} s ± 10% ({low:.2}–{high:.2})"),
        format!("{took:.2} s"),
        sends.len().to_string(),
        recipients.len().to_string(),
        finished["progress"]["failed"].to_string(),
        format!("{rises} of {}", samples.len()),
    ]];
    // As a check (in ./x test) the table is printed, not recorded in docs/BENCHMARKS.md.
    if check {
        print_table(&title, &header, &rows);
    } else {
        publish(
            &title,
            &format!(
                "./x bench broadcast (qontak-bench broadcast --contacts {contacts} --rate {rate})"
            ),
            &header,
            &rows,
        );
    }
    if check {
        ensure!(
            (low..=high).contains(&span),
            "{contacts} sends at {rate}/s took {span:.2} s first to last, not {ideal:.2} s ± 10%"
        );
        ensure!(
            sends.len() == contacts && recipients.len() == contacts,
            "{} send requests to {} recipients, not one to each of {contacts}",
            sends.len(),
            recipients.len()
        );
        ensure!(finished["progress"]["failed"] == 0, "failures: {finished}");
        ensure!(
            rises >= 10 && !backwards,
            "the progress did not rise live: {samples:?}"
        );
        ensure!(
            took < span + 5.0,
            "{took:.2} s from the request to the last send"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
