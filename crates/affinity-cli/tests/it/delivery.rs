//! At-least-once delivery, shown end to end: a real webhook receiver that fails at random
//! (500s, 429s with `Retry-After`, dropped connections) and is then down entirely while the
//! `affinity` process is killed with SIGKILL and restarted. Afterwards every treatment member
//! has its `identify` and `Audience Entered`, no control member got anything, each messageId
//! has one body, every request is signed, and duplicates stay within what can be in flight.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use affinity_core::synthetic::{Generator, SyntheticSpec};

use crate::support::{ADMIN, Server, WRITE_KEY};

const SECRET: &str = "whsec_chaos";
/// What can be sent but not recorded for one destination at a kill: the worker records the
/// outcomes of a few waves of concurrent requests together (`RECORD_WAVES` 8 × 8 requests)
/// of `batch_size` messages (1 here). Only those can be delivered twice.
const IN_FLIGHT: usize = affinity_engine::unrecorded_window(1);
const DROP_PANIC: &str = "the receiver drops this connection";

#[derive(Clone, Default)]
struct Chaos {
    /// Bodies of the requests answered 2xx, with whether their signatures verified.
    accepted: Arc<Mutex<Vec<(Bytes, bool)>>>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    /// Down: every request (on connections already open) is dropped unanswered.
    down: Arc<AtomicBool>,
}

fn signed(headers: &HeaderMap, body: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut sha1 = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).expect("key");
    sha1.update(body);
    let mut sha256 = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    sha256.update(body);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    header("x-signature") == hex(&sha1.finalize().into_bytes())
        && header("x-signature-256") == hex(&sha256.finalize().into_bytes())
}

