//! Traits and goal-based recommendations delivered to a real webhook receiver: the first
//! computation sends one `identify` per profile with a value, a recomputation sends exactly
//! the profiles whose value changed (nothing when none did), and a destination added later
//! first receives every current value, even when the server stopped midway. Goals send
//! control users too, flagged.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_core::goal_funnel::FunnelSpec;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{OutboxMessage, ProfileTraits, StoreError, TraitStore};

use crate::audiences::post;
use crate::destinations::{SECRET, messages, put, quick_app, trained, webhook, who};
use crate::goals::{definition, list, live, post_goal, send, values};
use crate::models::{finished, train};
use crate::receiver::Receiver;
use crate::support::{TestApp, assert_error, poll_until, problem_fields};

const PROFILE_TOKEN: &str = "prf_test";

/// The trait once a computation newer than `after` (an RFC 3339 time or "") is complete.
async fn computed_after(app: &TestApp, name: &str, after: &str) -> Value {
    poll_until("the trait computation", Duration::from_secs(60), || async {
        let (s, t) = app.admin_get(&format!("/api/v1/traits/{name}")).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        (t["status"] == "computed" && t["computed_at"].as_str().unwrap_or("") > after).then_some(t)
    })
    .await
}

/// A destination's delivery counts once nothing is pending.
async fn settled(app: &TestApp, destination: &Value) -> Value {
    poll_until(
        "every queued message delivered",
        Duration::from_secs(60),
        || async {
            let (s, log) = app
                .admin_get(&format!(
                    "/api/v1/destinations/{}/deliveries",
                    destination["id"]
                ))
                .await;
            assert_eq!(s, StatusCode::OK, "{log}");
            (log["counts"]["pending"] == 0).then(|| log["counts"].clone())
        },
    )
    .await
}

/// Each message's user and the traits it carries; one message per user.
fn by_user(messages: &[Value]) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for m in messages {
        assert_eq!(m["type"], "identify", "{m}");
        let previous = out.insert(who(m), m["traits"].clone());
        assert!(previous.is_none(), "two messages for one user: {m}");
    }
    out
}

