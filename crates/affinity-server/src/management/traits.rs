//! `/api/v1/traits`: define personalized-items traits, see where they stand, change and
//! delete them by name.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use affinity_core::item_rules::{ItemRule, TraitDefinition};
use affinity_core::timestamp::format_millis;
use affinity_engine::error::Invalid;
use affinity_engine::traits::{TraitProgress, TraitUpdate, TraitView};

use super::destinations::DestinationsChange;
use super::json_body;
use crate::auth::Admin;
use crate::{ApiError, AppState, ErrorCode};

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

/// `POST /api/v1/traits`: validates, stores, and computes at once when a model serves. A
/// name already defined is `409 trait_exists` (a definition is never replaced silently).
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

/// `GET /api/v1/traits/{name}`.
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TraitBody>, ApiError> {
    Ok(Json(state.engine.trait_view(name).await?.into()))
}

/// The body of `PUT /api/v1/traits/{name}`: the fields to change. Absent fields keep their
/// stored value, so an update that does not mention `exclude` keeps every exclusion rule;
/// `"exclude": []` removes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitChange {
    /// Optional; when given it must be the name in the path (a trait cannot be renamed).
    name: Option<String>,
    column: Option<String>,
    k: Option<usize>,
    exclude_interacted: Option<bool>,
    exclude: Option<Vec<ItemRule>>,
}

/// `PUT /api/v1/traits/{name}`: changes the fields sent, keeps the others, recomputes.
pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<TraitCreated>, ApiError> {
    let change: TraitChange = json_body::parse(body).await?;
    if let Some(other) = change.name.as_deref()
        && other != name
    {
        return Err(ApiError::new(
            ErrorCode::InvalidTrait,
            format!(
                "`name` is {other:?} but the path names {name:?}: a trait cannot be renamed; \
                 create {other:?} with POST /api/v1/traits and DELETE {name:?}"
            ),
        ));
    }
    let update = TraitUpdate {
        column: change.column,
        k: change.k,
        exclude_interacted: change.exclude_interacted,
        exclude: change.exclude,
    };
    let (definition, status) = state.engine.update_trait(name, update).await?;
    Ok(Json(TraitCreated {
        definition,
        status: status.as_str(),
    }))
}

/// `PUT /api/v1/traits/{name}/destinations`: replaces the trait's destinations; one newly
/// added first receives every profile's current value.
pub async fn set_destinations(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<TraitBody>, ApiError> {
    let change: DestinationsChange = json_body::parse(body).await?;
    let ids = change.ids(Invalid::Trait)?;
    Ok(Json(
        state.engine.set_trait_destinations(name, ids).await?.into(),
    ))
}

/// `DELETE /api/v1/traits/{name}`: the definition and its values on every profile.
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_trait(name).await?;
    Ok(StatusCode::NO_CONTENT)
}
