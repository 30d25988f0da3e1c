//! Benchmark: the store queries behind Segment's Profile API endpoints on a store of a
//! realistic size — a profile's audience memberships (`class=audience`), identifiers
//! (`/external_ids`), activity (`/metadata`) and one page of events (`/events`) — through
//! the same store methods the server calls, on profiles drawn at random.
//!
//! The store is filled with the synthetic shop (its identifies link an anonymousId to each
//! user) and AUDIENCES live audiences of 20% of the profiles each (a member of several, as in
//! a real workspace); building it is not timed.
//!
//! Usage: cargo run --release -p affinity-store --example profile_api_queries -- [USERS] [EVENTS] [AUDIENCES] [QUERIES]
//! (defaults 100000 1000000 20 2000). Prints one JSON line with p50/p99 per query, in µs.

use std::time::Instant;

use affinity_core::Message;
use affinity_core::synthetic::{Generator, SyntheticSpec};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    AudienceStore, CatalogStore, EventLog, FinishedSnapshot, Member, ProfileEventsQuery, Profiles,
    StoreError,
};
use serde_json::json;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of `samples` (µs).
fn percentiles(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    json!({"p50_us": (at(0.5) * 10.0).round() / 10.0, "p99_us": (at(0.99) * 10.0).round() / 10.0})
}

fn main() -> Result<(), StoreError> {
    let (users, events, audiences, queries) = (
        arg(1, 100_000),
        arg(2, 1_000_000),
        arg(3, 20),
        arg(4, 2_000),
    );
    let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let store = SqliteStore::open(dir.path())?;
    let started = Instant::now();
    let spec = SyntheticSpec {
        users: users as u32,
        items: 5_000,
        events,
        ..SyntheticSpec::default()
    };
    let mut writer = store.writer()?;
    let mut chunk = Vec::with_capacity(5_000);
    for v in Generator::new(spec) {
        let m = Message::parse(&v.to_string(), None, 0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        chunk.push(m);
        if chunk.len() == 5_000 {
            writer.append(&chunk)?;
            chunk.clear();
        }
    }
    writer.append(&chunk)?;
    drop(writer);
    let mut labels: Vec<(i64, String)> = store.profile_labels()?.into_iter().collect();
    labels.sort();
    for a in 0..audiences as usize {
        let id = store.create_audience(&format!("Audience {a}"), &json!({}), "computing", 0)?;
        // Every 5th profile from a different offset: 20% each, overlapping across audiences.
        let members: Vec<Member> = labels
            .iter()
            .skip((a * 7) % 5)
            .step_by(5)
            .enumerate()
            .map(|(i, (profile, label))| Member {
                rank: i as i64 + 1,
                profile_id: *profile,
                user_id: label.clone(),
                score: 1.0 / (i + 1) as f64,
                control: i % 10 == 0,
            })
            .collect();
        store.add_snapshot_members(id, 1, &members, &[])?;
        let finished = FinishedSnapshot {
            model_id: 1,
            size: members.len() as i64,
            ranking: &[],
            estimate: &json!({}),
            changes: None,
            computed_at: 1,
            spec: None,
        };
        store.finish_audience(id, 1, &finished, None)?;
    }
    let built_s = started.elapsed().as_secs_f64();

    // Profiles drawn with a fixed LCG: the same ones on every run.
    let mut state: u64 = 42;
    let mut picks = Vec::new();
    for _ in 0..queries {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        picks.push(labels[(state >> 33) as usize % labels.len()].0);
    }
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut memberships = 0usize;
    for &p in &picks {
        let t = Instant::now();
        memberships += store.profile_audiences(p)?.len();
        times[0].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        store.profile_identifiers(p)?;
        times[1].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        store.profile_activity(p)?;
        times[2].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let page = ProfileEventsQuery {
            limit: 11,
            ..ProfileEventsQuery::default()
        };
        store.profile_events_page(p, &page)?;
        times[3].push(t.elapsed().as_secs_f64() * 1e6);
    }
    let [aud, ids, meta, evs] = times;
    println!(
        "{}",
        json!({
            "profiles": labels.len(), "events": events, "audiences": audiences,
            "members_per_audience": labels.len() / 5, "queries": queries,
            "memberships_per_profile": memberships as f64 / queries as f64,
            "build_seconds": (built_s * 10.0).round() / 10.0,
            "class_audience": percentiles(aud), "external_ids": percentiles(ids),
            "metadata": percentiles(meta), "events_page_of_10": percentiles(evs),
        })
    );
    Ok(())
}
