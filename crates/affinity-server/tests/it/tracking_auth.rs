//! Every Tracking API path and short form, every way to send the write key, body encodings,
//! and CORS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::support::{TestApp, WRITE_KEY, gzip};

fn message_for(kind: &str, n: usize) -> Value {
    let mut m =
        json!({"userId": format!("path-user-{n}"), "messageId": format!("path-{kind}-{n}")});
    match kind {
        "track" => m["event"] = json!("Path Tested"),
        "alias" => m["previousId"] = json!(format!("old-{n}")),
        "group" => m["groupId"] = json!("acme"),
        "page" | "screen" => m["name"] = json!("Home"),
        _ => {}
    }
    m
}

#[tokio::test]
async fn every_path_and_short_form_stores_its_type() {
    let app = TestApp::spawn().await;
    let kinds = ["track", "identify", "page", "screen", "group", "alias"];
    for (n, kind) in kinds.iter().enumerate() {
        for path in [format!("/v1/{kind}"), format!("/v1/{}", &kind[..1])] {
            let n = n * 10 + path.len();
            let (status, body) = app.track(&path, &message_for(kind, n)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body, json!({"success": true}));
            let events = app.events_of(&format!("user_id:path-user-{n}")).await;
            assert_eq!(events.len(), 1, "{path}");
            assert_eq!(events[0]["type"], *kind, "{path}");
        }
    }
    for path in ["/v1/batch", "/v1/b", "/v1/import"] {
        let batch = json!({"batch": [
            {"type": "track", "userId": format!("b{path}"), "event": "Batched", "messageId": format!("m{path}")}
        ]});
        let (status, body) = app.track(path, &batch).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["accepted"], 1, "{path}");
    }
    assert_eq!(app.event_count("Batched").await, 3);
}

#[tokio::test]
async fn the_write_key_is_accepted_three_ways_and_refused_otherwise() {
    let app = TestApp::spawn().await;
    let msg = |id: &str| json!({"userId": "k", "event": "Keyed", "messageId": id});
    let post = || app.client.post(app.url("/v1/track"));

    let with_colon = format!("Basic {}", STANDARD.encode(format!("{WRITE_KEY}:")));
    let without_colon = format!("Basic {}", STANDARD.encode(WRITE_KEY));
    let (s, _) = app
        .send(post().header(AUTHORIZATION, with_colon).json(&msg("a")))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .send(post().header(AUTHORIZATION, without_colon).json(&msg("b")))
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut in_body = msg("c");
    in_body["writeKey"] = json!(WRITE_KEY);
    let (s, _) = app.send(post().json(&in_body)).await;
    assert_eq!(s, StatusCode::OK);
    // A second configured source's key works too.
    let (s, _) = app
        .send(
            post()
                .basic_auth("wk_second_source", Some(""))
                .json(&msg("d")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // writeKey at the top of a batch body.
    let batch = json!({"writeKey": WRITE_KEY, "batch": [{"type": "track", "userId": "k", "event": "Keyed", "messageId": "e"}]});
    let (s, _) = app
        .send(app.client.post(app.url("/v1/batch")).json(&batch))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.event_count("Keyed").await, 5);

    let refused = [
        ("missing", post().json(&msg("x1"))),
        (
            "unknown",
            post().basic_auth("wk_nope", Some("")).json(&msg("x2")),
        ),
        (
            "malformed",
            post().header(AUTHORIZATION, "Basic !!!").json(&msg("x3")),
        ),
        (
            "bearer",
            post()
                .header(AUTHORIZATION, format!("Bearer {WRITE_KEY}"))
                .json(&msg("x4")),
        ),
    ];
    for (what, request) in refused {
        let (s, body) = app.send(request).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("write key")),
            "{what}: {body}"
        );
    }
    let mut wrong_in_body = msg("x5");
    wrong_in_body["writeKey"] = json!("nope");
    let (s, _) = app.send(post().json(&wrong_in_body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.event_count("Keyed").await,
        5,
        "refused messages must not be stored"
    );
}

#[tokio::test]
async fn text_plain_and_gzip_bodies_are_accepted() {
    let app = TestApp::spawn().await;
    let body = json!({"userId": "enc", "event": "Encoded", "messageId": "plain"}).to_string();
    let r = app
        .client
        .post(app.url("/v1/t"))
        .basic_auth(WRITE_KEY, Some(""))
        .header(CONTENT_TYPE, "text/plain")
        .body(body);
    let (s, b) = app.send(r).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let batch = json!({"batch": [
        {"type": "track", "userId": "enc", "event": "Encoded", "messageId": "gz1"},
        {"type": "track", "userId": "enc", "event": "Encoded", "messageId": "gz2"}
    ]});
    let r = app
        .client
        .post(app.url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(batch.to_string().as_bytes()));
    let (s, b) = app.send(r).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(app.event_count("Encoded").await, 3);

    let r = app
        .client
        .post(app.url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header(CONTENT_ENCODING, "gzip")
        .body("not gzip at all");
    let (s, b) = app.send(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_gzip");

    let r = app
        .client
        .post(app.url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header(CONTENT_ENCODING, "br")
        .body("x");
    let (s, b) = app.send(r).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(b["error"]["code"], "unsupported_encoding");
}

#[tokio::test]
async fn cors_preflight_and_responses_allow_any_origin() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/t"))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type,authorization",
        )
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST"), "{methods}");

    let r = app
        .client
        .post(app.url("/v1/t"))
        .header("Origin", "https://shop.example")
        .header(CONTENT_TYPE, "text/plain")
        .body(json!({"writeKey": WRITE_KEY, "anonymousId": "a", "event": "Browser"}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let app = TestApp::spawn().await;
    let (s, b) = app.track("/v1/nothing", &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
}
