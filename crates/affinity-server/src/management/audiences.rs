//! `/api/v1/audiences`: create (computed in the background), read, members, explanations,
//! preview, refresh (a new snapshot with who entered and exited), delete.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use affinity_core::audience::{AudienceSpec, MaxSize, Target, parse_horizon, parse_target};
use affinity_core::destination::parse_destination_ids;
use affinity_core::timestamp::format_millis;
use affinity_engine::audiences::{
    Audience, AudienceEstimate, Expectation, Explanation, RankingChoice, SnapshotChanges,
};
use affinity_engine::data::{Contribution, CurvePoint, Member, PropensityModel};
use affinity_engine::error::Invalid;
use affinity_engine::{EngineError, Problem};

use super::json_body;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

fn invalid(problems: Vec<(String, String)>) -> ApiError {
    EngineError::invalid(Invalid::Audience, problems.into_iter().map(Problem::from)).into()
}

/// An audience snapshot: its definition, status, size and estimate.
#[derive(Serialize)]
pub struct AudienceBody {
    id: i64,
    name: String,
    target: Target,
    max_size: MaxSize,
    /// The audience's own horizon, or (when it left it to the data) the one its latest
    /// estimate used; null while a data-chosen horizon is first being computed.
    horizon_days: Option<u32>,
    control_percent: f64,
    destinations: Vec<String>,
    status: &'static str,
    size: i64,
    model_id: Option<i64>,
    created_at: String,
    computed_at: Option<String>,
    estimate: Option<EstimateBody>,
    error: Option<String>,
    previous_id: Option<i64>,
    changes: Option<ChangesBody>,
}

impl From<Audience> for AudienceBody {
    fn from(a: Audience) -> Self {
        Self {
            id: a.id,
            name: a.name,
            target: a.spec.target,
            max_size: a.spec.max_size,
            horizon_days: a
                .spec
                .horizon_days
                .or(a.estimate.as_ref().map(|e| e.backtest.horizon_days)),
            control_percent: a.spec.control_percent,
            destinations: a.spec.destinations,
            status: a.status.as_str(),
            size: a.size,
            model_id: a.model_id,
            created_at: format_millis(a.created_at),
            computed_at: a.computed_at.map(format_millis),
            estimate: a.estimate.map(EstimateBody::from),
            error: a.error,
            previous_id: a.previous_id,
            changes: a.changes.map(ChangesBody::from),
        }
    }
}

/// Expected precision, recall and lift at a size.
#[derive(Serialize)]
struct ExpectationBody {
    expected_precision: f64,
    expected_recall: f64,
    lift: f64,
}

impl From<Expectation> for ExpectationBody {
    fn from(e: Expectation) -> Self {
        Self {
            expected_precision: e.expected_precision,
            expected_recall: e.expected_recall,
            lift: e.lift,
        }
    }
}

#[derive(Serialize)]
struct EstimateBody {
    #[serde(flatten)]
    at_size: Option<ExpectationBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_engaged: Option<f64>,
    base_rate: f64,
    average_precision: f64,
    positives_in_backtest: usize,
    eligible_in_backtest: usize,
    backtest: BacktestBody,
    scored_users: usize,
    target_items: usize,
    control_size: usize,
    model: Option<ModelBody>,
    fallback_reason: Option<String>,
    size_reason: Option<String>,
    /// Which ranking serves and why, with every competitor's backtest figures; null for
    /// audiences computed before the best-of-heuristics guard.
    ranking: Option<RankingBody>,
}

/// The best-of-heuristics guard's decision.
#[derive(Serialize)]
struct RankingBody {
    /// `learned`, `cf_affinity` or `heuristic:<name>`.
    served: String,
    reason: String,
    competitors: Vec<CompetitorBody>,
}

#[derive(Serialize)]
struct CompetitorBody {
    name: String,
    average_precision: f64,
    lift_at_20: f64,
}

