//! The management API under `/api/v1`, admin token required. Each module holds its handlers
//! and the typed wire structs they answer with; none of them touches the store or a model:
//! they call the engine's async methods, which do blocking work on the blocking pool.

mod audiences;
mod catalog;
mod destinations;
mod events;
mod goals;
mod json_body;
mod models;
mod recommendations;
mod traits;

mod profiles;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use crate::AppState;

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
        .route(
            "/catalog/items",
            // The multipart reader's own limit (2 MB unless set) raised to the upload's.
            post(catalog::upload).layer(DefaultBodyLimit::max(catalog::MAX_UPLOAD)),
        )
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
        .route("/audiences/{id}/snapshots", get(audiences::snapshots))
        .route(
            "/audiences/{id}/destinations",
            put(audiences::set_destinations),
        )
        .route("/audiences/{id}/members", get(audiences::members))
        .route("/audiences/{id}/members.csv", get(audiences::members_csv))
        .route("/audiences/{id}/members/{user_id}", get(audiences::member))
        .route(
            "/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route(
            "/destinations/{id}",
            get(destinations::get).delete(destinations::delete),
        )
        .route("/destinations/{id}/test", post(destinations::test))
        .route(
            "/destinations/{id}/deliveries",
            get(destinations::deliveries),
        )
        .route("/destinations/{id}/retry", post(destinations::retry))
        .route(
            "/goal-recommendations",
            get(goals::list).post(goals::create),
        )
        .route(
            "/goal-recommendations/{id}",
            get(goals::get).delete(goals::delete),
        )
        .route("/goal-recommendations/{id}/refresh", post(goals::refresh))
        .route(
            "/goal-recommendations/{id}/destinations",
            put(goals::set_destinations),
        )
        .route(
            "/goal-recommendations/{id}/users/{user_id}",
            get(goals::user),
        )
        .route("/traits", get(traits::list).post(traits::create))
        .route(
            "/traits/{name}",
            get(traits::get).put(traits::update).delete(traits::delete),
        )
        .route("/traits/{name}/destinations", put(traits::set_destinations))
        .route(
            "/users/{user_id}/recommendations",
            get(recommendations::for_user),
        )
        .route("/items/{item_id}/similar", get(recommendations::similar))
        .route("/profiles/{key}", get(profiles::show))
        .route("/profiles/{key}/events", get(profiles::events))
        .route("/identity/refused-merges", get(profiles::refused_merges))
}
