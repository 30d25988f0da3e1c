//! Bounded background work through the API: a flood of audience creations and previews beyond
//! the configured queues is refused with `429 queue_full` and `Retry-After` (never a 202 that
//! will not be honoured), every accepted audience is computed, no more than the configured
//! workers ever run at once, and propensity contexts stay within their LRU bound.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use affinity_engine::WorkLimits;

use crate::audiences::{live, post};
use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::support::{ADMIN, TestApp, config};

const FLOOD: usize = 24;

/// Sends `bodies` to `path` all at once; returns each answer's status, `Retry-After` and body.
async fn flood(
    app: &TestApp,
    path: &str,
    bodies: Vec<Value>,
) -> Vec<(StatusCode, Option<u64>, Value)> {
    let requests = bodies.into_iter().map(|body| {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(ADMIN)
            .json(&body);
        async move {
            let r = r.send().await.expect("request");
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let (status, body) = crate::support::read(r).await;
            (status, retry, body)
        }
    });
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// Each refusal is a 429 with the queue's code, a message saying what to do and a retry time.
fn assert_refusals(answers: &[(StatusCode, Option<u64>, Value)], accepted: StatusCode) -> usize {
    let mut refused = 0;
    for (status, retry, body) in answers {
        if *status == accepted {
            continue;
        }
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "queue_full", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("retry in"), "{body}");
        assert!(
            retry.is_some_and(|s| (1..=300).contains(&s)),
            "Retry-After {retry:?}"
        );
        refused += 1;
    }
    refused
}

