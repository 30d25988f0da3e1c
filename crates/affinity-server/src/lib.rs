//! Affinity's HTTP server, the only crate that knows HTTP: routing, extraction,
//! authentication, the wire format, and the one place errors become HTTP answers. Everything
//! the product does is the engine's ([`affinity_engine::Engine`]); handlers parse, call the
//! engine's async methods and shape the answer.
//!
//! - [`app`]: `fn app(state) -> Router`, everything the server answers.
//! - [`tracking`]: the Segment-compatible Tracking API (`/v1/*`).
//! - [`management`]: the admin API (`/api/v1/*`), each module with its typed wire structs.
//! - [`profile_api`]: Segment's Profile API.
//! - [`error`]: [`ErrorCode`] with its status, and every crate's error converted to HTTP.
//! - [`auth`], [`params`]: extractors for credentials and query parameters.
//! - [`request_head`]: URI and header limits, UTF-8 paths, and JSON bodies for the router's
//!   own errors.
//! - [`config`]: typed server settings (the binary layers files, env and flags into them).

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod management;
pub mod params;
pub mod profile_api;
pub mod rate_limit;
pub mod request_head;
pub mod state;
pub mod tracking;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tower::ServiceExt;

pub use app::app;
pub use config::{Limits, ServerConfig};
pub use error::{ApiError, ErrorCode};
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Acknowledged messages are durable before their response is sent, so stopping can
/// lose nothing; dropping the last `AppState` afterwards commits whatever is still queued.
///
/// Each connection is served by hyper directly (not `axum::serve`) so that the limits hold:
/// a deadline for request headers (which also closes idle keep-alive connections), at most
/// `max_connections` at once, and the client's address for per-IP rate limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.engine.start_background().await;
    let state_engine = state.engine.clone();
    let limits = state.limits.clone();
    let router = app(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting: beyond the cap, clients queue in the kernel
        // instead of taking file descriptors the server needs.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: transient.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .max_headers(request_head::HYPER_MAX_HEADERS)
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(
                TokioIo::new(request_head::ParseErrorsAsJson::new(stream)),
                service,
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out is not an error of ours.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    // In-flight requests finish; idle connections close at once.
    graceful.shutdown().await;
    // Deliveries in flight get a moment; the rest of the outbox stays for the next start.
    state_engine.stop_delivery().await;
    Ok(())
}
