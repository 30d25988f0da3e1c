//! Affinity's HTTP server, the only crate that knows HTTP.
//!
//! - [`app`]: `fn app(state) -> Router`, everything the server answers.
//! - [`tracking`]: the Segment-compatible Tracking API (`/v1/*`).
//! - [`management`]: the admin API (`/api/v1/*`).
//! - [`state`]: what handlers share: the store, the group committer, the credentials.
//! - [`config`]: typed server settings (the binary layers files, env and flags into them).

pub mod app;
pub mod audiences;
pub mod auth;
pub mod catalog_state;
pub mod config;
pub mod credentials;
pub mod error;
pub mod management;
pub mod params;
pub mod profile_api;
pub mod state;
pub mod tracking;
pub mod training;
pub mod traits;

use std::future::Future;

pub use app::app;
pub use config::ServerConfig;
pub use credentials::{Credentials, GeneratedCredential};
pub use error::{ApiError, ServerError};
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Acknowledged messages are durable before their response is sent, so stopping can
/// lose nothing; dropping the last `AppState` afterwards commits whatever is still queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.start_background();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
