//! `/api/v1/goal-recommendations`: goal-based recommendations (an outcome, the exposure that
//! leads to it, a control group), their quality figures, and each user's list.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use affinity_core::goal::GoalDefinition;
use affinity_core::timestamp::format_millis;
use affinity_engine::error::Invalid;
use affinity_engine::goals::{GoalList, GoalView, StoredQuality};

use super::destinations::DestinationsChange;
use super::json_body;
use crate::auth::Admin;
use crate::{ApiError, AppState};

#[derive(Serialize)]
pub struct GoalBody {
    id: i64,
    #[serde(flatten)]
    definition: GoalDefinition,
    /// The profile trait key (`<key>` and `<key>_is_control`).
    key: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The model serving when the lists were computed (the goal fits its own parts).
    model_id: Option<i64>,
    computed_at: Option<String>,
    created_at: String,
    /// Users with a list.
    users: i64,
    quality: Option<QualityBody>,
}

#[derive(Serialize)]
pub struct GoalCreated {
    #[serde(flatten)]
    goal: GoalBody,
    /// Events and properties never received, with the closest names that were.
    warnings: Vec<String>,
}

/// NDCG@k or recall@k of the goal lists and of each baseline on the holdout.
#[derive(Serialize)]
struct Compared {
    goal: f64,
    popularity: f64,
    best_converting: f64,
    personal: f64,
}

#[derive(Serialize)]
struct HoldoutBody {
    k: usize,
    /// Users whose newest exposures were held out (and had an outcome there).
    users: usize,
    outcomes: usize,
    ndcg: Compared,
    recall: Compared,
    conversion_weight: f32,
    clusters: usize,
    exclude_exposed: bool,
    /// Weight of the user's own repeat score (0: not used) and its half-life (null: counts).
    repeat_weight: f32,
    repeat_half_life_days: Option<f64>,
    /// Share of held-out outcomes on items the user had already converted on.
    converted_again: f64,
}

#[derive(Serialize)]
struct GroupBody {
    users: u64,
    converted: u64,
    rate: f64,
}

#[derive(Serialize)]
struct ExperimentBody {
    since: String,
    recommended: GroupBody,
    control: GroupBody,
    /// Two-proportion z-test, two-sided; null while a group is empty.
    p_value: Option<f64>,
}

#[derive(Serialize)]
struct QualityBody {
    holdout: HoldoutBody,
    confidence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
    /// What the definition leaves out that users convert on (`exclude_converted` on a store
    /// where they convert on the same items again).
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    /// Outcome rates of recommended vs control users since the first lists went live; null
    /// until a recomputation after that has seen exposures.
    experiment: Option<ExperimentBody>,
    items: usize,
    as_of: String,
}

impl From<StoredQuality> for QualityBody {
    fn from(q: StoredQuality) -> Self {
        let h = q.holdout;
        Self {
            holdout: HoldoutBody {
                k: h.k,
                users: h.holdout_users,
                outcomes: h.holdout_outcomes,
                ndcg: Compared {
                    goal: h.goal.ndcg,
                    popularity: h.popularity.ndcg,
                    best_converting: h.best_converting.ndcg,
                    personal: h.personal.ndcg,
                },
                recall: Compared {
                    goal: h.goal.recall,
                    popularity: h.popularity.recall,
                    best_converting: h.best_converting.recall,
                    personal: h.personal.recall,
                },
                conversion_weight: h.conversion_weight,
                clusters: h.clusters,
                exclude_exposed: h.exclude_exposed,
                repeat_weight: h.repeat_weight,
                repeat_half_life_days: h.repeat_half_life_days,
                converted_again: h.converted_again,
            },
            confidence: h.confidence,
            warning: h.warning,
            hint: h.hint,
            experiment: q.experiment.map(|e| ExperimentBody {
                since: format_millis(e.since),
                recommended: GroupBody {
                    users: e.comparison.treated_users,
                    converted: e.comparison.treated_converted,
                    rate: e.comparison.treated_rate,
                },
                control: GroupBody {
                    users: e.comparison.control_users,
                    converted: e.comparison.control_converted,
                    rate: e.comparison.control_rate,
                },
                p_value: e.comparison.p_value,
            }),
            items: q.items,
            as_of: format_millis(q.as_of),
        }
    }
}

impl From<GoalView> for GoalBody {
    fn from(v: GoalView) -> Self {
        Self {
            id: v.record.id,
            definition: v.definition,
            key: v.record.key,
            status: v.record.status,
            error: v.record.error,
            model_id: v.record.model_id,
            computed_at: v.record.computed_at.map(format_millis),
            created_at: format_millis(v.record.created_at),
            users: v.record.users,
            quality: v.quality.map(QualityBody::from),
        }
    }
}

#[derive(Serialize)]
pub struct GoalListBody {
    goals: Vec<GoalBody>,
}

#[derive(Serialize)]
struct Scored {
    value: String,
    score: f64,
}

#[derive(Serialize)]
pub struct UserGoalBody {
    user_id: String,
    items: Vec<Scored>,
    is_control: bool,
    computed_at: String,
}

impl From<GoalList> for UserGoalBody {
    fn from(l: GoalList) -> Self {
        Self {
            user_id: l.user_id,
            items: l
                .items
                .into_iter()
                .map(|(value, score)| Scored { value, score })
                .collect(),
            is_control: l.is_control,
            computed_at: format_millis(l.computed_at),
        }
    }
}

fn goal_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::invalid_parameter(format!("goal recommendation id {id:?} must be a number"))
    })
}

/// `POST /api/v1/goal-recommendations` → 202, computing.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<GoalCreated>), ApiError> {
    let definition: GoalDefinition = json_body::parse(body).await?;
    let (goal, warnings) = state.engine.create_goal(definition).await?;
    let mut goal = GoalBody::from(goal);
    // The computation was queued after the row was read back: say what happens next.
    goal.status = "computing".into();
    Ok((StatusCode::ACCEPTED, Json(GoalCreated { goal, warnings })))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<GoalListBody>, ApiError> {
    let goals = state.engine.goals().await?;
    Ok(Json(GoalListBody {
        goals: goals.into_iter().map(GoalBody::from).collect(),
    }))
}

pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GoalBody>, ApiError> {
    Ok(Json(state.engine.goal(goal_id(&id)?).await?.into()))
}

/// `DELETE /api/v1/goal-recommendations/{id}`: the definition, its lists and profile traits.
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_goal(goal_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/goal-recommendations/{id}/users/{user_id}`.
pub async fn user(
    _: Admin,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Json<UserGoalBody>, ApiError> {
    let list = state.engine.goal_list(goal_id(&id)?, user_id).await?;
    Ok(Json(list.into()))
}

/// `POST /api/v1/goal-recommendations/{id}/refresh` → 202: recomputed from the events now
/// stored (it also is after every training run).
pub async fn refresh(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<GoalBody>), ApiError> {
    let goal = state.engine.refresh_goal(goal_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(goal.into())))
}

/// `PUT /api/v1/goal-recommendations/{id}/destinations`: replaces the goal's destinations;
/// one newly added first receives every user's current list (control users' too).
pub async fn set_destinations(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<GoalBody>, ApiError> {
    let change: DestinationsChange = json_body::parse(body).await?;
    let ids = change.ids(Invalid::Goal)?;
    let goal = state
        .engine
        .set_goal_destinations(goal_id(&id)?, ids)
        .await?;
    Ok(Json(goal.into()))
}
