//! Destinations: where audiences (and traits) are delivered, and the messages each change
//! causes. Messages are built here (bodies by `affinity_core::engage`) and queued in the
//! store's outbox in the transaction of their cause; the delivery worker (`delivery`) sends
//! them.

use std::collections::HashSet;

use serde_json::Value;

use affinity_core::destination::{DestinationConfig, DestinationSpec};
use affinity_core::engage::{
    Change, Computation, ComputationClass, EngageMessage, Recipient, audience_key,
    audience_messages, test_message,
};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{
    AudienceStore, DeliveryCounts, DeliveryRecord, DestinationRecord, DestinationStore, Member,
    OutboxMessage, SpecSaved, StoreError, audience_cause,
};

use crate::Engine;
use crate::audiences::{Audience, SNAPSHOT_CHUNK};
use crate::clock::now_ms;
use crate::delivery::Attempt;
use crate::engine::blocking;
use crate::error::{EngineError, Invalid, Problem, Result};

/// A destination as stored, with its configuration typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub id: i64,
    pub name: String,
    pub config: DestinationConfig,
    pub created_at: i64,
}

impl TryFrom<DestinationRecord> for Destination {
    type Error = EngineError;

    fn try_from(r: DestinationRecord) -> Result<Self> {
        let config = serde_json::from_value(r.config).map_err(|e| {
            StoreError::Corrupt(format!(
                "destination {}: unreadable configuration: {e}",
                r.id
            ))
        })?;
        Ok(Self {
            id: r.id,
            name: r.name,
            config,
            created_at: r.created_at,
        })
    }
}

/// The answer of a destination's test message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub delivered: bool,
    /// The receiver's HTTP status (none for a file, or when it could not be reached).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub message_id: String,
}

/// A delivery state, for filtering the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A page of a destination's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLog {
    pub counts: DeliveryCounts,
    pub deliveries: Vec<DeliveryRecord>,
    /// The id to pass as `after` for the next page, when there may be one.
    pub next_after: Option<i64>,
}

/// The numeric ids of `ids` that name a stored destination; the others as problems.
pub(crate) fn resolve_ids(store: &SqliteStore, ids: &[String]) -> Result<(Vec<i64>, Vec<Problem>)> {
    let known: HashSet<i64> = store.destinations()?.iter().map(|d| d.id).collect();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for id in ids {
        match id.parse::<i64>() {
            Ok(n) if known.contains(&n) => found.push(n),
            _ => problems.push(Problem::new(
                "destinations",
                format!(
                    "no destination has id {id:?}: create it with POST /api/v1/destinations, or list them with GET /api/v1/destinations"
                ),
            )),
        }
    }
    Ok((found, problems))
}

/// The audience as destinations know it: its id (kept across snapshots) and its key.
fn audience_computation(id: i64, name: &str) -> Computation {
    Computation {
        class: ComputationClass::Audience,
        id,
        key: audience_key(name),
    }
}

/// The messages telling `destinations` that `changes` (members, entering or exiting) happened
/// in snapshot `snapshot` of `audience`.
fn change_messages(
    store: &SqliteStore,
    destinations: &[i64],
    audience: &Computation,
    snapshot: i64,
    changes: &[(&Member, Change)],
    now: i64,
) -> std::result::Result<Vec<OutboxMessage>, StoreError> {
    if destinations.is_empty() || changes.is_empty() {
        return Ok(Vec::new());
    }
    let profiles: Vec<i64> = changes.iter().map(|(m, _)| m.profile_id).collect();
    let recipients = store.recipients(&profiles)?;
    let mut out = Vec::with_capacity(destinations.len() * changes.len() * 2);
    for &destination in destinations {
        for (member, change) in changes {
            let stored = recipients.get(&member.profile_id);
            let who = match stored {
                Some(r) if r.user_id.is_some() || r.anonymous_id.is_some() => Recipient {
                    user_id: r.user_id.as_deref(),
                    anonymous_id: r.anonymous_id.as_deref(),
                },
                // The member's label is all that is known (a profile merged away since).
                _ => Recipient {
                    user_id: Some(&member.user_id),
                    anonymous_id: None,
                },
            };
            for EngageMessage { message_id, body } in
                audience_messages(destination, audience, snapshot, who, *change, now)
            {
                out.push(OutboxMessage {
                    destination_id: destination,
                    cause: audience_cause(audience.id),
                    message_id,
                    body,
                    created_at: now,
                });
            }
        }
    }
    Ok(out)
}

/// How many treatment members entered and exited, as queued for a snapshot's destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Queued {
    pub entered: usize,
    pub exited: usize,
}

