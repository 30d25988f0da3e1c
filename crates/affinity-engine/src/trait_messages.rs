//! Traits and goal-based recommendations delivered to destinations: a profile whose computed
//! values change gets an `identify` with them (`affinity_core::engage`), queued by the store
//! in the transaction that writes the values (`ChangeOutbox`), a page of profiles at a time;
//! a destination added to a trait or a goal first receives every current value, a page per
//! transaction, resumed at the next start when the process stopped midway.
//!
//! Goals send control users too: their list (the same items in a random order) with
//! `<key>_is_control: true`, because the tool behind the destination is what shows it, and
//! without it the control group sees nothing and the experiment cannot run.

use std::collections::HashSet;

use serde_json::Value;

use affinity_core::engage::{
    ComputationClass, EngageMessage, ProfileComputation, Recipient, profile_traits_message,
};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    BackfillOf, ChangeOutbox, DestinationStore, GoalStore, OutboxMessage, ProfileTraits,
    StoreError, TraitStore, audience_cause, goal_cause, trait_cause,
};

use crate::Engine;
use crate::clock::now_ms;
use crate::destinations::resolve_ids;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Problem, Result};
use crate::goals::GoalView;
use crate::traits::TraitView;

/// A trait as destinations know it: by its name (its id in the API).
pub(crate) fn trait_computation(name: &str) -> ProfileComputation {
    ProfileComputation {
        class: ComputationClass::Trait,
        id: name.to_string(),
        key: name.to_string(),
    }
}

/// A goal as destinations know it: its number, and its key for the traits.
pub(crate) fn goal_computation(id: i64, key: &str) -> ProfileComputation {
    ProfileComputation {
        class: ComputationClass::GoalRecommendation,
        id: id.to_string(),
        key: key.to_string(),
    }
}