async fn profile_trait(app: &TestApp, user: &str, name: &str) -> Value {
    let (s, body) = app
        .send(
            app.client
                .get(app.url(&format!(
                    "/v1/spaces/s/collections/users/profiles/user_id:{user}/traits?class=computed_trait"
                )))
                .basic_auth(PROFILE_TOKEN, Some("")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["traits"][name].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_changes_reach_the_destinations_and_a_new_destination_gets_every_value() {
    let app = quick_app().await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    trained(&app).await;
    let hook = webhook(&app, &first, json!({})).await;
    let late = webhook(&app, &second, json!({"name": "ads"})).await;

    // Unknown destinations are listed with every other problem.
    let mut body = json!({"name": "top_brands", "column": "brand", "k": 0,
                          "destinations": ["999"]});
    let (s, b) = post(&app, "/api/v1/traits", body.clone()).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "\"999\"");
    assert_eq!(problem_fields(&b), vec!["k", "destinations"]);
    body["k"] = json!(3);
    body["destinations"] = json!([hook["id"]]);
    let (s, b) = post(&app, "/api/v1/traits", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // The first computation: one identify per profile with a value, signed, as Engage sends a
    // computed trait.
    let t = computed_after(&app, "top_brands", "").await;
    assert_eq!(t["destinations"], json!([hook["id"].to_string()]), "{t}");
    let counts = settled(&app, &hook).await;
    let got = messages(&first);
    assert_eq!(counts["delivered"], got.len(), "{counts}");
    assert_eq!(counts["failed"], 0, "{counts}");
    assert!(first.accepted().iter().all(|r| r.signed_with(SECRET)));
    let before = by_user(&got);
    assert_eq!(
        before.len() as i64,
        t["profiles"].as_i64().expect("profiles")
    );
    for m in &got {
        assert_eq!(
            m["context"]["personas"],
            json!({"computation_class": "trait", "computation_id": "top_brands",
                   "computation_key": "top_brands"}),
            "{m}"
        );
        let values = m["traits"]["top_brands"].as_array().expect("values");
        assert!(!values.is_empty() && values.len() <= 3, "{m}");
    }
    for user in before.keys().filter(|u| !u.starts_with("anon-")).take(5) {
        assert_eq!(
            before[user]["top_brands"],
            profile_trait(&app, user, "top_brands").await,
            "{user}"
        );
    }

    // A retrain on the same data writes the same values: nothing is sent.
    let (_, job) = train(&app, json!({})).await;
    assert_eq!(finished(&app, &job["model_id"]).await["status"], "ready");
    let t = computed_after(&app, "top_brands", t["computed_at"].as_str().expect("time")).await;
    // The messages of a run are queued in the transactions writing its values: once it is
    // computed, anything it sent is counted.
    let counts = settled(&app, &hook).await;
    assert_eq!(
        counts["delivered"],
        got.len(),
        "unchanged values were sent: {counts}"
    );

    // Leaving out the brand most lists hold (but not all) changes only those lists.
    let mut holders: HashMap<String, usize> = HashMap::new();
    for traits in before.values() {
        for v in traits["top_brands"].as_array().expect("values") {
            *holders
                .entry(v.as_str().expect("brand").to_string())
                .or_default() += 1;
        }
    }
    let (brand, _) = holders
        .iter()
        .filter(|(_, n)| **n < before.len())
        .max_by_key(|(b, n)| (**n, std::cmp::Reverse((*b).clone())))
        .expect("a brand some lists hold");
    let (s, b) = put(
        &app,
        "/api/v1/traits/top_brands",
        json!({"exclude": [{"column": "brand", "in": [brand]}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    computed_after(&app, "top_brands", t["computed_at"].as_str().expect("time")).await;
    settled(&app, &hook).await;
    let changes = by_user(&messages(&first)[got.len()..]);

    // A destination added now first receives every current value; the first gets nothing.
    let (s, b) = put(
        &app,
        "/api/v1/traits/top_brands/destinations",
        json!({"destinations": [hook["id"], late["id"].to_string()]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["destinations"],
        json!([hook["id"].to_string(), late["id"].to_string()])
    );
    let counts = settled(&app, &late).await;
    let now = by_user(&messages(&second));
    assert_eq!(counts["delivered"], now.len(), "{counts}");
    assert_eq!(now.len(), before.len(), "every profile with a value");
    assert!(second.accepted().iter().all(|r| r.signed_with(SECRET)));
    assert_eq!(
        settled(&app, &hook).await["delivered"],
        got.len() + changes.len()
    );

    // Exactly the changed profiles were sent, with their new value.
    let changed: HashMap<String, Value> = now
        .iter()
        .filter(|(user, traits)| before.get(*user) != Some(*traits))
        .map(|(u, t)| (u.clone(), t.clone()))
        .collect();
    assert_eq!(changes, changed);
    assert!(
        !changed.is_empty() && changed.len() < before.len(),
        "{} of {} lists changed",
        changed.len(),
        before.len()
    );
    for (user, traits) in &changed {
        let old = before[user]["top_brands"].as_array().expect("values");
        assert!(old.contains(&json!(brand)), "{user} did not hold {brand}");
        assert!(
            !traits["top_brands"]
                .as_array()
                .expect("values")
                .contains(&json!(brand)),
            "{user}: {traits}"
        );
    }

    // Unknown destinations and lists that are not of ids are refused, naming them.
    let (s, b) = put(
        &app,
        "/api/v1/traits/top_brands/destinations",
        json!({"destinations": [hook["id"], "999"]}),
    )
    .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "\"999\"");
    assert_eq!(b["error"]["code"], "invalid_trait");
    let (s, b) = put(
        &app,
        "/api/v1/traits/top_brands/destinations",
        json!({"destinations": "crm"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problem_fields(&b), vec!["destinations"]);
    let (s, b) = put(
        &app,
        "/api/v1/traits/nothing/destinations",
        json!({"destinations": []}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goal_lists_reach_the_destinations_control_users_flagged() {
    let app = quick_app().await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let spec = FunnelSpec::default();
    send(&app, &spec.messages()).await;
    let hook = webhook(&app, &first, json!({})).await;
    let late = webhook(&app, &second, json!({"name": "ads"})).await;

    let mut body = definition();
    body["destinations"] = json!(["999"]);
    let (s, b) = post_goal(&app, &body).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "\"999\"");
    body["destinations"] = json!([hook["id"]]);
    let (s, created) = post_goal(&app, &body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].clone();
    let goal = live(&app, &id, "").await;
    assert_eq!(goal["destinations"], json!([hook["id"].to_string()]));

    // One identify per user: the list and the control flag, control users included.
    let counts = settled(&app, &hook).await;
    let got = messages(&first);
    assert_eq!(counts["delivered"], got.len(), "{counts}");
    let sent = by_user(&got);
    assert_eq!(sent.len() as u64, spec.users as u64);
    assert!(first.accepted().iter().all(|r| r.signed_with(SECRET)));
    for m in &got {
        assert_eq!(
            m["context"]["personas"],
            json!({"computation_class": "goal_recommendation",
                   "computation_id": id.to_string(), "computation_key": "next_buys"}),
            "{m}"
        );
    }
    let control = sent
        .values()
        .filter(|t| t["next_buys_is_control"] == true)
        .count();
    assert!(
        control > 0 && control < sent.len(),
        "{control} control users sent"
    );
    for u in (0..spec.users).step_by(15) {
        let user = format!("u{u}");
        let l = list(&app, &id, &user).await;
        assert_eq!(
            sent[&user],
            json!({"next_buys": values(&l), "next_buys_is_control": l["is_control"]}),
            "{user}"
        );
    }

    // A recomputation on the same data gives the same lists: nothing is sent.
    let (s, b) = post(
        &app,
        &format!("/api/v1/goal-recommendations/{id}/refresh"),
        json!(null),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    live(&app, &id, goal["computed_at"].as_str().expect("time")).await;
    assert_eq!(settled(&app, &hook).await["delivered"], got.len());

    // A destination added now receives every user's current list.
    let (s, b) = put(
        &app,
        &format!("/api/v1/goal-recommendations/{id}/destinations"),
        json!({"destinations": [hook["id"], late["id"]]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let counts = settled(&app, &late).await;
    let now = by_user(&messages(&second));
    assert_eq!(counts["delivered"], now.len(), "{counts}");
    assert_eq!(now, sent);
    assert_eq!(settled(&app, &hook).await["delivered"], got.len());

    let (s, b) = put(
        &app,
        &format!("/api/v1/goal-recommendations/{id}/destinations"),
        json!({"destinations": ["999"]}),
    )
    .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "\"999\"");
    assert_eq!(b["error"]["code"], "invalid_goal");
    let users: HashSet<&String> = now.keys().collect();
    assert_eq!(users.len(), spec.users as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_trait_cancels_its_messages_not_sent_yet() {
    let app = quick_app().await;
    let receiver = Receiver::start().await;
    // Down: every message stays pending, retried.
    receiver.answer(503);
    trained(&app).await;
    let hook = webhook(&app, &receiver, json!({})).await;
    let body = json!({"name": "top_brands", "column": "brand", "k": 3,
                      "destinations": [hook["id"]]});
    let (s, b) = post(&app, "/api/v1/traits", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let t = computed_after(&app, "top_brands", "").await;
    let profiles = t["profiles"].as_i64().expect("profiles");
    let log = format!("/api/v1/destinations/{}/deliveries", hook["id"]);
    let (_, before) = app.admin_get(&log).await;
    assert_eq!(before["counts"]["pending"], profiles, "{before}");

    let (s, _) = app
        .send(
            app.client
                .delete(app.url("/api/v1/traits/top_brands"))
                .bearer_auth(crate::support::ADMIN),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, after) = app.admin_get(&log).await;
    assert_eq!(
        after["counts"],
        json!({"held": 0, "pending": 0, "delivered": 0, "failed": 0, "cancelled": profiles}),
        "{after}"
    );
    let (_, cancelled) = app
        .admin_get(&format!("{log}?status=cancelled&limit=1"))
        .await;
    assert_eq!(
        cancelled["deliveries"][0]["status"], "cancelled",
        "{cancelled}"
    );
    // The receiver back up gets none of them.
    receiver.answer(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_added_to_a_trait_gets_every_value_even_when_the_server_stopped_midway() {
    let app = quick_app().await;
    let receiver = Receiver::start().await;
    trained(&app).await;
    let hook = webhook(&app, &receiver, json!({})).await;
    let body = json!({"name": "top_brands", "column": "brand", "k": 3});
    let (s, b) = post(&app, "/api/v1/traits", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let t = computed_after(&app, "top_brands", "").await;
    let profiles = t["profiles"].as_u64().expect("profiles") as usize;
    assert!(profiles > 0, "{t}");
    let dir = app.stop().await;

    // The destination added as the PUT does it, the process stopping before its first page
    // of values is queued: the definition names the destination, nothing is queued for it.
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        let id = hook["id"].as_i64().expect("id");
        let mut definition = store
            .trait_definition("top_brands")
            .expect("read")
            .expect("defined")
            .definition;
        definition["destinations"] = json!([id.to_string()]);
        let mut stopped =
            |_: &[i64], _: &[ProfileTraits]| -> Result<Vec<OutboxMessage>, StoreError> {
                Err(StoreError::Corrupt("the process stopped".into()))
            };
        assert!(
            store
                .set_trait_destinations("top_brands", &definition, &[id], &mut stopped)
                .is_err()
        );
    }

    // The next start finishes it: every value, once each.
    let app = TestApp::spawn_in(dir).await;
    let got = poll_until(
        "every value delivered after the restart",
        Duration::from_secs(60),
        || async {
            let got = messages(&receiver);
            (got.len() >= profiles).then_some(got)
        },
    )
    .await;
    assert_eq!(by_user(&got).len(), profiles);
    let counts = settled(&app, &hook).await;
    assert_eq!(counts["delivered"], profiles, "{counts}");
}
