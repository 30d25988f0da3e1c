//! `/api/v1/audiences`: create (computed in the background), read, members (of the live or an
//! older snapshot), explanations and where a non-member stands, preview, refresh (the next
//! snapshot of the same audience, with who entered and exited), snapshots, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use affinity_core::audience::UnseenTarget;
use affinity_core::audience::{
    AudienceQuestion, AudienceSpec, MaxSize, Refresh, Target, parse_event, parse_horizon,
    parse_question, parse_target,
};
use affinity_core::timestamp::format_millis;
use affinity_engine::audience_target::RankingBasis;
use affinity_engine::audiences::{
    Audience, AudienceEstimate, Expectation, Explanation, MemberAnswer, RankingChoice, Snapshot,
    SnapshotChanges, Standing,
};
use affinity_engine::data::{Contribution, CurvePoint, Member, PropensityModel};
use affinity_engine::error::Invalid;
use affinity_engine::{EngineError, Problem};

use super::destinations::DestinationsChange;
use super::json_body;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

fn invalid(problems: Vec<(String, String)>) -> ApiError {
    EngineError::invalid(Invalid::Audience, problems.into_iter().map(Problem::from)).into()
}

/// An audience: its definition, its newest snapshot's number and status, and what its live
/// snapshot holds (size, model, estimate, changes). While a refresh computes, the members
/// and figures are still the live snapshot's.
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
    refresh: Refresh,
    /// The catalog event the audience predicts; null: any of the catalog's interactions.
    event: Option<String>,
    /// The question its ranking answers: `within_horizon`, `next_visit` or `balanced`, as
    /// resolved when the audience was created (none named: `next_visit`, or
    /// `within_horizon` when a horizon was given; `balanced` before 1 December 2026).
    question: AudienceQuestion,
    /// The newest snapshot's status.
    status: &'static str,
    /// The newest snapshot's number (1 for the first).
    snapshot: i64,
    /// The snapshot whose members the audience holds; null before the first is live.
    live_snapshot: Option<i64>,
    size: i64,
    model_id: Option<i64>,
    created_at: String,
    computed_at: Option<String>,
    estimate: Option<EstimateBody>,
    /// Why the newest snapshot failed.
    error: Option<String>,
    changes: Option<ChangesBody>,
    /// On creation: a value or item no item holds yet (accepted), with close values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<TargetWarningBody>,
}

/// A target no item holds yet: accepted, with the values the user may have meant.
#[derive(Serialize)]
struct TargetWarningBody {
    field: String,
    message: String,
    suggestions: Vec<String>,
}

impl From<UnseenTarget> for TargetWarningBody {
    fn from(w: UnseenTarget) -> Self {
        Self {
            field: w.field,
            message: w.message,
            suggestions: w.suggestions,
        }
    }
}

/// What an audience's users were ranked by.
#[derive(Serialize)]
struct BasisBody {
    /// `interactions` (the target's own), `columns` (items sharing its column values, for a
    /// target nobody engaged with yet) or `none` (nothing to rank by: the audience is empty).
    basis: &'static str,
    reason: Option<String>,
    /// Basis `columns`: the values shared, and how many of the similar items hold each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shared: Vec<SharedBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    similar_items: Option<usize>,
}

#[derive(Serialize)]
struct SharedBody {
    column: String,
    value: String,
    /// `exact`, or `band` (a number within 25%, as prices are compared).
    matched: &'static str,
    items: usize,
}

impl From<RankingBasis> for BasisBody {
    fn from(b: RankingBasis) -> Self {
        let columns = b.basis == affinity_engine::audience_target::BasisKind::Columns;
        Self {
            basis: b.basis.as_str(),
            reason: b.reason,
            shared: b
                .shared
                .into_iter()
                .map(|s| SharedBody {
                    column: s.column,
                    value: s.value,
                    matched: if s.banded { "band" } else { "exact" },
                    items: s.items,
                })
                .collect(),
            similar_items: columns.then_some(b.similar_items),
        }
    }
}

impl From<Audience> for AudienceBody {
    fn from(a: Audience) -> Self {
        let live = a.live;
        let estimate = live.as_ref().and_then(|l| l.estimate.clone());
        Self {
            id: a.id,
            name: a.name,
            target: a.spec.target,
            max_size: a.spec.max_size,
            horizon_days: a
                .spec
                .horizon_days
                .or(estimate.as_ref().map(|e| e.backtest.horizon_days)),
            control_percent: a.spec.control_percent,
            destinations: a.spec.destinations,
            refresh: a.spec.refresh,
            event: a.spec.event,
            question: a.spec.question,
            status: a.latest.status.as_str(),
            snapshot: a.latest.number,
            live_snapshot: live.as_ref().map(|l| l.number),
            size: live.as_ref().map_or(0, |l| l.size),
            model_id: live.as_ref().and_then(|l| l.model_id),
            created_at: format_millis(a.created_at),
            computed_at: live.as_ref().and_then(|l| l.computed_at).map(format_millis),
            estimate: estimate.map(EstimateBody::from),
            error: a.latest.error,
            changes: live.and_then(|l| l.changes).map(ChangesBody::from),
            warnings: Vec::new(),
        }
    }
}

