//! The background work of a serving process: at start, work left unfinished by a previous
//! process is marked failed and the last ready model is loaded from its saved file; then, with
//! a catalog configured, a model is trained at once unless the loaded one was trained on every
//! event the store holds, and again every `retrain_interval` when new events arrived. Goal
//! recommendations follow: a published model recomputes them, and a store with no catalog
//! (goals need none, and then no model is trained) recomputes them itself on the same
//! interval when new events arrived. Beside it, every `audience_refresh_check`, `daily`
//! audiences whose newest snapshot is a day old get their next one.

use affinity_store::{AudienceStore, CatalogStore, EventDiscovery, GoalStore, ModelRegistry};

use crate::Engine;
use crate::engine::blocking;

impl Engine {
    /// Marks interrupted work failed, then starts the schedule and returns. Call before
    /// serving requests, so that no new run is mistaken for an interrupted one.
    pub async fn start_background(&self) {
        let store = self.store.clone();
        let interrupted = blocking(move || {
            let audiences = store.fail_unfinished_audiences(
                "interrupted: the server stopped while it was queued or computing",
            )?;
            let runs = store.fail_unfinished("interrupted: the server stopped during training")?;
            // Recomputed by the next training run (the schedule starts one with new events).
            store.fail_unfinished_goals(
                "interrupted: the server stopped while computing; the next training recomputes it",
            )?;
            Ok((audiences, runs))
        })
        .await;
        match interrupted {
            Ok((0, 0)) => {}
            Ok((audiences, runs)) => {
                tracing::warn!(audiences, runs, "marked interrupted work as failed")
            }
            Err(e) => tracing::error!(error = %e, "cannot read the model registry"),
        }
        // Messages left pending by the previous process (stopped, or killed) go out now.
        self.start_delivery();
        self.resume_backfills();
        // No separate catalog build here: with a catalog configured, the loop below starts a
        // training run at once, and the run publishes the catalog it builds before fitting
        // (two concurrent builds of a large store would each take twice as long).
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(engine.config.audience_refresh_check).await;
                engine.refresh_daily().await;
            }
        });
        let engine = self.clone();
        self.begin_loading().await;
        tokio::spawn(async move {
            let mut last_count = None;
            let mut loaded_current = engine.load_saved_model().await;
            loop {
                let store = engine.store.clone();
                let seen = blocking(move || {
                    let configured = store.catalog_config()?.is_some();
                    // One aggregate over the bounded name table, not the event listing.
                    let count = store.discovery_totals()?.track_messages;
                    Ok((configured, count))
                })
                .await;
                // The loaded model already reflects these events: no retraining for them.
                if let (true, Ok((_, count))) = (std::mem::take(&mut loaded_current), &seen) {
                    last_count = Some(*count);
                }
                match seen {
                    Ok((true, count)) if last_count != Some(count) && !engine.is_training() => {
                        last_count = Some(count);
                        engine.queue_training().await;
                    }
                    // No catalog, so no training to follow: the goals retrain on their own.
                    Ok((false, count)) if last_count != Some(count) => {
                        last_count = Some(count);
                        let (goals, store) = (engine.goals.clone(), engine.store.clone());
                        let queued = blocking(move || {
                            goals.spawn_all(store, None);
                            Ok(())
                        })
                        .await;
                        if let Err(e) = queued {
                            tracing::error!(error = %e, "cannot queue the goal computations");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cannot read the store for the schedule"),
                }
                // A saved model that could not be served is now followed by a queued run (which
                // counted itself pending), or by none: either way "loading" is over.
                engine.models.set_loading(false);
                tokio::time::sleep(engine.config.retrain_interval).await;
            }
        });
    }

    /// Queues a run with the configured seed (or joins the one already waiting).
    async fn queue_training(&self) {
        if let Err(e) = self.train(None).await {
            tracing::error!(error = %e, "cannot queue a training run");
        }
    }
}
