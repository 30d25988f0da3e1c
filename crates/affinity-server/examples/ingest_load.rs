//! Load generator for the ingest benchmark: CLIENTS concurrent connections POST `/v1/batch`
//! requests of BATCH messages (taken from a JSONL file) to a running server, as fast as it
//! answers. Prints one JSON line: messages, seconds, messages/s, failures.
//!
//! Usage: cargo run --release -p affinity-server --example ingest_load -- \
//!          URL WRITE_KEY FILE.jsonl [CLIENTS=8] [BATCH=500] [LIMIT=all]

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = format!("{}/v1/batch", args[1].trim_end_matches('/'));
    let key = args[2].clone();
    let clients: usize = args.get(4).map_or(Ok(8), |v| v.parse())?;
    let batch: usize = args.get(5).map_or(Ok(500), |v| v.parse())?;
    let limit: usize = args.get(6).map_or(Ok(usize::MAX), |v| v.parse())?;

    // Bodies are built before the clock starts: we measure the server, not this program.
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&args[3])?)
        .lines()
        .take(limit)
        .collect::<Result<_, _>>()?;
    let bodies: Arc<Vec<(usize, String)>> = Arc::new(
        lines
            .chunks(batch)
            .map(|c| (c.len(), format!("{{\"batch\":[{}]}}", c.join(","))))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, url, key, bodies, next, failures) = (
            client.clone(),
            url.clone(),
            key.clone(),
            bodies.clone(),
            next.clone(),
            failures.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, body)) = bodies.get(i) else {
                    break;
                };
                let r = client
                    .post(&url)
                    .basic_auth(&key, Some(""))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    tasks.join_all().await;
    let seconds = started.elapsed().as_secs_f64();
    let messages: usize = bodies.iter().map(|(n, _)| n).sum();
    println!(
        "{}",
        serde_json::json!({"messages": messages, "requests": bodies.len(), "clients": clients,
                           "batch": batch, "seconds": seconds,
                           "messages_per_second": messages as f64 / seconds,
                           "failed_requests": failures.load(Ordering::Relaxed)})
    );
    Ok(())
}
