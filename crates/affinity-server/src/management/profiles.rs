//! `/api/v1/profiles/{key}`: one person, with identifiers, traits and events (admin view).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::IdKind;
use affinity_core::timestamp::format_millis;
use affinity_engine::data::{Profile, StoredEvent};

use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

/// Parses `user_id:ID` or `anonymous_id:ID`, the Profile API's identifier form.
fn parse_key(key: &str) -> Result<(IdKind, String), ApiError> {
    key.split_once(':')
        .and_then(|(kind, id)| Some((IdKind::parse(kind)?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "profile key {key:?} must be `user_id:<id>` or `anonymous_id:<id>`"
            ))
        })
}

async fn find(state: &AppState, key: &str) -> Result<Profile, ApiError> {
    let (kind, id) = parse_key(key)?;
    Ok(state.engine.profile(kind, id).await?)
}

#[derive(Serialize)]
pub struct ProfileBody {
    profile_id: i64,
    user_id: Option<String>,
    identities: Vec<Identity>,
    traits: Map<String, Value>,
    created_at: String,
    last_seen: String,
}

#[derive(Serialize)]
struct Identity {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

/// `GET /api/v1/profiles/{user_id:ID}`.
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<ProfileBody>, ApiError> {
    let p = find(&state, &key).await?;
    Ok(Json(ProfileBody {
        profile_id: p.id,
        user_id: p.user_id,
        identities: p
            .identities
            .into_iter()
            .map(|(kind, id)| Identity {
                kind: kind.as_str(),
                id,
            })
            .collect(),
        traits: p.traits.into_iter().map(|t| (t.name, t.value)).collect(),
        created_at: format_millis(p.created_at),
        last_seen: format_millis(p.last_seen),
    }))
}

#[derive(Serialize)]
pub struct ProfileEvents {
    profile_id: i64,
    events: Vec<EventBody>,
}

#[derive(Serialize)]
struct EventBody {
    seq: i64,
    message_id: String,
    #[serde(rename = "type")]
    kind: String,
    event: Option<String>,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    timestamp: String,
    received_at: String,
    /// The message as received.
    message: Value,
}

impl From<StoredEvent> for EventBody {
    fn from(e: StoredEvent) -> Self {
        Self {
            message: serde_json::from_str(&e.raw).unwrap_or(Value::String(e.raw)),
            seq: e.seq,
            message_id: e.message_id,
            kind: e.kind,
            event: e.event,
            user_id: e.user_id,
            anonymous_id: e.anonymous_id,
            timestamp: format_millis(e.timestamp),
            received_at: format_millis(e.received_at),
        }
    }
}

/// `GET /api/v1/profiles/{key}/events?limit=`: the profile's newest events, including those
/// sent under identifiers merged into it.
pub async fn events(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    params: Params,
) -> Result<Json<ProfileEvents>, ApiError> {
    let limit = params.number("limit", 100, 1, 1000)?;
    let p = find(&state, &key).await?;
    let events = state.engine.profile_events(p.id, limit).await?;
    Ok(Json(ProfileEvents {
        profile_id: p.id,
        events: events.into_iter().map(EventBody::from).collect(),
    }))
}
