//! The Segment-compatible Profile API: an app written for Segment's
//! `GET /v1/spaces/{space}/collections/users/profiles/{id_type}:{id}/traits` (and `/events`,
//! `/external_ids`, `/metadata`) works against Affinity by changing the base URL and the
//! access token.
//!
//! `class=audience` lists the live audiences the profile belongs to as Segment does, the
//! audience key (snake_case of its name) set to `true`. Control-group members are members:
//! they are listed too (Segment shows a profile's membership, whichever destinations see it).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::IdKind;
use affinity_core::audience::audience_key;
use affinity_core::timestamp::{format_millis, parse_millis};
use affinity_engine::data::{CredentialKind, ProfileEventsQuery, StoredEvent};

use crate::auth::basic_user;
use crate::params::Params;
use crate::{ApiError, AppState, ErrorCode};

/// Segment's answer: traits by name, and a cursor to page through them.
#[derive(Serialize)]
pub struct TraitsBody {
    traits: Map<String, Value>,
    cursor: Cursor,
}

#[derive(Serialize)]
struct Cursor {
    url: String,
    has_more: bool,
    /// What to pass as `next` for the following page ("" on the last one).
    next: String,
    limit: usize,
}

/// A trait's value with when it was set (`verbose=true`).
#[derive(Serialize)]
struct Verbose {
    value: Value,
    updated_at: String,
}

/// Segment's `/external_ids` and `/events` answers: a page of `data` and its cursor.
#[derive(Serialize)]
pub struct DataBody<T> {
    data: Vec<T>,
    cursor: Cursor,
}

/// One identifier of the profile, as Segment lists it.
#[derive(Serialize)]
pub struct ExternalIdBody {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The source that sent it first; Affinity does not record which write key sent a
    /// message, so this is `null`.
    source_id: Option<String>,
    collection: &'static str,
    /// When a message first carried it (the profile's creation when no stored message does).
    created_at: String,
    encoding: &'static str,
}

/// One event of the profile, in Segment's Profile API shape.
#[derive(Serialize)]
pub struct EventBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    /// `page` and `screen` names.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Value>,
    /// `identify` and `group` traits.
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<Value>,
    context: Value,
    message_id: String,
    source_id: Option<String>,
    timestamp: String,
    received_at: String,
    /// The identifiers the message carried.
    external_ids: Vec<ExternalIdRef>,
}

#[derive(Serialize)]
struct ExternalIdRef {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    collection: &'static str,
    encoding: &'static str,
}

/// Segment's `/metadata` answer.
#[derive(Serialize)]
pub struct MetadataBody {
    metadata: Metadata,
}

#[derive(Serialize)]
struct Metadata {
    created_at: String,
    /// When the profile last changed: its newest message's receive time.
    updated_at: String,
    /// Profiles do not expire in Affinity.
    expires_at: Option<String>,
    first_message_at: Option<String>,
    last_message_at: Option<String>,
    last_source_id: Option<String>,
    last_message_id: Option<String>,
}

pub fn routes() -> Router<AppState> {
    let base = "/v1/spaces/{space}/collections/{collection}/profiles/{key}";
    Router::new()
        .route(&format!("{base}/traits"), get(traits))
        .route(&format!("{base}/external_ids"), get(external_ids))
        .route(&format!("{base}/events"), get(events))
        .route(&format!("{base}/metadata"), get(metadata))
}

/// Admits requests whose Basic user is the Profile API access token.
pub struct ProfileReader;

impl FromRequestParts<AppState> for ProfileReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let error = |m: &str| ApiError::new(ErrorCode::AuthenticationError, m);
        match basic_user(&parts.headers)
            .map_err(|_| error("send the access token as HTTP Basic user: curl -u TOKEN: …"))?
        {
            Some(token)
                if state
                    .engine
                    .verify_credential(CredentialKind::Profile, &token)
                    .await =>
            {
                Ok(ProfileReader)
            }
            Some(_) => Err(error(
                "unknown access token: use AFFINITY_PROFILE_TOKEN, the one printed at first start, \
                 or a new one from `affinity credentials rotate profile`",
            )),
            None => Err(error(
                "send the access token as HTTP Basic user: curl -u TOKEN: …",
            )),
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequestError, message)
}

/// The collection (only `users`) and the `{id_type}:{id}` of the path.
fn profile_key(collection: &str, key: &str) -> Result<(IdKind, String), ApiError> {
    if collection != "users" {
        return Err(ApiError::not_found(format!(
            "collection {collection:?} is not available: Affinity serves `users`"
        )));
    }
    key.split_once(':')
        .and_then(|(k, id)| Some((IdKind::parse(k)?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "the profile must be `user_id:<id>` or `anonymous_id:<id>`; got {key:?}"
            ))
        })
}

