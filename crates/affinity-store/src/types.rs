//! Plain data returned by the store. These are internal types: the server maps them to its
//! versioned wire types rather than serializing them directly.

use affinity_core::IdKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to one appended message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    /// Not stored: storing it would exceed a bound on what clients can create. The caller
    /// must report it (the client was not told the message is safe).
    Refused(Refusal),
}

/// Why the store refused a message. The text goes back to the client verbatim, so it names
/// the limit and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this store already has {limit} distinct event names, the most it keeps, and this message \
         would add a new one; it was not stored. Event names should be a fixed vocabulary: put \
         the varying part (an id, a date) in `properties`. GET /api/v1/events lists the names in use"
    )]
    TooManyEventNames { limit: u64 },
}

impl Refusal {
    /// The stable snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooManyEventNames { .. } => "too_many_event_names",
        }
    }
}

/// What a credential admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// Tracking API (public: it ships in browsers).
    WriteKey,
    /// Management API (`/api/v1`).
    Admin,
    /// Segment's Profile API.
    Profile,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 3] = [Self::WriteKey, Self::Admin, Self::Profile];

    /// The name stored in `credentials.kind`, and the CLI's.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteKey => "write_key",
            Self::Admin => "admin",
            Self::Profile => "profile",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A stored credential: its hash and a non-secret label, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub id: i64,
    pub kind: CredentialKind,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// The secret's first characters (`adm_Xy3k`).
    pub prefix: String,
    pub origin: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Bounds on what the public write key can create in discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryLimits {
    /// Distinct track event names; a message adding one more is refused.
    pub event_names: u64,
    /// Distinct property keys listed per event; further keys are left out of discovery only.
    pub property_keys_per_event: u64,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        Self {
            event_names: affinity_core::limits::MAX_EVENT_NAMES,
            property_keys_per_event: affinity_core::limits::MAX_PROPERTY_KEYS_PER_EVENT,
        }
    }
}

/// One page of the event list, in name order (stable while counts change, so that following
/// `next_cursor` lists every event exactly once).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// The last name of this page when more may follow: pass it as `after` for the next page.
    pub next_after: Option<String>,
}

/// Store-wide discovery figures, each read from a bounded table or a single row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryTotals {
    /// Distinct track event names kept.
    pub event_names: u64,
    /// Stored track messages (the sum of every event's count).
    pub track_messages: u64,
    /// Messages refused because they would exceed [`DiscoveryLimits::event_names`].
    pub refused_over_limits: u64,
    /// Key occurrences left out of discovery by [`DiscoveryLimits::property_keys_per_event`].
    pub property_keys_not_listed: u64,
    /// Stored messages whose time lay more than `timestamp::FUTURE_TOLERANCE_MS` after their
    /// receipt and was replaced by the receipt time.
    pub future_timestamps_clamped: u64,
    pub limits: DiscoveryLimits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub name: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Property keys, most frequent first.
    pub properties: Vec<(String, u64)>,
    /// Whether the event has reached [`DiscoveryLimits::property_keys_per_event`]: keys first
    /// seen after that are not listed.
    pub properties_at_limit: bool,
}

#[derive(Debug, Clone)]
pub struct ValuesQuery<'a> {
    pub event: &'a str,
    /// A top-level property key, or `products[].key` for a key inside `products[]` items.
    pub property: &'a str,
    /// Only values whose text starts with this (case-insensitive).
    pub prefix: Option<&'a str>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyValues {
    /// Values with the number of messages they occur in, most frequent first.
    pub values: Vec<(Value, u64)>,
    /// How many of the event's messages were read (the newest ones).
    pub scanned: u64,
    /// Whether older messages were left unread to bound the cost.
    pub sampled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trait {
    pub name: String,
    pub value: Value,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: i64,
    pub user_id: Option<String>,
    pub identities: Vec<(IdKind, String)>,
    pub traits: Vec<Trait>,
    pub created_at: i64,
    pub last_seen: i64,
}

/// A merge the identity rules refused: the message was stored, the merge it asked for was not.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedMerge {
    /// Increases with every record: newest first is descending, and a page's cursor.
    pub id: i64,
    pub message_id: String,
    /// The message's type: `alias`, or the type of a message carrying both ids.
    pub message_type: String,
    /// The message's userId, whose profile the identifier would have joined.
    pub user_id: String,
    /// The identifier that stayed where it was (a `previousId` or an `anonymousId`).
    pub identifier_kind: IdKind,
    pub identifier: String,
    /// The user id the identifier's profile already has.
    pub owner: String,
    /// Why: `user_id_limit` (the merged profile would hold more user ids than allowed).
    pub reason: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub message_id: String,
    pub kind: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub timestamp: i64,
    pub received_at: i64,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Queued,
    Training,
    Ready,
    Failed,
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Training => "training",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// One training run: what was trained, on what data, how long it took, how good it is.
/// Stored as versioned JSON; `params`, `metrics`, `candidates` and `data` are free-form so the
/// model crate can evolve what it reports without a schema change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: i64,
    pub status: ModelStatus,
    pub algorithm: Option<String>,
    pub params: Value,
    /// Data snapshot time (Unix ms): the newest interaction used.
    pub as_of: Option<i64>,
    pub created_at: i64,
    pub trained_at: Option<i64>,
    pub duration_ms: Option<u64>,
    pub metrics: Value,
    pub candidates: Value,
    pub data: Value,
    pub error: Option<String>,
}

