//! `affinity generate --goal-funnel`: a store where each kind of user converts on its own
//! items, as the command says on standard error, and that imports whole.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::affinity;

#[test]
fn a_goal_funnel_converts_each_kind_on_the_items_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("funnel.jsonl");
    let out = affinity()
        .args([
            "generate",
            "--goal-funnel",
            "--funnel-kinds",
            "2",
            "--users",
            "200",
            "--items",
            "40",
            "--events",
            "6000",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&file)
        .output()
        .expect("generate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // "kind 1 (users u<n> with n % 2 = 1) converts on sku-39, sku-37, sku-35"
    let named: Vec<Vec<String>> = (0..2)
        .map(|kind| {
            let line = stderr
                .lines()
                .find(|l| l.starts_with(&format!("kind {kind} ")))
                .unwrap_or_else(|| panic!("no line for kind {kind} in {stderr}"));
            let items = line.rsplit("converts on ").next().expect("items");
            items.split(", ").map(str::to_string).collect()
        })
        .collect();
    assert_eq!(named[1], ["sku-39", "sku-37", "sku-35"], "{stderr}");

    let messages: Vec<Value> = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // Adds and orders per (kind, named or not).
    let mut counts: HashMap<(usize, bool, &str), u32> = HashMap::new();
    for m in &messages {
        let user: usize = m["userId"].as_str().expect("userId")[1..]
            .parse()
            .expect("u<n>");
        let item = m["properties"]["product_id"].as_str().expect("product_id");
        let kind = user % 2;
        let event = m["event"].as_str().expect("event");
        assert!(
            event == "Product Added" || event == "Order Completed",
            "{m}"
        );
        *counts
            .entry((kind, named[kind].iter().any(|i| i == item), event))
            .or_default() += 1;
    }
    for kind in 0..2 {
        let rate = |named: bool| {
            f64::from(counts[&(kind, named, "Order Completed")])
                / f64::from(counts[&(kind, named, "Product Added")])
        };
        assert!(
            rate(true) > 4.0 * rate(false),
            "kind {kind}: named {} vs other {}",
            rate(true),
            rate(false)
        );
    }

    let import = affinity()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("import")
        .arg(&file)
        .arg("--json")
        .output()
        .expect("import");
    let summary: Value = serde_json::from_slice(&import.stdout).unwrap_or(Value::Null);
    assert!(import.status.success(), "{summary}");
    assert_eq!(summary["stored"], messages.len() as u64, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
}

#[test]
fn a_goal_funnel_with_repeat_purchases_is_refused() {
    let out = affinity()
        .args(["generate", "--funnel-kinds", "2", "--repeat-share", "0.5"])
        .output()
        .expect("generate");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--repeat"), "{stderr}");
}
