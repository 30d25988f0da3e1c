//! Computing audiences: the learned propensity ranking for a target, cut to the wanted size,
//! a seeded control group, and the backtested estimate at that size. Synchronous: callers run
//! it on a blocking thread.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use affinity_core::audience::{AudienceSpec, FieldProblem, resolve_target};
use affinity_core::timestamp::format_millis;
use affinity_model::propensity::{AudienceOptions, AudienceScores, CurvePoint, PropensityContext};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, Member};

use crate::ServerError;
use crate::training::ServingModel;

/// Users below this share of the base rate have no meaningful propensity: an audience stops
/// before them even if its maximum size is not reached.
const MEANINGFUL_SHARE_OF_BASE_RATE: f64 = 0.1;

pub enum AudienceError {
    /// The request names something the catalog does not have (answered as a 422).
    Target(FieldProblem),
    Server(ServerError),
}

impl From<ServerError> for AudienceError {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

impl From<affinity_model::ModelError> for AudienceError {
    fn from(e: affinity_model::ModelError) -> Self {
        Self::Server(e.into())
    }
}

impl From<affinity_store::StoreError> for AudienceError {
    fn from(e: affinity_store::StoreError) -> Self {
        Self::Server(e.into())
    }
}

impl std::fmt::Display for AudienceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Target((field, message)) => write!(f, "{field}: {message}"),
            Self::Server(e) => write!(f, "{e}"),
        }
    }
}

/// Scores the target over the serving model's catalog.
pub fn score(
    model: &ServingModel,
    spec: &AudienceSpec,
    seed: u64,
) -> Result<(Vec<u32>, Arc<PropensityContext>, AudienceScores), AudienceError> {
    let items = resolve_target(&model.catalog, &spec.target).map_err(AudienceError::Target)?;
    let context = model.propensity(spec.horizon_days)?;
    let scores = context.audience(
        &items,
        &AudienceOptions {
            seed,
            ..AudienceOptions::default()
        },
    )?;
    Ok((items, context, scores))
}