impl ModelRecord {
    pub fn queued(id: i64, created_at: i64) -> Self {
        Self {
            id,
            status: ModelStatus::Queued,
            algorithm: None,
            params: Value::Null,
            as_of: None,
            created_at,
            trained_at: None,
            duration_ms: None,
            metrics: Value::Null,
            candidates: Value::Null,
            data: Value::Null,
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraitDefinitionRecord {
    pub name: String,
    pub definition: Value,
    pub created_at: i64,
    pub computed_at: Option<i64>,
    pub profiles: i64,
    pub model_id: Option<i64>,
}

/// An audience: its definition, its newest snapshot and its newest live one.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceRecord {
    pub id: i64,
    pub name: String,
    pub spec: Value,
    pub created_at: i64,
    /// The newest snapshot, whatever its status.
    pub latest: SnapshotRecord,
    /// The newest live snapshot (the audience's members); None before the first is live.
    pub live: Option<SnapshotRecord>,
}

/// One numbered computation of an audience.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    /// 1 for the first.
    pub snapshot: i64,
    pub status: String,
    pub model_id: Option<i64>,
    pub size: i64,
    pub created_at: i64,
    pub computed_at: Option<i64>,
    pub estimate: Value,
    pub changes: Value,
    pub error: Option<String>,
    /// False once its member list and ranking were dropped ([`crate::KEPT_MEMBER_LISTS`]).
    pub members_kept: bool,
}

/// What a computed snapshot stores, in the transaction that makes it live (its members were
/// added before, chunk by chunk, by `AudienceStore::add_snapshot_members`).
#[derive(Debug, Clone, Copy)]
pub struct FinishedSnapshot<'a> {
    pub model_id: i64,
    /// How many members were added.
    pub size: i64,
    /// Every scored user in rank order (the engine's encoding): where a non-member ranks.
    pub ranking: &'a [u8],
    pub estimate: &'a Value,
    pub changes: Option<&'a Value>,
    pub computed_at: i64,
    /// The audience's definition as the caller read it ([`crate::AudienceStore::audience`])
    /// to queue the destinations' messages: the snapshot goes live only while the stored one
    /// is still this, so messages queued for destinations that changed meanwhile never go
    /// live (None: no such condition).
    pub spec: Option<&'a Value>,
}

/// What [`crate::AudienceStore::finish_audience`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFinished {
    /// The snapshot is live and the hold's messages are due with it.
    Live,
    /// The audience (or the snapshot) was deleted meanwhile, or the hold is gone: nothing
    /// stored; the caller drops the hold.
    Gone,
    /// The audience's definition changed since the caller read it (its destinations were
    /// replaced): nothing stored; the caller drops the hold and queues the messages again
    /// for the definition as it is now.
    Stale,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// 1 for the best.
    pub rank: i64,
    pub profile_id: i64,
    pub user_id: String,
    pub score: f64,
    /// Held out as the control group: not to be targeted.
    pub control: bool,
}

/// A live audience a profile is a member of (its newest live snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMembership {
    pub audience_id: i64,
    pub name: String,
    pub computed_at: i64,
    /// In the audience's control group: a member, held out of destinations.
    pub control: bool,
}

/// What the events of a profile say about it: when its messages started and ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileActivity {
    /// Event time of the oldest and newest messages (`None` without any).
    pub first_message_at: Option<i64>,
    pub last_message_at: Option<i64>,
    /// The message received last.
    pub last_message_id: Option<String>,
    pub last_received_at: Option<i64>,
}

/// One identifier of a profile with when a message first carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileIdentifier {
    pub kind: IdKind,
    pub value: String,
    /// Receive time of the first message carrying it (`None`: no stored message does, e.g.
    /// an alias's `previousId` never seen on an event).
    pub first_seen: Option<i64>,
}

/// A page of a profile's events, Segment's Profile API `/events`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileEventsQuery {
    /// Only these event names (track events), when not empty.
    pub include: Vec<String>,
    /// Not these event names.
    pub exclude: Vec<String>,
    /// Event time bounds, inclusive start, exclusive end (Unix ms).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Continue after this `(timestamp, seq)` in the chosen order.
    pub after: Option<(i64, i64)>,
    pub limit: usize,
}

