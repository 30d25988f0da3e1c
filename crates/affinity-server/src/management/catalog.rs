//! `/api/v1/catalog`: the configuration, its build status, column values, items, uploads.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};

use affinity_core::catalog::{CatalogConfig, ITEM_ID};
use affinity_core::item_catalog::ItemCatalog;
use affinity_core::timestamp::format_millis;
use affinity_store::{CatalogStore, EventDiscovery};

use super::{blocking, json_body};
use crate::auth::Admin;
use crate::catalog_state::now_ms;
use crate::params::Params;
use crate::{ApiError, AppState};

/// `PUT /api/v1/catalog`: validates (every problem in one 422), stores, rebuilds.
pub async fn put(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let config: CatalogConfig = json_body::parse(body).await?;
    let problems = config.validate();
    if !problems.is_empty() {
        let pairs: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect();
        return Err(ApiError::problems("invalid_catalog", &pairs));
    }
    let store = state.store.clone();
    let saved = config.clone();
    let seen = blocking(move || {
        store.set_catalog_config(&saved)?;
        store.events()
    })
    .await?;
    let warnings: Vec<Value> = config
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| !seen.iter().any(|s| s.name == e.name))
        .map(|(i, e)| {
            json!({"field": format!("events[{i}].name"),
                   "message": format!("no {:?} event has been received yet; it will count once it arrives", e.name)})
        })
        .collect();
    state.catalog.rebuild(state.store.clone());
    let mut out = describe(&state, Some(&config));
    out["warnings"] = json!(warnings);
    Ok(Json(out))
}

/// `GET /api/v1/catalog`: the configuration and the state of the last build.
pub async fn get(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let config = blocking(move || store.catalog_config()).await?;
    Ok(Json(describe(&state, config.as_ref())))
}

fn describe(state: &AppState, config: Option<&CatalogConfig>) -> Value {
    let snap = state.catalog.snapshot();
    let mut out = match config {
        Some(c) => serde_json::to_value(c).unwrap_or_else(|_| json!({})),
        None => json!({"events": [], "columns": []}),
    };
    let counts = snap.catalog.as_ref();
    out["status"] = json!(if config.is_none() {
        "not_configured"
    } else {
        snap.status.as_str()
    });
    out["items"] = json!(counts.map_or(0, |c| c.items.len()));
    out["users"] = json!(counts.map_or(0, |c| c.users.len()));
    out["interactions"] = json!(counts.map_or(0, |c| c.interactions.len()));
    out["as_of"] = json!(counts.map(|c| format_millis(c.as_of)));
    out["built_at"] = json!(snap.built_at.map(format_millis));
    out["build_ms"] = json!(snap.build_ms);
    if let Some(e) = snap.error {
        out["error"] = json!(e);
    }
    out
}

/// The built catalog, or a 409 saying why there is none yet.
pub fn built(state: &AppState) -> Result<std::sync::Arc<ItemCatalog>, ApiError> {
    let snap = state.catalog.snapshot();
    snap.catalog.ok_or_else(|| {
        let why = match snap.status.as_str() {
            "not_configured" => {
                "no catalog is configured yet: PUT /api/v1/catalog first".to_string()
            }
            "building" => "the catalog is being built; retry in a few seconds".to_string(),
            _ => format!(
                "the last catalog build failed: {}",
                snap.error.unwrap_or_default()
            ),
        };
        ApiError::new(StatusCode::CONFLICT, "catalog_not_ready", why)
    })
}

pub fn column_of(catalog: &ItemCatalog, column: &str) -> Result<Option<usize>, ApiError> {
    if column == ITEM_ID {
        return Ok(None);
    }
    catalog.column(column).map(Some).ok_or_else(|| {
        ApiError::not_found(format!(
            "no column {column:?}; the catalog has: item_id, {}",
            catalog.column_names.join(", ")
        ))
    })
}

/// `GET /api/v1/catalog/columns/{column}/values?q=&limit=`.
pub async fn column_values(
    _: Admin,
    State(state): State<AppState>,
    Path(column): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params(query);
    let limit = params.number("limit", 50, 1, 1000)?;
    let prefix = params.get("q").map(str::to_string);
    let catalog = built(&state)?;
    let index = column_of(&catalog, &column)?;
    let values = tokio::task::spawn_blocking(move || match index {
        Some(c) => catalog
            .column_values(c, prefix.as_deref(), limit)
            .into_iter()
            .map(|v| json!({"value": v.value, "items": v.items, "users": v.users}))
            .collect::<Vec<_>>(),
        None => item_values(&catalog, prefix.as_deref(), limit),
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(json!({"column": column, "values": values})))
}

/// Values of the `item_id` pseudo-column: item ids with their user counts.
fn item_values(catalog: &ItemCatalog, prefix: Option<&str>, limit: usize) -> Vec<Value> {
    let mut users: Vec<std::collections::HashSet<u32>> =
        vec![Default::default(); catalog.items.len()];
    for x in &catalog.interactions {
        users[x.item as usize].insert(x.user);
    }
    let prefix = prefix.map(str::to_lowercase);
    let mut rows: Vec<(usize, &String)> = catalog
        .items
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            prefix
                .as_ref()
                .is_none_or(|p| id.to_lowercase().starts_with(p.as_str()))
        })
        .map(|(i, id)| (users[i].len(), id))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    rows.into_iter()
        .take(limit)
        .map(|(n, id)| json!({"value": id, "items": 1, "users": n}))
        .collect()
}

