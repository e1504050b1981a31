//! A tiny round-robin TCP proxy: each new connection goes to the next backend that accepts it,
//! so a dead instance is skipped and the others keep serving. For `./x run --instances N` and
//! tests, not for production (use a real load balancer there; see docs/deploy.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub async fn run(listen: &str, backends: Vec<String>) -> anyhow::Result<()> {
    anyhow::ensure!(!backends.is_empty(), "--to needs at least one backend");
    let listener = TcpListener::bind(listen).await?;
    eprintln!(
        "qontak-bench proxy: {} → {}",
        listener.local_addr()?,
        backends.join(", ")
    );
    let backends = Arc::new(backends);
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (mut client, _) = listener.accept().await?;
        let (backends, next) = (backends.clone(), next.clone());
        tokio::spawn(async move {
            let start = next.fetch_add(1, Ordering::Relaxed);
            for i in 0..backends.len() {
                let to = &backends[(start + i) % backends.len()];
                let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to));
                if let Ok(Ok(mut upstream)) = connect.await {
                    let _ = upstream.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
            }
            // Every backend refused: the client sees the connection close.
        });
    }
}
