//! `affinity credentials` on the data directory of a running server, and the demo's next
//! steps: the tokens it prints work with the command it prints.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Server, affinity};

fn run(args: &[&str], dir: &std::path::Path) -> String {
    let out = affinity()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The secret printed on the line after "shown only now".
fn printed_secret(output: &str) -> String {
    let mut lines = output.lines();
    lines.find(|l| l.contains("shown only now"));
    lines.next().expect("secret line").trim().to_string()
}

fn status_of(server: &Server, token: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(server.url("/api/v1/models"))
        .bearer_auth(token)
        .send()
        .expect("get")
        .status()
        .as_u16()
}

/// Polls until `token` gets `want`, for at most 5 s (the server re-reads within a second).
fn eventually(server: &Server, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = status_of(server, token);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{token}: {got}, expected {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotation_applies_to_a_running_server_and_no_secret_is_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), true);
    let old = server
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("admin_token"))
        .expect("admin token printed")
        .trim()
        .to_string();
    assert_eq!(status_of(&server, &old), 200);

    let rotated = run(&["credentials", "rotate", "admin"], dir.path());
    let new = printed_secret(&rotated);
    assert!(new.starts_with("adm_") && new.len() == 36, "{rotated}");
    eventually(&server, &new, 200);
    assert_eq!(status_of(&server, &old), 401, "the old token still works");

    // A second write key beside the first, then the first revoked.
    let key = printed_secret(&run(
        &["credentials", "rotate", "write-key", "--keep-old"],
        dir.path(),
    ));
    let list = run(&["credentials", "list"], dir.path());
    for secret in [&old, &new, &key] {
        assert!(!list.contains(secret.as_str()), "secret listed: {list}");
    }
    assert!(list.contains(&format!("{}…", &new[..8])), "{list}");
    let write_keys: Vec<&str> = list.lines().filter(|l| l.contains(" write_key ")).collect();
    assert_eq!(write_keys.len(), 2, "{list}");
    let first_id = write_keys[0].split_whitespace().next().expect("id");
    run(&["credentials", "revoke", first_id], dir.path());
    let list = run(&["credentials", "list"], dir.path());
    assert_eq!(list.matches(" write_key ").count(), 1, "{list}");
    server.kill();
}

#[test]
fn the_demo_prints_tokens_and_a_command_that_serves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let out = affinity()
        .args(["demo", "--users", "200", "--events", "3000", "--data-dir"])
        .arg(&data)
        .current_dir(dir.path())
        .stderr(Stdio::inherit())
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .trim()
            .to_string()
    };
    let admin = after("admin_token");
    // The printed command, run as printed (its first word is this binary's path).
    let command = text
        .lines()
        .skip_while(|l| !l.contains("Serve it"))
        .nth(1)
        .expect("serve command")
        .trim()
        .to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[1..3], ["serve", "--data-dir"], "{command}");
    let binary = dir.path().join(words[0]);
    assert!(
        std::path::Path::new(words[0]).is_absolute() || binary.exists(),
        "{command} does not name a runnable file"
    );
    let curl = after("curl -H 'authorization: Bearer ");
    assert!(curl.starts_with(&admin), "{curl}");

    let server = Server::start(&data, true);
    assert!(
        server.banner.is_empty(),
        "serve generated other credentials"
    );
    assert_eq!(status_of(&server, &admin), 200);
    server.kill();
}
