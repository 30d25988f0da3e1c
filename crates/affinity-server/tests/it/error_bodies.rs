//! Every error answer has the JSON shape `{"error":{"code","message"}}`, including those the
//! router and the request-head checks make (405, 414, 431, 404, a non-UTF-8 path), over a
//! real socket.

use reqwest::StatusCode;
use reqwest::header::{ALLOW, CONTENT_TYPE};

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
