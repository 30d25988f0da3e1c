//! `affinity import`: validation and dedup as over HTTP, a summary with line numbers, and
//! idempotence (the same file twice adds nothing).

use std::path::Path;

use serde_json::Value;

use crate::support::affinity;

fn import(data: &Path, file: &Path) -> (bool, Value) {
    let out = affinity()
        .arg("--data-dir")
        .arg(data)
        .arg("import")
        .arg(file)
        .arg("--json")
        .output()
        .expect("run import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), summary)
}

#[test]
fn importing_a_generated_file_twice_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    let out = affinity()
        .args([
            "generate", "--events", "3000", "--users", "300", "--items", "200", "--out",
        ])
        .arg(&file)
        .output()
        .expect("generate");
    assert!(out.status.success());
    let lines = std::fs::read_to_string(&file)
        .expect("read")
        .lines()
        .count() as u64;
    let data = dir.path().join("data");

    let (ok, first) = import(&data, &file);
    assert!(ok, "{first}");
    assert_eq!(first["lines"], lines);
    assert_eq!(first["stored"], lines);
    assert_eq!(first["rejected"], 0);

    let (ok, second) = import(&data, &file);
    assert!(ok, "{second}");
    assert_eq!(second["stored"], 0);
    assert_eq!(second["duplicates"], lines);
}

#[test]
fn bad_lines_are_reported_by_number_and_the_rest_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mixed.jsonl");
    let text = [
        r#"{"type":"track","userId":"u1","event":"Good","messageId":"g1"}"#,
        r#"{"type":"track","userId":"u1","event":"Good""#,
        r#"{"type":"track","event":"Good","messageId":"g3"}"#,
        "",
        r#"{"type":"purchase","userId":"u1"}"#,
        r#"{"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"g6"}"#,
        // A wrong date years ahead: stored, dated at the import, counted.
        r#"{"type":"track","userId":"u1","event":"Good","messageId":"g7","timestamp":"2031-01-01T00:00:00Z"}"#,
    ]
    .join("\n");
    std::fs::write(&file, text).expect("write");
    let (ok, s) = import(&dir.path().join("data"), &file);
    assert!(ok, "{s}");
    assert_eq!(s["stored"], 3);
    assert_eq!(s["rejected"], 3);
    assert_eq!(s["future_timestamps_clamped"], 1);
    let reasons: Vec<(u64, &str)> = s["first_rejections"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, "invalid_json"),
            (3, "missing_field"),
            (5, "invalid_type")
        ]
    );
}

#[test]
fn a_file_with_nothing_valid_or_missing_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "nonsense\n").expect("write");
    let (ok, _) = import(&dir.path().join("data"), &file);
    assert!(!ok);
    let out = affinity()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["import", "/no/such/file.jsonl"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.jsonl"));
}
