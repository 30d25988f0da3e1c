//! Plain data returned by the store. These are internal types: the server maps them to its
//! versioned wire types rather than serializing them directly.

use affinity_core::IdKind;
use serde_json::Value;

/// What happened to one appended message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub name: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Property keys, most frequent first.
    pub properties: Vec<(String, u64)>,
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
