//! `affinity train` and `affinity eval`: the same pipeline as the server's training job, for
//! scripts. `train` records the run in the model registry; `eval` only prints the evidence.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::ProgressBar;

use affinity_core::catalog::ModelSelection;
use affinity_core::timestamp::format_millis;
use affinity_engine::catalog::build_now;
use affinity_engine::clock::now_ms;
use affinity_engine::training::run_training;
use affinity_model::training::{Progress, TrainedModel, TrainingOptions, train};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, ModelRegistry};

#[derive(Args)]
pub struct TrainArgs {
    /// Seed for every random choice (initial factors, evaluation sample).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of the newest interactions held out to compare candidates.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
}

fn options(args: &TrainArgs) -> anyhow::Result<TrainingOptions> {
    if !(args.holdout > 0.0 && args.holdout < 0.9) {
        bail!(
            "--holdout must be between 0 and 0.9, e.g. 0.1; got {}",
            args.holdout
        );
    }
    let mut o = TrainingOptions::with_seed(args.seed);
    o.holdout_fraction = args.holdout;
    Ok(o)
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn on_progress(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    move |p| match p {
        Progress::Evaluating {
            candidate,
            index,
            total,
        } => {
            bar.set_message(format!(
                "evaluating candidate {}/{total}: {candidate}",
                index + 1
            ));
        }
        Progress::Fitting { candidate } => {
            bar.set_message(format!("fitting {candidate} on all data"))
        }
    }
}

pub fn run_train(data_dir: &Path, args: &TrainArgs) -> anyhow::Result<()> {
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("cannot open {}", data_dir.display()))?;
    let options = options(args)?;
    if store.catalog_config()?.is_none() {
        bail!(
            "no catalog is configured: run `affinity catalog FILE.json` or PUT /api/v1/catalog first"
        );
    }
    let record = store.create_model(now_ms())?;
    let bar = spinner();
    bar.set_message("building the catalog");
    let serving = run_training(&store, record, &options, None, &mut on_progress(&bar));
    bar.finish_and_clear();
    let serving = serving.context("training failed")?;
    print_report(&serving.model);
    println!(
        "model {} ready: {} in {:.1}s (recorded in the model registry)",
        serving.record.id,
        serving.model.chosen.label(),
        serving.record.duration_ms.unwrap_or(0) as f64 / 1000.0
    );
    Ok(())
}

pub fn run_eval(data_dir: &Path, args: &TrainArgs) -> anyhow::Result<()> {
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("cannot open {}", data_dir.display()))?;
    let options = options(args)?;
    let bar = spinner();
    bar.set_message("building the catalog");
    let catalog = build_now(&store)?
        .context("no catalog is configured: PUT /api/v1/catalog (or see the README) first")?;
    let model = train(&catalog, &options, &mut on_progress(&bar));
    bar.finish_and_clear();
    print_report(&model?);
    Ok(())
}

fn print_report(model: &TrainedModel) {
    match (&model.holdout, &model.holdout_skipped) {
        (Some(h), _) => match h.selection {
            ModelSelection::Random => println!(
                "random holdout: trained on {} user-item pairs, predicted {} held-out items of {} users ({} scored)",
                h.train_interactions, h.test_interactions, h.test_users, h.evaluated_users
            ),
            ModelSelection::UserTime => println!(
                "per-user time holdout: trained on {} interactions, predicted each tested user's newest items ({} held out, {} users, {} scored)",
                h.train_interactions, h.test_interactions, h.test_users, h.evaluated_users
            ),
            ModelSelection::Time => println!(
                "time holdout: trained on {} interactions up to {}, predicted the new items of {} users after it ({} scored)",
                h.train_interactions,
                format_millis(h.cutoff),
                h.test_users,
                h.evaluated_users
            ),
        },
        (None, Some(why)) => println!("no holdout: {why}"),
        (None, None) => {}
    }
    if let Some(t) = model.holdout.as_ref().and_then(|h| h.tie_break.as_ref()) {
        let tied: Vec<String> = t
            .candidates
            .iter()
            .map(|c| match c.tie_break_ndcg {
                Some(x) => format!("{} {:.4} → {x:.4}", c.label, c.ndcg),
                None => format!("{} {:.4} → not scored", c.label, c.ndcg),
            })
            .collect();
        println!(
            "tie (within {} standard errors or {}% of the best) broken on a random per-user holdout ({} users scored), ndcg@10: {}",
            t.sigmas,
            t.tolerance * 100.0,
            t.evaluated_users,
            tied.join(", ")
        );
        if let Some(e) = &t.error {
            println!("tie-break incomplete: {e}");
        }
    }
    if let Some(r) = &model.runner_up {
        println!("runner-up: {} (ndcg@10 {:.4})", r.label, r.ndcg);
    }
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>8}  params",
        "candidate", "prec@10", "recall@10", "ndcg@10", "coverage", "fit s"
    );
    for r in &model.results {
        let chosen = if r.candidate == model.chosen {
            "*"
        } else {
            " "
        };
        match &r.metrics {
            Some(m) => println!(
                "{chosen}{:<11} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>8.2}  {}",
                r.candidate.name(),
                m.precision,
                m.recall,
                m.ndcg,
                m.coverage,
                r.fit_ms as f64 / 1000.0,
                r.candidate.params()
            ),
            None => println!(
                "{chosen}{:<11} failed: {}",
                r.candidate.name(),
                r.error.as_deref().unwrap_or("?")
            ),
        }
    }
}
