//! `affinity serve`: first-start credentials, persistence across restarts, graceful SIGTERM.

use serde_json::json;

use crate::support::Server;

#[test]
fn first_start_generates_and_prints_credentials_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), true);
    let banner = server.banner.join("\n");
    let value_of = |name: &str| {
        server
            .banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} not printed: {banner}"))
    };
    let write_key = value_of("write_key");
    let admin = value_of("admin_token");
    value_of("profile_token");
    assert!(
        write_key.starts_with("wk_") && admin.starts_with("adm_"),
        "{banner}"
    );

    // The printed key works.
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(server.url("/v1/track"))
        .basic_auth(&write_key, Some(""))
        .json(&json!({"userId": "u", "event": "Started"}))
        .send()
        .expect("post");
    assert_eq!(r.status(), 200);
    let status = server.terminate();
    assert!(status.success(), "SIGTERM should exit cleanly: {status:?}");

    // A restart keeps the keys and prints none.
    let server = Server::start(dir.path(), true);
    assert!(
        server.banner.is_empty(),
        "credentials printed again: {:?}",
        server.banner
    );
    let r = client
        .get(server.url("/api/v1/events"))
        .bearer_auth(&admin)
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(body["events"][0]["name"], "Started");
    server.kill();
}

#[test]
fn bad_configuration_is_refused_with_its_source() {
    let out = crate::support::affinity()
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not-an-address") && err.contains("command line"),
        "{err}"
    );
}
