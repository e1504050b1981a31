//! Printing a table and appending a dated row to docs/BENCHMARKS.md.

use std::io::Write;
use std::process::Command;

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// "2 cores, <cpu model>".
pub fn machine() -> String {
    let cores = sh("nproc", &["--all"]);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores, {model}")
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = String::new();
    table.push_str(&format!("| {} |\n", header.join(" | ")));
    table.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for r in rows {
        table.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    table
}

/// Prints `rows` as a table, without recording it.
pub fn print_table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n{title}\n{}", table(header, rows));
}

/// Prints `rows` as a table and appends it, dated, to docs/BENCHMARKS.md.
pub fn publish(title: &str, command: &str, header: &[&str], rows: &[Vec<String>]) {
    publish_to("docs/BENCHMARKS.md", title, command, header, rows);
}

/// Prints `rows` as a table and appends it, dated, with the machine and commit, to `path`.
pub fn publish_to(path: &str, title: &str, command: &str, header: &[&str], rows: &[Vec<String>]) {
    let table = table(header, rows);
    println!("\n{title}\n{table}");
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    // The commit the binaries were built from (./x bench sets it when it builds them): HEAD may
    // move while a long run goes on.
    let commit = std::env::var("QONTAK_BENCH_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| sh("git", &["rev-parse", "--short", "HEAD"]));
    let entry = format!("\n## {title} — {date}\n\nMachine: {}. Commit: `{commit}`. Command: `{command}`.\n\n{table}", machine());
    let path = std::path::Path::new(path);
    let new = !path.exists();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        if new {
            let intro: &[u8] = if path.ends_with("chaos.md") {
                b"# Chaos runs\n\nEach recorded run of `./x chaos` appends its summary here: the server SIGKILLed at random moments under webhook and send load, then the invariants checked (see bench/src/chaos.rs).\n"
            } else {
                b"# Benchmarks\n\nEach run of `./x bench` appends its tables here, with the machine, the commit and the command, so progress is visible over time. Every figure stands next to a reference measured in the same run.\n"
            };
            let _ = f.write_all(intro);
        }
        let _ = f.write_all(entry.as_bytes());
    }
}
