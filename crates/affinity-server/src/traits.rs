//! Personalized-items traits: computed for every profile after each training (and when a
//! trait is created), written onto profiles as ordered arrays.

use rayon::prelude::*;
use serde_json::Value;

use affinity_core::item_rules::{ItemFilter, TraitDefinition};
use affinity_model::recommend::{RecommendRequest, recommend};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{StoreError, TraitStore};

use crate::ServerError;
use crate::catalog_state::now_ms;
use crate::training::ServingModel;

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
    // Users are independent: score them in parallel; collect keeps the catalog's order.
    let values: Vec<(i64, Value)> = catalog
        .users
        .par_iter()
        .enumerate()
        .map(|(user, &profile)| {
            let request = RecommendRequest {
                user: Some(user as u32),
                k: definition.k,
                column,
                exclude_interacted: definition.exclude_interacted,
                allow: &allow,
            };
            let recs = recommend(&model.model, catalog, &request)?;
            Ok((
                profile,
                Value::Array(recs.values.into_iter().map(|(v, _)| v).collect()),
            ))
        })
        .collect::<Result<_, affinity_model::ModelError>>()?;
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
