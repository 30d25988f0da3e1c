//! `/api/v1/events`: the event names seen, their properties, observed values (for pickers).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

use affinity_core::timestamp::format_millis;
use affinity_engine::data::EventSummary;

use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

#[derive(Serialize)]
pub struct EventList {
    events: Vec<EventBody>,
}

#[derive(Serialize)]
struct EventBody {
    name: String,
    count: u64,
    first_seen: String,
    last_seen: String,
    properties: Vec<PropertyCount>,
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

/// `GET /api/v1/events`.
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<EventList>, ApiError> {
    let events = state.engine.events().await?;
    Ok(Json(EventList {
        events: events.into_iter().map(EventBody::from).collect(),
    }))
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
