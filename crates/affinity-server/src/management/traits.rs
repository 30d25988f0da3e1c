//! `/api/v1/traits`: define personalized-items traits and see where they stand.

use std::sync::atomic::Ordering;

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
            state
                .traits
                .spawn(state.store.clone(), model, vec![definition.clone()]);
            "queued"
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
            let progress = state.traits.progress(&r.name);
            v["status"] = json!(match (&progress, r.computed_at) {
                (Some(p), _) if p.total.load(Ordering::Relaxed) > 0 => "computing",
                (Some(_), _) => "queued",
                (None, Some(_)) => "computed",
                (None, None) => "pending",
            });
            if let Some(p) = progress {
                let (done, total) = (
                    p.done.load(Ordering::Relaxed),
                    p.total.load(Ordering::Relaxed),
                );
                if total > 0 {
                    v["progress"] = json!({
                        "profiles_done": done,
                        "profiles_total": total,
                        "started_at": format_millis(p.started_at.load(Ordering::Relaxed)),
                    });
                }
            }
            v["computed_at"] = json!(r.computed_at.map(format_millis));
            v["profiles"] = json!(r.profiles);
            v["model_id"] = json!(r.model_id);
            v["created_at"] = json!(format_millis(r.created_at));
            v
        })
        .collect();
    Ok(Json(json!({ "traits": traits })))
}
