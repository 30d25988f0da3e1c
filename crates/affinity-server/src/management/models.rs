//! `/api/v1/models`: start training, list and read training runs.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use affinity_core::timestamp::format_millis;
use affinity_model::training::TrainingOptions;
use affinity_store::{CatalogStore, ModelRecord, ModelRegistry};

use super::{blocking, json_body};
use crate::auth::Admin;
use crate::catalog_state::now_ms;
use crate::params::Params;
use crate::{ApiError, AppState};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TrainRequest {
    seed: Option<u64>,
}

/// `POST /api/v1/models/train` → `202 {"job_id","model_id","status":"queued"}`.
pub async fn train(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let request: TrainRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        TrainRequest::default()
    } else {
        json_body::parse(Body::from(bytes)).await?
    };
    let store = state.store.clone();
    let record = blocking(move || {
        if store.catalog_config()?.is_none() {
            return Ok(None);
        }
        store.create_model(now_ms()).map(Some)
    })
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "catalog_not_ready",
            "no catalog is configured yet: PUT /api/v1/catalog first",
        )
    })?;
    let id = record.id;
    let options = TrainingOptions::with_seed(request.seed.unwrap_or(state.seed));
    state.start_training(record, options);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": format!("train-{id}"), "model_id": id, "status": "queued"})),
    ))
}

pub fn record_json(r: &ModelRecord, serving: Option<i64>) -> Value {
    json!({
        "id": r.id,
        "status": r.status.as_str(),
        "algorithm": r.algorithm,
        "params": r.params,
        "as_of": r.as_of.map(format_millis),
        "created_at": format_millis(r.created_at),
        "trained_at": r.trained_at.map(format_millis),
        "duration_ms": r.duration_ms,
        "metrics": r.metrics,
        "candidates": r.candidates,
        "data": r.data,
        "error": r.error,
        "serving": serving == Some(r.id),
    })
}

/// `GET /api/v1/models?limit=`: newest first.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = Params(q).number("limit", 50, 1, 500)?;
    let store = state.store.clone();
    let records = blocking(move || store.models(limit)).await?;
    let serving = state.models.current().map(|m| m.record.id);
    Ok(Json(
        json!({"models": records.iter().map(|r| record_json(r, serving)).collect::<Vec<_>>()}),
    ))
}

/// `GET /api/v1/models/{id}`.
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .strip_prefix("train-")
        .unwrap_or(&id)
        .parse()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("model id {id:?} must be a number (or a job id train-N)"),
            )
        })?;
    let store = state.store.clone();
    let record = blocking(move || store.model(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no model {id}")))?;
    let serving = state.models.current().map(|m| m.record.id);
    Ok(Json(record_json(&record, serving)))
}