impl From<RankingChoice> for RankingBody {
    fn from(r: RankingChoice) -> Self {
        Self {
            served: r.served,
            reason: r.reason,
            competitors: r
                .competitors
                .into_iter()
                .map(|c| CompetitorBody {
                    name: c.name,
                    average_precision: c.average_precision,
                    lift_at_20: c.lift_at_20,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct BacktestBody {
    from: String,
    to: String,
    horizon_days: u32,
    /// `given` or `from_data` (absent in estimates stored before horizons were chosen).
    #[serde(skip_serializing_if = "Option::is_none")]
    horizon_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    horizon_reason: Option<String>,
}

/// The audience's fitted ranking model.
#[derive(Serialize)]
struct ModelBody {
    family: String,
    intercept: f64,
    features: Vec<FeatureBody>,
    l2: f64,
    training_users: usize,
    training_positives: usize,
    /// Trees of a `gradient_boosted_trees` model.
    #[serde(skip_serializing_if = "Option::is_none")]
    trees: Option<usize>,
    /// The cross-fitted figures of the learners that competed.
    #[serde(skip_serializing_if = "Option::is_none")]
    chosen_because: Option<String>,
}

#[derive(Serialize)]
struct FeatureBody {
    name: String,
    coefficient: f64,
    mean: f64,
    std: f64,
}

impl From<PropensityModel> for ModelBody {
    fn from(m: PropensityModel) -> Self {
        Self {
            family: m.family,
            intercept: m.intercept,
            features: m
                .features
                .into_iter()
                .map(|f| FeatureBody {
                    name: f.name,
                    coefficient: f.coefficient,
                    mean: f.mean,
                    std: f.std,
                })
                .collect(),
            l2: m.l2,
            training_users: m.training_users,
            training_positives: m.training_positives,
            trees: m.trees.map(|t| t.trees.len()),
            chosen_because: m.chosen_because,
        }
    }
}

impl From<AudienceEstimate> for EstimateBody {
    fn from(e: AudienceEstimate) -> Self {
        Self {
            at_size: e.at_size.map(ExpectationBody::from),
            expected_engaged: e.expected_engaged,
            base_rate: e.base_rate,
            average_precision: e.average_precision,
            positives_in_backtest: e.positives_in_backtest,
            eligible_in_backtest: e.eligible_in_backtest,
            backtest: BacktestBody {
                from: e.backtest.from,
                to: e.backtest.to,
                horizon_days: e.backtest.horizon_days,
                horizon_source: e.backtest.horizon_source,
                horizon_reason: e.backtest.horizon_reason,
            },
            scored_users: e.scored_users,
            target_items: e.target_items,
            control_size: e.control_size,
            model: e.model.map(ModelBody::from),
            fallback_reason: e.fallback_reason,
            size_reason: e.size_reason,
            ranking: e.ranking.map(RankingBody::from),
        }
    }
}

#[derive(Serialize)]
struct ChangesBody {
    previous_id: i64,
    entered: usize,
    exited: usize,
    stayed: usize,
    entered_users: Vec<String>,
    exited_users: Vec<String>,
}

impl From<SnapshotChanges> for ChangesBody {
    fn from(c: SnapshotChanges) -> Self {
        Self {
            previous_id: c.previous_id,
            entered: c.entered,
            exited: c.exited,
            stayed: c.stayed,
            entered_users: c.entered_users,
            exited_users: c.exited_users,
        }
    }
}

fn audience_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("audience id {id:?} must be a number")))
}

/// `POST /api/v1/audiences` → 202, computing.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<AudienceBody>), ApiError> {
    let body: serde_json::Value = json_body::parse(body).await?;
    let spec = AudienceSpec::parse(&body).map_err(invalid)?;
    state
        .engine
        .check_destinations(spec.destinations.clone(), Invalid::Audience)
        .await?;
    let audience = state.engine.create_audience(spec).await?;
    Ok((StatusCode::ACCEPTED, Json(audience.into())))
}

/// The body of `PUT /api/v1/audiences/{id}/destinations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationsChange {
    destinations: serde_json::Value,
}

