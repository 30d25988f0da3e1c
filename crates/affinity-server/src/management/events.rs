//! `/api/v1/events`: the event names seen, their properties, observed values (for pickers).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

use affinity_core::timestamp::{FUTURE_TOLERANCE_MS, format_millis};
use affinity_engine::data::{DiscoveryTotals, EventSummary};

use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

/// One page of events in name order, with the store-wide figures.
#[derive(Serialize)]
pub struct EventList {
    events: Vec<EventBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Distinct event names in the store (all pages).
    total_events: u64,
    /// Messages not stored because they would have added an event name beyond the bound.
    rejected_over_limits: u64,
    /// Property key occurrences left out of discovery by the per-event bound (the messages
    /// themselves were stored whole).
    property_keys_not_listed: u64,
    /// Stored messages whose time (after the `sentAt` correction) lay more than
    /// `limits.future_tolerance_seconds` after their receipt: their time is the receipt.
    future_timestamps_clamped: u64,
    limits: LimitsBody,
}

#[derive(Serialize)]
struct LimitsBody {
    event_names: u64,
    property_keys_per_event: u64,
    future_tolerance_seconds: i64,
}

#[derive(Serialize)]
struct EventBody {
    name: String,
    count: u64,
    first_seen: String,
    last_seen: String,
    properties: Vec<PropertyCount>,
    /// The event reached the per-event key bound: keys first seen later are not listed.
    properties_at_limit: bool,
}

#[derive(Serialize)]
struct PropertyCount {
    name: String,
    count: u64,
}

impl From<EventSummary> for EventBody {
    fn from(e: EventSummary) -> Self {
        Self {
            name: e.name,
            count: e.count,
            first_seen: format_millis(e.first_seen),
            last_seen: format_millis(e.last_seen),
            properties: e
                .properties
                .into_iter()
                .map(|(name, count)| PropertyCount { name, count })
                .collect(),
            properties_at_limit: e.properties_at_limit,
        }
    }
}

#[derive(Serialize)]
pub struct PropertyValuesBody {
    event: String,
    property: String,
    values: Vec<ValueCount>,
    /// How many of the event's messages were read (the newest ones).
    scanned: u64,
    /// Whether older messages were left unread to bound the cost.
    sampled: bool,
}

#[derive(Serialize)]
struct ValueCount {
    value: Value,
    count: u64,
}

/// `GET /api/v1/events?limit=&cursor=`: events in name order, `limit` (default 100, at most
/// 1000) per page.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<EventList>, ApiError> {
    let limit = params.number("limit", 100, 1, 1000)?;
    let after = params.get("cursor").map(decode_cursor).transpose()?;
    let (page, totals) = state.engine.events(after, limit).await?;
    let DiscoveryTotals {
        event_names,
        refused_over_limits,
        property_keys_not_listed,
        future_timestamps_clamped,
        limits,
        ..
    } = totals;
    Ok(Json(EventList {
        events: page.events.into_iter().map(EventBody::from).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
        total_events: event_names,
        rejected_over_limits: refused_over_limits,
        property_keys_not_listed,
        future_timestamps_clamped,
        limits: LimitsBody {
            event_names: limits.event_names,
            property_keys_per_event: limits.property_keys_per_event,
            future_tolerance_seconds: FUTURE_TOLERANCE_MS / 1000,
        },
    }))
}

/// The cursor is the page's last name in hex: opaque to clients, and safe in a query string
/// whatever characters event names hold.
fn encode_cursor(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid_parameter(
            "`cursor` is not a cursor from this API: pass the `next_cursor` of the previous page",
        )
    };
    if !cursor.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// `GET /api/v1/events/{event}/properties/{property}/values?q=&limit=`.
pub async fn values(
    _: Admin,
    State(state): State<AppState>,
    Path((event, property)): Path<(String, String)>,
    params: Params,
) -> Result<Json<PropertyValuesBody>, ApiError> {
    let limit = params.number("limit", 50, 1, 1000)?;
    let prefix = params.get("q").map(str::to_string);
    let found = state
        .engine
        .property_values(event.clone(), property.clone(), prefix, limit)
        .await?;
    Ok(Json(PropertyValuesBody {
        event,
        property,
        values: found
            .values
            .into_iter()
            .map(|(value, count)| ValueCount { value, count })
            .collect(),
        scanned: found.scanned,
        sampled: found.sampled,
    }))
}
