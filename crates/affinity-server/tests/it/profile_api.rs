//! Segment's Profile API beyond `/traits`: audience memberships (`class=audience`), and the
//! `/external_ids`, `/events` and `/metadata` endpoints, read as Segment's clients read them.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN, TestApp, poll_until};
use crate::traits::trained_shop;

const PROFILE_TOKEN: &str = "prf_test";

async fn profile_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.send(
        app.client
            .get(app.url(&format!("/v1/spaces/sp1/collections/users/profiles/{path}")))
            .basic_auth(PROFILE_TOKEN, Some("")),
    )
    .await
}

async fn ok(app: &TestApp, path: &str) -> Value {
    let (s, b) = profile_get(app, path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_members_see_the_audience_on_their_profile() {
    let app = trained_shop().await;
    let (s, created) = app
        .send(
            app.client
                .post(app.url("/api/v1/audiences"))
                .bearer_auth(ADMIN)
                .json(&json!({
                    "name": "Brand 001 fans", "target": {"column": "brand", "value": "Brand 001"},
                    "max_size": {"percent": 20}, "control_percent": 20
                })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].clone();
    poll_until(
        "the audience computing",
        Duration::from_secs(60),
        || async {
            let (_, a) = app.admin_get(&format!("/api/v1/audiences/{id}")).await;
            assert_ne!(a["status"], "failed", "{a}");
            (a["status"] == "live").then_some(())
        },
    )
    .await;
    let (_, page) = app
        .admin_get(&format!("/api/v1/audiences/{id}/members?limit=10000"))
        .await;
    let members = page["members"].as_array().expect("members");
    let treated = members
        .iter()
        .find(|m| m["control"] == false)
        .expect("a treated member");
    let control = members
        .iter()
        .find(|m| m["control"] == true)
        .expect("a control member");
    let ids: HashSet<&str> = members
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    let outsider = (0..400)
        .map(|u| format!("u{u}"))
        .find(|u| !ids.contains(u.as_str()))
        .expect("a non-member");

    for member in [treated, control] {
        let user = member["user_id"].as_str().expect("id");
        let b = ok(&app, &format!("user_id:{user}/traits?class=audience")).await;
        assert_eq!(b["traits"], json!({"brand_001_fans": true}), "{user}: {b}");
        let all = ok(&app, &format!("user_id:{user}/traits?limit=200")).await;
        assert_eq!(
            all["traits"]["brand_001_fans"], true,
            "listed without a class too: {all}"
        );
        let computed = ok(&app, &format!("user_id:{user}/traits?class=computed_trait")).await;
        assert!(
            computed["traits"].get("brand_001_fans").is_none(),
            "{computed}"
        );
    }
    // The same person reached through an anonymousId merged into the profile.
    let user = treated["user_id"].as_str().expect("id");
    let anon = user.replacen('u', "anon-", 1);
    let b = ok(
        &app,
        &format!("anonymous_id:{anon}/traits?class=audience&verbose=true"),
    )
    .await;
    assert_eq!(b["traits"]["brand_001_fans"]["value"], true, "{b}");
    assert!(
        b["traits"]["brand_001_fans"]["updated_at"].is_string(),
        "{b}"
    );
    let b = ok(&app, &format!("user_id:{outsider}/traits?class=audience")).await;
    assert_eq!(b["traits"], json!({}), "{outsider} is not a member: {b}");

    // A refresh is the next snapshot: still one membership, read from the newest live one.
    let (s, refreshed) = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/audiences/{id}/refresh")))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{refreshed}");
    assert_eq!(refreshed["id"], id);
    poll_until("the refresh", Duration::from_secs(60), || async {
        let (_, a) = app.admin_get(&format!("/api/v1/audiences/{id}")).await;
        (a["status"] == "live" && a["live_snapshot"] == 2).then_some(())
    })
    .await;
    let b = ok(&app, &format!("user_id:{user}/traits?class=audience")).await;
    assert_eq!(b["traits"], json!({"brand_001_fans": true}), "{b}");
    // Deleting the audience (every snapshot) leaves no membership behind.
    let (s, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/audiences/{id}")))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let b = ok(&app, &format!("user_id:{user}/traits?class=audience")).await;
    assert_eq!(b["traits"], json!({}), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_events_and_metadata_answer_like_segment() {
    let app = trained_shop().await;

    // /external_ids: every identifier with Segment's fields, pageable, filterable by type.
    let b = ok(&app, "user_id:u0/external_ids").await;
    let data = b["data"].as_array().expect("data");
    let pairs: HashSet<(String, String)> = data
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type").into(),
                e["id"].as_str().expect("id").into(),
            )
        })
        .collect();
    assert!(pairs.contains(&("user_id".into(), "u0".into())), "{b}");
    assert!(
        pairs.contains(&("anonymous_id".into(), "anon-0".into())),
        "{b}"
    );
    for e in data {
        assert_eq!(
            (&e["collection"], &e["encoding"]),
            (&json!("users"), &json!("none")),
            "{e}"
        );
        assert!(
            e["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        assert!(e.as_object().expect("o").contains_key("source_id"), "{e}");
    }
    assert_eq!(b["cursor"]["has_more"], false, "{b}");
    let b = ok(&app, "anonymous_id:anon-0/external_ids?include=user_id").await;
    assert_eq!(b["data"].as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!(b["data"][0]["id"], "u0", "{b}");
    let first = ok(&app, "user_id:u0/external_ids?limit=1").await;
    assert_eq!(first["cursor"]["has_more"], true, "{first}");
    let next = first["cursor"]["next"].as_str().expect("next");
    let second = ok(
        &app,
        &format!("user_id:u0/external_ids?limit=1&next={next}"),
    )
    .await;
    assert_ne!(first["data"][0], second["data"][0], "{second}");

    // /events: newest first by default, paged by cursor without gaps or repeats.
    let everything = app.events_of("user_id:u0").await;
    assert!(everything.len() > 12, "u0 has {} events", everything.len());
    let mut seen = Vec::new();
    let mut next = String::new();
    loop {
        let b = ok(&app, &format!("user_id:u0/events?limit=5&next={next}")).await;
        let data = b["data"].as_array().expect("data").clone();
        assert!(data.len() <= 5);
        seen.extend(data);
        if b["cursor"]["has_more"] == false {
            assert_eq!(b["cursor"]["next"], "");
            break;
        }
        next = b["cursor"]["next"].as_str().expect("next").to_string();
    }
    assert_eq!(seen.len(), everything.len(), "every event once");
    let ids: HashSet<&str> = seen
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(ids.len(), seen.len(), "no repeats");
    let times: Vec<&str> = seen
        .iter()
        .map(|e| e["timestamp"].as_str().expect("t"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let e = &seen[0];
    for key in [
        "type",
        "message_id",
        "timestamp",
        "received_at",
        "context",
        "external_ids",
    ] {
        assert!(!e[key].is_null(), "{key}: {e}");
    }
    let track = seen
        .iter()
        .find(|e| e["type"] == "track")
        .expect("a track event");
    assert!(
        track["event"].is_string() && track["properties"].is_object(),
        "{track}"
    );
    assert_eq!(track["external_ids"][0]["collection"], "users", "{track}");

    let asc = ok(&app, "user_id:u0/events?sort=asc&limit=100").await;
    let asc_times: Vec<&str> = asc["data"]
        .as_array()
        .expect("d")
        .iter()
        .map(|e| e["timestamp"].as_str().expect("t"))
        .collect();
    assert!(asc_times.windows(2).all(|w| w[0] <= w[1]), "{asc_times:?}");
    let orders = ok(
        &app,
        "user_id:u0/events?include=Order%20Completed&limit=100",
    )
    .await;
    let orders = orders["data"].as_array().expect("d");
    let expected = everything
        .iter()
        .filter(|e| e["event"] == "Order Completed")
        .count();
    assert_eq!(orders.len(), expected);
    assert!(orders.iter().all(|e| e["event"] == "Order Completed"));
    let others = ok(
        &app,
        "user_id:u0/events?exclude=Order%20Completed&limit=100",
    )
    .await;
    assert_eq!(
        others["data"].as_array().expect("d").len(),
        everything.len() - expected
    );
    let (cut, _) = (asc_times[asc_times.len() / 2], ());
    let later = ok(&app, &format!("user_id:u0/events?start={cut}&limit=100")).await;
    let later = later["data"].as_array().expect("d");
    assert!(
        !later.is_empty()
            && later
                .iter()
                .all(|e| e["timestamp"].as_str().expect("t") >= cut)
    );
    let earlier = ok(&app, &format!("user_id:u0/events?end={cut}&limit=100")).await;
    assert_eq!(
        earlier["data"].as_array().expect("d").len() + later.len(),
        everything.len(),
        "start is inclusive, end exclusive"
    );

    // /metadata: Segment's fields, consistent with the events.
    let m = ok(&app, "user_id:u0/metadata").await;
    let m = &m["metadata"];
    assert_eq!(
        m["first_message_at"].as_str(),
        asc_times.first().copied(),
        "{m}"
    );
    assert_eq!(m["last_message_at"].as_str(), Some(times[0]), "{m}");
    assert!(
        m["created_at"].is_string() && m["updated_at"].is_string(),
        "{m}"
    );
    assert!(
        m["expires_at"].is_null() && m["last_message_id"].is_string(),
        "{m}"
    );

    // Errors as the traits endpoint answers them.
    for path in [
        "user_id:nobody/events",
        "user_id:nobody/external_ids",
        "user_id:nobody/metadata",
    ] {
        let (s, b) = profile_get(&app, path).await;
        assert_eq!(
            (s, b["error"]["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("Profile was not found.")),
            "{path}"
        );
    }
    for (path, mentions) in [
        ("user_id:u0/events?sort=up", "sort"),
        ("user_id:u0/events?next=abc", "next"),
        ("user_id:u0/events?start=yesterday", "start"),
        ("user_id:u0/events?limit=101", "limit"),
        ("user_id:u0/external_ids?include=email", "include"),
    ] {
        let (s, b) = profile_get(&app, path).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request_error")),
            "{path}: {b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .expect("m")
                .contains(mentions),
            "{path}: {b}"
        );
    }
    let (s, _) = app
        .send(
            app.client
                .get(app.url("/v1/spaces/sp1/collections/users/profiles/user_id:u0/metadata"))
                .basic_auth("wrong", Some("")),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
