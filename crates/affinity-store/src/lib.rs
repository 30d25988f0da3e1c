//! Affinity's storage: small traits for what the rest of the engine needs, and the embedded
//! SQLite implementation ([`sqlite::SqliteStore`]).
//!
//! Writes go through one [`sqlite::Writer`] (SQLite allows one writer at a time); the
//! [`group_commit::GroupCommitter`] lets many concurrent clients share each commit so that
//! durability costs one fsync per group rather than per request.

pub mod error;
pub mod group_commit;
pub mod model_files;
pub mod sqlite;
pub mod types;

pub use error::StoreError;
pub use types::*;

use std::collections::HashMap;

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::CatalogBuilder;
use affinity_core::{IdKind, Message};
use serde_json::{Map, Value};

/// The append-only log of accepted Segment messages.
pub trait EventLog {
    /// Stores the messages in one transaction, in order. A message whose `messageId` is
    /// already stored is reported as [`Outcome::Duplicate`] and changes nothing.
    fn append(&mut self, messages: &[Message]) -> Result<Vec<Outcome>, StoreError>;
}

/// What pickers need: which events exist, their properties, and observed values. No method
/// loads the whole list: clients can create up to [`DiscoveryLimits::event_names`] names.
pub trait EventDiscovery {
    /// Up to `limit` events whose names sort after `after` (from the first without it).
    fn events_page(&self, after: Option<&str>, limit: usize) -> Result<EventPage, StoreError>;
    /// One event by name, with its properties.
    fn event(&self, name: &str) -> Result<Option<EventSummary>, StoreError>;
    /// Which of `names` have been received as track events, in the order given.
    fn events_known(&self, names: &[&str]) -> Result<Vec<bool>, StoreError>;
    /// Counts for the whole store, cheap enough to poll.
    fn discovery_totals(&self) -> Result<DiscoveryTotals, StoreError>;
    fn property_values(&self, query: &ValuesQuery<'_>) -> Result<PropertyValues, StoreError>;
}

/// People, as resolved from their identifiers.
pub trait Profiles {
    fn profile(&self, kind: IdKind, id: &str) -> Result<Option<Profile>, StoreError>;
    /// The newest events of a profile, including those sent under identifiers merged into it.
    fn profile_events(&self, profile_id: i64, limit: usize)
    -> Result<Vec<StoredEvent>, StoreError>;
    /// Merges refused by the identity rules, newest first: those recorded before `before`
    /// (a [`RefusedMerge::id`]; `None` for the first page), at most `limit`.
    fn refused_merges(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RefusedMerge>, StoreError>;
    /// The live audiences the profile (or a profile merged into it) is a member of, each
    /// audience's newest live snapshot only.
    fn profile_audiences(&self, profile_id: i64) -> Result<Vec<AudienceMembership>, StoreError>;
    /// First and last message times and the last message of the profile.
    fn profile_activity(&self, profile_id: i64) -> Result<ProfileActivity, StoreError>;
    /// The profile's identifiers with when a message first carried each.
    fn profile_identifiers(&self, profile_id: i64) -> Result<Vec<ProfileIdentifier>, StoreError>;
    /// A page of the profile's events (merged profiles' included), filtered and ordered.
    fn profile_events_page(
        &self,
        profile_id: i64,
        query: &ProfileEventsQuery,
    ) -> Result<Vec<StoredEvent>, StoreError>;
}

/// Small named settings kept with the data (generated credentials, for one).
pub trait Meta {
    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// Write keys and API tokens, kept as hashes (`sqlite::credentials` says why SHA-256).
pub trait CredentialStore {
    /// Every stored credential, oldest first.
    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError>;
    /// Stores the hash of `secret` as a credential of `kind`; with `replace`, the other
    /// credentials of that kind are deleted in the same transaction (a rotation).
    fn add_credential(
        &self,
        kind: CredentialKind,
        secret: &str,
        origin: &str,
        created_at: i64,
        replace: bool,
    ) -> Result<CredentialRecord, StoreError>;
    /// Deletes one credential; `None` when no credential has that id.
    fn revoke_credential(&self, id: i64) -> Result<Option<CredentialRecord>, StoreError>;
}

/// The catalog's configuration, uploaded item rows, and the events that become interactions.
pub trait CatalogStore {
    fn catalog_config(&self) -> Result<Option<CatalogConfig>, StoreError>;
    fn set_catalog_config(&self, config: &CatalogConfig) -> Result<(), StoreError>;
    /// Feeds every stored event of the configured interaction events (attributed to the
    /// profile it belongs to now, after merges) and every uploaded row to `builder`.
    /// Returns how many events were read.
    fn scan_interactions(
        &self,
        builder: &mut CatalogBuilder,
        config: &CatalogConfig,
    ) -> Result<u64, StoreError>;
    /// Adds or updates uploaded catalog rows; a row's columns override the stored ones.
    fn upload_items(
        &self,
        rows: &[(String, Map<String, Value>)],
        now: i64,
    ) -> Result<usize, StoreError>;
    /// The id to show for each live profile: its userId, else an anonymousId.
    fn profile_labels(&self) -> Result<HashMap<i64, String>, StoreError>;
}

/// Training runs and their results.
pub trait ModelRegistry {
    /// Records a new run in `queued` state and returns it with its id.
    fn create_model(&self, created_at: i64) -> Result<ModelRecord, StoreError>;
    fn save_model(&self, record: &ModelRecord) -> Result<(), StoreError>;
    /// Newest first.
    fn models(&self, limit: usize) -> Result<Vec<ModelRecord>, StoreError>;
    fn model(&self, id: i64) -> Result<Option<ModelRecord>, StoreError>;
    /// Marks runs left queued or training (by a crash or restart) as failed.
    fn fail_unfinished(&self, reason: &str) -> Result<usize, StoreError>;
}

/// Personalized-items trait definitions and the values computed onto profiles.
pub trait TraitStore {
    /// Creates or replaces a definition.
    fn save_trait_definition(
        &self,
        name: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<(), StoreError>;
    /// Stores a new definition; `false` (and nothing written) when `name` already exists.
    fn insert_trait_definition(
        &self,
        name: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<bool, StoreError>;
    /// Replaces an existing definition (clearing its last computation's record); `false`
    /// when there is none by that name.
    fn update_trait_definition(&self, name: &str, definition: &Value) -> Result<bool, StoreError>;
    /// Deletes a definition and the values it wrote onto profiles, and marks its messages not
    /// sent yet `cancelled`; `false` when there is none.
    fn delete_trait_definition(&self, name: &str) -> Result<bool, StoreError>;
    /// Deletes the values of trait `name` if it is no longer defined (a computation that was
    /// writing while the trait was deleted); returns how many were deleted.
    fn drop_undefined_computed_traits(&self, name: &str) -> Result<usize, StoreError>;
    fn trait_definition(&self, name: &str) -> Result<Option<TraitDefinitionRecord>, StoreError>;
    fn trait_definitions(&self) -> Result<Vec<TraitDefinitionRecord>, StoreError>;
    /// Writes values of trait `name` stamped `updated_at`, overwriting each profile's
    /// previous value in place (in bounded transactions). A recomputation calls this once per
    /// chunk of profiles, then [`TraitStore::finish_computed_traits`]. With `outbox`, each
    /// transaction also queues the messages of the values that differ from the stored ones
    /// (an empty list where there was none is no change).
    fn put_computed_traits(
        &self,
        name: &str,
        values: &[(i64, Value)],
        updated_at: i64,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<(), StoreError>;
    /// Replaces a definition whose values stay valid (its destinations changed), then queues
    /// `messages` for every stored value to each of `added` (those that exist), a page of
    /// profiles per transaction (`sqlite::trait_outbox::backfill` says why that order keeps
    /// each destination's newest message the current value), resumable after a stop
    /// ([`TraitStore::unfinished_backfills`]). `false` when there is no such trait.
    fn set_trait_destinations(
        &self,
        name: &str,
        definition: &Value,
        added: &[i64],
        messages: &mut TraitMessages<'_>,
    ) -> Result<bool, StoreError>;
    /// Backfills a stopped process left midway (their definitions name the destinations, but
    /// not every value was queued for them), oldest first.
    fn unfinished_backfills(&self) -> Result<Vec<TraitBackfill>, StoreError>;
    /// Queues the rest of `backfill` (trait values or goal lists after its `after`), a page
    /// per transaction as at the change, and forgets it.
    fn resume_backfill(
        &self,
        backfill: &TraitBackfill,
        messages: &mut TraitMessages<'_>,
    ) -> Result<(), StoreError>;
    /// Ends a recomputation: drops values of `name` not stamped `updated_at` (profiles the
    /// run did not reach) and records the run on the definition. With `outbox`, the same
    /// transaction queues, for each dropped value that had been sent, the trait as null.
    fn finish_computed_traits(
        &self,
        name: &str,
        updated_at: i64,
        profiles: usize,
        model_id: i64,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<(), StoreError>;
    fn computed_traits(&self, profile_id: i64) -> Result<Vec<Trait>, StoreError>;
}

/// Live snapshots whose member lists (and rankings) are kept per audience; older ones keep
/// their estimate and changes only. Ten covers a daily audience's last week and a half, and
/// bounds a large audience's footprint to ten copies of its members.
pub const KEPT_MEMBER_LISTS: i64 = 10;

/// Audiences: definitions and their numbered snapshots (status, estimate, changes, ranked
/// members).
pub trait AudienceStore {
    /// A new audience with snapshot 1 in `status` (queued or computing).
    fn create_audience(
        &self,
        name: &str,
        spec: &Value,
        status: &str,
        created_at: i64,
    ) -> Result<i64, StoreError>;
    /// Numbers audience `id`'s next snapshot and stores it in `status`. None when there is
    /// no such audience or its newest snapshot is still queued or computing.
    fn next_snapshot(
        &self,
        id: i64,
        status: &str,
        created_at: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Marks a queued snapshot computing; false when it is not queued (deleted meanwhile).
    fn start_snapshot(&self, id: i64, snapshot: i64) -> Result<bool, StoreError>;
    /// Adds a chunk of a computing snapshot's members, each with its explanation (the
    /// engine's encoding; by position in `members`, a member beyond its end stores none), in
    /// a transaction of its own: a snapshot of a million members is written a chunk at a
    /// time, without holding the store's write lock throughout. Nobody reads them until
    /// [`AudienceStore::finish_audience`] makes the snapshot live; a failed snapshot's are
    /// deleted. False (nothing stored) when the snapshot is not computing any more (its
    /// audience was deleted).
    fn add_snapshot_members(
        &self,
        id: i64,
        snapshot: i64,
        members: &[Member],
        explanations: &[String],
    ) -> Result<bool, StoreError>;
    /// Marks the snapshot live (the audience's live snapshot) and, in the same transaction,
    /// releases `hold`, under which the messages destinations are to receive about it were
    /// queued beforehand ([`DestinationStore::enqueue_held`]): both or neither, as the delivery
    /// worker sees them, in a transaction whose length does not grow with the messages. Member
    /// lists beyond [`KEPT_MEMBER_LISTS`] are dropped in it. Nothing is stored when the
    /// audience was deleted meanwhile or the hold is gone ([`SnapshotFinished::Gone`]), or
    /// when its definition is no longer `finished.spec` ([`SnapshotFinished::Stale`]).
    fn finish_audience(
        &self,
        id: i64,
        snapshot: i64,
        finished: &FinishedSnapshot<'_>,
        hold: Option<i64>,
    ) -> Result<SnapshotFinished, StoreError>;
    /// Members of snapshot `snapshot` of `id` who are not members of snapshot `other` (by
    /// userId), ranked after `after_rank`, best first, at most `limit`: who entered since
    /// `other`, or with the two swapped, who exited. With `treatment`, control members count
    /// on neither side (who entered or left the part destinations see). Computed in SQL over
    /// the stored members, a page at a time: never both lists in memory.
    fn members_not_in(
        &self,
        id: i64,
        snapshot: i64,
        other: i64,
        treatment: bool,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;
    /// How many [`AudienceStore::members_not_in`] lists (all members, control included).
    fn count_members_not_in(&self, id: i64, snapshot: i64, other: i64) -> Result<i64, StoreError>;
    /// Marks the snapshot failed and deletes the members added to it.
    fn fail_audience(&self, id: i64, snapshot: i64, error: &str) -> Result<(), StoreError>;
    fn audience(&self, id: i64) -> Result<Option<AudienceRecord>, StoreError>;
    /// The audience `id` names: itself, or for an id a v8 refresh returned (an alias the v9
    /// migration kept), the audience its snapshot now belongs to; None when neither.
    fn resolve_audience_id(&self, id: i64) -> Result<Option<i64>, StoreError>;
    /// Newest first.
    fn audiences(&self) -> Result<Vec<AudienceRecord>, StoreError>;
    /// Every snapshot of an audience, newest first.
    fn audience_snapshots(&self, id: i64) -> Result<Vec<SnapshotRecord>, StoreError>;
    fn audience_snapshot(
        &self,
        id: i64,
        snapshot: i64,
    ) -> Result<Option<SnapshotRecord>, StoreError>;
    /// Members ranked after `after_rank` (0 for the first page), best first.
    fn audience_members(
        &self,
        id: i64,
        snapshot: i64,
        after_rank: i64,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;
    /// A member of a snapshot with the explanation stored for them (None for snapshots made
    /// before explanations were stored).
    fn audience_member(
        &self,
        id: i64,
        snapshot: i64,
        user_id: &str,
    ) -> Result<Option<(Member, Option<String>)>, StoreError>;
    /// The snapshot's ranking of every scored user, None when not kept.
    fn snapshot_ranking(&self, id: i64, snapshot: i64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes an audience with its snapshots and marks its messages not sent yet (held ones
    /// included) `cancelled`.
    fn delete_audience(&self, id: i64) -> Result<bool, StoreError>;
    /// Marks snapshots left queued or computing by a stopped process as failed, deleting the
    /// members they had added, and drops every outbox hold with the rows it held (at start,
    /// none can belong to a change still in progress).
    fn fail_unfinished_audiences(&self, reason: &str) -> Result<usize, StoreError>;
}

/// Destinations and the durable outbox of messages for them.
pub trait DestinationStore {
    fn create_destination(
        &self,
        name: &str,
        kind: &str,
        config: &Value,
        created_at: i64,
    ) -> Result<i64, StoreError>;
    fn destination(&self, id: i64) -> Result<Option<DestinationRecord>, StoreError>;
    /// Oldest first.
    fn destinations(&self) -> Result<Vec<DestinationRecord>, StoreError>;
    /// Deletes a destination and its outbox (nothing more will be sent to it); `false` when
    /// there is none.
    fn delete_destination(&self, id: i64) -> Result<bool, StoreError>;
    /// Queues messages in a transaction of their own (a destination added to an audience
    /// receives its current members); returns how many were new.
    fn enqueue_messages(&self, messages: &[OutboxMessage]) -> Result<usize, StoreError>;
    /// Replaces an audience's definition (its destinations changed) and releases `hold`, under
    /// which the messages the change causes (a destination added receives the current
    /// members) were queued beforehand with [`DestinationStore::enqueue_held`], in one short
    /// transaction, whatever the audience's size. Only while the audience's live snapshot is
    /// still `live` (the one the messages were built from); [`SpecSaved::Stale`] otherwise.
    fn set_audience_spec(
        &self,
        id: i64,
        spec: &Value,
        live: Option<i64>,
        hold: Option<i64>,
    ) -> Result<SpecSaved, StoreError>;
    /// Pending messages of a destination due at `now`, oldest due first; held ones are not.
    fn due_messages(
        &self,
        destination_id: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Starts a hold (`cause` says what for, in the log of a stop): messages queued under it
    /// with [`DestinationStore::enqueue_held`] stay unseen by [`DestinationStore::due_messages`]
    /// and out of the delivery log until the transaction recording their cause releases it
    /// (e.g. [`AudienceStore::finish_audience`]), however many there are. A change with
    /// millions of messages queues them a chunk per transaction instead of in its own.
    fn create_outbox_hold(&self, cause: &str, now: i64) -> Result<i64, StoreError>;
    /// Queues messages under `hold`, in a transaction of their own, to the destinations that
    /// still exist; `None` (nothing queued) when the hold was released or dropped.
    fn enqueue_held(
        &self,
        hold: i64,
        messages: &[OutboxMessage],
    ) -> Result<Option<usize>, StoreError>;
    /// Deletes the rows `hold` holds (a chunk per transaction) and the hold: its cause failed.
    /// Nothing when it was released. Returns how many rows were deleted.
    fn drop_outbox_hold(&self, hold: i64) -> Result<usize, StoreError>;
    /// When the destination's next pending message is due, if it has one.
    fn next_due(&self, destination_id: i64) -> Result<Option<i64>, StoreError>;
    /// Records the outcomes of delivery attempts, in one transaction.
    fn record_deliveries(&self, outcomes: &[DeliveryOutcome], now: i64) -> Result<(), StoreError>;
    fn delivery_counts(&self, destination_id: i64) -> Result<DeliveryCounts, StoreError>;
    /// The destination's messages with an id after `after`, oldest first, optionally of one
    /// status.
    fn deliveries(
        &self,
        destination_id: i64,
        status: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Re-queues the destination's failed messages, due at once with a fresh deadline;
    /// returns how many.
    fn retry_failed(&self, destination_id: i64, now: i64) -> Result<usize, StoreError>;
    /// Each of `profiles`' userId and the last `anonymousId` it sent with (either may be
    /// missing), for those that exist.
    fn recipients(&self, profiles: &[i64]) -> Result<HashMap<i64, Recipient>, StoreError>;
}

/// Goal-based recommendations: definitions, each user's list (also written as the profile
/// traits `<key>` and `<key>_is_control`), and the scan of the events a goal learns from.
pub trait GoalStore {
    /// Stores a new definition as `computing`; `None` (nothing written) when `key` is taken.
    fn create_goal(
        &self,
        key: &str,
        definition: &Value,
        created_at: i64,
    ) -> Result<Option<i64>, StoreError>;
    fn goal(&self, id: i64) -> Result<Option<GoalRecord>, StoreError>;
    /// Oldest first.
    fn goals(&self) -> Result<Vec<GoalRecord>, StoreError>;
    /// `false` when the goal is gone.
    fn set_goal_status(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Writes lists stamped `computed_at` (in place: readers see the old list or the new
    /// one); `false` (nothing written) when the goal was deleted meanwhile. With `outbox`,
    /// each transaction also queues the messages of the users whose list or control flag
    /// changed.
    fn put_goal_results(
        &self,
        id: i64,
        key: &str,
        results: &[GoalResult],
        computed_at: i64,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<bool, StoreError>;
    /// Replaces the definition of goal `id` (its destinations changed), then queues
    /// `messages` for every user's current list to each of `added` (those that exist), a
    /// page of users per transaction, as [`TraitStore::set_trait_destinations`] does. `false`
    /// when there is no such goal.
    fn set_goal_destinations(
        &self,
        id: i64,
        definition: &Value,
        added: &[i64],
        messages: &mut TraitMessages<'_>,
    ) -> Result<bool, StoreError>;
    /// Ends a computation: drops lists not stamped `run.computed_at` and marks the goal live
    /// with its figures. `false` when the goal was deleted meanwhile (its lists are dropped). With
    /// `outbox`, the same transaction queues, for each dropped list that had been sent, the
    /// goal's traits as null.
    fn finish_goal(
        &self,
        id: i64,
        key: &str,
        run: &FinishedGoal<'_>,
        outbox: Option<&mut ChangeOutbox<'_>>,
    ) -> Result<bool, StoreError>;
    fn goal_list(&self, id: i64, profile_id: i64) -> Result<Option<StoredGoalList>, StoreError>;
    /// Deletes a goal, its lists and its profile traits, and marks its messages not sent yet
    /// `cancelled`; `false` when there is none.
    fn delete_goal(&self, id: i64) -> Result<bool, StoreError>;
    /// Marks goals left `computing` by a stopped process as failed.
    fn fail_unfinished_goals(&self, reason: &str) -> Result<usize, StoreError>;
    /// Feeds every stored track event named one of `events` to `f(index of its name,
    /// profile (after merges), time, properties)`, in storage order. Returns how many.
    fn scan_goal_events(
        &self,
        events: &[&str],
        f: &mut dyn FnMut(usize, i64, i64, &Value),
    ) -> Result<u64, StoreError>;
}