/// A server with these work limits, the synthetic store's 12 000 events, its catalog and a
/// trained model.
async fn trained_app(work: WorkLimits) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.engine.work = work;
    let app = TestApp::spawn_configured(dir, config).await;
    send_synthetic(&app, 12_000).await;
    put_catalog(&app, &synthetic_catalog()).await;
    ready_catalog(&app).await;
    let (_, job) = train(&app, json!({})).await;
    finished(&app, &job["model_id"]).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_audiences_and_previews_are_queued_within_bounds_or_refused() {
    let app = trained_app(WorkLimits {
        audience_workers: 1,
        audience_queue: 2,
        preview_workers: 1,
        preview_queue: 1,
        propensity_contexts: 2,
        ..WorkLimits::default()
    })
    .await;

    // Every creation asks for its own horizon: each accepted one fits a context of its own
    // (slow enough that the flood outruns the worker) and the LRU of 2 must evict.
    let bodies = (0..FLOOD)
        .map(|i| {
            json!({"name": format!("flood {i}"), "target": {"column": "brand", "value": "Brand 001"},
                   "max_size": {"percent": 10}, "horizon_days": 10 + i})
        })
        .collect();
    let answers = flood(&app, "/api/v1/audiences", bodies).await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, _, b)| b)
        .collect();
    let refused = assert_refusals(&answers, StatusCode::ACCEPTED);
    assert!(
        accepted.len() >= 3,
        "workers + queue = 3 are always admitted"
    );
    assert!(refused > 0, "{FLOOD} at once must overflow a queue of 3");
    assert_eq!(accepted.len() + refused, FLOOD);
    let statuses: HashSet<&str> = accepted
        .iter()
        .map(|a| a["status"].as_str().expect("status"))
        .collect();
    assert!(
        statuses.contains("queued"),
        "work behind a busy worker is shown as queued: {statuses:?}"
    );

    // Every accepted audience is computed; refused ones left nothing behind.
    for a in &accepted {
        let done = live(&app, &a["id"]).await;
        assert!(done["size"].as_u64().expect("size") > 0, "{done}");
    }
    let (_, list) = app.admin_get("/api/v1/audiences").await;
    assert_eq!(
        list["audiences"].as_array().expect("audiences").len(),
        accepted.len(),
        "a refused creation stores no audience"
    );
    let work = app.engine.audience_work();
    eprintln!(
        "audience flood of {FLOOD}: {} accepted, {refused} refused; {work:?}",
        accepted.len()
    );
    assert_eq!(work.peak_running, 1, "one audience worker: {work:?}");
    assert!(work.peak_admitted <= 3, "queue bound kept: {work:?}");
    assert_eq!(work.rejected as usize, refused);
    assert_eq!(
        (work.admitted, work.completed as usize),
        (0, accepted.len())
    );

    // At least three horizons were fitted; two contexts are kept.
    let model = app.engine.serving().expect("a model");
    let (held, evictions) = model.propensity_cache();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(evictions as usize >= accepted.len() - 2, "{evictions}");

    // A member's explanation was stored with the snapshot: reading it fits nothing. Where a
    // scored non-member stands, with their reasons by feature, needs the audience's context:
    // evicted, it is fitted again through the preview queue (a fit is as heavy as a
    // preview), and answers.
    let evicted = accepted
        .iter()
        .find(|a| {
            let h = a["horizon_days"].as_u64().expect("horizon") as u32;
            !held.contains(&h)
        })
        .expect("three horizons fitted, two kept");
    let id = &evicted["id"];
    let (_, page) = app
        .admin_get(&format!("/api/v1/audiences/{id}/members?limit=10000"))
        .await;
    let members: Vec<&str> = page["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    let (s, why) = app
        .admin_get(&format!("/api/v1/audiences/{id}/members/{}", members[0]))
        .await;
    assert_eq!(s, StatusCode::OK, "{why}");
    assert_eq!(app.engine.preview_work().completed, 0, "nothing fitted");
    let mut standing = None;
    for user in (0..400)
        .map(|u| format!("u{u}"))
        .filter(|u| !members.contains(&u.as_str()))
    {
        let (s, b) = app
            .admin_get(&format!("/api/v1/audiences/{id}/members/{user}"))
            .await;
        if s == StatusCode::OK && b["standing"] == "below_cutoff" {
            standing = Some(b);
            break;
        }
    }
    let standing = standing.expect("a scored non-member");
    assert!(standing["rank"].is_u64(), "{standing}");
    assert_eq!(
        app.engine.preview_work().completed,
        1,
        "the fit ran as queued work"
    );

    // Once drained, the same request is accepted again.
    let (s, again) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "after the flood", "target": {"column": "brand", "value": "Brand 001"}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    live(&app, &again["id"]).await;

    // Previews: one computes, one waits with its client, the rest are refused.
    let bodies = (0..FLOOD)
        .map(|i| {
            json!({"target": {"column": "brand", "value": "Brand 002"}, "horizon_days": 100 + i})
        })
        .collect();
    let answers = flood(&app, "/api/v1/audiences/preview", bodies).await;
    let refused = assert_refusals(&answers, StatusCode::OK);
    let ok = answers.len() - refused;
    assert!(ok >= 2 && refused > 0, "{ok} answered, {refused} refused");
    for (status, _, body) in &answers {
        if *status == StatusCode::OK {
            assert!(
                body["curve"].as_array().is_some_and(|c| !c.is_empty()),
                "{body}"
            );
        }
    }
    let previews = app.engine.preview_work();
    eprintln!("preview flood of {FLOOD}: {ok} answered, {refused} refused; {previews:?}");
    assert_eq!(previews.peak_running, 1, "{previews:?}");
    assert!(previews.peak_admitted <= 2, "{previews:?}");
    assert_eq!(
        (previews.admitted, previews.rejected as usize),
        (0, refused)
    );
    let (held, _) = model.propensity_cache();
    assert!(held.len() <= 2, "{held:?}");
}

/// A memory budget below two contexts' size keeps the newest context alone, whatever the
/// count allows (each context counts its own bytes); the default budget keeps both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propensity_contexts_stay_within_their_memory_budget() {
    for (mb, kept) in [(1, (vec![40], 1)), (2048, (vec![20, 40], 0))] {
        let app = trained_app(WorkLimits {
            propensity_context_mb: mb,
            ..WorkLimits::default()
        })
        .await;
        for horizon_days in [20, 40] {
            let (s, body) = post(
                &app,
                "/api/v1/audiences/preview",
                json!({"target": {"column": "brand", "value": "Brand 001"}, "horizon_days": horizon_days}),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{body}");
        }
        let model = app.engine.serving().expect("a model");
        assert_eq!(model.propensity_cache(), kept, "a budget of {mb} MiB");
        // The 1 MiB budget is below two contexts of this store: what the case above tests.
        let one = model.propensity(40).expect("the context").heap_bytes();
        assert!(one > 1 << 19, "{one} bytes");
    }
}
