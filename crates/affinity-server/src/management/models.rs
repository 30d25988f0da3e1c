//! `/api/v1/models`: start training, list and read training runs.

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use affinity_core::timestamp::format_millis;
use affinity_engine::data::ModelRecord;

use super::json_body;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState, ErrorCode};

/// A train request is at most a seed: anything longer is not one.
const MAX_TRAIN_BODY: usize = 4 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TrainRequest {
    seed: Option<u64>,
}

#[derive(Serialize)]
pub struct TrainAccepted {
    job_id: String,
    model_id: i64,
    status: &'static str,
}

/// `POST /api/v1/models/train` → `202 {"job_id","model_id","status":"queued"}`. The body is
/// optional (`{"seed": N}`); one that is not a train request is refused, never read as "train
/// with the default seed".
pub async fn train(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<TrainAccepted>), ApiError> {
    let bytes = to_bytes(body, MAX_TRAIN_BODY).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("a train request is at most {MAX_TRAIN_BODY} bytes, e.g. {{\"seed\": 7}}"),
        )
    })?;
    let request: TrainRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        TrainRequest::default()
    } else {
        json_body::parse(Body::from(bytes)).await?
    };
    let record = state.engine.train(request.seed).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TrainAccepted {
            job_id: format!("train-{}", record.id),
            model_id: record.id,
            status: record.status.as_str(),
        }),
    ))
}

/// A training run: what was trained, on what data, how long it took, how good it is.
#[derive(Serialize)]
pub struct ModelBody {
    id: i64,
    status: &'static str,
    algorithm: Option<String>,
    params: Value,
    as_of: Option<String>,
    created_at: String,
    trained_at: Option<String>,
    duration_ms: Option<u64>,
    metrics: Value,
    candidates: Value,
    data: Value,
    error: Option<String>,
    /// Whether this model answers now.
    serving: bool,
}

impl ModelBody {
    fn new(r: ModelRecord, serving: Option<i64>) -> Self {
        Self {
            serving: serving == Some(r.id),
            id: r.id,
            status: r.status.as_str(),
            algorithm: r.algorithm,
            params: r.params,
            as_of: r.as_of.map(format_millis),
            created_at: format_millis(r.created_at),
            trained_at: r.trained_at.map(format_millis),
            duration_ms: r.duration_ms,
            metrics: r.metrics,
            candidates: r.candidates,
            data: r.data,
            error: r.error,
        }
    }
}

#[derive(Serialize)]
pub struct ModelList {
    models: Vec<ModelBody>,
}

/// `GET /api/v1/models?limit=`: newest first.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ModelList>, ApiError> {
    let limit = params.number("limit", 50, 1, 500)?;
    let records = state.engine.models(limit).await?;
    let serving = state.engine.serving_model_id();
    Ok(Json(ModelList {
        models: records
            .into_iter()
            .map(|r| ModelBody::new(r, serving))
            .collect(),
    }))
}

/// `GET /api/v1/models/{id}` (or the job id `train-N`).
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelBody>, ApiError> {
    let id: i64 = id
        .strip_prefix("train-")
        .unwrap_or(&id)
        .parse()
        .map_err(|_| {
            ApiError::invalid_parameter(format!(
                "model id {id:?} must be a number (or a job id train-N)"
            ))
        })?;
    let record = state.engine.model(id).await?;
    Ok(Json(ModelBody::new(
        record,
        state.engine.serving_model_id(),
    )))
}
