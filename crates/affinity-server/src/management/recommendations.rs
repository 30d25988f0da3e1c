//! Live answers from the serving model: a user's recommendations, an item's similar items.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

use affinity_core::timestamp::format_millis;
use affinity_engine::filters::FilterWarning;
use affinity_engine::recommendations::{RecommendationQuery, SimilarItemsQuery};

use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

#[derive(Serialize)]
pub struct RecommendationsBody {
    user_id: String,
    column: String,
    recommendations: Vec<Scored>,
    fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_reason: Option<&'static str>,
    /// Filter values no item holds, with close values (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<WarningBody>,
    model_id: i64,
}

/// A filter value no item holds: the list is empty (or unfiltered) because of it.
#[derive(Serialize)]
struct WarningBody {
    parameter: String,
    column: String,
    value: String,
    message: String,
    suggestions: Vec<String>,
}

impl From<FilterWarning> for WarningBody {
    fn from(w: FilterWarning) -> Self {
        Self {
            parameter: w.parameter,
            column: w.column,
            value: w.value,
            message: w.message,
            suggestions: w.suggestions,
        }
    }
}

#[derive(Serialize)]
struct Scored {
    value: Value,
    score: f32,
}

/// `GET /api/v1/users/{user_id}/recommendations?column=&k=&exclude_interacted=&filter=&exclude=`.
pub async fn for_user(
    _: Admin,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    params: Params,
) -> Result<Json<RecommendationsBody>, ApiError> {
    let query = RecommendationQuery {
        k: params.number("k", 10, 1, 100)?,
        exclude_interacted: params.boolean("exclude_interacted", false)?,
        column: params.get("column").unwrap_or("item_id").to_string(),
        require: params.pairs("filter")?,
        exclude: params.exclusions("exclude")?,
    };
    let column = query.column.clone();
    let recs = state
        .engine
        .recommend_for_user(user_id.clone(), query)
        .await?;
    Ok(Json(RecommendationsBody {
        user_id,
        column,
        recommendations: recs
            .values
            .into_iter()
            .map(|(value, score)| Scored { value, score })
            .collect(),
        fallback: recs.fallback_reason.is_some(),
        fallback_reason: recs.fallback_reason,
        warnings: recs.warnings.into_iter().map(WarningBody::from).collect(),
        model_id: recs.model_id,
    }))
}

#[derive(Serialize)]
pub struct SimilarBody {
    item_id: String,
    similar: Vec<SimilarItem>,
    /// What `score` measures: `relative_co_engagement` (the best match is 1.0) or, for the
    /// fallback, `shared_column_values` (the share of the item's values held too).
    score_kind: &'static str,
    fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<WarningBody>,
    model_id: i64,
    /// The engagement counted: `from` (absent: all history) to the model's `as_of`.
    window: WindowBody,
}

#[derive(Serialize)]
struct WindowBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    to: String,
}

#[derive(Serialize)]
struct SimilarItem {
    item_id: String,
    score: f32,
}

/// `GET /api/v1/items/{item_id}/similar?k=&lookback_days=&half_life_days=&column=&value=`.
pub async fn similar(
    _: Admin,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    params: Params,
) -> Result<Json<SimilarBody>, ApiError> {
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
            return Err(ApiError::invalid_parameter(
                "`column` and `value` go together: give both or neither",
            ));
        }
    };
    let query = SimilarItemsQuery {
        k,
        lookback_days,
        half_life_days,
        filter,
    };
    let found = state.engine.similar_items(item_id.clone(), query).await?;
    Ok(Json(SimilarBody {
        item_id,
        similar: found
            .similar
            .into_iter()
            .map(|(item_id, score)| SimilarItem { item_id, score })
            .collect(),
        score_kind: found.score.as_str(),
        fallback: found.fallback_reason.is_some(),
        fallback_reason: found.fallback_reason,
        warnings: found.warnings.into_iter().map(WarningBody::from).collect(),
        model_id: found.model_id,
        window: WindowBody {
            from: found.window_from.map(format_millis),
            to: format_millis(found.as_of),
        },
    }))
}
