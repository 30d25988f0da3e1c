//! A Segment message, validated and reduced to the fields the engine needs, with the raw JSON
//! kept exactly as received.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::PRODUCTS_PREFIX;
use crate::error::{MessageError, json_type};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::timestamp::{event_time, parse_millis};

/// The six Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        Self::Track,
        Self::Identify,
        Self::Page,
        Self::Screen,
        Self::Group,
        Self::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Identify => "identify",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Which kind of identifier a profile is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    UserId,
    AnonymousId,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user_id" => Some(Self::UserId),
            "anonymous_id" => Some(Self::AnonymousId),
            _ => None,
        }
    }
}

/// A validated Segment message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MessageType,
    /// The client's `messageId`, or, when it sent none, `h-` and a hash of the raw text, so
    /// that a retried copy of the same bytes is still recognised as a duplicate.
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `event` of a track; `name` of a page or screen.
    pub event: Option<String>,
    /// `previousId` of an alias.
    pub previous_id: Option<String>,
    /// `groupId` of a group.
    pub group_id: Option<String>,
    /// Event time in Unix milliseconds: `timestamp`, else `originalTimestamp`, else receipt;
    /// corrected for the client's clock with `sentAt` and clamped when too far in the future
    /// ([`crate::timestamp::event_time`], Segment's rule).
    pub timestamp: i64,
    pub received_at: i64,
    /// The stated time was in the future beyond the tolerance and was replaced by receipt.
    pub timestamp_clamped: bool,
    /// `traits` of an identify (`context.traits` is not profile data in Segment).
    pub traits: Option<Map<String, Value>>,
    /// The property keys of a track, for pickers: top-level keys, and the keys inside each
    /// `products[]` element written as `products[].key` (Segment's e-commerce spec puts one
    /// product per element). A top-level key that itself starts with `products[].` is not
    /// listed: it would be counted as the nested key. Computed at parse time so the writer does not re-read the JSON.
    pub property_keys: Vec<String>,
    /// The message's JSON text exactly as received, less a top-level `writeKey` (the one
    /// rewrite: the other members keep their exact text, in their order).
    pub raw: String,
}

impl Message {
    /// Parses and validates one message. `implied` is the type given by the path
    /// (`/v1/track`), which wins over a `type` field; without it the `type` field is required.
    pub fn parse(
        raw: &str,
        implied: Option<MessageType>,
        received_at: i64,
    ) -> Result<Message, MessageError> {
        Self::parse_sent(raw, implied, received_at, None)
    }

