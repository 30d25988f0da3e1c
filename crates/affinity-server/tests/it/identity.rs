//! Profiles and identity: traits merge (newest wins), userId+anonymousId links, alias merges,
//! and anonymous history counting for the user afterwards; an alias between two identified
//! users refused (the write key is public) and listed for the admin.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, assert_error};

/// The Profile API token `TestApp` configures.
const PROFILE_TOKEN: &str = "prf_test";

#[tokio::test]
async fn anonymous_history_joins_the_user_when_identified() {
    let app = TestApp::spawn().await;
    for (i, event) in ["Product Viewed", "Product Added"].iter().enumerate() {
        let (s, _) = app
            .track(
                "/v1/track",
                &json!({"anonymousId": "anon-1", "event": event, "messageId": format!("a{i}"),
                                         "timestamp": format!("2026-01-01T00:00:0{i}Z")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, before) = app.admin_get("/api/v1/profiles/anonymous_id:anon-1").await;
    assert_eq!(before["user_id"], serde_json::Value::Null);
    let (s, _) = app
        .track(
            "/v1/identify",
            &json!({"userId": "alice", "anonymousId": "anon-1", "traits": {"email": "a@x.io"},
                                        "timestamp": "2026-01-01T00:00:05Z", "messageId": "id1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .track(
            "/v1/track",
            &json!({"userId": "alice", "event": "Order Completed", "messageId": "o1",
                                     "timestamp": "2026-01-01T00:00:09Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let events = app.events_of("user_id:alice").await;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["o1", "id1", "a1", "a0"],
        "newest first, anonymous history included"
    );
    let (_, by_anon) = app.admin_get("/api/v1/profiles/anonymous_id:anon-1").await;
    let (_, by_user) = app.admin_get("/api/v1/profiles/user_id:alice").await;
    assert_eq!(by_anon["profile_id"], by_user["profile_id"]);
    assert_eq!(by_user["traits"]["email"], "a@x.io");
    assert_eq!(by_user["last_seen"], "2026-01-01T00:00:09.000Z");
}

#[tokio::test]
async fn identify_traits_merge_newest_wins_even_out_of_order() {
    let app = TestApp::spawn().await;
    let identify = |id: &str, ts: &str, traits: serde_json::Value| json!({"userId": "bob", "messageId": id, "timestamp": ts, "traits": traits});
    for m in [
        identify(
            "t2",
            "2026-02-01T00:00:00Z",
            json!({"plan": "pro", "city": "Oslo"}),
        ),
        identify(
            "t1",
            "2026-01-01T00:00:00Z",
            json!({"plan": "free", "age": 30}),
        ),
        identify("t3", "2026-03-01T00:00:00Z", json!({"city": "Bergen"})),
    ] {
        let (s, _) = app.track("/v1/identify", &m).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, p) = app.admin_get("/api/v1/profiles/user_id:bob").await;
    assert_eq!(
        p["traits"],
        json!({"plan": "pro", "city": "Bergen", "age": 30})
    );
}

#[tokio::test]
async fn alias_merges_anonymous_identities_into_the_user_but_not_another_user() {
    let app = TestApp::spawn().await;
    let send = |body: serde_json::Value| async move {
        let path = if body.get("previousId").is_some() {
            "/v1/alias"
        } else {
            "/v1/track"
        };
        (path, body)
    };
    let steps = [
        send(json!({"userId": "old-login", "event": "Viewed", "messageId": "m1", "timestamp": "2026-01-01T00:00:00Z"})).await,
        send(json!({"anonymousId": "device-9", "event": "Viewed", "messageId": "m2", "timestamp": "2026-01-02T00:00:00Z"})).await,
        send(json!({"userId": "new-login", "event": "Viewed", "messageId": "m3", "timestamp": "2026-01-03T00:00:00Z"})).await,
        // Two user ids on one profile break the rule: stored, not merged.
        send(json!({"previousId": "old-login", "userId": "new-login", "messageId": "al1", "timestamp": "2026-01-04T00:00:00Z"})).await,
        send(json!({"previousId": "device-9", "userId": "new-login", "messageId": "al2", "timestamp": "2026-01-05T00:00:00Z"})).await,
        // An alias of an id never seen before just records it.
        send(json!({"previousId": "never-seen", "userId": "new-login", "messageId": "al3", "timestamp": "2026-01-06T00:00:00Z"})).await,
    ];
    for (path, body) in &steps {
        let (s, b) = app.track(path, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let events = app.events_of("user_id:new-login").await;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["al3", "al2", "al1", "m3", "m2"]);
    let (_, old) = app.admin_get("/api/v1/profiles/user_id:old-login").await;
    assert_eq!(
        old["user_id"], "old-login",
        "a user is never merged into another"
    );
    assert_eq!(app.events_of("user_id:old-login").await.len(), 1);
    for key in ["anonymous_id:device-9", "anonymous_id:never-seen"] {
        let (_, p) = app.admin_get(&format!("/api/v1/profiles/{key}")).await;
        assert_eq!(
            p["user_id"], "new-login",
            "{key} resolves to the merged profile"
        );
    }
    // Retrying the aliases changes nothing, and records the refusal only once.
    for step in &steps[3..5] {
        let (s, _) = app.track(step.0, &step.1).await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(app.events_of("user_id:new-login").await.len(), 5);
    let (_, refused) = app.admin_get("/api/v1/identity/refused-merges").await;
    assert_eq!(
        refused["refused_merges"].as_array().map(Vec::len),
        Some(1),
        "{refused}"
    );
}

#[tokio::test]
async fn a_shared_device_does_not_fuse_two_users() {
    let app = TestApp::spawn().await;
    for (user, id) in [("carol", "c1"), ("dave", "d1")] {
        let (s, _) = app
            .track("/v1/track", &json!({"userId": user, "anonymousId": "kiosk", "event": "Viewed", "messageId": id}))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, carol) = app.admin_get("/api/v1/profiles/user_id:carol").await;
    let (_, dave) = app.admin_get("/api/v1/profiles/user_id:dave").await;
    let (_, kiosk) = app.admin_get("/api/v1/profiles/anonymous_id:kiosk").await;
    assert_ne!(carol["profile_id"], dave["profile_id"]);
    assert_eq!(
        kiosk["profile_id"], carol["profile_id"],
        "the first user keeps the device"
    );
    assert_eq!(app.events_of("user_id:dave").await.len(), 1);
    // Recorded once, with the user the device stayed with.
    let (_, page) = app.admin_get("/api/v1/identity/refused-merges").await;
    assert_eq!(
        page["refused_merges"].as_array().map(Vec::len),
        Some(1),
        "{page}"
    );
    assert_eq!(page["refused_merges"][0]["user_id"], "dave");
    assert_eq!(page["refused_merges"][0]["owner_user_id"], "carol");
    assert_eq!(page["refused_merges"][0]["message_type"], "track");
}

#[tokio::test]
async fn profile_lookups_answer_precisely() {
    let app = TestApp::spawn().await;
    let (s, b) = app.admin_get("/api/v1/profiles/user_id:nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        b,
        json!({"error": {"code": "not_found", "message": "Profile was not found."}})
    );
    let (s, b) = app.admin_get("/api/v1/profiles/email:x@y.z").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_parameter");
}

#[tokio::test]
async fn an_alias_between_two_identified_users_is_refused_and_listed() {
    let app = TestApp::spawn().await;
    let steps = [
        (
            "/v1/identify",
            json!({"userId": "owner-a", "anonymousId": "device-a", "messageId": "i1",
                   "traits": {"email": "a@owner.io"}, "timestamp": "2026-01-01T00:00:00Z"}),
        ),
        (
            "/v1/track",
            json!({"userId": "owner-a", "event": "Order Completed", "messageId": "o1",
                   "timestamp": "2026-01-01T00:00:01Z"}),
        ),
        // Anyone holding the public write key can send these.
        (
            "/v1/alias",
            json!({"userId": "intruder-b", "previousId": "owner-a", "messageId": "al1",
                   "timestamp": "2026-01-02T00:00:00Z"}),
        ),
        (
            "/v1/alias",
            json!({"userId": "intruder-b", "previousId": "device-a", "messageId": "al2",
                   "timestamp": "2026-01-03T00:00:00Z"}),
        ),
    ];
    for (path, body) in &steps {
        let (s, b) = app.track(path, body).await;
        assert_eq!(s, StatusCode::OK, "the message is accepted: {b}");
    }

    let (_, intruder) = app.admin_get("/api/v1/profiles/user_id:intruder-b").await;
    let (_, owner) = app.admin_get("/api/v1/profiles/user_id:owner-a").await;
    assert_ne!(intruder["profile_id"], owner["profile_id"]);
    assert_eq!(intruder["traits"], json!({}), "{intruder}");
    assert_eq!(
        intruder["identities"],
        json!([{"type": "user_id", "id": "intruder-b"}])
    );
    assert_eq!(owner["traits"]["email"], "a@owner.io");
    let (_, device) = app
        .admin_get("/api/v1/profiles/anonymous_id:device-a")
        .await;
    assert_eq!(
        device["user_id"], "owner-a",
        "the device stays with its owner"
    );

    let ids = |events: Vec<serde_json::Value>| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["message_id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        ids(app.events_of("user_id:intruder-b").await),
        ["al2", "al1"],
        "only the intruder's own messages"
    );
    assert_eq!(ids(app.events_of("user_id:owner-a").await), ["o1", "i1"]);

    // Segment's Profile API, as an app would read it.
    let (s, traits) = app
        .send(
            app.client
                .get(app.url("/v1/spaces/s1/collections/users/profiles/user_id:intruder-b/traits"))
                .basic_auth(PROFILE_TOKEN, Some("")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{traits}");
    assert!(traits["traits"].get("email").is_none(), "{traits}");

    let (s, page) = app
        .admin_get("/api/v1/identity/refused-merges?limit=1")
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(
        page["refused_merges"],
        json!([{
            "message_id": "al2",
            "message_type": "alias",
            "user_id": "intruder-b",
            "identifier": {"type": "anonymous_id", "id": "device-a"},
            "owner_user_id": "owner-a",
            "reason": "user_id_limit",
            "received_at": page["refused_merges"][0]["received_at"],
        }])
    );
    assert!(page["refused_merges"][0]["received_at"].is_string());
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, next) = app
        .admin_get(&format!(
            "/api/v1/identity/refused-merges?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["refused_merges"][0]["message_id"], "al1");
    assert_eq!(
        next["refused_merges"][0]["identifier"],
        json!({"type": "user_id", "id": "owner-a"})
    );
    assert_eq!(next["next_cursor"], serde_json::Value::Null);

    let (s, b) = app
        .admin_get("/api/v1/identity/refused-merges?cursor=later")
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "cursor");
}

#[tokio::test]
async fn an_alias_from_an_anonymous_id_still_merges_and_refuses_nothing() {
    let app = TestApp::spawn().await;
    let steps = [
        (
            "/v1/track",
            json!({"anonymousId": "visitor", "event": "Viewed", "messageId": "v1",
                   "timestamp": "2026-01-01T00:00:00Z"}),
        ),
        (
            "/v1/identify",
            json!({"userId": "erin", "messageId": "e1", "traits": {"plan": "pro"},
                   "timestamp": "2026-01-02T00:00:00Z"}),
        ),
        (
            "/v1/alias",
            json!({"userId": "erin", "previousId": "visitor", "messageId": "al",
                   "timestamp": "2026-01-03T00:00:00Z"}),
        ),
    ];
    for (path, body) in &steps {
        let (s, b) = app.track(path, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, visitor) = app.admin_get("/api/v1/profiles/anonymous_id:visitor").await;
    assert_eq!(visitor["user_id"], "erin");
    assert_eq!(app.events_of("user_id:erin").await.len(), 3);
    let (s, page) = app.admin_get("/api/v1/identity/refused-merges").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["refused_merges"], json!([]), "{page}");
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
}
