//! Messages for destinations, exactly as Segment Engage sends them: an audience member
//! entering is an `identify` with `traits.<audience_key> = true` and a `track`
//! `Audience Entered`; exiting is the same with `false` and `Audience Exited`; a trait change
//! is an `identify` with the trait's values. Each carries `context.personas` and a
//! `messageId` fixed by (destination, computation, snapshot, user, kind), so a message
//! written twice (a resend after a crash, a destination added again) is the same message,
//! byte for byte, and receivers that deduplicate on `messageId` see it once.
//!
//! Pure: bodies are built here, stored in the outbox and sent as they are.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::timestamp::format_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputationClass {
    Audience,
    Trait,
    /// A goal-based recommendation's list (Segment names no class for it; ours, documented
    /// in the README).
    GoalRecommendation,
}

impl ComputationClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audience => "audience",
            Self::Trait => "trait",
            Self::GoalRecommendation => "goal_recommendation",
        }
    }
}

/// What a message is about: an audience (by its id and key) or a trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computation {
    pub class: ComputationClass,
    pub id: i64,
    /// The audience key (snake_case of its name) or the trait's name.
    pub key: String,
}

/// A computation that writes profile traits (a trait, a goal's list), named by a string id:
/// a trait is known by its name, a goal by its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileComputation {
    pub class: ComputationClass,
    pub id: String,
    /// The trait key the values are sent under (the trait's name, the goal's key).
    pub key: String,
}

/// Who a message is about: a profile's userId and its last `anonymousId`; at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient<'a> {
    pub user_id: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
}

impl Recipient<'_> {
    /// The identifier a message id is fixed by: the userId, else the anonymousId.
    fn key(&self) -> &str {
        self.user_id.or(self.anonymous_id).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Entered,
    Exited,
}

/// A message ready for the outbox: its id and its body exactly as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngageMessage {
    pub message_id: String,
    pub body: String,
}

/// The audience key: the snake_case of its name (`Likely Acme buyers` →
/// `likely_acme_buyers`), as Segment Engage names an audience's trait.
pub fn audience_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            if gap && !key.is_empty() {
                key.push('_');
            }
            gap = false;
            key.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    if key.is_empty() {
        key.push_str("audience");
    }
    key
}

/// The message id of (destination, computation, snapshot, user, kind): a hash, so the same
/// message always has the same id and two different ones never share one.
pub fn message_id(
    destination_id: i64,
    computation: &Computation,
    snapshot: i64,
    user_id: &str,
    kind: &str,
) -> String {
    hashed_id(
        destination_id,
        computation.class,
        &computation.id.to_string(),
        snapshot,
        user_id,
        kind,
    )
}

fn hashed_id(
    destination_id: i64,
    class: ComputationClass,
    computation_id: &str,
    snapshot: i64,
    user_id: &str,
    kind: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed parts: no choice of user id can make two tuples hash alike.
    for part in [
        destination_id.to_string().as_str(),
        class.as_str(),
        computation_id,
        snapshot.to_string().as_str(),
        user_id,
        kind,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("aff-{hex}")
}

#[derive(Serialize)]
struct Personas<'a> {
    computation_class: &'static str,
    computation_id: &'a str,
    computation_key: &'a str,
}

#[derive(Serialize)]
struct Library {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Context<'a> {
    personas: Personas<'a>,
    library: Library,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "messageId")]
    message_id: &'a str,
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(rename = "anonymousId", skip_serializing_if = "Option::is_none")]
    anonymous_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Map<String, Value>>,
    context: Context<'a>,
    timestamp: String,
}

fn context<'a>(class: ComputationClass, id: &'a str, key: &'a str) -> Context<'a> {
    Context {
        personas: Personas {
            computation_class: class.as_str(),
            computation_id: id,
            computation_key: key,
        },
        library: Library {
            name: "affinity",
            version: env!("CARGO_PKG_VERSION"),
        },
    }
}

fn encode(body: &Body<'_>) -> String {
    // Plain structs of strings, maps and booleans: encoding cannot fail.
    serde_json::to_string(body).unwrap_or_default()
}