/// `GET /api/v1/catalog/items/{item_id}`: one item's columns and counts.
pub async fn item(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = built(&state)?;
    let Some(index) = catalog.item_index(&id) else {
        return Err(ApiError::not_found(format!(
            "no item {id:?} in the catalog"
        )));
    };
    let columns: Map<String, Value> = catalog
        .column_names
        .iter()
        .zip(&catalog.values[index as usize])
        .map(|(name, v)| (name.clone(), v.clone().unwrap_or(Value::Null)))
        .collect();
    let mut users = std::collections::HashSet::new();
    let mut by_event = vec![0u64; catalog.config.events.len()];
    let mut last = None;
    for x in catalog.interactions.iter().filter(|x| x.item == index) {
        users.insert(x.user);
        by_event[x.event as usize] += 1;
        last = Some(x.timestamp);
    }
    let by_event: Map<String, Value> = catalog
        .config
        .events
        .iter()
        .zip(by_event)
        .map(|(e, n)| (e.name.clone(), json!(n)))
        .collect();
    Ok(Json(json!({
        "item_id": id,
        "columns": columns,
        "interactions": by_event.values().filter_map(Value::as_u64).sum::<u64>(),
        "users": users.len(),
        "by_event": by_event,
        "last_interaction": last.map(format_millis),
    })))
}

/// Largest catalog file accepted in one upload.
const MAX_UPLOAD: usize = 64 * 1024 * 1024;
/// Row problems listed in one error.
const SHOWN_PROBLEMS: usize = 20;

/// `POST /api/v1/catalog/items`: a CSV file with a header (one column `item_id`) or JSONL
/// (one object a line with `item_id`). All rows or none: a file with bad rows is refused whole,
/// listing them.
pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("catalog files are limited to {MAX_UPLOAD} bytes per upload; split the file"),
        )
    })?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_body", "the catalog file is not UTF-8 text"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let jsonl = content_type.contains("json")
        || (!content_type.contains("csv") && text.trim_start().starts_with('{'));
    let (rows, problems) = if jsonl {
        parse_jsonl(&text)
    } else {
        parse_csv(&text)
    };
    if !problems.is_empty() {
        let shown: Vec<&str> = problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .map(String::as_str)
            .collect();
        return Err(ApiError::unprocessable(
            "invalid_catalog_file",
            format!(
                "{} problem(s), nothing was stored: {}",
                problems.len(),
                shown.join("; ")
            ),
        )
        .with_detail("problems", json!(shown)));
    }
    if rows.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_catalog_file",
            "the file has no item rows",
        ));
    }
    let store = state.store.clone();
    let count = blocking(move || store.upload_items(&rows, now_ms())).await?;
    state.catalog.rebuild(state.store.clone());
    Ok(Json(
        json!({"items": count, "format": if jsonl { "jsonl" } else { "csv" }, "status": "building"}),
    ))
}

type Rows = Vec<(String, Map<String, Value>)>;

fn parse_jsonl(text: &str) -> (Rows, Vec<String>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(mut m)) => match m.remove(ITEM_ID) {
                Some(Value::String(id)) if !id.is_empty() => rows.push((id, m)),
                Some(Value::Number(id)) => rows.push((id.to_string(), m)),
                _ => problems.push(format!("line {}: needs a non-empty \"item_id\"", n + 1)),
            },
            Ok(_) => problems.push(format!("line {}: must be a JSON object", n + 1)),
            Err(e) => problems.push(format!("line {}: invalid JSON ({e})", n + 1)),
        }
    }
    (rows, problems)
}

/// CSV cells are text; a cell holding a JSON array (`["Comedy","Drama"]`) is a list; an empty
/// cell leaves the column unset.
fn parse_csv(text: &str) -> (Rows, Vec<String>) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return (Vec::new(), vec![format!("header: {e}")]),
    };
    let Some(id_col) = header.iter().position(|h| h == ITEM_ID) else {
        return (
            Vec::new(),
            vec![format!(
                "the header needs an `item_id` column; it has: {}",
                header.join(", ")
            )],
        );
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let id = record.get(id_col).unwrap_or("").trim();
        if id.is_empty() {
            problems.push(format!("line {line}: empty item_id"));
            continue;
        }
        let mut columns = Map::new();
        for (i, cell) in record.iter().enumerate() {
            if i == id_col || cell.is_empty() {
                continue;
            }
            let value = if cell.starts_with('[') {
                serde_json::from_str::<Value>(cell)
                    .ok()
                    .filter(Value::is_array)
                    .unwrap_or_else(|| json!(cell))
            } else {
                json!(cell)
            };
            columns.insert(header[i].clone(), value);
        }
        rows.push((id.to_string(), columns));
    }
    (rows, problems)
}
