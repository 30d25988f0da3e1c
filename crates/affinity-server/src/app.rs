use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::Serialize;

use crate::{ApiError, AppState, management, profile_api, request_head, tracking};

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// Everything the server answers. Tests call this with a state on a temporary directory.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(tracking::routes())
        .merge(profile_api::routes())
        .nest("/api/v1", management::routes())
        .route("/health", get(|| async { Json(Health { status: "ok" }) }))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no such path: {}", uri.path()))
        })
        .layer(axum::middleware::from_fn(request_head::check))
        .with_state(state)
}
