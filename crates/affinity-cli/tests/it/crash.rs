//! Durability: clients stream batches while the server is killed with SIGKILL; after a
//! restart every message that got a 200 is there exactly once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ADMIN, Server, WRITE_KEY};

const CLIENTS: usize = 4;
const PER_BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), false);
    let url = server.url("/v1/batch");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        tasks.spawn(async move {
            for b in 0.. {
                let user = format!("crash-{c}-{b}");
                let batch: Vec<Value> = (0..PER_BATCH)
                    .map(|i| {
                        json!({"type": "track", "userId": user, "event": "Crash Test",
                                    "messageId": format!("{user}-{i}"), "properties": {"i": i}})
                    })
                    .collect();
                let sent = client
                    .post(&url)
                    .basic_auth(WRITE_KEY, Some(""))
                    .json(&json!({ "batch": batch }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().expect("lock").push(user),
                    _ => return b, // the server is gone
                }
            }
            unreachable!("the loop ends when the server dies")
        });
    }
    // Let the clients get well into their stream, then kill the server without warning.
    while acked.lock().expect("lock").len() < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let attempted: usize = tasks.join_all().await.into_iter().sum();
    let acked = acked.lock().expect("lock").clone();
    assert!(attempted >= acked.len());

    let server = Server::start(dir.path(), false);
    let admin = reqwest::Client::new();
    for user in &acked {
        let r = admin
            .get(server.url(&format!(
                "/api/v1/profiles/user_id:{user}/events?limit=1000"
            )))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "acknowledged batch of {user} is missing");
        let body: Value = r.json().await.expect("json");
        let mut ids: Vec<String> = body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["message_id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        let mut expected: Vec<String> = (0..PER_BATCH).map(|i| format!("{user}-{i}")).collect();
        expected.sort();
        assert_eq!(ids, expected, "batch of {user}: every message once");
    }
    // The store's counter agrees: at least the acknowledged, at most the attempted.
    let r = admin
        .get(server.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    let body: Value = r.json().await.expect("json");
    let count = body["events"][0]["count"].as_u64().expect("count") as usize;
    assert!(
        count >= acked.len() * PER_BATCH,
        "{count} < acknowledged {}",
        acked.len() * PER_BATCH
    );
    assert!(count <= (attempted + CLIENTS) * PER_BATCH);
    server.kill();
}
