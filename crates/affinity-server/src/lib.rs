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
//! - [`config`]: typed server settings (the binary layers files, env and flags into them).

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod management;
pub mod params;
pub mod profile_api;
pub mod state;
pub mod tracking;

use std::future::Future;

pub use app::app;
pub use config::ServerConfig;
pub use error::{ApiError, ErrorCode};
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Acknowledged messages are durable before their response is sent, so stopping can
/// lose nothing; dropping the last `AppState` afterwards commits whatever is still queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.engine.start_background().await;
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