/// A comma-separated list parameter.
fn list(params: &Params, name: &str) -> Option<Vec<String>> {
    params
        .get(name)
        .map(|s| s.split(',').map(|t| t.trim().to_string()).collect())
}

fn url(space: &str, key: &str, what: &str) -> String {
    format!("/v1/spaces/{space}/collections/users/profiles/{key}/{what}")
}

async fn traits(
    _: ProfileReader,
    State(state): State<AppState>,
    Path((space, collection, key)): Path<(String, String, String)>,
    params: Params,
) -> Result<Json<TraitsBody>, ApiError> {
    let (kind, id) = profile_key(&collection, &key)?;
    let limit = params
        .number("limit", 10, 1, 200)
        .map_err(|e| invalid(e.message))?;
    let verbose = params
        .boolean("verbose", false)
        .map_err(|e| invalid(e.message))?;
    let class = params.get("class").map(str::to_string);
    if let Some(c) = &class
        && c != "audience"
        && c != "computed_trait"
    {
        return Err(invalid(format!(
            "`class` must be audience or computed_trait; got {c:?}"
        )));
    }
    let include = list(&params, "include");
    let next = params.get("next").map(str::to_string);

    let found = state.engine.profile_traits(kind, id).await?;

    // Identify traits without a class; computed traits for computed_trait; audience
    // memberships (key → true) for audience. Newest value wins when two share a name.
    let wants = |c: &str| class.as_deref().is_none_or(|x| x == c);
    let identify = if class.is_none() {
        found.profile.traits
    } else {
        Vec::new()
    };
    let computed = if wants("computed_trait") {
        found.computed
    } else {
        Vec::new()
    };
    let audiences = if wants("audience") {
        found.audiences
    } else {
        Vec::new()
    };
    let mut all: BTreeMap<String, (Value, i64)> = BTreeMap::new();
    let memberships = audiences
        .into_iter()
        .map(|a| (audience_key(&a.name), Value::Bool(true), a.computed_at));
    for (name, value, at) in identify
        .into_iter()
        .chain(computed)
        .map(|t| (t.name, t.value, t.updated_at))
        .chain(memberships)
    {
        match all.get(&name) {
            Some((_, newer)) if *newer > at => {}
            _ => {
                all.insert(name, (value, at));
            }
        }
    }
    let selected: Vec<(String, (Value, i64))> = all
        .into_iter()
        .filter(|(name, _)| include.as_ref().is_none_or(|inc| inc.contains(name)))
        .filter(|(name, _)| next.as_ref().is_none_or(|n| name >= n))
        .collect();
    let has_more = selected.len() > limit;
    let next_name = if has_more {
        selected[limit].0.clone()
    } else {
        String::new()
    };
    let mut traits = Map::new();
    for (name, (value, at)) in selected.into_iter().take(limit) {
        let value = if verbose {
            serde_json::to_value(Verbose {
                value,
                updated_at: format_millis(at),
            })
            .map_err(|e| ApiError::internal(e.to_string()))?
        } else {
            value
        };
        traits.insert(name, value);
    }
    Ok(Json(TraitsBody {
        traits,
        cursor: Cursor {
            url: url(&space, &key, "traits"),
            has_more,
            next: next_name,
            limit,
        },
    }))
}

/// `…/external_ids?include=&limit=&next=`: the profile's identifiers, ordered by type then
/// id (as text); `next` is the `type:id` to start from.
async fn external_ids(
    _: ProfileReader,
    State(state): State<AppState>,
    Path((space, collection, key)): Path<(String, String, String)>,
    params: Params,
) -> Result<Json<DataBody<ExternalIdBody>>, ApiError> {
    let (kind, id) = profile_key(&collection, &key)?;
    let limit = params
        .number("limit", 25, 1, 100)
        .map_err(|e| invalid(e.message))?;
    let include = list(&params, "include");
    if let Some(types) = &include
        && let Some(bad) = types.iter().find(|t| IdKind::parse(t).is_none())
    {
        return Err(invalid(format!(
            "`include` lists identifier types, user_id and anonymous_id; got {bad:?}"
        )));
    }
    let next = params.get("next").map(str::to_string);
    let (profile, mut identifiers) = state.engine.profile_identifiers(kind, id).await?;
    // Ordered by the `type:id` text the cursor compares.
    identifiers.sort_by(|a, b| (a.kind.as_str(), &a.value).cmp(&(b.kind.as_str(), &b.value)));
    let selected: Vec<ExternalIdBody> = identifiers
        .into_iter()
        .filter(|i| {
            include
                .as_ref()
                .is_none_or(|inc| inc.iter().any(|t| t == i.kind.as_str()))
        })
        .map(|i| ExternalIdBody {
            kind: i.kind.as_str(),
            id: i.value,
            source_id: None,
            collection: "users",
            created_at: format_millis(i.first_seen.unwrap_or(profile.created_at)),
            encoding: "none",
        })
        .filter(|i| {
            next.as_ref()
                .is_none_or(|n| format!("{}:{}", i.kind, i.id).as_str() >= n.as_str())
        })
        .collect();
    let has_more = selected.len() > limit;
    let next = if has_more {
        format!("{}:{}", selected[limit].kind, selected[limit].id)
    } else {
        String::new()
    };
    Ok(Json(DataBody {
        data: selected.into_iter().take(limit).collect(),
        cursor: Cursor {
            url: url(&space, &key, "external_ids"),
            has_more,
            next,
            limit,
        },
    }))
}