/// One snapshot in `GET …/snapshots`.
#[derive(Serialize)]
pub struct SnapshotBody {
    snapshot: i64,
    status: &'static str,
    model_id: Option<i64>,
    size: i64,
    created_at: String,
    computed_at: Option<String>,
    error: Option<String>,
    /// Whether `members?snapshot=N` can still read its members.
    members_kept: bool,
    /// Against the live snapshot before it; null for a first snapshot.
    changes: Option<ChangesBody>,
}

impl From<Snapshot> for SnapshotBody {
    fn from(s: Snapshot) -> Self {
        Self {
            snapshot: s.number,
            status: s.status.as_str(),
            model_id: s.model_id,
            size: s.size,
            created_at: format_millis(s.created_at),
            computed_at: s.computed_at.map(format_millis),
            error: s.error,
            members_kept: s.members_kept,
            changes: s.changes.map(ChangesBody::from),
        }
    }
}

#[derive(Serialize)]
pub struct SnapshotList {
    audience_id: i64,
    /// Newest first.
    snapshots: Vec<SnapshotBody>,
}

/// `GET /api/v1/audiences/{id}/snapshots`.
pub async fn snapshots(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SnapshotList>, ApiError> {
    let id = audience_id(&state, &id).await?;
    let snapshots = state.engine.audience_snapshots(id).await?;
    Ok(Json(SnapshotList {
        audience_id: id,
        snapshots: snapshots.into_iter().map(SnapshotBody::from).collect(),
    }))
}

/// `?snapshot=N`: a snapshot number, or None for the live one.
fn snapshot_param(params: &Params) -> Result<Option<i64>, ApiError> {
    params
        .get("snapshot")
        .map(|s| {
            s.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "`snapshot` must be a snapshot number (1 or more), got {s:?}"
                ))
            })
        })
        .transpose()
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
    /// What users were ranked by; null for audiences computed before it was recorded (they
    /// were all ranked by the target's interactions).
    basis: Option<BasisBody>,
}

/// The best-of-heuristics guard's decision.
#[derive(Serialize)]
struct RankingBody {
    /// `learned`, `learned_next_visit`, `learned_both`, `cf_affinity`, `heuristic:<name>`,
    /// `blend:<heuristic>` or `blend_next_visit:<heuristic>` (`none` in the preview of a
    /// target nothing can rank).
    served: String,
    reason: String,
    competitors: Vec<CompetitorBody>,
    /// The question the estimate's figures are of: `next_visit` (base rate, average
    /// precision, curve and counts of the users who came back, on their next visit),
    /// `within_horizon`, or `balanced` (the horizon's figures, each competitor's next-visit
    /// figures beside them). An audience asked the next visit answers within the horizon
    /// where too few came back to measure it. Null where nothing was ranked, and in
    /// estimates stored before it was recorded.
    answered: Option<AudienceQuestion>,
}

#[derive(Serialize)]
struct CompetitorBody {
    name: String,
    average_precision: f64,
    lift_at_20: f64,
    /// On the backtest's next-visit question, when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_visit_average_precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_visit_lift_at_20: Option<f64>,
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
                    next_visit_average_precision: c.next_visit_average_precision,
                    next_visit_lift_at_20: c.next_visit_lift_at_20,
                })
                .collect(),
            answered: r.answered,
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
            basis: e.basis.map(BasisBody::from),
        }
    }
}

#[derive(Serialize)]
struct ChangesBody {
    previous_snapshot: Option<i64>,
    entered: usize,
    exited: usize,
    stayed: usize,
    entered_users: Vec<String>,
    exited_users: Vec<String>,
}

impl From<SnapshotChanges> for ChangesBody {
    fn from(c: SnapshotChanges) -> Self {
        Self {
            previous_snapshot: c.previous_snapshot,
            entered: c.entered,
            exited: c.exited,
            stayed: c.stayed,
            entered_users: c.entered_users,
            exited_users: c.exited_users,
        }
    }
}

fn parse_audience_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("audience id {id:?} must be a number")))
}

