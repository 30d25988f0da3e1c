use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use affinity_core::timestamp::format_millis;
use affinity_store::{EventDiscovery, ValuesQuery};

use super::blocking;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

/// `GET /api/v1/events`: the event names seen, with counts and property keys.
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let events = blocking(move || store.events()).await?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "count": e.count,
                "first_seen": format_millis(e.first_seen),
                "last_seen": format_millis(e.last_seen),
                "properties": e.properties.iter()
                    .map(|(name, count)| json!({"name": name, "count": count}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}

/// `GET /api/v1/events/{event}/properties/{property}/values?q=&limit=`: observed values.
pub async fn values(
    _: Admin,
    State(state): State<AppState>,
    Path((event, property)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params(query);
    let limit = params.number("limit", 50, 1, 1000)?;
    let prefix = params.get("q").map(str::to_string);
    let store = state.store.clone();
    let (ev, prop) = (event.clone(), property.clone());
    let known = blocking(move || store.events()).await?;
    let Some(summary) = known.iter().find(|e| e.name == event) else {
        return Err(ApiError::not_found(format!(
            "no track event named {event:?} has been received; GET /api/v1/events lists the names seen"
        )));
    };
    if !summary.properties.iter().any(|(p, _)| *p == property) {
        let names: Vec<&str> = summary
            .properties
            .iter()
            .take(20)
            .map(|(p, _)| p.as_str())
            .collect();
        return Err(ApiError::not_found(format!(
            "event {event:?} has no property {property:?}; its properties are: {}",
            names.join(", ")
        )));
    }
    let store = state.store.clone();
    let found = blocking(move || {
        store.property_values(&ValuesQuery {
            event: &ev,
            property: &prop,
            prefix: prefix.as_deref(),
            limit,
        })
    })
    .await?;
    Ok(Json(json!({
        "event": event,
        "property": property,
        "values": found.values.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>(),
        "scanned": found.scanned,
        "sampled": found.sampled,
    })))
}
