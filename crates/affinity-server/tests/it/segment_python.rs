//! End to end with Segment's real Python client (`segment-analytics-python`, installed into a
//! virtualenv by `scripts/python-env.sh`), pointed at a live server; read back through the
//! management API.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{TestApp, WRITE_KEY};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn python() -> String {
    let out = tokio::process::Command::new("bash")
        .arg(repo_root().join("scripts/python-env.sh"))
        .output()
        .await
        .expect("run scripts/python-env.sh");
    assert!(
        out.status.success(),
        "scripts/python-env.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_python_client_delivers_everything() {
    let python = python().await;
    let app = TestApp::spawn().await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/send_with_segment.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&app.base)
        .arg(WRITE_KEY)
        .output()
        .await
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("client report");
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "the client saw errors"
    );

    // Everything arrived exactly once.
    assert_eq!(app.event_count("Bulk Event").await, 300);
    assert_eq!(app.event_count("Product Viewed").await, 1);
    assert_eq!(app.event_count("Order Completed").await, 1);
    assert_eq!(app.event_count("Zipped Event").await, 1);

    // The alias joined the anonymous history to the user; identify traits are on the profile.
    let (status, profile) = app.admin_get("/api/v1/profiles/user_id:py-user-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["traits"]["email"], "py@example.com");
    assert_eq!(profile["traits"]["source"], "python");
    let (_, by_anon) = app
        .admin_get("/api/v1/profiles/anonymous_id:py-anon-1")
        .await;
    assert_eq!(by_anon["profile_id"], profile["profile_id"]);
    let events = app.events_of("user_id:py-user-1").await;
    let mut ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![
            "py-m1", "py-m2", "py-m3", "py-m4", "py-m5", "py-m6", "py-m7", "py-m8", "py-z1"
        ]
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in ["identify", "track", "page", "alias", "group", "screen"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    // The client's own context survives in the raw message.
    let order = events
        .iter()
        .find(|e| e["message_id"] == "py-m6")
        .expect("order");
    assert_eq!(
        order["message"]["context"]["library"]["name"],
        "analytics-python"
    );

    // Pickers see the keys inside products[].
    let (_, listed) = app.admin_get("/api/v1/events").await;
    let order_event = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["name"] == "Order Completed")
        .cloned()
        .expect("listed");
    let props: Vec<&str> = order_event["properties"]
        .as_array()
        .expect("props")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(props.contains(&"products[].brand"), "{props:?}");
}