/// The `next` of an events page: where the previous page stopped, `{timestamp}.{seq}`.
fn event_cursor(e: &StoredEvent) -> String {
    format!("{}.{}", e.timestamp, e.seq)
}

fn parse_event_cursor(text: &str) -> Option<(i64, i64)> {
    let (t, seq) = text.split_once('.')?;
    Some((t.parse().ok()?, seq.parse().ok()?))
}

fn time_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|t| {
            parse_millis(t).ok_or_else(|| {
                invalid(format!(
                    "`{name}` must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z; got {t:?}"
                ))
            })
        })
        .transpose()
}

/// `…/events?include=&exclude=&start=&end=&sort=&limit=&next=`: the profile's events,
/// newest first by default, including those sent under identifiers merged into it.
async fn events(
    _: ProfileReader,
    State(state): State<AppState>,
    Path((space, collection, key)): Path<(String, String, String)>,
    params: Params,
) -> Result<Json<DataBody<EventBody>>, ApiError> {
    let (kind, id) = profile_key(&collection, &key)?;
    let limit = params
        .number("limit", 10, 1, 100)
        .map_err(|e| invalid(e.message))?;
    let ascending = match params.get("sort") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(invalid(format!(
                "`sort` must be asc or desc; got {other:?}"
            )));
        }
    };
    let after = params
        .get("next")
        .map(|n| {
            parse_event_cursor(n).ok_or_else(|| {
                invalid(format!(
                    "`next` must be the cursor.next of a previous page; got {n:?}"
                ))
            })
        })
        .transpose()?;
    let query = ProfileEventsQuery {
        include: list(&params, "include").unwrap_or_default(),
        exclude: list(&params, "exclude").unwrap_or_default(),
        start: time_param(&params, "start")?,
        end: time_param(&params, "end")?,
        ascending,
        after,
        // One more than the page tells whether another page follows.
        limit: limit + 1,
    };
    let mut found = state.engine.profile_events_page(kind, id, query).await?;
    let has_more = found.len() > limit;
    found.truncate(limit);
    let next = match found.last() {
        Some(last) if has_more => event_cursor(last),
        _ => String::new(),
    };
    Ok(Json(DataBody {
        data: found.into_iter().map(EventBody::from).collect(),
        cursor: Cursor {
            url: url(&space, &key, "events"),
            has_more,
            next,
            limit,
        },
    }))
}

impl From<StoredEvent> for EventBody {
    fn from(e: StoredEvent) -> Self {
        let mut raw = match serde_json::from_str::<Value>(&e.raw) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut external_ids = Vec::new();
        for (kind, id) in [
            (IdKind::UserId, e.user_id),
            (IdKind::AnonymousId, e.anonymous_id),
        ] {
            if let Some(id) = id {
                external_ids.push(ExternalIdRef {
                    id,
                    kind: kind.as_str(),
                    collection: "users",
                    encoding: "none",
                });
            }
        }
        Self {
            event: e.event,
            name: raw.remove("name"),
            properties: raw.remove("properties"),
            traits: raw.remove("traits"),
            context: raw
                .remove("context")
                .unwrap_or_else(|| Value::Object(Map::new())),
            kind: e.kind,
            message_id: e.message_id,
            source_id: None,
            timestamp: format_millis(e.timestamp),
            received_at: format_millis(e.received_at),
            external_ids,
        }
    }
}

/// `…/metadata`: when the profile was created and its messages started and ended.
async fn metadata(
    _: ProfileReader,
    State(state): State<AppState>,
    Path((_space, collection, key)): Path<(String, String, String)>,
) -> Result<Json<MetadataBody>, ApiError> {
    let (kind, id) = profile_key(&collection, &key)?;
    let (profile, activity) = state.engine.profile_metadata(kind, id).await?;
    Ok(Json(MetadataBody {
        metadata: Metadata {
            created_at: format_millis(profile.created_at),
            updated_at: format_millis(activity.last_received_at.unwrap_or(profile.last_seen)),
            expires_at: None,
            first_message_at: activity.first_message_at.map(format_millis),
            last_message_at: activity.last_message_at.map(format_millis),
            last_source_id: None,
            last_message_id: activity.last_message_id,
        },
    }))
}
