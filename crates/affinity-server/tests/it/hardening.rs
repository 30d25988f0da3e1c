//! Slow, idle, flooding and malformed clients get bounded cost and precise answers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use affinity_server::Limits;

use crate::support::{ADMIN, TestApp, WRITE_KEY, gzip};

fn tight() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_millis(400),
        ..Limits::default()
    }
}

async fn spawn(limits: Limits) -> TestApp {
    TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), limits).await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent
/// and how long the close took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), None),
        }
    }
}

#[tokio::test]
async fn a_client_dripping_headers_is_disconnected_within_the_timeout() {
    let app = spawn(tight()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.expect("the server closes a connection whose headers never finish");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn(tight()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (text, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let closed = closed.expect("an idle keep-alive connection is closed");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408_and_nothing_is_stored() {
    let app = spawn(tight()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let auth = "d2tfdGVzdDo="; // base64("wk_test:")
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"userId\":\"slow\","
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let (text, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(closed.is_some(), "the connection is closed after a 408");
    let (status, _) = app.admin_get("/api/v1/profiles/user_id:slow").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of the cut-off body was stored"
    );
}

#[tokio::test]
async fn a_wrong_header_key_is_refused_before_the_body_is_read() {
    let app = spawn(Limits {
        body_read_timeout: Duration::from_secs(30),
        ..tight()
    })
    .await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let auth = "bm9wZTo="; // base64("nope:")
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 400000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn idle_connections_beyond_the_cap_do_not_keep_health_from_answering() {
    let app = spawn(Limits {
        max_connections: 20,
        ..tight()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(addr(&app)).await.expect("connect"));
    }
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.client.get(app.url("/health")).send(),
    )
    .await
    .expect("/health answers while 60 idle connections are open")
    .expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_with_retry_after_and_the_rest_is_stored() {
    let app = spawn(Limits {
        ip_requests_per_second: 5,
        ..Limits::default()
    })
    .await;
    let (mut ok, mut limited) = (0, 0);
    for i in 0..20 {
        let r = app
            .client
            .post(app.url("/v1/track"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({"userId": "flood", "event": "F", "messageId": format!("f{i}")}))
            .send()
            .await
            .expect("request");
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("Retry-After in whole seconds");
                assert!(retry >= 1);
                let body: serde_json::Value = r.json().await.expect("json");
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 5 && limited >= 1, "ok {ok}, limited {limited}");
    assert_eq!(app.event_count("F").await, ok);
}

#[tokio::test]
async fn gzip_with_trailing_bytes_is_refused() {
    let app = TestApp::spawn().await;
    let mut body = gzip(br#"{"userId":"g","event":"Gz"}"#);
    body.extend_from_slice(b"trailing garbage");
    let r = app
        .client
        .post(app.url("/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(b["error"]["code"], "invalid_gzip", "{b}");
    assert_eq!(app.event_count("Gz").await, 0);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_preflight_allows_authorization() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/api/v1/events"))
        .header("authorization", format!("BEARER {ADMIN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);

    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/track"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    let allowed = r
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed:?}");
}

#[tokio::test]
async fn a_train_request_that_is_not_one_starts_nothing() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/api/v1/models/train"))
        .bearer_auth(ADMIN)
        .body("x".repeat(70_000))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (_, models) = app.admin_get("/api/v1/models").await;
    assert_eq!(
        models["models"].as_array().map(Vec::len),
        Some(0),
        "{models}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_train_requests_share_one_waiting_run() {
    use crate::models::{finished, send_synthetic, synthetic_catalog};
    let app = TestApp::spawn().await;
    send_synthetic(&app, 20_000).await;
    crate::catalog::put_catalog(&app, &synthetic_catalog()).await;
    let answers = futures_join(&app, 8).await;
    let mut ids: Vec<i64> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::ACCEPTED, "{b}");
            b["model_id"].as_i64().expect("model_id")
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    // One may be running already; every other request joins the one waiting behind it.
    assert!(
        ids.len() <= 2,
        "eight requests queued {} runs: {ids:?}",
        ids.len()
    );
    for id in &ids {
        let m = finished(&app, &json!(id)).await;
        assert_eq!(m["status"], "ready", "{m}");
    }
}

/// Sends `n` train requests at once.
async fn futures_join(app: &TestApp, n: usize) -> Vec<(StatusCode, serde_json::Value)> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let (client, url) = (app.client.clone(), app.url("/api/v1/models/train"));
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("request");
            crate::support::read(r).await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