/// Runs `write` with the outbox of `computation`'s changes: the destinations are read from
/// the definition inside each writing transaction, the messages built there.
pub(crate) fn with_change_outbox<T>(
    store: &SqliteStore,
    computation: &ProfileComputation,
    write: impl FnOnce(&mut ChangeOutbox<'_>) -> std::result::Result<T, StoreError>,
) -> std::result::Result<T, StoreError> {
    let destinations = named_destinations;
    let mut messages = |ids: &[i64], changes: &[ProfileTraits]| {
        profile_trait_messages(store, computation, ids, changes)
    };
    write(&mut ChangeOutbox {
        destinations: &destinations,
        messages: &mut messages,
    })
}

/// The added ones of `now` (destinations `before` did not name).
fn added(before: &[String], now: &[i64]) -> Vec<i64> {
    let before: HashSet<i64> = before.iter().filter_map(|d| d.parse().ok()).collect();
    now.iter()
        .copied()
        .filter(|d| !before.contains(d))
        .collect()
}

fn as_values(ids: &[i64]) -> Vec<Value> {
    ids.iter().map(|d| Value::String(d.to_string())).collect()
}

/// The destination ids a stored trait or goal definition names (its `destinations`, kept as
/// text once validated).
fn named_destinations(definition: &Value) -> Vec<i64> {
    definition
        .get("destinations")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|id| match id {
                    Value::String(s) => s.parse().ok(),
                    other => other.as_i64(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `identify` messages telling `destinations` the traits `computation` wrote for
/// `changes` (one per profile and destination). A profile with neither a userId nor an
/// anonymousId (merged away since) has nobody to address and is skipped. Called inside the
/// transaction writing the values, a page of profiles at a time.
fn profile_trait_messages(
    store: &SqliteStore,
    computation: &ProfileComputation,
    destinations: &[i64],
    changes: &[ProfileTraits],
) -> std::result::Result<Vec<OutboxMessage>, StoreError> {
    let profiles: Vec<i64> = changes.iter().map(|c| c.profile_id).collect();
    let recipients = store.recipients(&profiles)?;
    let now = now_ms();
    let cause = match computation.class {
        ComputationClass::Trait => trait_cause(&computation.id),
        ComputationClass::GoalRecommendation => goal_cause(computation.id.parse().unwrap_or(0)),
        ComputationClass::Audience => audience_cause(computation.id.parse().unwrap_or(0)),
    };
    let mut out = Vec::with_capacity(destinations.len() * changes.len());
    for change in changes {
        let Some(r) = recipients.get(&change.profile_id) else {
            continue;
        };
        if r.user_id.is_none() && r.anonymous_id.is_none() {
            continue;
        }
        let who = Recipient {
            user_id: r.user_id.as_deref(),
            anonymous_id: r.anonymous_id.as_deref(),
        };
        for &destination in destinations {
            let EngageMessage { message_id, body } = profile_traits_message(
                destination,
                computation,
                change.version,
                who,
                change.traits.clone(),
            );
            out.push(OutboxMessage {
                destination_id: destination,
                cause: cause.clone(),
                message_id,
                body,
                created_at: now,
            });
        }
    }
    Ok(out)
}

impl Engine {
    /// The destinations `ids` as a definition stores them (text), and a problem naming each
    /// one that is unknown.
    pub(crate) async fn known_destinations(
        &self,
        ids: Vec<String>,
    ) -> Result<(Vec<Value>, Vec<Problem>)> {
        let store = self.store.clone();
        let (resolved, problems) = blocking(move || resolve_ids(&store, &ids)).await?;
        Ok((as_values(&resolved), problems))
    }

    /// Queues, in the background, the rest of each backfill a stopped process left midway (a
    /// destination added to a trait or goal whose values were not all queued): its definition
    /// already names the destination, so without this the rest would never be sent.
    pub(crate) fn resume_backfills(&self) {
        let (store, engine) = (self.store.clone(), self.clone());
        tokio::spawn(async move {
            let resumed = blocking(move || {
                let backfills = store.unfinished_backfills()?;
                for backfill in &backfills {
                    let computation = match &backfill.of {
                        BackfillOf::Trait(name) => trait_computation(name),
                        // A goal deleted since (its backfill is then forgotten) builds nothing.
                        BackfillOf::Goal(id) => {
                            let key = store.goal(*id)?.map(|g| g.key).unwrap_or_default();
                            goal_computation(*id, &key)
                        }
                    };
                    let mut messages = |ids: &[i64], changes: &[ProfileTraits]| {
                        profile_trait_messages(&store, &computation, ids, changes)
                    };
                    store.resume_backfill(backfill, &mut messages)?;
                }
                Ok(backfills.len())
            })
            .await;
            match resumed {
                Ok(0) => {}
                Ok(backfills) => {
                    tracing::info!(backfills, "resumed the backfills of added destinations");
                    engine.wake_delivery();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot resume the backfills of added destinations")
                }
            }
        });
    }

    /// Replaces the destinations of trait `name`. One newly added first receives every
    /// current value, a page per transaction after the change (resumed after a stop); the
    /// values are not recomputed.
    pub async fn set_trait_destinations(
        &self,
        name: String,
        ids: Vec<String>,
    ) -> Result<TraitView> {
        let view = self.trait_view(name.clone()).await?;
        let store = self.store.clone();
        let n = name.clone();
        let found = blocking(move || {
            let (resolved, problems) = resolve_ids(&store, &ids)?;
            if !problems.is_empty() {
                return Err(EngineError::invalid(Invalid::Trait, problems));
            }
            let mut definition = view.definition;
            let added = added(&definition.destination_ids(&mut Vec::new()), &resolved);
            definition.destinations = as_values(&resolved);
            let saved = serde_json::to_value(&definition)
                .map_err(|e| EngineError::Internal(format!("cannot encode a trait: {e}")))?;
            let computation = trait_computation(&n);
            let mut messages = |ids: &[i64], changes: &[ProfileTraits]| {
                profile_trait_messages(&store, &computation, ids, changes)
            };
            Ok(store.set_trait_destinations(&n, &saved, &added, &mut messages)?)
        })
        .await?;
        if !found {
            return Err(EngineError::NotFound(format!("no trait named {name:?}")));
        }
        self.wake_delivery();
        self.trait_view(name).await
    }

    /// Replaces the destinations of goal `id`. One newly added first receives every user's
    /// current list (control users' too), a page per transaction after the change (resumed
    /// after a stop).
    pub async fn set_goal_destinations(&self, id: i64, ids: Vec<String>) -> Result<GoalView> {
        let goal = self.goal(id).await?;
        let store = self.store.clone();
        let found = blocking(move || {
            let (resolved, problems) = resolve_ids(&store, &ids)?;
            if !problems.is_empty() {
                return Err(EngineError::invalid(Invalid::Goal, problems));
            }
            let mut definition = goal.definition;
            let added = added(&definition.destination_ids(&mut Vec::new()), &resolved);
            definition.destinations = as_values(&resolved);
            let saved = serde_json::to_value(&definition)
                .map_err(|e| EngineError::Internal(format!("cannot encode a goal: {e}")))?;
            let computation = goal_computation(id, &goal.record.key);
            let mut messages = |ids: &[i64], changes: &[ProfileTraits]| {
                profile_trait_messages(&store, &computation, ids, changes)
            };
            Ok(store.set_goal_destinations(id, &saved, &added, &mut messages)?)
        })
        .await?;
        if !found {
            return Err(EngineError::NotFound(format!(
                "no goal recommendation {id} (GET /api/v1/goal-recommendations lists them)"
            )));
        }
        self.wake_delivery();
        self.goal(id).await
    }
}
