//! Load generator for the serving benchmark. Two modes against one endpoint:
//! - `rate N`: open loop, N requests/s for the duration; latency is measured from each
//!   request's *scheduled* time, so a server that falls behind shows it (no coordinated
//!   omission);
//! - `max C`: closed loop, C concurrent connections as fast as the server answers.
//!
//! Requests go to random users u0..u{USERS-1} (seeded). Prints one JSON line.
//!
//! Usage: serving_load URL ENDPOINT(profile|recs|health) TOKEN USERS MODE(rate|max) N SECONDS

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;

fn path(endpoint: &str, user: u64) -> String {
    match endpoint {
        "profile" => format!("/v1/spaces/bench/collections/users/profiles/user_id:u{user}/traits"),
        "health" => "/health".to_string(),
        _ => format!("/api/v1/users/u{user}/recommendations?k=10"),
    }
}

/// Sends and reads the whole body. A 404 (a random id that never sent an event has no
/// profile) is a correct answer, counted apart from errors.
async fn fetch(request: reqwest::RequestBuilder, not_found: &AtomicUsize) -> bool {
    match request.send().await {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            not_found.fetch_add(1, Ordering::Relaxed);
            r.bytes().await.is_ok()
        }
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let (base, endpoint, token) = (a[1].clone(), a[2].clone(), a[3].clone());
    let users: u64 = a[4].parse()?;
    let (mode, n): (String, usize) = (a[5].clone(), a[6].parse()?);
    let seconds: f64 = a[7].parse()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let not_found = Arc::new(AtomicUsize::new(0));
    let request = {
        let (client, base, endpoint, token) = (
            client.clone(),
            base.clone(),
            endpoint.clone(),
            token.clone(),
        );
        move |user: u64| {
            let url = format!("{base}{}", path(&endpoint, user));
            let r = client.get(url);
            if endpoint == "profile" {
                r.basic_auth(&token, Some(""))
            } else {
                r.bearer_auth(&token)
            }
        }
    };
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    if mode == "rate" {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let interval = Duration::from_secs_f64(1.0 / n as f64);
        let mut i = 0u32;
        loop {
            let scheduled = started + interval * i;
            if scheduled - started >= deadline {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
            let (req, lat, err, nf) = (
                request(rng.random_range(0..users)),
                latencies.clone(),
                errors.clone(),
                not_found.clone(),
            );
            tasks.spawn(async move {
                if !fetch(req, &nf).await {
                    err.fetch_add(1, Ordering::Relaxed);
                }
                lat.lock()
                    .await
                    .push(scheduled.elapsed().as_secs_f64() * 1000.0);
            });
            i += 1;
        }
    } else {
        for c in 0..n {
            let (request, lat, err, nf) = (
                request.clone(),
                latencies.clone(),
                errors.clone(),
                not_found.clone(),
            );
            tasks.spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
                while started.elapsed() < deadline {
                    let t = Instant::now();
                    if !fetch(request(rng.random_range(0..users)), &nf).await {
                        err.fetch_add(1, Ordering::Relaxed);
                    }
                    lat.lock().await.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            });
        }
    }
    tasks.join_all().await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        serde_json::json!({"endpoint": endpoint, "mode": mode, "n": n, "requests": l.len(), "errors": errors.load(Ordering::Relaxed), "not_found": not_found.load(Ordering::Relaxed),
                           "rate": l.len() as f64 / elapsed, "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99),
                           "p999_ms": q(0.999), "max_ms": l.last().copied().unwrap_or(f64::NAN)})
    );
    Ok(())
}
