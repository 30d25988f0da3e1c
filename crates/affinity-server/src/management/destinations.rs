//! `/api/v1/destinations`: where audiences and traits are delivered. Create, list, read,
//! delete, send a test message, read the delivery log and re-queue failed messages. Secrets
//! are never answered back: a webhook's secret and header values show as `"set"`, a write
//! key as its first characters.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use affinity_core::destination::{DestinationConfig, FileFormat, parse_destination_ids};
use affinity_core::timestamp::format_millis;
use affinity_engine::data::{DeliveryCounts, DeliveryRecord};
use affinity_engine::destinations::{DeliveryStatus, Destination, TestOutcome};
use affinity_engine::error::Invalid;
use affinity_engine::{EngineError, Problem};

use super::json_body;
use crate::auth::Admin;
use crate::params::Params;
use crate::{ApiError, AppState};

/// The body of `PUT …/destinations` of an audience, a trait or a goal recommendation: the
/// whole new list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationsChange {
    destinations: serde_json::Value,
}

impl DestinationsChange {
    /// The ids as text, or a 422 of kind `kind` saying what the list should be.
    pub fn ids(&self, kind: Invalid) -> Result<Vec<String>, ApiError> {
        let mut problems = Vec::new();
        let ids = parse_destination_ids(Some(&self.destinations), &mut problems);
        if problems.is_empty() {
            Ok(ids)
        } else {
            Err(EngineError::invalid(kind, problems.into_iter().map(Problem::from)).into())
        }
    }
}

/// Characters of a write key shown back, enough to tell two keys apart.
const KEY_PREFIX: usize = 4;
const SET: &str = "set";

#[derive(Serialize)]
#[serde(untagged)]
enum SettingsBody {
    Webhook {
        url: String,
        /// `"set"` when the requests are signed; the secret itself is never shown.
        secret: Option<&'static str>,
        /// Header names, each with `"set"`: values often hold credentials.
        headers: BTreeMap<String, &'static str>,
        batch_size: u32,
        max_per_second: Option<f64>,
    },
    Segment {
        url: String,
        /// The first characters of the write key, then `…`.
        write_key: String,
    },
    File {
        path: String,
        format: FileFormat,
    },
}

impl From<DestinationConfig> for SettingsBody {
    fn from(c: DestinationConfig) -> Self {
        match c {
            DestinationConfig::Webhook {
                url,
                secret,
                headers,
                batch_size,
                max_per_second,
            } => Self::Webhook {
                url,
                secret: secret.map(|_| SET),
                headers: headers.into_keys().map(|k| (k, SET)).collect(),
                batch_size,
                max_per_second,
            },
            DestinationConfig::Segment { write_key, url } => Self::Segment {
                url,
                write_key: format!(
                    "{}…",
                    write_key.chars().take(KEY_PREFIX).collect::<String>()
                ),
            },
            DestinationConfig::File { path, format } => Self::File { path, format },
        }
    }
}

#[derive(Serialize)]
pub struct DestinationBody {
    id: i64,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    settings: SettingsBody,
    created_at: String,
}

impl From<Destination> for DestinationBody {
    fn from(d: Destination) -> Self {
        Self {
            id: d.id,
            name: d.name,
            kind: d.config.kind(),
            settings: d.config.into(),
            created_at: format_millis(d.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct DestinationList {
    destinations: Vec<DestinationBody>,
}

fn destination_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("destination id {id:?} must be a number")))
}

/// `POST /api/v1/destinations` → 201. Every problem of the definition is listed at once.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<DestinationBody>), ApiError> {
    let body: serde_json::Value = json_body::parse(body).await?;
    let destination = state.engine.create_destination(body).await?;
    Ok((StatusCode::CREATED, Json(destination.into())))
}

/// `GET /api/v1/destinations`, oldest first.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<DestinationList>, ApiError> {
    let destinations = state.engine.destinations().await?;
    Ok(Json(DestinationList {
        destinations: destinations.into_iter().map(Into::into).collect(),
    }))
}

pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DestinationBody>, ApiError> {
    Ok(Json(
        state.engine.destination(destination_id(&id)?).await?.into(),
    ))
}

/// `DELETE /api/v1/destinations/{id}` → 204; its pending messages are dropped.
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .delete_destination(destination_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct TestBody {
    delivered: bool,
    /// The receiver's HTTP status; null for a file, or when it could not be reached.
    status: Option<u16>,
    error: Option<String>,
    message_id: String,
}

impl From<TestOutcome> for TestBody {
    fn from(t: TestOutcome) -> Self {
        Self {
            delivered: t.delivered,
            status: t.status,
            error: t.error,
            message_id: t.message_id,
        }
    }
}

/// `POST /api/v1/destinations/{id}/test`: one test message now, answered with what the
/// receiver said (200 either way: the request to us succeeded).
pub async fn test(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestBody>, ApiError> {
    Ok(Json(
        state
            .engine
            .test_destination(destination_id(&id)?)
            .await?
            .into(),
    ))
}

#[derive(Serialize)]
struct CountsBody {
    /// Queued for an audience snapshot still being stored: not sent before it is live.
    held: i64,
    pending: i64,
    delivered: i64,
    failed: i64,
    /// Not sent: their audience, trait or goal was deleted first.
    cancelled: i64,
}

impl From<DeliveryCounts> for CountsBody {
    fn from(c: DeliveryCounts) -> Self {
        Self {
            held: c.held,
            pending: c.pending,
            delivered: c.delivered,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

#[derive(Serialize)]
struct DeliveryBody {
    message_id: String,
    status: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    updated_at: String,
}

impl From<DeliveryRecord> for DeliveryBody {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            message_id: d.message_id,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            updated_at: format_millis(d.updated_at),
        }
    }
}

#[derive(Serialize)]
pub struct DeliveriesBody {
    counts: CountsBody,
    deliveries: Vec<DeliveryBody>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/destinations/{id}/deliveries?status=&limit=&cursor=`: counts by state and
/// the messages, oldest first.
pub async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<DeliveriesBody>, ApiError> {
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "`status` must be pending, delivered, failed or cancelled; got {s:?}"
            ))
        })?),
    };
    let limit = params.number("limit", 100, 1, 1000)?;
    let after = match params.get("cursor") {
        None => 0,
        Some(c) => c.parse::<i64>().map_err(|_| {
            ApiError::invalid_parameter(format!(
                "`cursor` must be the next_cursor of a previous page; got {c:?}"
            ))
        })?,
    };
    let log = state
        .engine
        .deliveries(destination_id(&id)?, status, after, limit)
        .await?;
    Ok(Json(DeliveriesBody {
        counts: log.counts.into(),
        deliveries: log.deliveries.into_iter().map(Into::into).collect(),
        next_cursor: log.next_after.map(|a| a.to_string()),
    }))
}

#[derive(Serialize)]
pub struct RetryBody {
    requeued: usize,
}

/// `POST /api/v1/destinations/{id}/retry`: the failed messages go back to pending, with a
/// fresh deadline.
pub async fn retry(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RetryBody>, ApiError> {
    let requeued = state.engine.retry_deliveries(destination_id(&id)?).await?;
    Ok(Json(RetryBody { requeued }))
}