/// The audience a path's id names: an id a refresh returned before audiences kept their id
/// (v8 and earlier) names the audience its snapshot now belongs to.
async fn audience_id(state: &AppState, id: &str) -> Result<i64, ApiError> {
    let id = parse_audience_id(id)?;
    Ok(state.engine.resolve_audience_id(id).await?)
}

/// `POST /api/v1/audiences` → 202, computing.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<AudienceBody>), ApiError> {
    let body: serde_json::Value = json_body::parse(body).await?;
    let spec = AudienceSpec::parse(&body).map_err(invalid)?;
    // Every check against the store, then their problems together.
    let destinations = state
        .engine
        .check_destinations(spec.destinations.clone(), Invalid::Audience)
        .await;
    let (warning, target) = match state
        .engine
        .check_audience_target(spec.target.clone())
        .await
    {
        Ok(warning) => (warning, Ok(())),
        Err(e) => (None, Err(e)),
    };
    let event = state
        .engine
        .check_audience_event(spec.event.as_deref())
        .await;
    EngineError::together([destinations, target, event])?;
    let mut audience = AudienceBody::from(state.engine.create_audience(spec).await?);
    audience.warnings = warning.into_iter().map(TargetWarningBody::from).collect();
    Ok((StatusCode::ACCEPTED, Json(audience)))
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
    let ids = change.ids(Invalid::Audience)?;
    let audience = state
        .engine
        .set_audience_destinations(audience_id(&state, &id).await?, ids)
        .await?;
    Ok(Json(audience.into()))
}

/// `POST /api/v1/audiences/{id}/refresh` → 202: the next snapshot of the same audience.
pub async fn refresh(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AudienceBody>), ApiError> {
    let audience = state
        .engine
        .refresh_audience(audience_id(&state, &id).await?)
        .await?;
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
    Ok(Json(
        state
            .engine
            .audience(audience_id(&state, &id).await?)
            .await?
            .into(),
    ))
}

pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Not through an alias: an old snapshot's id must not delete the living audience.
    state
        .engine
        .delete_audience(parse_audience_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct MemberBody {
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
    /// The snapshot read; null while none is live.
    snapshot: Option<i64>,
    members: Vec<MemberBody>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/audiences/{id}/members?limit=&cursor=&snapshot=`: best first; `next_cursor`
/// pages on; the live snapshot unless `snapshot` names another.
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
    let snapshot = snapshot_param(&params)?;
    let (snapshot, mut page) = state
        .engine
        .audience_members(audience_id(&state, &id).await?, snapshot, after, limit + 1)
        .await?;
    let next_cursor = (page.len() > limit).then(|| page[limit - 1].rank.to_string());
    page.truncate(limit);
    Ok(Json(MembersPage {
        snapshot,
        members: page.into_iter().map(MemberBody::from).collect(),
        next_cursor,
    }))
}

/// `GET /api/v1/audiences/{id}/members.csv?snapshot=`.
pub async fn members_csv(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let snapshot = snapshot_param(&params)?;
    let bytes = state
        .engine
        .audience_members_csv(audience_id(&state, &id).await?, snapshot)
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
}

/// Where a user stands in a snapshot: `standing` is `member`, `control` (a member held out
/// of destinations), `below_cutoff`, `not_scored` or `ranking_not_kept`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum MemberExplained {
    Member {
        #[serde(flatten)]
        member: MemberBody,
        standing: &'static str,
        snapshot: i64,
        why: WhyBody,
        /// The snapshot's model: explanations are those of the snapshot that made the member.
        explained_with_model: Option<i64>,
    },
    Out {
        user_id: String,
        standing: &'static str,
        snapshot: i64,
        /// Rank among the snapshot's scored users; null when not scored.
        rank: Option<usize>,
        score: Option<f32>,
        scored_users: usize,
        /// The last member's rank and score: the audience stopped there.
        cutoff: Option<CutoffBody>,
        reason: String,
        contributions: Option<Vec<ContributionBody>>,
        model_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_note: Option<String>,
    },
}

#[derive(Serialize)]
pub struct CutoffBody {
    rank: i64,
    score: f64,
}

impl From<MemberAnswer> for MemberExplained {
    fn from(a: MemberAnswer) -> Self {
        match a.standing {
            Standing::Member { member, why } => Self::Member {
                standing: if member.control { "control" } else { "member" },
                member: member.into(),
                snapshot: a.snapshot,
                why: why.into(),
                explained_with_model: a.model_id,
            },
            Standing::Out {
                user_id,
                reason,
                rank,
                score,
                scored_users,
                cutoff,
                contributions,
                model_note,
            } => {
                let text = match (reason, &cutoff, rank) {
                    (affinity_engine::audiences::OutReason::BelowCutoff, Some(c), Some(r)) => {
                        format!(
                            "ranked {r} of {scored_users} scored users; the audience stops at rank {} (score {:.6}): the maximum size, or the floor of meaningful propensity, cut before them",
                            c.rank, c.score
                        )
                    }
                    (affinity_engine::audiences::OutReason::BelowCutoff, _, _) => {
                        "scored, but the audience took no one from the scored users".to_string()
                    }
                    (affinity_engine::audiences::OutReason::NotScored, _, _) => format!(
                        "not among the {scored_users} users the snapshot's model scored: no interactions in that model's data (new since, or only events that are not interactions)"
                    ),
                    (affinity_engine::audiences::OutReason::RankingNotKept, _, _) => format!(
                        "not a member of snapshot {}; where they ranked was not kept for this snapshot (computed before rankings were stored, or older than the kept member lists)",
                        a.snapshot
                    ),
                };
                Self::Out {
                    user_id,
                    standing: reason.as_str(),
                    snapshot: a.snapshot,
                    rank,
                    score,
                    scored_users,
                    cutoff: cutoff.map(|c| CutoffBody {
                        rank: c.rank,
                        score: c.score,
                    }),
                    reason: text,
                    contributions: contributions
                        .map(|c| c.into_iter().map(ContributionBody::from).collect()),
                    model_id: a.model_id,
                    model_note,
                }
            }
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum WhyBody {
    NotInCatalog {
        note: &'static str,
    },
    NotRecorded {
        note: String,
    },
    Explained {
        contributions: Option<Vec<ContributionBody>>,
        target_events: Vec<TargetEventBody>,
        similar_items_engaged: Vec<SimilarEngagedBody>,
    },
}

#[derive(Serialize)]
pub struct ContributionBody {
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
pub struct TargetEventBody {
    item_id: String,
    event: String,
    timestamp: String,
}

#[derive(Serialize)]
pub struct SimilarEngagedBody {
    item_id: String,
    similarity_to_target: f32,
}

impl From<Explanation> for WhyBody {
    fn from(e: Explanation) -> Self {
        match e {
            Explanation::NotInCatalog => Self::NotInCatalog {
                note: "this person is not in the serving model's catalog any more",
            },
            Explanation::NotRecorded { snapshot_model } => Self::NotRecorded {
                note: format!(
                    "this snapshot was computed before explanations were stored with snapshots, and its model ({}) no longer serves: explaining it with another model would be wrong",
                    snapshot_model.map_or("unknown".into(), |m| m.to_string())
                ),
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

/// `GET /api/v1/audiences/{id}/members/{user_id}?snapshot=`: a member and why (as the
/// snapshot's model explained them), or where a non-member ranks and why they are out.
pub async fn member(
    _: Admin,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
    params: Params,
) -> Result<Json<MemberExplained>, ApiError> {
    let snapshot = snapshot_param(&params)?;
    let answer = state
        .engine
        .audience_member(audience_id(&state, &id).await?, snapshot, user_id)
        .await?;
    Ok(Json(answer.into()))
}

/// The fields a preview takes.
const PREVIEW_FIELDS: [&str; 4] = ["target", "horizon_days", "event", "question"];

#[derive(Serialize)]
pub struct PreviewBody {
    target: Target,
    horizon_days: u32,
    /// The catalog event predicted; null: any of the catalog's interactions.
    event: Option<String>,
    /// The question the ranking answers.
    question: AudienceQuestion,
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
    /// What users were ranked by (the target's interactions, or items sharing its columns).
    basis: BasisBody,
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

/// `POST /api/v1/audiences/preview`: `{"target", "horizon_days", "event", "question"}` → the whole size
/// curve.
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
                format!(
                    "unknown field; preview fields are: {}",
                    PREVIEW_FIELDS.join(", ")
                ),
            ));
        }
    }
    let target = parse_target(body.get("target"), &mut problems);
    let horizon_days = parse_horizon(body.get("horizon_days"), &mut problems);
    let event = parse_event(body.get("event"), &mut problems);
    let question = parse_question(body.get("question"), horizon_days, &mut problems);
    let Some(target) = target.filter(|_| problems.is_empty()) else {
        return Err(invalid(problems));
    };
    let target_check = state
        .engine
        .check_audience_target(target.clone())
        .await
        .map(|_| ());
    let event_check = state.engine.check_audience_event(event.as_deref()).await;
    EngineError::together([target_check, event_check])?;
    let preview = state
        .engine
        .preview_audience(target, horizon_days, event.clone(), question)
        .await?;
    Ok(Json(PreviewBody {
        target: preview.target,
        horizon_days: preview.horizon_days,
        event,
        question,
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
        basis: BasisBody::from(preview.basis),
    }))
}
