//! The management API under `/api/v1`, admin token required.

mod audiences;
mod catalog;
mod events;
mod json_body;
mod models;
mod recommendations;
mod traits;

pub use recommendations::boolean;
mod profiles;

use axum::Router;
use axum::routing::{get, post};

use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(events::list))
        .route(
            "/events/{event}/properties/{property}/values",
            get(events::values),
        )
        .route("/catalog", get(catalog::get).put(catalog::put))
        .route(
            "/catalog/columns/{column}/values",
            get(catalog::column_values),
        )
        .route("/catalog/items", post(catalog::upload))
        .route("/catalog/items/{item_id}", get(catalog::item))
        .route("/models", get(models::list))
        .route("/models/train", post(models::train))
        .route("/models/{id}", get(models::get))
        .route("/audiences", get(audiences::list).post(audiences::create))
        .route("/audiences/preview", post(audiences::preview))
        .route(
            "/audiences/{id}",
            get(audiences::get).delete(audiences::delete),
        )
        .route("/audiences/{id}/refresh", post(audiences::refresh))
        .route("/audiences/{id}/members", get(audiences::members))
        .route("/audiences/{id}/members.csv", get(audiences::members_csv))
        .route("/audiences/{id}/members/{user_id}", get(audiences::member))
        .route("/traits", get(traits::list).post(traits::create))
        .route(
            "/users/{user_id}/recommendations",
            get(recommendations::for_user),
        )
        .route("/items/{item_id}/similar", get(recommendations::similar))
        .route("/profiles/{key}", get(profiles::show))
        .route("/profiles/{key}/events", get(profiles::events))
}

/// Runs blocking store work off the async runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, affinity_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })?
        .map_err(ApiError::from)
}