    /// [`Message::parse`] for a message of a batch whose body carried `sentAt`
    /// (`batch_sent_at`), used when the message has no `sentAt` of its own.
    pub fn parse_sent(
        raw: &str,
        implied: Option<MessageType>,
        received_at: i64,
        batch_sent_at: Option<i64>,
    ) -> Result<Message, MessageError> {
        if raw.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::MessageTooLarge {
                size: raw.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let value: Value =
            serde_json::from_str(raw).map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        let Value::Object(mut body) = value else {
            return Err(MessageError::NotAnObject {
                what: "a message",
                got: json_type(&value),
            });
        };
        let kind = match implied {
            Some(k) => k,
            None => match body.get("type") {
                None | Some(Value::Null) => {
                    return Err(MessageError::MissingField {
                        field: "type",
                        hint: " in every batch message (track, identify, page, screen, group or alias)",
                    });
                }
                Some(Value::String(s)) => {
                    MessageType::parse(s).ok_or_else(|| MessageError::UnknownType(s.clone()))?
                }
                Some(other) => {
                    return Err(MessageError::InvalidField {
                        field: "type",
                        expected: "a string",
                        got: json_type(other).to_string(),
                    });
                }
            },
        };

        let user_id = id_field(&body, raw, "userId")?;
        let anonymous_id = id_field(&body, raw, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(MessageError::MissingField {
                field: "userId",
                hint: " (or `anonymousId`): every message must say who it is about",
            });
        }
        for field in ["properties", "traits", "context", "integrations"] {
            if let Some(v) = body.get(field)
                && !matches!(v, Value::Object(_) | Value::Null)
            {
                return Err(MessageError::InvalidField {
                    field,
                    expected: "an object",
                    got: json_type(v).to_string(),
                });
            }
        }

        let mut event = None;
        let mut previous_id = None;
        let mut group_id = None;
        match kind {
            MessageType::Track => {
                event = string_field(&body, "event")?;
                if event.is_none() {
                    return Err(MessageError::MissingField {
                        field: "event",
                        hint: " in a track: the name of the action, e.g. \"Order Completed\"",
                    });
                }
            }
            MessageType::Page | MessageType::Screen => event = string_field(&body, "name")?,
            MessageType::Alias => {
                previous_id = id_field(&body, raw, "previousId")?;
                if previous_id.is_none() {
                    return Err(MessageError::MissingField {
                        field: "previousId",
                        hint: " in an alias: the id the user was known by before",
                    });
                }
                if user_id.is_none() {
                    return Err(MessageError::MissingField {
                        field: "userId",
                        hint: " in an alias: the id the user is known by from now on",
                    });
                }
            }
            MessageType::Group => {
                group_id = id_field(&body, raw, "groupId")?;
                if group_id.is_none() {
                    return Err(MessageError::MissingField {
                        field: "groupId",
                        hint: " in a group: the id of the account or company",
                    });
                }
            }
            MessageType::Identify => {}
        }

        let stated = match time_field(&body, "timestamp")? {
            Some(t) => Some(t),
            None => time_field(&body, "originalTimestamp")?,
        };
        // The write key is a credential, not part of the event: it must not be stored with
        // the raw text (and echoed by the events API). Only then is the text rewritten.
        let raw = if body.contains_key(WRITE_KEY) {
            without_field(raw, WRITE_KEY)?
        } else {
            raw.to_string()
        };
        // A message that already carries `receivedAt` was processed by Segment (an export
        // replayed through `affinity import` or `/v1/import`): its `timestamp` is already
        // corrected, and correcting it again against today's receipt would move it to today.
        let processed = matches!(body.get("receivedAt"), Some(Value::String(_)));
        let sent_at = if processed {
            None
        } else {
            time_field(&body, "sentAt")?.or(batch_sent_at)
        };
        let time = event_time(stated, sent_at, received_at);
        let message_id = match string_field(&body, "messageId")? {
            Some(id) => id,
            None => content_id(kind, &raw),
        };

        let property_keys = if kind == MessageType::Track {
            property_keys(body.get("properties"))
        } else {
            Vec::new()
        };
        let traits = match (kind, body.remove("traits")) {
            (MessageType::Identify, Some(Value::Object(t))) => Some(t),
            _ => None,
        };
        Ok(Message {
            kind,
            message_id,
            user_id,
            anonymous_id,
            event,
            previous_id,
            group_id,
            timestamp: time.millis,
            received_at,
            timestamp_clamped: time.clamped,
            traits,
            property_keys,
            raw,
        })
    }
}

fn property_keys(properties: Option<&Value>) -> Vec<String> {
    let Some(Value::Object(props)) = properties else {
        return Vec::new();
    };
    // `products[].key` names a key inside `products[]` (here, in catalog mappings and in
    // values queries). A top-level key literally spelled that way is another property that
    // no mapping can name: listing it would count it as the nested key, so it is left out.
    let mut keys: Vec<String> = props
        .keys()
        .filter(|k| !k.starts_with(PRODUCTS_PREFIX))
        .cloned()
        .collect();
    if let Some(Value::Array(products)) = props.get("products") {
        let mut inner: Vec<String> = products
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|p| p.keys())
            .map(|k| format!("{PRODUCTS_PREFIX}{k}"))
            .collect();
        inner.sort_unstable();
        inner.dedup();
        keys.extend(inner);
    }
    keys
}