/// The two messages of a member entering or exiting `audience` in snapshot `snapshot`:
/// the `identify` and the `track`, in that order.
pub fn audience_messages(
    destination_id: i64,
    audience: &Computation,
    snapshot: i64,
    who: Recipient<'_>,
    change: Change,
    timestamp_ms: i64,
) -> [EngageMessage; 2] {
    let member = change == Change::Entered;
    let (identify_kind, track_kind, event) = match change {
        Change::Entered => ("identify_entered", "track_entered", "Audience Entered"),
        Change::Exited => ("identify_exited", "track_exited", "Audience Exited"),
    };
    let key = audience.key.as_str();
    let audience_id = audience.id.to_string();
    let timestamp = format_millis(timestamp_ms);
    let identify_id = message_id(destination_id, audience, snapshot, who.key(), identify_kind);
    let mut traits = Map::new();
    traits.insert(key.to_string(), Value::Bool(member));
    let identify = Body {
        kind: "identify",
        message_id: &identify_id,
        user_id: who.user_id,
        anonymous_id: who.anonymous_id,
        event: None,
        traits: Some(traits),
        properties: None,
        context: context(audience.class, &audience_id, key),
        timestamp: timestamp.clone(),
    };
    let track_id = message_id(destination_id, audience, snapshot, who.key(), track_kind);
    let mut properties = Map::new();
    properties.insert("audience_key".into(), Value::String(key.to_string()));
    properties.insert(key.to_string(), Value::Bool(member));
    let track = Body {
        kind: "track",
        message_id: &track_id,
        user_id: who.user_id,
        anonymous_id: who.anonymous_id,
        event: Some(event),
        traits: None,
        properties: Some(properties),
        context: context(audience.class, &audience_id, key),
        timestamp,
    };
    [
        EngageMessage {
            body: encode(&identify),
            message_id: identify_id.clone(),
        },
        EngageMessage {
            body: encode(&track),
            message_id: track_id.clone(),
        },
    ]
}

/// The `identify` telling a destination a profile's traits computed by `computation` changed
/// (a trait's values; a goal's list with its control flag). `version` is the run that wrote
/// them, as a snapshot is for audiences, and the message's time: a message written again
/// for the same run is the same message, byte for byte.
pub fn profile_traits_message(
    destination_id: i64,
    computation: &ProfileComputation,
    version: i64,
    who: Recipient<'_>,
    traits: Map<String, Value>,
) -> EngageMessage {
    let id = hashed_id(
        destination_id,
        computation.class,
        &computation.id,
        version,
        who.key(),
        "identify",
    );
    let body = Body {
        kind: "identify",
        message_id: &id,
        user_id: who.user_id,
        anonymous_id: who.anonymous_id,
        event: None,
        traits: Some(traits),
        properties: None,
        context: context(computation.class, &computation.id, &computation.key),
        timestamp: format_millis(version),
    };
    EngageMessage {
        body: encode(&body),
        message_id: id,
    }
}