/// `PUT /api/v1/audiences/{id}/destinations`: replaces the audience's destinations; one
/// newly added first receives every current treatment member.
pub async fn set_destinations(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AudienceBody>, ApiError> {
    let change: DestinationsChange = json_body::parse(body).await?;
    let mut problems = Vec::new();
    let ids = parse_destination_ids(Some(&change.destinations), &mut problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let audience = state
        .engine
        .set_audience_destinations(audience_id(&id)?, ids)
        .await?;
    Ok(Json(audience.into()))
}

/// `POST /api/v1/audiences/{id}/refresh` → 202: a new snapshot of the same definition.
pub async fn refresh(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AudienceBody>), ApiError> {
    let audience = state.engine.refresh_audience(audience_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(audience.into())))
}

#[derive(Serialize)]
pub struct AudienceList {
    audiences: Vec<AudienceBody>,
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<AudienceList>, ApiError> {
    let audiences = state.engine.audiences().await?;
    Ok(Json(AudienceList {
        audiences: audiences.into_iter().map(AudienceBody::from).collect(),
    }))
}

pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AudienceBody>, ApiError> {
    Ok(Json(state.engine.audience(audience_id(&id)?).await?.into()))
}

pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_audience(audience_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct MemberBody {
    user_id: String,
    score: f64,
    rank: i64,
    control: bool,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            score: m.score,
            rank: m.rank,
            control: m.control,
        }
    }
}

#[derive(Serialize)]
pub struct MembersPage {
    members: Vec<MemberBody>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/audiences/{id}/members?limit=&cursor=`: best first; `next_cursor` pages on.
pub async fn members(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<MembersPage>, ApiError> {
    let limit = params.number("limit", 100, 1, 10_000)?;
    let after: i64 = match params.get("cursor") {
        None => 0,
        Some(c) => c.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "`cursor` {c:?} is not a cursor from a previous page"
            ))
        })?,
    };
    let mut page = state
        .engine
        .audience_members(audience_id(&id)?, after, limit + 1)
        .await?;
    let next_cursor = (page.len() > limit).then(|| page[limit - 1].rank.to_string());
    page.truncate(limit);
    Ok(Json(MembersPage {
        members: page.into_iter().map(MemberBody::from).collect(),
        next_cursor,
    }))
}

/// `GET /api/v1/audiences/{id}/members.csv`.
pub async fn members_csv(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = state.engine.audience_members_csv(audience_id(&id)?).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
}

#[derive(Serialize)]
pub struct MemberExplained {
    #[serde(flatten)]
    member: MemberBody,
    why: WhyBody,
    explained_with_model: i64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WhyBody {
    NotInCatalog {
        note: &'static str,
    },
    Explained {
        contributions: Option<Vec<ContributionBody>>,
        target_events: Vec<TargetEventBody>,
        similar_items_engaged: Vec<SimilarEngagedBody>,
    },
}

#[derive(Serialize)]
struct ContributionBody {
    feature: String,
    value: f64,
    standardized: f64,
    contribution: f64,
}

impl From<Contribution> for ContributionBody {
    fn from(c: Contribution) -> Self {
        Self {
            feature: c.feature,
            value: c.value,
            standardized: c.standardized,
            contribution: c.contribution,
        }
    }
}

#[derive(Serialize)]
struct TargetEventBody {
    item_id: String,
    event: String,
    timestamp: String,
}

#[derive(Serialize)]
struct SimilarEngagedBody {
    item_id: String,
    similarity_to_target: f32,
}

impl From<Explanation> for WhyBody {
    fn from(e: Explanation) -> Self {
        match e {
            Explanation::NotInCatalog => Self::NotInCatalog {
                note: "this person is not in the serving model's catalog any more",
            },
            Explanation::Explained {
                contributions,
                target_events,
                similar_items_engaged,
            } => Self::Explained {
                contributions: contributions
                    .map(|c| c.into_iter().map(ContributionBody::from).collect()),
                target_events: target_events
                    .into_iter()
                    .map(|t| TargetEventBody {
                        item_id: t.item_id,
                        event: t.event,
                        timestamp: format_millis(t.timestamp),
                    })
                    .collect(),
                similar_items_engaged: similar_items_engaged
                    .into_iter()
                    .map(|(item_id, similarity_to_target)| SimilarEngagedBody {
                        item_id,
                        similarity_to_target,
                    })
                    .collect(),
            },
        }
    }
}

/// `GET /api/v1/audiences/{id}/members/{user_id}`: one member and why.
pub async fn member(
    _: Admin,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Json<MemberExplained>, ApiError> {
    let (member, why, model_id) = state
        .engine
        .audience_member(audience_id(&id)?, user_id)
        .await?;
    Ok(Json(MemberExplained {
        member: member.into(),
        why: why.into(),
        explained_with_model: model_id,
    }))
}

/// The fields a preview takes.
const PREVIEW_FIELDS: [&str; 2] = ["target", "horizon_days"];

#[derive(Serialize)]
pub struct PreviewBody {
    target: Target,
    horizon_days: u32,
    /// How the horizon was chosen from the data, when the request did not give one.
    #[serde(skip_serializing_if = "Option::is_none")]
    horizon_reason: Option<String>,
    scored_users: usize,
    target_items: usize,
    base_rate: f64,
    average_precision: f64,
    curve: Vec<CurvePointBody>,
    at_20_percent: Option<ExpectationBody>,
    fallback_reason: Option<String>,
    /// Which ranking the curve is of (the one an audience would serve) and why.
    ranking: RankingBody,
}

#[derive(Serialize)]
struct CurvePointBody {
    fraction: f64,
    size: usize,
    expected_precision: f64,
    expected_recall: f64,
    expected_engaged: f64,
    lift: f64,
}

impl From<CurvePoint> for CurvePointBody {
    fn from(c: CurvePoint) -> Self {
        Self {
            fraction: c.fraction,
            size: c.size,
            expected_precision: c.expected_precision,
            expected_recall: c.expected_recall,
            expected_engaged: c.expected_engaged,
            lift: c.lift,
        }
    }
}

/// `POST /api/v1/audiences/preview`: `{"target", "horizon_days"}` → the whole size curve.
pub async fn preview(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<PreviewBody>, ApiError> {
    let body: serde_json::Value = json_body::parse(body).await?;
    let mut problems = Vec::new();
    for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
        if !PREVIEW_FIELDS.contains(&key.as_str()) {
            problems.push((
                key.clone(),
                "unknown field; preview takes target and horizon_days".to_string(),
            ));
        }
    }
    let target = parse_target(body.get("target"), &mut problems);
    let horizon_days = parse_horizon(body.get("horizon_days"), &mut problems);
    let Some(target) = target.filter(|_| problems.is_empty()) else {
        return Err(invalid(problems));
    };
    let preview = state.engine.preview_audience(target, horizon_days).await?;
    Ok(Json(PreviewBody {
        target: preview.target,
        horizon_days: preview.horizon_days,
        horizon_reason: preview.horizon_reason,
        scored_users: preview.scores.ranked.len(),
        target_items: preview.target_items,
        base_rate: preview.scores.base_rate,
        average_precision: preview.scores.average_precision,
        curve: preview
            .scores
            .curve
            .into_iter()
            .map(CurvePointBody::from)
            .collect(),
        at_20_percent: preview.at_20_percent.map(ExpectationBody::from),
        fallback_reason: preview.scores.fallback_reason,
        ranking: RankingBody::from(preview.scores.ranking),
    }))
}
