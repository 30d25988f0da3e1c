//! Personalized-items traits: computed for every profile after each training (and when a
//! trait is created), written onto profiles as ordered arrays.

use rayon::prelude::*;
use serde_json::Value;

use affinity_core::item_rules::{ItemFilter, TraitDefinition};
use affinity_model::recommend::{RecommendRequest, recommend_many};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{StoreError, TraitStore};

use crate::ServerError;
use crate::catalog_state::now_ms;
use crate::training::ServingModel;

/// Users scored together: their vectors and a block of items stay in cache.
const USERS_PER_BATCH: usize = 256;

/// Computes one trait for every user of the serving model's catalog and writes it.
pub fn compute(
    store: &SqliteStore,
    model: &ServingModel,
    definition: &TraitDefinition,
) -> Result<usize, ServerError> {
    let catalog = &model.catalog;
    let column = if definition.column == affinity_core::catalog::ITEM_ID {
        None
    } else {
        Some(catalog.column(&definition.column).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "trait {} names column {:?}, which the catalog no longer has",
                definition.name, definition.column
            ))
        })?)
    };
    let filter = ItemFilter::new(catalog, &[], &definition.exclude).map_err(StoreError::Corrupt)?;
    let allow = |i: u32| filter.allows(i);
    let request = RecommendRequest {
        user: None,
        k: definition.k,
        column,
        exclude_interacted: definition.exclude_interacted,
        allow: &allow,
    };
    // Users in batches (the model scores a batch against cache-sized blocks of items), the
    // batches in parallel; collect keeps the catalog's order.
    let users: Vec<u32> = (0..catalog.users.len() as u32).collect();
    let batches: Vec<Vec<(i64, Value)>> = users
        .par_chunks(USERS_PER_BATCH)
        .map(|batch| {
            let recs = recommend_many(&model.model, catalog, batch, &request)?;
            Ok(batch
                .iter()
                .zip(recs)
                .map(|(&u, r)| {
                    (
                        catalog.users[u as usize],
                        Value::Array(r.values.into_iter().map(|(v, _)| v).collect()),
                    )
                })
                .collect())
        })
        .collect::<Result<_, affinity_model::ModelError>>()?;
    let values: Vec<(i64, Value)> = batches.into_iter().flatten().collect();
    store.write_computed_traits(&definition.name, &values, now_ms(), model.record.id)?;
    Ok(values.len())
}

/// Recomputes every defined trait; a failing one is logged and the others still run.
pub fn compute_all(store: &SqliteStore, model: &ServingModel) {
    let definitions = match store.trait_definitions() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot read trait definitions");
            return;
        }
    };
    for record in definitions {
        let definition: TraitDefinition = match serde_json::from_value(record.definition) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(name = record.name, error = %e, "unreadable trait definition");
                continue;
            }
        };
        match compute(store, model, &definition) {
            Ok(n) => tracing::info!(name = definition.name, profiles = n, "trait computed"),
            Err(e) => {
                tracing::error!(name = definition.name, error = %e, "trait computation failed")
            }
        }
    }
}