/// A stable id for a message that came without `messageId`: the same bytes give the same id.
fn content_id(kind: MessageType, raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    h.update(raw.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("h-{hex}")
}

/// The top-level field a client may put its write key in (Segment's body form).
const WRITE_KEY: &str = "writeKey";

/// Integers up to this magnitude are exact in an f64 (2^53); beyond it two ids can parse to
/// the same float.
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

/// A message's top-level members in their order, each value as its exact text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn members(raw: &str) -> Result<Members<'_>, MessageError> {
    serde_json::from_str(raw).map_err(|e| MessageError::InvalidJson(e.to_string()))
}

/// `raw` without its top-level `field` (every occurrence); the other members keep their exact
/// text and order.
fn without_field(raw: &str, field: &str) -> Result<String, MessageError> {
    let mut out = String::with_capacity(raw.len());
    out.push('{');
    for (key, value) in members(raw)?.0.iter().filter(|(k, _)| k != field) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(
            &serde_json::to_string(key).map_err(|e| MessageError::InvalidJson(e.to_string()))?,
        );
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    Ok(out)
}

/// A numeric id as a string, exactly, as Segment stringifies numeric ids. Integers keep every
/// digit whatever their size (`98765432109876543210001` and `…002` are two people, where a
/// float would make them one); an integral value written with a zero fraction or an exponent
/// is that integer (`100`, `100.0` and `1e2` are one person: the same number to any JSON
/// reader). A number that is neither an integer literal nor exact in a float (`1.5e30`) is
/// refused: which integer it means cannot be told.
fn numeric_id(
    n: &serde_json::Number,
    raw: &str,
    field: &'static str,
) -> Result<String, MessageError> {
    if n.is_u64() || n.is_i64() {
        return Ok(n.to_string());
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.abs() < EXACT_IN_F64 {
        return Ok(if f.fract() == 0.0 {
            // Exact: |f| < 2^53 fits an i64, and -0.0 becomes 0.
            format!("{}", f as i64)
        } else {
            n.to_string()
        });
    }
    // Beyond 2^53 the float may not be the number sent: read the literal itself.
    let literal = members(raw)?
        .0
        .iter()
        .rev()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.get().trim().to_string())
        .unwrap_or_default();
    let (int, frac) = literal.split_once('.').unwrap_or((literal.as_str(), ""));
    let digits = int.strip_prefix('-').unwrap_or(int);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b == b'0')
    {
        return Ok(int.to_string());
    }
    Err(MessageError::InvalidField {
        field,
        expected: "a string, or a number that is an integer literal or below 2^53 (send large or \
                   exponent-form ids as strings)",
        got: format!("{literal}, which no JSON reader can turn into one exact integer"),
    })
}

/// An identifier field: a non-empty string, or a number (some clients send numeric user ids;
/// Segment stores them as strings: [`numeric_id`]). Empty strings and null count as absent.
fn id_field(
    body: &Map<String, Value>,
    raw: &str,
    field: &'static str,
) -> Result<Option<String>, MessageError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => numeric_id(n, raw, field).map(Some),
        Some(other) => Err(MessageError::InvalidField {
            field,
            expected: "a string or a number",
            got: json_type(other).to_string(),
        }),
    }
}

fn string_field(
    body: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, MessageError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(MessageError::InvalidField {
            field,
            expected: "a string",
            got: json_type(other).to_string(),
        }),
    }
}

fn time_field(body: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, MessageError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_millis(s)
                .map(Some)
                .ok_or_else(|| MessageError::InvalidField {
                    field,
                    expected: "an ISO 8601 date-time such as \"2026-01-31T12:00:00.000Z\"",
                    got: format!("{s:?}"),
                })
        }
        Some(other) => Err(MessageError::InvalidField {
            field,
            expected: "an ISO 8601 date-time string",
            got: json_type(other).to_string(),
        }),
    }
}
