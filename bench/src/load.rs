//! The load generator: many connections posting pre-built, pre-signed bodies as fast as the
//! server answers, with latencies in an HDR histogram.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One request to replay: body, signature header, and how many messages it carries.
pub struct Shot {
    pub body: Vec<u8>,
    pub signature: String,
    pub messages: usize,
}

/// What a run measured.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub messages_acked: u64,
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
    /// Which requests were answered with success, by sequence number (the index of the shot
    /// posted), so a benchmark can check afterwards that what was acknowledged was kept.
    pub acked: Vec<usize>,
}

impl Outcome {
    /// Nothing measured yet.
    pub fn empty() -> Outcome {
        Outcome {
            ok: 0,
            errors: 0,
            messages_acked: 0,
            elapsed: Duration::ZERO,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
            acked: Vec::new(),
        }
    }
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p50_ms(&self) -> f64 {
        self.hist.value_at_quantile(0.50) as f64 / 1000.0
    }
    pub fn p99_ms(&self) -> f64 {
        self.hist.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Posts shots to `url` from `connections` keep-alive connections for `duration`
/// (or until the shots run out).
pub async fn run(
    url: &str,
    shots: Arc<Vec<Shot>>,
    connections: usize,
    duration: Duration,
) -> Outcome {
    run_with_header(url, shots, connections, duration, ("x-bench", "1")).await
}

/// [`run`] with one more header on every request (a bearer token, say).
pub async fn run_with_header(
    url: &str,
    shots: Arc<Vec<Shot>>,
    connections: usize,
    duration: Duration,
    extra: (&'static str, &'static str),
) -> Outcome {
    let url = Arc::new(url.to_string());
    drive(connections, duration, move |client, i| {
        let shot = shots.get(i)?;
        let request = client
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &shot.signature)
            .header(extra.0, extra.1)
            .body(shot.body.clone());
        Some((request, shot.messages))
    })
    .await
}

/// GETs `url` with `headers` from `connections` keep-alive connections for `duration`.
pub async fn run_get(
    url: &str,
    headers: Vec<(String, String)>,
    connections: usize,
    duration: Duration,
) -> Outcome {
    let (url, headers) = (Arc::new(url.to_string()), Arc::new(headers));
    drive(connections, duration, move |client, _| {
        let mut request = client.get(url.as_str());
        for (k, v) in headers.iter() {
            request = request.header(k, v);
        }
        Some((request, 0))
    })
    .await
}

/// Sends the requests `next` makes (by sequence number, with a message count) from
/// `connections` keep-alive connections until `duration` passes or `next` has no more.
async fn drive<F>(connections: usize, duration: Duration, next: F) -> Outcome
where
    F: Fn(&reqwest::Client, usize) -> Option<(reqwest::RequestBuilder, usize)>
        + Send
        + Sync
        + 'static,
{
    let next = Arc::new(next);
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, counter) = (next.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()
                .expect("client");
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let (mut ok, mut errors, mut messages) = (0u64, 0u64, 0u64);
            let mut acked = Vec::new();
            while start.elapsed() < duration {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some((request, count)) = next(&client, i) else {
                    break;
                };
                let t = Instant::now();
                let res = request.send().await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok += 1;
                        messages += count as u64;
                        acked.push(i);
                        let micros = t.elapsed().as_micros() as u64;
                        let _ = hist.record(micros.max(1));
                    }
                    _ => errors += 1,
                }
            }
            (ok, errors, messages, hist, acked)
        }));
    }
    let mut out = Outcome::empty();
    for t in tasks {
        if let Ok((ok, errors, messages, hist, acked)) = t.await {
            out.acked.extend(acked);
            out.ok += ok;
            out.errors += errors;
            out.messages_acked += messages;
            let _ = out.hist.add(hist);
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// [`run`] with the cheapest client one can write: `connections` raw keep-alive HTTP/1.1
/// connections driven by one thread with a runtime of its own (like `wrk -t1`), each request
/// written as one buffer and each answer read with a minimal parser. reqwest costs several
/// times more CPU per request; on two cores that CPU is taken from the server being measured.
pub fn raw_run(
    addr: std::net::SocketAddr,
    path: &str,
    shots: Arc<Vec<Shot>>,
    connections: usize,
    duration: Duration,
) -> std::thread::JoinHandle<Outcome> {
    let path = path.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let counter = Arc::new(AtomicUsize::new(0));
            let path = Arc::new(path);
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..connections {
                let (shots, counter, path) = (shots.clone(), counter.clone(), path.clone());
                tasks.spawn(async move {
                    let mut hist =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                    let (mut ok, mut errors, mut messages) = (0u64, 0u64, 0u64);
                    let mut acked = Vec::new();
                    let mut stream = None;
                    let mut request = Vec::with_capacity(8192);
                    let mut buf = Vec::with_capacity(4096);
                    while start.elapsed() < duration {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        let Some(shot) = shots.get(i) else { break };
                        request.clear();
                        request.extend_from_slice(
                            format!(
                                "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                                 x-hub-signature-256: {}\r\ncontent-length: {}\r\n\r\n",
                                shot.signature,
                                shot.body.len()
                            )
                            .as_bytes(),
                        );
                        request.extend_from_slice(&shot.body);
                        if stream.is_none() {
                            stream = connect(addr, None).await;
                        }
                        let Some(s) = stream.as_mut() else {
                            // A refused connection: count it, and do not spin through the
                            // corpus while the server is away.
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let t = Instant::now();
                        match exchange(s, &request, &mut buf).await {
                            Some((status, keep_alive)) => {
                                if (200..300).contains(&status) {
                                    ok += 1;
                                    messages += shot.messages as u64;
                                    acked.push(i);
                                    let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                                } else {
                                    errors += 1;
                                }
                                if !keep_alive {
                                    stream = None;
                                }
                            }
                            None => {
                                errors += 1;
                                stream = None;
                            }
                        }
                    }
                    (ok, errors, messages, hist, acked)
                });
            }
            let mut out = Outcome::empty();
            while let Some(joined) = tasks.join_next().await {
                let Ok((ok, errors, messages, hist, acked)) = joined else {
                    continue;
                };
                out.ok += ok;
                out.errors += errors;
                out.messages_acked += messages;
                out.acked.extend(acked);
                let _ = out.hist.add(hist);
            }
            out.elapsed = start.elapsed();
            out
        })
    })
}

