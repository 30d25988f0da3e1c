use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};

use affinity_core::IdKind;
use affinity_core::timestamp::format_millis;
use affinity_store::{Profile, Profiles};

use super::blocking;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

/// Parses `user_id:ID` or `anonymous_id:ID`, the Profile API's identifier form.
fn parse_key(key: &str) -> Result<(IdKind, String), ApiError> {
    key.split_once(':')
        .and_then(|(kind, id)| Some((IdKind::parse(kind)?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("profile key {key:?} must be `user_id:<id>` or `anonymous_id:<id>`"),
            )
        })
}

async fn find(state: &AppState, key: &str) -> Result<Profile, ApiError> {
    let (kind, id) = parse_key(key)?;
    let store = state.store.clone();
    blocking(move || store.profile(kind, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("Profile was not found."))
}

/// `GET /api/v1/profiles/{user_id:ID}`: one profile with its identifiers and traits.
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = find(&state, &key).await?;
    let traits: Map<String, Value> = p.traits.into_iter().map(|t| (t.name, t.value)).collect();
    Ok(Json(json!({
        "profile_id": p.id,
        "user_id": p.user_id,
        "identities": p.identities.iter()
            .map(|(kind, id)| json!({"type": kind.as_str(), "id": id}))
            .collect::<Vec<_>>(),
        "traits": traits,
        "created_at": format_millis(p.created_at),
        "last_seen": format_millis(p.last_seen),
    })))
}

/// `GET /api/v1/profiles/{key}/events?limit=`: the profile's newest events, including those
/// sent under identifiers merged into it.
pub async fn events(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = Params(query).number("limit", 100, 1, 1000)?;
    let p = find(&state, &key).await?;
    let store = state.store.clone();
    let events = blocking(move || store.profile_events(p.id, limit)).await?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "message_id": e.message_id,
                "type": e.kind,
                "event": e.event,
                "user_id": e.user_id,
                "anonymous_id": e.anonymous_id,
                "timestamp": format_millis(e.timestamp),
                "received_at": format_millis(e.received_at),
                "message": serde_json::from_str::<Value>(&e.raw).unwrap_or(Value::String(e.raw)),
            })
        })
        .collect();
    Ok(Json(json!({ "profile_id": p.id, "events": events })))
}