/// The curve's expectation at `fraction` of scored users, linearly between its points.
pub fn expectation_at(curve: &[CurvePoint], fraction: f64) -> Value {
    let Some(first) = curve.first() else {
        return Value::Null;
    };
    let (a, b) = match curve.iter().position(|c| c.fraction >= fraction) {
        Some(0) => (first, first),
        Some(i) => (&curve[i - 1], &curve[i]),
        None => (&curve[curve.len() - 1], &curve[curve.len() - 1]),
    };
    let t = if b.fraction > a.fraction {
        ((fraction - a.fraction) / (b.fraction - a.fraction)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |x: f64, y: f64| x + (y - x) * t;
    json!({
        "expected_precision": mix(a.expected_precision, b.expected_precision),
        "expected_recall": mix(a.expected_recall, b.expected_recall),
        "lift": mix(a.lift, b.lift),
    })
}

pub struct Computed {
    pub members: Vec<Member>,
    pub estimate: Value,
}

/// Computes an audience snapshot: members and the estimate.
pub fn compute(
    store: &SqliteStore,
    model: &ServingModel,
    spec: &AudienceSpec,
    seed: u64,
) -> Result<Computed, AudienceError> {
    let (items, context, scores) = score(model, spec, seed)?;
    let scored = scores.ranked.len();
    let wanted = spec.wanted(scored);
    let floor = match &scores.model {
        Some(_) => (scores.base_rate * MEANINGFUL_SHARE_OF_BASE_RATE) as f32,
        None => f32::NEG_INFINITY,
    };
    let selected: Vec<(u32, f32)> = scores
        .ranked
        .iter()
        .take(wanted)
        .copied()
        .take_while(|&(_, s)| s >= floor)
        .collect();
    let size_reason = (selected.len() < wanted).then(|| {
        format!(
            "only {} of the {wanted} users asked for have a meaningful propensity (at least {:.0}% of the base rate of {:.4}); the rest would add almost no engaged users",
            selected.len(),
            MEANINGFUL_SHARE_OF_BASE_RATE * 100.0,
            scores.base_rate
        )
    });
    let labels = store.profile_labels()?;
    let mut members: Vec<Member> = selected
        .iter()
        .filter_map(|&(u, s)| {
            let profile = model.catalog.users[u as usize];
            labels
                .get(&profile)
                .map(|label| (profile, label.clone(), s))
        })
        .enumerate()
        .map(|(i, (profile_id, user_id, score))| Member {
            rank: i as i64 + 1,
            profile_id,
            user_id,
            score: f64::from(score),
            control: false,
        })
        .collect();
    // The control group: a seeded random share of the selected users, so lift can be measured
    // after a campaign; the same audience and seed always hold out the same people.
    let n_control = ((spec.control_percent / 100.0) * members.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x00c0_7201));
    for &i in order.iter().take(n_control) {
        members[i].control = true;
    }
    let fraction = if scored == 0 {
        0.0
    } else {
        members.len() as f64 / scored as f64
    };
    let mut estimate = expectation_at(&scores.curve, fraction);
    if let Some(o) = estimate.as_object_mut() {
        let precision = o
            .get("expected_precision")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        o.insert(
            "expected_engaged".into(),
            json!(precision * members.len() as f64),
        );
    }
    estimate["base_rate"] = json!(scores.base_rate);
    estimate["average_precision"] = json!(scores.average_precision);
    estimate["positives_in_backtest"] = json!(scores.positives_in_backtest);
    estimate["eligible_in_backtest"] = json!(scores.eligible_in_backtest);
    estimate["backtest"] = json!({"from": format_millis(context.backtest_time()), "to": format_millis(context.as_of()),
                                  "horizon_days": spec.horizon_days});
    estimate["scored_users"] = json!(scored);
    estimate["target_items"] = json!(items.len());
    estimate["control_size"] = json!(n_control);
    estimate["model"] = serde_json::to_value(&scores.model).unwrap_or(Value::Null);
    estimate["fallback_reason"] = json!(scores.fallback_reason);
    estimate["size_reason"] = json!(size_reason);
    Ok(Computed { members, estimate })
}

/// Who entered and who left between two snapshots (up to 100 ids each are listed).
pub fn changes(before: &[Member], after: &[Member], previous_id: i64) -> Value {
    let old: HashSet<&str> = before.iter().map(|m| m.user_id.as_str()).collect();
    let new: HashSet<&str> = after.iter().map(|m| m.user_id.as_str()).collect();
    let mut entered: Vec<&str> = after
        .iter()
        .map(|m| m.user_id.as_str())
        .filter(|u| !old.contains(u))
        .collect();
    let mut exited: Vec<&str> = before
        .iter()
        .map(|m| m.user_id.as_str())
        .filter(|u| !new.contains(u))
        .collect();
    let (n_entered, n_exited) = (entered.len(), exited.len());
    entered.truncate(100);
    exited.truncate(100);
    json!({"previous_id": previous_id, "entered": n_entered, "exited": n_exited, "stayed": after.len() - n_entered,
           "entered_users": entered, "exited_users": exited})
}

/// Why a member scored as they did: feature contributions, their engagement with the target,
/// and the items they engaged with that are closest to the target.
pub fn explain(
    model: &ServingModel,
    spec: &AudienceSpec,
    estimate: &Value,
    profile_id: i64,
) -> Result<Value, AudienceError> {
    let catalog = &model.catalog;
    let Some(user) = catalog.user_index(profile_id) else {
        return Ok(json!({"note": "this person is not in the serving model's catalog any more"}));
    };
    let items = resolve_target(catalog, &spec.target).map_err(AudienceError::Target)?;
    let context = model.propensity(spec.horizon_days)?;
    let contributions = match serde_json::from_value::<
        Option<affinity_model::propensity::PropensityModel>,
    >(estimate["model"].clone())
    {
        Ok(Some(m)) => serde_json::to_value(m.contributions(&context.features(&items, user)?)?)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let target: HashSet<u32> = items.iter().copied().collect();
    let mut target_events: Vec<Value> = catalog
        .interactions
        .iter()
        .filter(|x| x.user == user && target.contains(&x.item))
        .map(|x| json!({"item_id": catalog.items[x.item as usize], "event": catalog.config.events[x.event as usize].name,
                        "timestamp": format_millis(x.timestamp)}))
        .collect();
    target_events.reverse();
    target_events.truncate(10);
    // The user's own items closest to the target, by the collaborative model's item vectors.
    let als = context.now_model();
    let dims = als.factors();
    let mut centre = vec![0f32; dims];
    for &i in &items {
        if let Ok(v) = als.item_vector(i) {
            centre.iter_mut().zip(v).for_each(|(c, x)| *c += x);
        }
    }
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let mut own: HashMap<u32, f32> = HashMap::new();
    for x in catalog
        .interactions
        .iter()
        .filter(|x| x.user == user && !target.contains(&x.item))
    {
        if let Ok(v) = als.item_vector(x.item) {
            let cos =
                v.iter().zip(&centre).map(|(a, b)| a * b).sum::<f32>() / (norm(v) * norm(&centre));
            own.insert(x.item, cos);
        }
    }
    let mut similar: Vec<(u32, f32)> = own.into_iter().collect();
    similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let similar: Vec<Value> = similar
        .into_iter()
        .take(5)
        .map(|(i, s)| json!({"item_id": catalog.items[i as usize], "similarity_to_target": s}))
        .collect();
    Ok(
        json!({"contributions": contributions, "target_events": target_events, "similar_items_engaged": similar}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<Member> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Member {
                rank: i as i64 + 1,
                profile_id: i as i64,
                user_id: id.to_string(),
                score: 1.0,
                control: false,
            })
            .collect()
    }

    #[test]
    fn changes_list_who_entered_and_who_exited() {
        let before = members(&["ann", "ben", "cid", "dan"]);
        let after = members(&["ben", "eve", "dan", "fay", "gus"]);
        let c = changes(&before, &after, 7);
        assert_eq!(
            c,
            json!({"previous_id": 7, "entered": 3, "exited": 2, "stayed": 2,
                   "entered_users": ["eve", "fay", "gus"], "exited_users": ["ann", "cid"]})
        );
        let same = changes(&after, &after, 8);
        assert_eq!(
            (
                same["entered"].as_u64(),
                same["exited"].as_u64(),
                same["stayed"].as_u64()
            ),
            (Some(0), Some(0), Some(5))
        );
    }

    #[test]
    fn the_estimate_interpolates_the_curve() {
        let point = |fraction: f64, precision: f64, lift: f64| CurvePoint {
            fraction,
            size: (fraction * 100.0) as usize,
            expected_precision: precision,
            expected_recall: fraction,
            expected_engaged: precision * fraction * 100.0,
            lift,
        };
        let curve = [point(0.1, 0.5, 5.0), point(0.2, 0.3, 3.0)];
        let mid = expectation_at(&curve, 0.15);
        assert!(
            (mid["expected_precision"].as_f64().unwrap_or(0.0) - 0.4).abs() < 1e-9,
            "{mid}"
        );
        assert!(
            (mid["lift"].as_f64().unwrap_or(0.0) - 4.0).abs() < 1e-9,
            "{mid}"
        );
        assert_eq!(
            expectation_at(&curve, 0.05)["lift"],
            5.0,
            "below the first point: the first point"
        );
        assert_eq!(
            expectation_at(&curve, 0.9)["lift"],
            3.0,
            "beyond the last point: the last point"
        );
        assert_eq!(expectation_at(&[], 0.5), Value::Null);
    }
}
