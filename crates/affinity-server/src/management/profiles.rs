//! `/api/v1/profiles/{key}`: one person, with identifiers, traits and events (admin view);
//! `/api/v1/identity/refused-merges`: the merges the identity rule refused.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::IdKind;
use affinity_core::timestamp::format_millis;
use affinity_engine::data::{Profile, RefusedMerge, StoredEvent};

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

#[derive(Serialize)]
pub struct RefusedMergesPage {
    refused_merges: Vec<RefusedMergeBody>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct RefusedMergeBody {
    message_id: String,
    /// `alias`, or the type of a message that carried both a userId and an anonymousId.
    message_type: String,
    /// The message's userId: the profile the identifier would have joined.
    user_id: String,
    /// The identifier that stayed with its profile.
    identifier: Identity,
    /// The user the identifier already belongs to.
    owner_user_id: String,
    reason: String,
    received_at: String,
}

impl From<RefusedMerge> for RefusedMergeBody {
    fn from(r: RefusedMerge) -> Self {
        Self {
            message_id: r.message_id,
            message_type: r.message_type,
            user_id: r.user_id,
            identifier: Identity {
                kind: r.identifier_kind.as_str(),
                id: r.identifier,
            },
            owner_user_id: r.owner,
            reason: r.reason,
            received_at: format_millis(r.received_at),
        }
    }
}

/// `GET /api/v1/identity/refused-merges?limit=&cursor=`: newest first; `next_cursor` pages on.
pub async fn refused_merges(
    _: Admin,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<RefusedMergesPage>, ApiError> {
    let limit = params.number("limit", 100, 1, 1000)?;
    let before = match params.get("cursor") {
        None => None,
        Some(c) => Some(c.parse().ok().filter(|n: &i64| *n > 0).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "`cursor` {c:?} is not a cursor from a previous page"
            ))
        })?),
    };
    let mut page = state.engine.refused_merges(before, limit + 1).await?;
    // One more than asked tells whether there is a next page without a count query.
    let next_cursor = (page.len() > limit).then(|| page[limit - 1].id.to_string());
    page.truncate(limit);
    Ok(Json(RefusedMergesPage {
        refused_merges: page.into_iter().map(RefusedMergeBody::from).collect(),
        next_cursor,
    }))
}
