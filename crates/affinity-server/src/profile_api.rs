//! The Segment-compatible Profile API: an app written for Segment's
//! `GET /v1/spaces/{space}/collections/users/profiles/{id_type}:{id}/traits` works against
//! Affinity by changing the base URL and the access token.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::IdKind;
use affinity_core::timestamp::format_millis;
use affinity_engine::data::CredentialKind;

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
    /// The name to pass as `next` for the following page ("" on the last one).
    next: String,
    limit: usize,
}

/// A trait's value with when it was set (`verbose=true`).
#[derive(Serialize)]
struct Verbose {
    value: Value,
    updated_at: String,
}

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/spaces/{space}/collections/{collection}/profiles/{key}/traits",
        get(traits),
    )
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

async fn traits(
    _: ProfileReader,
    State(state): State<AppState>,
    Path((space, collection, key)): Path<(String, String, String)>,
    params: Params,
) -> Result<Json<TraitsBody>, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidRequestError, m);
    if collection != "users" {
        return Err(ApiError::not_found(format!(
            "collection {collection:?} is not available: Affinity serves `users`"
        )));
    }
    let (kind, id) = key
        .split_once(':')
        .and_then(|(k, id)| Some((IdKind::parse(k)?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "the profile must be `user_id:<id>` or `anonymous_id:<id>`; got {key:?}"
            ))
        })?;
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
    let include: Option<Vec<String>> = params
        .get("include")
        .map(|s| s.split(',').map(|t| t.trim().to_string()).collect());
    let next = params.get("next").map(str::to_string);

    let (profile, computed) = state.engine.profile_with_computed_traits(kind, id).await?;

    // Newest value wins when an identify trait and a computed trait share a name.
    let mut all: BTreeMap<String, (Value, i64)> = BTreeMap::new();
    let identify = if class.is_none() {
        profile.traits
    } else {
        Vec::new()
    };
    let computed = if class.as_deref() == Some("audience") {
        Vec::new()
    } else {
        computed
    };
    for t in identify.into_iter().chain(computed) {
        match all.get(&t.name) {
            Some((_, at)) if *at > t.updated_at => {}
            _ => {
                all.insert(t.name, (t.value, t.updated_at));
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
            url: format!("/v1/spaces/{space}/collections/users/profiles/{key}/traits"),
            has_more,
            next: next_name,
            limit,
        },
    }))
}
