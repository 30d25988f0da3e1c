//! `/api/v1/catalog`: the configuration, its build status, column values, items, uploads.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header;
use serde::Serialize;
use serde_json::{Map, Value};

use affinity_core::catalog::CatalogConfig;
use affinity_core::timestamp::format_millis;
use affinity_engine::catalog::{BuildStatus, ColumnSummary, ColumnValue, FileFormat, ItemDetail};

use super::json_body;
use crate::auth::Admin;
use crate::error::ProblemBody;
use crate::params::Params;
use crate::{ApiError, AppState, ErrorCode};

/// Largest catalog file accepted in one upload (the whole body, for a multipart one).
pub const MAX_UPLOAD: usize = 64 * 1024 * 1024;

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
    /// Every column of the built catalog, the mapped ones and those only uploaded files
    /// give, with how many items hold a value and how many distinct values there are.
    built_columns: Vec<BuiltColumnBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// On `PUT`: events named that were never received, and mappings naming a property their
    /// event never carried (with the closest keys it does carry). On `GET`, once built:
    /// mappings that found nothing, and why the catalog has no items when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<ProblemBody>>,
}

#[derive(Serialize)]
struct BuiltColumnBody {
    name: String,
    /// `mapped` (named in the configuration) or `uploaded` (only in uploaded files).
    source: &'static str,
    items: usize,
    values: usize,
}

impl From<ColumnSummary> for BuiltColumnBody {
    fn from(c: ColumnSummary) -> Self {
        Self {
            name: c.name,
            source: c.source.as_str(),
            items: c.items,
            values: c.values,
        }
    }
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
        built_columns: built
            .map(|_| {
                snap.columns
                    .into_iter()
                    .map(BuiltColumnBody::from)
                    .collect()
            })
            .unwrap_or_default(),
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
    /// Rows for items the catalog did not have.
    new_items: usize,
    /// Columns the catalog did not have (targetable at once, like every uploaded value).
    new_columns: Vec<String>,
    /// `ready`: the catalog was rebuilt with the rows before this answer. Otherwise the
    /// rows are stored and join the next build (`GET /api/v1/catalog` says why not now).
    status: &'static str,
}

/// The name of the part a multipart upload carries its file in (`curl -F file=@items.csv`).
const FILE_PART: &str = "file";

/// The format a content type or file name says, if any.
fn format_of(content_type: &str, file_name: Option<&str>) -> Result<Option<FileFormat>, ApiError> {
    let extension = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("csv") => return Ok(Some(FileFormat::Csv)),
        Some("jsonl" | "ndjson" | "json") => return Ok(Some(FileFormat::Jsonl)),
        Some("txt") | None => {}
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidCatalogFile,
                format!(
                    "catalog files are CSV (.csv, with a header holding item_id) or JSONL (.jsonl, one object a line); {:?} is .{other}",
                    file_name.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(if content_type.contains("json") {
        Some(FileFormat::Jsonl)
    } else if content_type.contains("csv") {
        Some(FileFormat::Csv)
    } else {
        None
    })
}

/// The file of a `multipart/form-data` upload: exactly one part named `file`; other parts
/// are refused by name, so a misnamed part is not taken for an empty upload.
async fn multipart_file(
    request: Request,
    state: &AppState,
) -> Result<(Vec<u8>, Option<FileFormat>), ApiError> {
    let mut multipart = Multipart::from_request(request, state).await.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidCatalogFile,
            format!(
                "{}; send the file as curl -F file=@items.csv does",
                e.body_text()
            ),
        )
    })?;
    let mut file = None;
    let mut others = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        if name != FILE_PART {
            others.push(name);
            continue;
        }
        if file.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidCatalogFile,
                format!(
                    "one file per upload: the request has more than one part named {FILE_PART:?}"
                ),
            ));
        }
        let hint = format_of(field.content_type().unwrap_or_default(), field.file_name())?;
        file = Some((field.bytes().await?.to_vec(), hint));
    }
    file.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidCatalogFile,
            format!(
                "a multipart upload carries the catalog file in a part named {FILE_PART:?} (curl -F file=@items.csv); this request's parts: {}",
                if others.is_empty() {
                    "none".to_string()
                } else {
                    others.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>().join(", ")
                }
            ),
        )
    })
}

/// `POST /api/v1/catalog/items`: a CSV file with a header (one column `item_id`) or JSONL
/// (one object a line with `item_id`), as the body itself or as the part `file` of a
/// `multipart/form-data` body (`curl -F file=@items.csv`). All rows or none: a file with bad
/// rows is refused whole, listing them. Answered once the catalog holds the rows.
pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<UploadBody>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("catalog files are limited to {MAX_UPLOAD} bytes per upload; split the file"),
        )
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (file, hint) = if content_type.starts_with("multipart/form-data") {
        let request = Request::from_parts(parts, Body::from(bytes));
        multipart_file(request, &state).await?
    } else {
        (bytes.to_vec(), format_of(&content_type, None)?)
    };
    let upload = state.engine.upload_items(file, hint).await?;
    Ok(Json(UploadBody {
        items: upload.items,
        format: upload.format.as_str(),
        new_items: upload.new_items,
        new_columns: upload.new_columns,
        status: if upload.built {
            BuildStatus::Ready.as_str()
        } else {
            BuildStatus::Building.as_str()
        },
    }))
}
