//! Every error answer has the JSON shape `{"error":{"code","message"}}`, including those the
//! router and the request-head checks make (405, 414, 431, 404, a non-UTF-8 path), over a
//! real socket.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ALLOW, CONTENT_TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ADMIN, TestApp, read};

/// Asserts a JSON error answer with `status` and `code`; returns its message.
async fn json_error(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    let content_type = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (got, body) = read(r).await;
    assert_eq!(got, status, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {body}"
    );
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_string()
}

#[tokio::test]
async fn router_and_head_errors_answer_in_json() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();

    // 405, keeping Allow.
    let r = client.get(app.url("/v1/track")).send().await.expect("get");
    let allow = r.headers().get(ALLOW).cloned();
    let message = json_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(allow.is_some_and(|a| a.to_str().unwrap_or_default().contains("POST")));
    assert!(
        message.contains("GET") && message.contains("Allow"),
        "{message}"
    );
    let r = client
        .delete(app.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("delete");
    json_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // 404, tracking and management alike.
    let r = client
        .get(app.url("/nothing/here"))
        .send()
        .await
        .expect("get");
    json_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // 414: a 20 KB query.
    let long = format!("/api/v1/events?cursor={}", "x".repeat(20_000));
    let r = client
        .get(app.url(&long))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    let message = json_error(r, StatusCode::URI_TOO_LONG, "uri_too_long").await;
    assert!(message.contains("8192"), "{message}");

    // 431: too many headers, and headers too large.
    let mut many = client.get(app.url("/health"));
    for n in 0..150 {
        many = many.header(format!("x-h{n}"), "v");
    }
    let r = many.send().await.expect("get");
    json_error(
        r,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;
    let r = client
        .get(app.url("/health"))
        .header("x-big", "v".repeat(40_000))
        .send()
        .await
        .expect("get");
    json_error(
        r,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;

    // A percent-encoded path that is not UTF-8.
    let r = client
        .get(app.url("/api/v1/profiles/user_id:%FF%FE/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    let message = json_error(r, StatusCode::BAD_REQUEST, "invalid_path").await;
    assert!(message.contains("UTF-8"), "{message}");
}

/// Sends raw bytes and returns the whole answer (hyper closes the connection after refusing
/// a request it cannot parse).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before all of a large request is written.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).to_string()
}

/// The status line and the JSON body of a raw answer.
fn status_and_body(answer: &str) -> (&str, serde_json::Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head.lines().next().unwrap_or_default();
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/json")
            && lower.contains(&format!("content-length: {}", body.len())),
        "{answer}"
    );
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test]
async fn requests_hyper_cannot_parse_answer_in_json_too() {
    let app = TestApp::spawn().await;
    // Raw (not percent-encoded) non-UTF-8 bytes in the path: not HTTP at all.
    let answer = raw_exchange(
        &app,
        b"GET /api/v1/profiles/user_id:\xff\xfe/events HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    let (status, body) = status_and_body(&answer);
    assert!(status.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(body["error"]["code"], "bad_request", "{answer}");

    // A target over hyper's own 64 KB limit.
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let answer = raw_exchange(&app, long.as_bytes()).await;
    let (status, body) = status_and_body(&answer);
    assert!(status.starts_with("HTTP/1.1 414"), "{answer}");
    assert_eq!(body["error"]["code"], "uri_too_long", "{answer}");

    // More headers than hyper parses.
    let mut many = String::from("GET /health HTTP/1.1\r\nhost: x\r\n");
    for n in 0..1_100 {
        many.push_str(&format!("x-h{n}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(&app, many.as_bytes()).await;
    let (status, body) = status_and_body(&answer);
    assert!(status.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(body["error"]["code"], "headers_too_large", "{answer}");

    // The server still answers normally afterwards.
    let (s, _) =
        crate::support::read(reqwest::get(app.url("/health")).await.expect("health")).await;
    assert_eq!(s, StatusCode::OK);
}