/// Queues, under `hold`, the messages for the destinations of snapshot `number` of
/// `audience`: who entered the treatment group since the live snapshot `previous` (everyone
/// for a first snapshot) and who exited it (control members are never sent). Both lists are
/// read from the stored members with SQL, [`SNAPSHOT_CHUNK`] members at a time, and each
/// chunk's messages are queued in a transaction of their own: neither the lists nor the
/// messages are ever all in memory, and the write lock is held a chunk at a time. `None` when
/// the hold is gone.
pub(crate) fn queue_snapshot_messages(
    store: &SqliteStore,
    audience: &Audience,
    number: i64,
    previous: Option<i64>,
    hold: i64,
    now: i64,
) -> Result<Option<Queued>> {
    // A destination deleted since the audience named it is skipped.
    let destinations = if audience.spec.destinations.is_empty() {
        return Ok(Some(Queued::default()));
    } else {
        resolve_ids(store, &audience.spec.destinations)?.0
    };
    let computation = audience_computation(audience.id, &audience.name);
    let mut queued = Queued::default();
    // Snapshot numbers start at 1: a first snapshot is compared with none (all enter).
    let sides = [
        (number, previous.unwrap_or(0), Change::Entered),
        (previous.unwrap_or(0), number, Change::Exited),
    ];
    for (snapshot, other, change) in sides {
        let mut after_rank = 0;
        loop {
            let page = store.members_not_in(
                audience.id,
                snapshot,
                other,
                true,
                after_rank,
                SNAPSHOT_CHUNK,
            )?;
            let Some(last) = page.last() else {
                break;
            };
            after_rank = last.rank;
            let changes: Vec<(&Member, Change)> = page.iter().map(|m| (m, change)).collect();
            let messages =
                change_messages(store, &destinations, &computation, number, &changes, now)?;
            if store.enqueue_held(hold, &messages)?.is_none() {
                return Ok(None);
            }
            match change {
                Change::Entered => queued.entered += page.len(),
                Change::Exited => queued.exited += page.len(),
            }
        }
    }
    Ok(Some(queued))
}

impl Engine {
    /// Validates and stores a destination. A `file` destination's directory is created
    /// under the export directory.
    pub async fn create_destination(&self, body: Value) -> Result<Destination> {
        let spec = DestinationSpec::parse(&body)
            .map_err(|problems| EngineError::invalid(Invalid::Destination, problems))?;
        let store = self.store.clone();
        let config = serde_json::to_value(&spec.config)
            .map_err(|e| EngineError::Internal(format!("cannot encode a destination: {e}")))?;
        let now = now_ms();
        let kind = spec.config.kind();
        let name = spec.name.clone();
        let id = blocking(move || Ok(store.create_destination(&name, kind, &config, now)?)).await?;
        self.wake_delivery();
        Ok(Destination {
            id,
            name: spec.name,
            config: spec.config,
            created_at: now,
        })
    }

    /// Oldest first.
    pub async fn destinations(&self) -> Result<Vec<Destination>> {
        let store = self.store.clone();
        let records = blocking(move || Ok(store.destinations()?)).await?;
        records.into_iter().map(Destination::try_from).collect()
    }

    pub async fn destination(&self, id: i64) -> Result<Destination> {
        let store = self.store.clone();
        blocking(move || Ok(store.destination(id)?))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no destination {id}")))?
            .try_into()
    }

    /// Deletes a destination with its outbox: nothing more is sent to it.
    pub async fn delete_destination(&self, id: i64) -> Result<()> {
        let store = self.store.clone();
        if blocking(move || Ok(store.delete_destination(id)?)).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!("no destination {id}")))
        }
    }

    /// Sends one test message (an `identify` of `affinity-test`) now, outside the outbox,
    /// and says what the receiver answered.
    pub async fn test_destination(&self, id: i64) -> Result<TestOutcome> {
        let destination = self.destination(id).await?;
        let now = now_ms();
        let message = test_message(id, now, now);
        let attempt = self.send_now(&destination.config, message.body).await;
        Ok(match attempt {
            Attempt::Delivered { status } => TestOutcome {
                delivered: true,
                status,
                error: None,
                message_id: message.message_id,
            },
            Attempt::Retry { status, error, .. } | Attempt::Failed { status, error } => {
                TestOutcome {
                    delivered: false,
                    status,
                    error: Some(error),
                    message_id: message.message_id,
                }
            }
        })
    }

    /// A page of the destination's delivery log (oldest first, after `after`) with its
    /// counts by state.
    pub async fn deliveries(
        &self,
        id: i64,
        status: Option<DeliveryStatus>,
        after: i64,
        limit: usize,
    ) -> Result<DeliveryLog> {
        self.destination(id).await?;
        let store = self.store.clone();
        blocking(move || {
            let counts = store.delivery_counts(id)?;
            let deliveries =
                store.deliveries(id, status.map(DeliveryStatus::as_str), after, limit)?;
            let next_after = (deliveries.len() == limit)
                .then(|| deliveries.last().map(|d| d.id))
                .flatten();
            Ok(DeliveryLog {
                counts,
                deliveries,
                next_after,
            })
        })
        .await
    }

    /// Re-queues the destination's failed messages, due at once with a fresh deadline.
    pub async fn retry_deliveries(&self, id: i64) -> Result<usize> {
        self.destination(id).await?;
        let store = self.store.clone();
        let n = blocking(move || Ok(store.retry_failed(id, now_ms())?)).await?;
        self.wake_delivery();
        Ok(n)
    }

    /// Checks that every id names a destination: a 422 naming the unknown ones otherwise.
    pub async fn check_destinations(&self, ids: Vec<String>, kind: Invalid) -> Result<()> {
        let store = self.store.clone();
        let (_, problems) = blocking(move || resolve_ids(&store, &ids)).await?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::invalid(kind, problems))
        }
    }

    /// Replaces the destinations of audience `id`. A destination newly added receives every
    /// current treatment member (entering, in the audience's live snapshot), queued a chunk
    /// per transaction under a hold that the transaction saving the change releases.
    pub async fn set_audience_destinations(&self, id: i64, ids: Vec<String>) -> Result<Audience> {
        self.audience(id).await?;
        let store = self.store.clone();
        blocking(move || {
            let (resolved, problems) = resolve_ids(&store, &ids)?;
            if !problems.is_empty() {
                return Err(EngineError::invalid(Invalid::Audience, problems));
            }
            for attempt in 1..=SPEC_ATTEMPTS {
                let audience: Audience = store
                    .audience(id)?
                    .ok_or_else(|| EngineError::NotFound(format!("no audience {id}")))?
                    .try_into()?;
                match save_destinations(&store, &audience, &resolved)? {
                    SpecSaved::Saved => return Ok(()),
                    SpecSaved::NoAudience => {
                        return Err(EngineError::NotFound(format!("no audience {id}")));
                    }
                    SpecSaved::Stale => tracing::info!(
                        audience = id,
                        attempt,
                        "a snapshot went live while the added destinations' members were \
                         queued: queueing them again from the new one"
                    ),
                }
            }
            // Snapshots of one audience are computed one after the other, each taking at
            // least a scoring pass: going live this often under one change means a refresh
            // loop, not bad luck; the caller retries once it settles.
            Err(EngineError::AudienceComputing)
        })
        .await?;
        self.wake_delivery();
        self.audience(id).await
    }
}