/// One message for a destination, queued in the outbox in the same transaction as the change
/// that caused it. `message_id` is fixed by (destination, computation, snapshot, user, kind),
/// so queueing it again (a resend after a crash) keeps the one row and the same body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub destination_id: i64,
    /// What it is about ([`audience_cause`], [`trait_cause`], [`goal_cause`]): deleting that
    /// cancels the messages not sent yet.
    pub cause: String,
    pub message_id: String,
    /// The JSON body exactly as it will be sent.
    pub body: String,
    pub created_at: i64,
}

/// The [`OutboxMessage::cause`] of an audience's messages.
pub fn audience_cause(id: i64) -> String {
    format!("audience:{id}")
}

/// The [`OutboxMessage::cause`] of a trait's messages.
pub fn trait_cause(name: &str) -> String {
    format!("trait:{name}")
}

/// The [`OutboxMessage::cause`] of a goal's messages.
pub fn goal_cause(id: i64) -> String {
    format!("goal:{id}")
}

/// A profile's traits as a computation wrote them (a trait's values; a goal's list and its
/// control flag), for the messages telling destinations: `version` is the run that wrote
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTraits {
    pub profile_id: i64,
    pub version: i64,
    pub traits: serde_json::Map<String, serde_json::Value>,
}

/// The outbox messages telling destinations (each one stored) about profiles' traits.
pub type TraitMessages<'a> =
    dyn FnMut(&[i64], &[ProfileTraits]) -> Result<Vec<OutboxMessage>, crate::StoreError> + 'a;

/// What a trait backfill sends the values of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillOf {
    Trait(String),
    Goal(i64),
}

/// A destination added to a trait or goal whose current values are not all queued yet: a
/// process stopped midway ([`crate::TraitStore::unfinished_backfills`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitBackfill {
    pub id: i64,
    pub of: BackfillOf,
    pub destinations: Vec<i64>,
    /// The last profile queued (`i64::MIN` before the first page).
    pub after: i64,
}

/// The messages of the values a write changes, built inside the transaction that writes
/// them: a value is never recorded without its messages, nor the reverse.
pub struct ChangeOutbox<'a> {
    /// The destination ids the definition names, as stored in that transaction (a
    /// destination added meanwhile is read, and one deleted since is skipped).
    pub destinations: &'a dyn Fn(&serde_json::Value) -> Vec<i64>,
    pub messages: &'a mut TraitMessages<'a>,
}

/// What [`crate::DestinationStore::set_audience_spec`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecSaved {
    /// The definition is stored and the hold's messages are due with it.
    Saved,
    /// There is no such audience: nothing stored.
    NoAudience,
    /// Another snapshot went live since the caller read the one its messages were built
    /// from (or the hold is gone): nothing stored; the caller drops the hold and starts again.
    Stale,
}

/// A destination as stored: its configuration is a versioned document (with its secrets).
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRecord {
    pub id: i64,
    pub name: String,
    /// `webhook`, `segment` or `file`.
    pub kind: String,
    pub config: Value,
    pub created_at: i64,
}

/// A pending outbox message, as the delivery worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub body: String,
    pub attempts: i64,
    /// When it was queued (or re-queued by a retry): the retry deadline counts from here.
    pub queued_at: i64,
}

/// What one delivery attempt of an outbox row came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        id: i64,
        status: Option<u16>,
    },
    /// A failure worth retrying (network, timeout, 408, 429, 5xx) before the deadline.
    Retry {
        id: i64,
        next_attempt_at: i64,
        status: Option<u16>,
        error: String,
    },
    /// Refused by the receiver (another 4xx), or out of time: not tried again.
    Failed {
        id: i64,
        status: Option<u16>,
        error: String,
    },
}

/// Outbox messages of a destination by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Queued for a change not recorded yet (an audience snapshot still being stored): the
    /// worker does not see them, and they are deleted if the change fails.
    pub held: i64,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    /// Not sent: the audience, trait or goal they were about was deleted first.
    pub cancelled: i64,
}

/// One outbox message of a destination, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub message_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Who a destination's message about a profile is addressed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
}

/// A goal-based recommendation definition with where its computation stands.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalRecord {
    pub id: i64,
    /// The profile trait key (snake_case of the name); unique.
    pub key: String,
    pub definition: Value,
    /// `computing`, `live` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub computed_at: Option<i64>,
    /// When the first lists went live: outcomes after it compare recommended and control users.
    pub started_at: Option<i64>,
    pub model_id: Option<i64>,
    pub users: i64,
    pub quality: Option<Value>,
}

/// One user's goal list.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalResult {
    pub profile_id: i64,
    /// The values in order, as written onto the profile.
    pub values: Vec<String>,
    pub scores: Vec<f32>,
    pub is_control: bool,
}

/// A goal computation as it ends: the stamp of its lists and its figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedGoal<'a> {
    pub computed_at: i64,
    pub model_id: Option<i64>,
    pub users: usize,
    pub quality: &'a Value,
}

/// A stored list, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGoalList {
    pub items: Vec<(String, f64)>,
    pub is_control: bool,
    pub computed_at: i64,
}
