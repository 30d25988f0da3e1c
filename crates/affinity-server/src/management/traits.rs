//! `/api/v1/traits`: define personalized-items traits and see where they stand.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use affinity_core::item_rules::TraitDefinition;
use affinity_core::timestamp::format_millis;
use affinity_engine::traits::{TraitProgress, TraitView};

use super::json_body;
use crate::auth::Admin;
use crate::{ApiError, AppState};

/// A trait: its definition as it was sent, and where its computation stands.
#[derive(Serialize)]
pub struct TraitBody {
    #[serde(flatten)]
    definition: TraitDefinition,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<ProgressBody>,
    computed_at: Option<String>,
    /// Profiles written by the last complete computation.
    profiles: i64,
    /// The model the last complete computation used.
    model_id: Option<i64>,
    created_at: String,
}

/// The answer to a definition: as sent, with where it stands (`queued` or
/// `waiting_for_model`).
#[derive(Serialize)]
pub struct TraitCreated {
    #[serde(flatten)]
    definition: TraitDefinition,
    status: &'static str,
}

#[derive(Serialize)]
struct ProgressBody {
    profiles_done: usize,
    profiles_total: usize,
    started_at: String,
}

impl From<TraitProgress> for ProgressBody {
    fn from(p: TraitProgress) -> Self {
        Self {
            profiles_done: p.profiles_done,
            profiles_total: p.profiles_total,
            started_at: format_millis(p.started_at),
        }
    }
}

impl From<TraitView> for TraitBody {
    fn from(v: TraitView) -> Self {
        Self {
            definition: v.definition,
            status: v.status.as_str(),
            progress: v.progress.map(ProgressBody::from),
            computed_at: v.record.computed_at.map(format_millis),
            profiles: v.record.profiles,
            model_id: v.record.model_id,
            created_at: format_millis(v.record.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct TraitList {
    traits: Vec<TraitBody>,
}

/// `POST /api/v1/traits`: validates, stores, and computes at once when a model serves.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<TraitCreated>), ApiError> {
    let definition: TraitDefinition = json_body::parse(body).await?;
    let status = state.engine.define_trait(definition.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TraitCreated {
            definition,
            status: status.as_str(),
        }),
    ))
}

/// `GET /api/v1/traits`.
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<TraitList>, ApiError> {
    let traits = state.engine.traits().await?;
    Ok(Json(TraitList {
        traits: traits.into_iter().map(TraitBody::from).collect(),
    }))
}