/// Attempts at each of the two writers that race over an audience's destinations: a change
/// of them, redone when a snapshot goes live while the members it sends are queued, and a
/// snapshot's publishing, redone when they change while its messages are queued.
pub(crate) const SPEC_ATTEMPTS: usize = 3;

/// Saves `audience` with the destinations `resolved`; one newly added receives every current
/// treatment member of the live snapshot.
///
/// The members are queued a page of [`SNAPSHOT_CHUNK`] per transaction under a hold (a
/// million members must not hold SQLite's write lock for the whole backfill), and the
/// definition is saved, releasing the hold, only if the live snapshot is still the one the
/// pages were read from: a snapshot going live in between (whose messages went to the old
/// destinations only) makes it [`SpecSaved::Stale`], the hold is dropped, and the caller
/// reads the audience again. Chosen over taking the snapshots' own serialization (the
/// audience's computing status), which would refuse the change for as long as a snapshot
/// computes. A failure drops the hold with whatever it held.
fn save_destinations(
    store: &SqliteStore,
    audience: &Audience,
    resolved: &[i64],
) -> Result<SpecSaved> {
    let id = audience.id;
    let before: HashSet<String> = audience.spec.destinations.iter().cloned().collect();
    let added: Vec<i64> = resolved
        .iter()
        .copied()
        .filter(|d| !before.contains(&d.to_string()))
        .collect();
    let mut spec = audience.spec.clone();
    spec.destinations = resolved.iter().map(i64::to_string).collect();
    let spec_json = serde_json::to_value(&spec).map_err(|e| {
        EngineError::Internal(format!("cannot encode the audience definition: {e}"))
    })?;
    let live = audience.live.as_ref().map(|l| l.number);
    let backfill = audience
        .live
        .as_ref()
        .filter(|l| l.members_kept && !added.is_empty())
        .map(|l| l.number);
    let Some(number) = backfill else {
        return Ok(store.set_audience_spec(id, &spec_json, live, None)?);
    };
    let now = now_ms();
    let hold = store.create_outbox_hold(&format!("audience {id} destinations added"), now)?;
    let computation = audience_computation(id, &audience.name);
    let saved = (|| -> Result<SpecSaved> {
        let mut after_rank = 0;
        loop {
            let page = store.audience_members(id, number, after_rank, SNAPSHOT_CHUNK)?;
            let Some(last) = page.last() else {
                break;
            };
            after_rank = last.rank;
            let entering: Vec<(&Member, Change)> = page
                .iter()
                .filter(|m| !m.control)
                .map(|m| (m, Change::Entered))
                .collect();
            let messages = change_messages(store, &added, &computation, number, &entering, now)?;
            if store.enqueue_held(hold, &messages)?.is_none() {
                return Ok(SpecSaved::Stale);
            }
        }
        Ok(store.set_audience_spec(id, &spec_json, Some(number), Some(hold))?)
    })();
    if !matches!(saved, Ok(SpecSaved::Saved)) {
        store.drop_outbox_hold(hold)?;
    }
    saved
}
