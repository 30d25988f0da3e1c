//! The audience benchmarks' learner flags (shared with `#[path] mod`): `--learner
//! auto|logistic|boosted`, `--l2`, and the trees' `--depth`, `--trees`, `--learning-rate`,
//! `--bins`, `--min-hessian`, `--lambda`, `--patience`. Only for tuning on the benchmarks'
//! own backtests (`--internal-only`).

use std::collections::HashMap;
use std::error::Error;

use affinity_model::propensity::{AudienceOptions, LearnerChoice};

pub fn audience_options(
    flags: &HashMap<String, String>,
) -> Result<AudienceOptions, Box<dyn Error + Send + Sync>> {
    let mut o = AudienceOptions::default();
    if let Some(v) = flags.get("learner") {
        o.learner = match v.as_str() {
            "auto" => LearnerChoice::Auto,
            "logistic" => LearnerChoice::Logistic,
            "boosted" => LearnerChoice::Boosted,
            _ => return Err(format!("--learner auto|logistic|boosted, got {v}").into()),
        };
    }
    if let Some(v) = flags.get("l2") {
        o.l2 = v.parse()?;
    }
    let b = &mut o.boosting;
    if let Some(v) = flags.get("depth") {
        b.max_depth = v.parse()?;
    }
    if let Some(v) = flags.get("trees") {
        b.max_trees = v.parse()?;
    }
    if let Some(v) = flags.get("learning-rate") {
        b.learning_rate = v.parse()?;
    }
    if let Some(v) = flags.get("bins") {
        b.max_bins = v.parse()?;
    }
    if let Some(v) = flags.get("min-hessian") {
        b.min_child_hessian = v.parse()?;
    }
    if let Some(v) = flags.get("lambda") {
        b.lambda = v.parse()?;
    }
    if let Some(v) = flags.get("patience") {
        b.patience = v.parse()?;
    }
    o.validate()?;
    Ok(o)
}

/// A one-line description of the learner settings, for the benchmark's header.
pub fn describe(o: &AudienceOptions) -> String {
    let b = &o.boosting;
    format!(
        "learner {:?} (logistic l2 {}; trees depth {} up to {} trees, learning rate {}, {} bins, min child hessian {}, lambda {}, patience {})",
        o.learner,
        o.l2,
        b.max_depth,
        b.max_trees,
        b.learning_rate,
        b.max_bins,
        b.min_child_hessian,
        b.lambda,
        b.patience
    )
}
