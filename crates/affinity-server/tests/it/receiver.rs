//! A real webhook receiver for destination tests: an axum server on port 0 that records
//! every request it accepts and answers as told.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `X-Signature` (HMAC-SHA1) and `X-Signature-256` (HMAC-SHA256) are the hex
    /// HMACs of the body with `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut sha1 = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("key");
        sha1.update(&self.body);
        let mut sha256 = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        sha256.update(&self.body);
        header("x-signature") == hex(&sha1.finalize().into_bytes())
            && header("x-signature-256") == hex(&sha256.finalize().into_bytes())
    }
}

#[derive(Clone, Default)]
struct Shared {
    /// Requests answered 2xx.
    accepted: Arc<Mutex<Vec<Received>>>,
    /// Every request, answered or refused.
    seen: Arc<Mutex<usize>>,
    /// The status to answer (200 unless told otherwise).
    status: Arc<AtomicU16>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *s.seen.lock().expect("lock") += 1;
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).expect("status");
    if status.is_success() {
        s.accepted
            .lock()
            .expect("lock")
            .push(Received { headers, body });
    }
    status
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Shared::default();
        shared.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Self { url, shared }
    }

    /// Answer every request with `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.shared.accepted.lock().expect("lock").clone()
    }

    pub fn seen(&self) -> usize {
        *self.shared.seen.lock().expect("lock")
    }
}