/// The one message of a destination's test: an `identify` of the user `affinity-test` with
/// `traits.affinity_test = true`, a fresh id each time (`nonce`).
pub fn test_message(destination_id: i64, nonce: i64, timestamp_ms: i64) -> EngageMessage {
    let computation = Computation {
        class: ComputationClass::Audience,
        id: 0,
        key: "affinity_test".into(),
    };
    let [identify, _] = audience_messages(
        destination_id,
        &computation,
        nonce,
        Recipient {
            user_id: Some("affinity-test"),
            anonymous_id: None,
        },
        Change::Entered,
        timestamp_ms,
    );
    identify
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience() -> Computation {
        Computation {
            class: ComputationClass::Audience,
            id: 7,
            key: audience_key("Likely Acme buyers"),
        }
    }

    #[test]
    fn the_audience_key_is_snake_case() {
        assert_eq!(audience_key("Likely Acme buyers"), "likely_acme_buyers");
        assert_eq!(audience_key("  Brand-001 fans!! "), "brand_001_fans");
        assert_eq!(audience_key("Émile's VIPs"), "émile_s_vips");
        assert_eq!(audience_key("!!"), "audience");
    }

    #[test]
    fn entering_is_an_identify_and_a_track_as_engage_sends_them() {
        let who = Recipient {
            user_id: Some("u1"),
            anonymous_id: Some("a1"),
        };
        let [identify, track] = audience_messages(3, &audience(), 1, who, Change::Entered, 0);
        let i: Value = serde_json::from_str(&identify.body).expect("json");
        assert_eq!(i["type"], "identify");
        assert_eq!(i["userId"], "u1");
        assert_eq!(i["anonymousId"], "a1");
        assert_eq!(i["traits"], serde_json::json!({"likely_acme_buyers": true}));
        assert_eq!(
            i["context"]["personas"],
            serde_json::json!({"computation_class": "audience", "computation_id": "7",
                               "computation_key": "likely_acme_buyers"})
        );
        assert_eq!(i["messageId"], identify.message_id.as_str());
        assert_eq!(i["timestamp"], "1970-01-01T00:00:00.000Z");
        let t: Value = serde_json::from_str(&track.body).expect("json");
        assert_eq!(t["event"], "Audience Entered");
        assert_eq!(
            t["properties"],
            serde_json::json!({"audience_key": "likely_acme_buyers", "likely_acme_buyers": true})
        );
        let [_, exit] = audience_messages(
            3,
            &audience(),
            2,
            Recipient {
                user_id: Some("u1"),
                anonymous_id: None,
            },
            Change::Exited,
            0,
        );
        let e: Value = serde_json::from_str(&exit.body).expect("json");
        assert_eq!(e["event"], "Audience Exited");
        assert_eq!(e["properties"]["likely_acme_buyers"], false);
        assert!(e.get("anonymousId").is_none());
    }

    #[test]
    fn the_message_id_is_fixed_by_destination_computation_snapshot_user_and_kind() {
        let who = Recipient {
            user_id: Some("u1"),
            anonymous_id: None,
        };
        let a = audience_messages(3, &audience(), 1, who, Change::Entered, 5);
        assert_eq!(
            a,
            audience_messages(3, &audience(), 1, who, Change::Entered, 5)
        );
        let mut ids: Vec<String> = a.iter().map(|m| m.message_id.clone()).collect();
        for other in [
            audience_messages(4, &audience(), 1, who, Change::Entered, 5),
            audience_messages(3, &audience(), 2, who, Change::Entered, 5),
            audience_messages(3, &audience(), 1, who, Change::Exited, 5),
        ] {
            ids.extend(other.iter().map(|m| m.message_id.clone()));
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn a_trait_change_is_an_identify_with_its_values_fixed_by_the_run() {
        let computation = ProfileComputation {
            class: ComputationClass::Trait,
            id: "top_brands".into(),
            key: "top_brands".into(),
        };
        let who = Recipient {
            user_id: Some("u1"),
            anonymous_id: None,
        };
        let mut traits = Map::new();
        traits.insert("top_brands".into(), serde_json::json!(["Acme", "Bolt"]));
        let m = profile_traits_message(3, &computation, 1_000, who, traits.clone());
        let b: Value = serde_json::from_str(&m.body).expect("json");
        assert_eq!(b["type"], "identify");
        assert_eq!(
            b["traits"],
            serde_json::json!({"top_brands": ["Acme", "Bolt"]})
        );
        assert_eq!(
            b["context"]["personas"],
            serde_json::json!({"computation_class": "trait", "computation_id": "top_brands",
                               "computation_key": "top_brands"})
        );
        assert_eq!(b["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(
            m,
            profile_traits_message(3, &computation, 1_000, who, traits.clone())
        );
        let other_run = profile_traits_message(3, &computation, 2_000, who, traits.clone());
        let other_destination = profile_traits_message(4, &computation, 1_000, who, traits);
        assert_ne!(m.message_id, other_run.message_id);
        assert_ne!(m.message_id, other_destination.message_id);
    }
}
