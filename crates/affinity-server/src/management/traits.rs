//! `/api/v1/traits`: define personalized-items traits and see where they stand.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use affinity_core::item_rules::TraitDefinition;
use affinity_core::timestamp::format_millis;
use affinity_store::{CatalogStore, TraitStore};

use super::{blocking, json_body};
use crate::auth::Admin;
use crate::catalog_state::now_ms;
use crate::{ApiError, AppState};

/// `POST /api/v1/traits`: validates, stores, and computes at once when a model serves.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition: TraitDefinition = json_body::parse(body).await?;
    let store = state.store.clone();
    let config = blocking(move || store.catalog_config()).await?;
    let Some(config) = config else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "catalog_not_ready",
            "no catalog is configured yet: PUT /api/v1/catalog first",
        ));
    };
    // Columns a trait may use: the configured ones and those uploads added.
    let mut columns: Vec<String> = config.columns.iter().map(|c| c.name.clone()).collect();
    if let Some(c) = state.catalog.snapshot().catalog {
        columns.extend(
            c.column_names
                .iter()
                .filter(|n| !columns.contains(n))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    let problems = definition.problems(&columns);
    if !problems.is_empty() {
        return Err(ApiError::problems("invalid_trait", &problems));
    }
    let store = state.store.clone();
    let saved = serde_json::to_value(&definition).unwrap_or(Value::Null);
    let name = definition.name.clone();
    blocking(move || store.save_trait_definition(&name, &saved, now_ms())).await?;
    let status = match state.models.current() {
        Some(model) => {
            let store = state.store.clone();
            let d = definition.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = crate::traits::compute(&store, &model, &d) {
                    tracing::error!(name = d.name, error = %e, "trait computation failed");
                }
            });
            "computing"
        }
        None => "waiting_for_model",
    };
    let mut out = serde_json::to_value(&definition).unwrap_or(Value::Null);
    out["status"] = json!(status);
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /api/v1/traits`.
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let records = blocking(move || store.trait_definitions()).await?;
    let traits: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let mut v = r.definition;
            v["status"] = json!(if r.computed_at.is_some() {
                "computed"
            } else {
                "pending"
            });
            v["computed_at"] = json!(r.computed_at.map(format_millis));
            v["profiles"] = json!(r.profiles);
            v["model_id"] = json!(r.model_id);
            v["created_at"] = json!(format_millis(r.created_at));
            v
        })
        .collect();
    Ok(Json(json!({ "traits": traits })))
}