async fn receive(State(c): State<Chaos>, headers: HeaderMap, body: Bytes) -> Response {
    let n = c.requests.fetch_add(1, Ordering::SeqCst);
    // A fixed pseudo-random roll per request: the same run fails the same way.
    let roll = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
    if c.down.load(Ordering::SeqCst) || roll < 8 {
        c.failures.fetch_add(1, Ordering::SeqCst);
        // Unwinding out of the handler ends the connection task: the client sees the
        // connection closed with no answer, as from a receiver that crashed mid-request.
        panic!("{DROP_PANIC}");
    }
    if roll < 20 {
        c.failures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if roll < 28 {
        c.failures.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response();
    }
    let ok = signed(&headers, &body);
    c.accepted.lock().expect("lock").push((body, ok));
    StatusCode::OK.into_response()
}

/// Serves the receiver on `addr` until the returned task is aborted (then new connections
/// are refused: the port is closed).
async fn serve(addr: SocketAddr, chaos: Chaos) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(chaos);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut r = client.request(method, &url).bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().await.expect("request");
    let status = response.status();
    let v: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

async fn until<T>(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `affinity serve` with quick delivery retries (the default first one waits 1 s).
fn start(dir: &std::path::Path) -> Server {
    Server::start_with(dir, &[("AFFINITY_DELIVERY_BACKOFF", "100ms")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_and_a_sigkill_lose_no_audience_message() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let quiet = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains(DROP_PANIC));
        if !quiet {
            default_hook(info);
        }
    }));

    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let client = reqwest::Client::new();

    // A store, a catalog and a model.
    let spec = SyntheticSpec {
        users: 400,
        items: 200,
        events: 12_000,
        ..SyntheticSpec::default()
    };
    let messages: Vec<Value> = Generator::new(spec).collect();
    for chunk in messages.chunks(500) {
        let r = client
            .post(server.url("/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({ "batch": chunk }))
            .send()
            .await
            .expect("batch");
        assert_eq!(r.status(), 200);
    }
    admin(
        &client,
        reqwest::Method::PUT,
        server.url("/api/v1/catalog"),
        Some(json!({
            "events": [
                {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
                {"name": "Product Added", "product_id_property": "product_id", "weight": 2.0},
                {"name": "Product Viewed", "product_id_property": "product_id"}
            ],
            "columns": [{"name": "brand", "properties": {"Order Completed": "brand",
                "Product Added": "brand", "Product Viewed": "brand"}}]
        })),
    )
    .await;
    until("a ready model", Duration::from_secs(120), async || {
        let r = client
            .post(server.url("/api/v1/models/train"))
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .await
            .ok()?;
        if r.status() != 202 {
            return None;
        }
        let job: Value = r.json().await.ok()?;
        let id = job["model_id"].clone();
        until("the training run", Duration::from_secs(120), async || {
            let m = admin(
                &client,
                reqwest::Method::GET,
                server.url(&format!("/api/v1/models/{id}")),
                None,
            )
            .await;
            (m["status"] == "ready" || m["status"] == "failed").then_some(m)
        })
        .await;
        Some(())
    })
    .await;

    // The receiver, failing at random.
    let chaos = Chaos::default();
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let receiver = serve(addr, chaos.clone()).await;
    let hook = admin(
        &client,
        reqwest::Method::POST,
        server.url("/api/v1/destinations"),
        Some(
            json!({"name": "chaos", "type": "webhook", "url": format!("http://{addr}/hook"),
                    "secret": SECRET}),
        ),
    )
    .await;
    let audience = admin(
        &client,
        reqwest::Method::POST,
        server.url("/api/v1/audiences"),
        Some(
            json!({"name": "Brand 001 fans", "target": {"column": "brand", "value": "Brand 001"},
                    "max_size": {"count": 150}, "control_percent": 20,
                    "destinations": [hook["id"]]}),
        ),
    )
    .await;
    let id = audience["id"].clone();
    until("the audience", Duration::from_secs(120), async || {
        let a = admin(
            &client,
            reqwest::Method::GET,
            server.url(&format!("/api/v1/audiences/{id}")),
            None,
        )
        .await;
        assert_ne!(a["status"], "failed", "{a}");
        (a["status"] == "live").then_some(())
    })
    .await;
    let page = admin(
        &client,
        reqwest::Method::GET,
        server.url(&format!("/api/v1/audiences/{id}/members?limit=10000")),
        None,
    )
    .await;
    let mut treatment = HashSet::new();
    let mut control = HashSet::new();
    for m in page["members"].as_array().expect("members") {
        let user = m["user_id"].as_str().expect("user").to_string();
        if m["control"] == true {
            control.insert(user);
        } else {
            treatment.insert(user);
        }
    }
    assert!(treatment.len() > 50 && !control.is_empty());
    let expected = 2 * treatment.len();

    // Part of the audience is through (with random failures); then the receiver goes down
    // entirely and the server is killed without warning.
    until("a third delivered", Duration::from_secs(60), async || {
        (chaos.accepted.lock().expect("lock").len() >= expected / 3).then_some(())
    })
    .await;
    chaos.down.store(true, Ordering::SeqCst);
    receiver.abort();
    let _ = receiver.await;
    let at_kill = chaos.accepted.lock().expect("lock").len();
    assert!(
        at_kill < expected,
        "everything went through before the kill"
    );
    server.kill();

    // Restarted, the server resends what was not recorded as delivered; the receiver comes
    // back a little later.
    let server = start(dir.path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    chaos.down.store(false, Ordering::SeqCst);
    let _receiver = serve(addr, chaos.clone()).await;

    let bodies = until(
        "every message delivered",
        Duration::from_secs(120),
        async || {
            let got = chaos.accepted.lock().expect("lock").clone();
            let ids: HashSet<String> = got
                .iter()
                .map(|(b, _)| {
                    let v: Value = serde_json::from_slice(b).expect("json");
                    v["messageId"].as_str().expect("id").to_string()
                })
                .collect();
            (ids.len() >= expected).then_some(got)
        },
    )
    .await;
    assert!(
        chaos.failures.load(Ordering::SeqCst) > 0,
        "the receiver never failed: the test shows nothing"
    );
    assert!(bodies.iter().all(|(_, ok)| *ok), "every request is signed");
    let mut by_id: HashMap<String, HashSet<Bytes>> = HashMap::new();
    let mut identified = HashSet::new();
    let mut entered = HashSet::new();
    for (body, _) in &bodies {
        let v: Value = serde_json::from_slice(body).expect("json");
        let who = v["userId"]
            .as_str()
            .or(v["anonymousId"].as_str())
            .expect("who")
            .to_string();
        assert!(!control.contains(&who), "control member {who} was sent {v}");
        match (v["type"].as_str(), v["event"].as_str()) {
            (Some("identify"), _) => {
                assert_eq!(v["traits"]["brand_001_fans"], true);
                identified.insert(who);
            }
            (Some("track"), Some("Audience Entered")) => {
                entered.insert(who);
            }
            other => panic!("unexpected message {other:?}"),
        }
        by_id
            .entry(v["messageId"].as_str().expect("id").to_string())
            .or_default()
            .insert(body.clone());
    }
    assert_eq!(identified, treatment, "every treatment member identified");
    assert_eq!(entered, treatment, "every treatment member entered");
    assert!(
        by_id.values().all(|b| b.len() == 1),
        "one body per messageId"
    );
    let duplicates = bodies.len() - by_id.len();
    assert!(
        duplicates <= IN_FLIGHT,
        "{duplicates} duplicates: more than could be in flight at the kill ({IN_FLIGHT})"
    );
    let counts = until("the log settles", Duration::from_secs(30), async || {
        let log = admin(
            &client,
            reqwest::Method::GET,
            server.url(&format!(
                "/api/v1/destinations/{}/deliveries?limit=1",
                hook["id"]
            )),
            None,
        )
        .await;
        (log["counts"]["pending"] == 0).then_some(log["counts"].clone())
    })
    .await;
    assert_eq!(
        counts,
        json!({"held": 0, "pending": 0, "delivered": expected, "failed": 0, "cancelled": 0}),
        "the delivery log once nothing is pending"
    );
    server.terminate();
}
