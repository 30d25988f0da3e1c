//! `TestApp`: a real server on an ephemeral port over a temporary store.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

use affinity_engine::{Engine, EngineConfig};
use affinity_server::{AppState, Limits, ServerConfig, serve};

pub const WRITE_KEY: &str = "wk_test";
pub const ADMIN: &str = "adm_test";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The server's engine, for what HTTP does not show (queue peaks, cached contexts).
    pub engine: Engine,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        limits: Limits::default(),
        engine: EngineConfig {
            data_dir: dir.to_path_buf(),
            write_keys: vec![WRITE_KEY.into(), "wk_second_source".into()],
            admin_token: Some(ADMIN.into()),
            profile_token: Some("prf_test".into()),
            ..EngineConfig::default()
        },
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::spawn_in(dir).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir) -> Self {
        Self::spawn_with(dir, Limits::default()).await
    }

    /// A server with tighter limits (timeouts, connection cap, rates) for the hardening tests.
    pub async fn spawn_with(dir: tempfile::TempDir, limits: Limits) -> Self {
        let mut config = config(dir.path());
        config.limits = limits;
        Self::spawn_configured(dir, config).await
    }

    /// A server with `config` (made from [`config`] for `dir`, then changed).
    pub async fn spawn_configured(dir: tempfile::TempDir, config: ServerConfig) -> Self {
        let (state, _) = AppState::open(&config).expect("open");
        let engine = state.engine.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            dir,
            engine,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and returns its data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task");
        }
        // Give the writer thread (dropped with the last state) a moment to close the file.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON with the write key as Basic user.
    pub async fn track(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .basic_auth(WRITE_KEY, Some(""))
            .json(body)
            .send()
            .await
            .expect("request");
        read(r).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        read(request.send().await.expect("request")).await
    }

    /// Uploads a catalog file; `content_type` None lets the server sniff the format.
    pub async fn upload_catalog(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .client
            .post(self.url("/api/v1/catalog/items"))
            .bearer_auth(ADMIN);
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        self.send(r.body(body)).await
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("request");
        read(r).await
    }

    /// The profile's events, newest first.
    pub async fn events_of(&self, key: &str) -> Vec<Value> {
        let (status, body) = self
            .admin_get(&format!("/api/v1/profiles/{key}/events?limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    pub async fn event_count(&self, name: &str) -> u64 {
        let (_, body) = self.admin_get("/api/v1/events").await;
        body["events"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["name"] == name))
            .and_then(|e| e["count"].as_u64())
            .unwrap_or(0)
    }
}

/// Calls `probe` every 50 ms until it returns `Some`, for at most `within`; then fails the
/// test saying `what` did not happen. Background work (builds, training, audiences, traits)
/// is awaited with this, never with a fixed sleep.
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn read(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// The `field` of every entry of a 422's `error.problems`, in order.
/// Asserts an error answer: its status, and that its message mentions `fragment`.
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, fragment: &str) {
    assert_eq!(status, want, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(fragment),
        "message lacks {fragment:?}: {body}"
    );
}

pub fn problem_fields(body: &Value) -> Vec<&str> {
    body["error"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list: {body}"))
        .iter()
        .filter_map(|p| p["field"].as_str())
        .collect()
}
