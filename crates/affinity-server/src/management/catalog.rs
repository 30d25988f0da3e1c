//! `/api/v1/catalog`: the configuration, its build status, column values, items, uploads.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::catalog::CatalogConfig;
use affinity_core::timestamp::format_millis;
use affinity_engine::catalog::{BuildStatus, ColumnValue, FileFormat, ItemDetail};

use super::json_body;
use crate::auth::Admin;
use crate::error::ProblemBody;
use crate::params::Params;
use crate::{ApiError, AppState, ErrorCode};

/// Largest catalog file accepted in one upload.
const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// The configuration (as it was sent) and the state of the last build.
#[derive(Serialize)]
pub struct CatalogBody {
    #[serde(flatten)]
    config: CatalogConfig,
    status: &'static str,
    items: usize,
    users: usize,
    interactions: usize,
    /// The models' "now": lookback windows, decay and audience horizons count back from it.
    as_of: Option<String>,
    /// The newest interaction: `as_of` stays before it when only a handful of interactions
    /// arrived after a long pause (`as_of_rule` says so).
    data_end: Option<String>,
    as_of_rule: Option<String>,
    /// Interactions after `as_of`, left out of training until they join.
    interactions_after_as_of: u64,
    built_at: Option<String>,
    build_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// On `PUT`: events named that were never received, and mappings naming a property their
    /// event never carried (with the closest keys it does carry). On `GET`, once built:
    /// mappings that found nothing, and why the catalog has no items when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<ProblemBody>>,
}

fn describe(state: &AppState, config: Option<CatalogConfig>) -> CatalogBody {
    let snap = state.engine.catalog_snapshot();
    let built = snap.catalog.as_ref();
    CatalogBody {
        status: if config.is_none() {
            BuildStatus::NotConfigured.as_str()
        } else {
            snap.status.as_str()
        },
        config: config.unwrap_or_else(|| CatalogConfig {
            events: Vec::new(),
            columns: Vec::new(),
            lookback_days: None,
            half_life_days: None,
            model_selection: None,
        }),
        items: built.map_or(0, |c| c.items.len()),
        users: built.map_or(0, |c| c.users.len()),
        interactions: built.map_or(0, |c| c.interactions.len()),
        as_of: built.map(|c| format_millis(c.as_of)),
        data_end: built.map(|c| format_millis(c.time.data_end)),
        as_of_rule: built.map(|c| c.time.rule()),
        interactions_after_as_of: built.map_or(0, |c| c.time.after_as_of),
        built_at: snap.built_at.map(format_millis),
        build_ms: snap.build_ms,
        error: snap.error,
        warnings: built.map(|_| snap.warnings.into_iter().map(ProblemBody::from).collect()),
    }
}

/// `PUT /api/v1/catalog`: validates (every problem in one 422), stores, rebuilds.
pub async fn put(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<CatalogBody>, ApiError> {
    let config: CatalogConfig = json_body::parse(body).await?;
    let saved = state.engine.set_catalog(config.clone()).await?;
    let mut out = describe(&state, Some(config));
    out.warnings = Some(saved.warnings.into_iter().map(ProblemBody::from).collect());
    Ok(Json(out))
}

/// `GET /api/v1/catalog`.
pub async fn get(_: Admin, State(state): State<AppState>) -> Result<Json<CatalogBody>, ApiError> {
    let config = state.engine.catalog_config().await?;
    Ok(Json(describe(&state, config)))
}

#[derive(Serialize)]
pub struct ColumnValuesBody {
    column: String,
    values: Vec<ColumnValueBody>,
}

#[derive(Serialize)]
struct ColumnValueBody {
    value: Value,
    items: u64,
    users: u64,
}

impl From<ColumnValue> for ColumnValueBody {
    fn from(v: ColumnValue) -> Self {
        Self {
            value: v.value,
            items: v.items,
            users: v.users,
        }
    }
}

/// `GET /api/v1/catalog/columns/{column}/values?q=&limit=`.
pub async fn column_values(
    _: Admin,
    State(state): State<AppState>,
    Path(column): Path<String>,
    params: Params,
) -> Result<Json<ColumnValuesBody>, ApiError> {
    let limit = params.number("limit", 50, 1, 1000)?;
    let prefix = params.get("q").map(str::to_string);
    let values = state.engine.column_values(&column, prefix, limit).await?;
    Ok(Json(ColumnValuesBody {
        column,
        values: values.into_iter().map(ColumnValueBody::from).collect(),
    }))
}

#[derive(Serialize)]
pub struct ItemBody {
    item_id: String,
    columns: Map<String, Value>,
    interactions: u64,
    users: usize,
    by_event: Map<String, Value>,
    last_interaction: Option<String>,
}

impl From<ItemDetail> for ItemBody {
    fn from(d: ItemDetail) -> Self {
        Self {
            item_id: d.item_id,
            columns: d.columns,
            interactions: d.interactions,
            users: d.users,
            by_event: d
                .by_event
                .into_iter()
                .map(|(name, n)| (name, Value::from(n)))
                .collect(),
            last_interaction: d.last_interaction.map(format_millis),
        }
    }
}

/// `GET /api/v1/catalog/items/{item_id}`.
pub async fn item(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemBody>, ApiError> {
    Ok(Json(state.engine.item(id).await?.into()))
}

#[derive(Serialize)]
pub struct UploadBody {
    items: usize,
    format: &'static str,
    /// The catalog is rebuilt in the background with the new rows.
    status: &'static str,
}

/// `POST /api/v1/catalog/items`: a CSV file with a header (one column `item_id`) or JSONL
/// (one object a line with `item_id`). All rows or none: a file with bad rows is refused whole,
/// listing them.
pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadBody>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("catalog files are limited to {MAX_UPLOAD} bytes per upload; split the file"),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hint = if content_type.contains("json") {
        Some(FileFormat::Jsonl)
    } else if content_type.contains("csv") {
        Some(FileFormat::Csv)
    } else {
        None
    };
    let upload = state.engine.upload_items(bytes.to_vec(), hint).await?;
    Ok(Json(UploadBody {
        items: upload.items,
        format: upload.format.as_str(),
        status: BuildStatus::Building.as_str(),
    }))
}
