//! Live answers from the serving model: a user's recommendations, an item's similar items.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use affinity_core::IdKind;
use affinity_core::catalog::value_matches;
use affinity_core::item_rules::{ItemFilter, ItemRule};
use affinity_model::co_occurrence::SimilarQuery;
use affinity_model::recommend::{RecommendRequest, recommend};
use affinity_store::Profiles;

use super::blocking;
use super::catalog::column_of;
use crate::auth::Admin;
use crate::params::Params;
use crate::training::ServingModel;
use crate::{ApiError, AppState};

pub fn serving(state: &AppState) -> Result<Arc<ServingModel>, ApiError> {
    state.models.current().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "model_not_ready",
            "no model has been trained yet: configure the catalog, then POST /api/v1/models/train",
        )
    })
}

/// `col:value,col:value` pairs, e.g. `filter=brand:Acme,category:Shoes`.
fn pairs(params: &Params, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|p| {
            p.split_once(':')
                .map(|(c, v)| (c.trim().to_string(), v.to_string()))
                .filter(|(c, v)| !c.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_parameter", format!("`{name}` must be column:value pairs separated by commas, e.g. brand:Acme; got {p:?}"))
                })
        })
        .collect()
}

pub fn boolean(params: &Params, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`{name}` must be true or false, got {other:?}"),
        )),
    }
}

/// `GET /api/v1/users/{user_id}/recommendations?column=&k=&exclude_interacted=&filter=&exclude=`.
pub async fn for_user(
    _: Admin,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params(query);
    let k = params.number("k", 10, 1, 100)?;
    let exclude_interacted = boolean(&params, "exclude_interacted", false)?;
    let column_name = params.get("column").unwrap_or("item_id").to_string();
    let require = pairs(&params, "filter")?;
    let exclude: Vec<ItemRule> = pairs(&params, "exclude")?
        .into_iter()
        .map(|(column, value)| ItemRule {
            column,
            values: vec![value],
            below: None,
            above: None,
        })
        .collect();
    let model = serving(&state)?;
    let column = column_of(&model.catalog, &column_name)?;
    let store = state.store.clone();
    let uid = user_id.clone();
    let profile = blocking(move || store.profile(IdKind::UserId, &uid)).await?;
    let answer = tokio::task::spawn_blocking(move || {
        let filter = ItemFilter::new(&model.catalog, &require, &exclude)
            .map_err(|m| ApiError::bad_request("invalid_parameter", m))?;
        let user = profile
            .as_ref()
            .and_then(|p| model.catalog.user_index(p.id));
        let allow = |i: u32| filter.allows(i);
        let recs = recommend(
            &model.model,
            &model.catalog,
            &RecommendRequest {
                user,
                k,
                column,
                exclude_interacted,
                allow: &allow,
            },
        )
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let reason = match (&profile, user, recs.fallback) {
            (_, _, false) => None,
            (None, _, true) => Some("unknown user: showing what is popular"),
            (Some(_), None, true) => {
                Some("no interactions with the catalog yet: showing what is popular")
            }
            (Some(_), Some(_), true) => {
                Some("no interactions in the model's window: showing what is popular")
            }
        };
        Ok::<_, ApiError>((recs, reason, model.record.id))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    let (recs, reason, model_id) = answer;
    let mut out = json!({
        "user_id": user_id,
        "column": column_name,
        "recommendations": recs.values.iter().map(|(v, s)| json!({"value": v, "score": s})).collect::<Vec<_>>(),
        "fallback": recs.fallback,
        "model_id": model_id,
    });
    if let Some(r) = reason {
        out["fallback_reason"] = json!(r);
    }
    Ok(Json(out))
}

/// `GET /api/v1/items/{item_id}/similar?k=&lookback_days=&half_life_days=&column=&value=`.
pub async fn similar(
    _: Admin,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params(query);
    let k = params.number("k", 10, 1, 100)?;
    let lookback_days = match params.get("lookback_days") {
        None => None,
        Some(_) => Some(params.number("lookback_days", 0, 1, 3650)? as u32),
    };
    let half_life_days = params.number("half_life_days", 30, 1, 3650)? as f64;
    let filter = match (params.get("column"), params.get("value")) {
        (Some(c), Some(v)) => Some((c.to_string(), v.to_string())),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`column` and `value` go together: give both or neither",
            ));
        }
    };
    let model = serving(&state)?;
    let catalog = &model.catalog;
    let item = catalog.item_index(&item_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no item {item_id:?} in the catalog (as of the serving model)"
        ))
    })?;
    let filter_column = match &filter {
        Some((c, v)) => Some((
            column_of(catalog, c)?.ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "filter on a catalog column, not item_id",
                )
            })?,
            v.clone(),
        )),
        None => None,
    };
    let model2 = model.clone();
    let (list, fallback) = tokio::task::spawn_blocking(move || {
        let catalog = &model2.catalog;
        let allow = |j: u32| {
            filter_column.as_ref().is_none_or(|(c, v)| {
                catalog.values[j as usize][*c]
                    .as_ref()
                    .is_some_and(|x| value_matches(x, v))
            })
        };
        if model2.co_occurrence.has_interactions(item, lookback_days) {
            let q = SimilarQuery {
                k,
                lookback_days,
                half_life_days,
            };
            (model2.co_occurrence.similar(item, &q, &allow), false)
        } else {
            (shared_values(&model2, item, k, &allow), true)
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(json!({
        "item_id": item_id,
        "similar": list.iter().map(|(j, s)| json!({"item_id": model.catalog.items[*j as usize], "score": s})).collect::<Vec<_>>(),
        "fallback": fallback,
        "model_id": model.record.id,
    })))
}

/// For an item nobody engaged with (yet): the items sharing most of its column values, the
/// more popular first. Scores are the share of its values they share.
fn shared_values(
    model: &ServingModel,
    item: u32,
    k: usize,
    allow: &dyn Fn(u32) -> bool,
) -> Vec<(u32, f32)> {
    let catalog = &model.catalog;
    let mine = &catalog.values[item as usize];
    let total = mine.iter().filter(|v| v.is_some()).count().max(1) as f32;
    let popularity = model.model.fallback.scores();
    let mut out: Vec<(u32, f32, f32)> = (0..catalog.items.len() as u32)
        .filter(|&j| j != item && allow(j))
        .filter_map(|j| {
            let shared = mine
                .iter()
                .zip(&catalog.values[j as usize])
                .filter(|(a, b)| a.is_some() && a == b)
                .count() as f32;
            (shared > 0.0).then(|| {
                (
                    j,
                    shared / total,
                    popularity.get(j as usize).copied().unwrap_or(0.0),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    out.into_iter().take(k).map(|(j, s, _)| (j, s)).collect()
}