/// Posts shots to `url` at a steady `rate` per second for `duration` (open loop: a slow answer
/// does not slow the sender, so a server that falls behind shows it in the latencies). A
/// request counts as `ok` when it is answered with one of `expect`; `from` is the local address
/// to send from (another loopback address looks like another client to the server).
pub async fn paced(
    url: &str,
    shots: Arc<Vec<Shot>>,
    rate: u32,
    duration: Duration,
    expect: &'static [u16],
    from: Option<std::net::IpAddr>,
) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .http1_only()
        .local_address(from)
        .build()
        .expect("client");
    let url = Arc::new(url.to_string());
    let hist = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let (ok, errors, messages) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0usize;
    while start.elapsed() < duration {
        tick.tick().await;
        let index = i % shots.len().max(1);
        let Some(shot) = shots.get(index) else {
            break;
        };
        i += 1;
        let request = client
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &shot.signature)
            .body(shot.body.clone());
        let count = shot.messages;
        let (hist, ok, errors, messages, acked) = (
            hist.clone(),
            ok.clone(),
            errors.clone(),
            messages.clone(),
            acked.clone(),
        );
        tasks.spawn(async move {
            let t = Instant::now();
            match request.send().await {
                Ok(r) if expect.contains(&r.status().as_u16()) => {
                    let _ = r.bytes().await;
                    let micros = t.elapsed().as_micros() as u64;
                    let _ = hist.lock().expect("histogram").record(micros.max(1));
                    ok.fetch_add(1, Ordering::Relaxed);
                    messages.fetch_add(count, Ordering::Relaxed);
                    acked.lock().expect("acked").push(index);
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let hist = hist.lock().expect("histogram").clone();
    let acked = std::mem::take(&mut *acked.lock().expect("acked"));
    Outcome {
        ok: ok.load(Ordering::Relaxed) as u64,
        errors: errors.load(Ordering::Relaxed) as u64,
        messages_acked: messages.load(Ordering::Relaxed) as u64,
        elapsed: start.elapsed(),
        hist,
        acked,
    }
}

/// How many connections [`raw_paced`] spreads its requests over.
pub const RAW_CONNECTIONS: usize = 32;

/// Posts shots to `path` on `addr` at `rate` per second in total over [`RAW_CONNECTIONS`] raw
/// keep-alive HTTP/1.1 connections for `duration`, from a thread and a runtime of its own: the
/// attacker of the flood benchmark. Requests are pre-built bytes and answers are read with a
/// minimal parser, so the generator costs as little per request as one can, and runs apart
/// from the runtime that times the valid webhooks (like a client on another machine; it still
/// shares the cores). A request counts as `ok` when it is answered with one of `expect`.
pub fn raw_paced(
    addr: std::net::SocketAddr,
    from: Option<std::net::IpAddr>,
    path: &str,
    shots: Arc<Vec<Shot>>,
    rate: u32,
    duration: Duration,
    expect: &'static [u16],
) -> std::thread::JoinHandle<Outcome> {
    let connections = RAW_CONNECTIONS;
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        shots
            .iter()
            .map(|s| {
                let mut r = format!(
                    "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                     x-hub-signature-256: {}\r\ncontent-length: {}\r\n\r\n",
                    s.signature,
                    s.body.len()
                )
                .into_bytes();
                r.extend_from_slice(&s.body);
                r
            })
            .collect(),
    );
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let period = Duration::from_secs_f64(connections as f64 / f64::from(rate.max(1)));
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..connections {
                let requests = requests.clone();
                tasks.spawn(async move {
                    let mut hist =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                    let (mut ok, mut errors) = (0u64, 0u64);
                    // Staggered: 32 connections ticking together would send bursts of 32.
                    let first =
                        tokio::time::Instant::now() + period.mul_f64(c as f64 / connections as f64);
                    let mut tick = tokio::time::interval_at(first, period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut stream = None;
                    let mut reused = false;
                    let mut buf = Vec::with_capacity(4096);
                    let mut i = c;
                    while start.elapsed() < duration {
                        tick.tick().await;
                        let request = &requests[i % requests.len().max(1)];
                        i += connections;
                        if stream.is_none() {
                            stream = connect(addr, from).await;
                        }
                        let Some(s) = stream.as_mut() else {
                            errors += 1;
                            continue;
                        };
                        let t = Instant::now();
                        let mut answer = exchange(s, request, &mut buf).await;
                        if answer.is_none() && reused {
                            // The server may close an idle or refused keep-alive connection
                            // between two requests: one new connection and one more try.
                            stream = connect(addr, from).await;
                            if let Some(s) = stream.as_mut() {
                                answer = exchange(s, request, &mut buf).await;
                            }
                        }
                        reused = answer.is_some_and(|(_, keep_alive)| keep_alive);
                        match answer {
                            Some((status, keep_alive)) => {
                                if expect.contains(&status) {
                                    ok += 1;
                                    let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                                } else {
                                    errors += 1;
                                }
                                if !keep_alive {
                                    stream = None;
                                }
                            }
                            None => {
                                errors += 1;
                                stream = None;
                            }
                        }
                    }
                    (ok, errors, hist)
                });
            }
            let mut out = Outcome::empty();
            while let Some(Ok((ok, errors, hist))) = tasks.join_next().await {
                out.ok += ok;
                out.errors += errors;
                let _ = out.hist.add(hist);
            }
            out.elapsed = start.elapsed();
            out
        })
    })
}

async fn connect(
    addr: std::net::SocketAddr,
    from: Option<std::net::IpAddr>,
) -> Option<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .ok()?;
    if let Some(ip) = from {
        socket.bind(std::net::SocketAddr::new(ip, 0)).ok()?;
    }
    let stream = socket.connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    Some(stream)
}

/// Writes one request and reads its answer: (status, whether the connection stays open).
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Option<(u16, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.ok()?;
    buf.clear();
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let keep_alive = header("connection:").is_none_or(|v| v != "close");
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        while !buf[head_end..].ends_with(b"0\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    } else {
        let length: usize = header("content-length:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    Some((status, keep_alive))
}
