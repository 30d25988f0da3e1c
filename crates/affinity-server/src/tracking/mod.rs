//! The Segment-compatible Tracking API: every path and short form, write keys in a header or
//! the body, JSON or text/plain, gzip, CORS, Segment's limits, per-message validation.

pub mod body;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::routing::post;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

use affinity_core::batch::parse_batch;
use affinity_core::limits::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};
use affinity_core::{Message, MessageType};
use affinity_engine::clock::now_ms;
use affinity_engine::data::Outcome;

use crate::auth::{ClientIp, basic_user, check_write_key};
use crate::error::Rejected;
use crate::{ApiError, AppState, ErrorCode};

#[derive(Serialize)]
struct Accepted {
    success: bool,
}

/// A batch's answer: what was stored, and each refused message by index.
#[derive(Serialize)]
struct BatchAccepted {
    success: bool,
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejected>,
}

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for kind in MessageType::ALL {
        let long = format!("/v1/{}", kind.as_str());
        let short = format!("/v1/{}", &kind.as_str()[..1]);
        let handler = move |state, ip, headers, body| single(state, ip, kind, headers, body);
        router = router
            .route(&long, post(handler))
            .route(&short, post(handler));
    }
    for path in ["/v1/batch", "/v1/b", "/v1/import"] {
        router = router.route(path, post(batch));
    }
    // Browsers (analytics.js) post from the site's own origin. Requested headers are
    // mirrored: the `*` wildcard does not cover `Authorization`.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(86_400));
    router.layer(cors)
}

/// `writeKey` from a JSON body, for clients that cannot set headers.
fn body_write_key(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct KeyOnly {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    serde_json::from_str::<KeyOnly>(text).ok()?.write_key
}

/// Who may send before the body is read: the source address within its rate, and a write
/// key given in the header that is known and within its rate. Returns the header's key.
async fn admit(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let now = Instant::now();
    if let Some(ip) = ip.0 {
        state
            .ip_rate
            .check(&ip, now)
            .map_err(|wait| ApiError::rate_limited("from this address", wait))?;
    }
    let key = basic_user(headers)?;
    if let Some(key) = &key {
        check_write_key(state, Some(key)).await?;
        rate_key(state, key)?;
    }
    Ok(key)
}

fn rate_key(state: &AppState, key: &str) -> Result<(), ApiError> {
    state
        .key_rate
        .check(&key.to_string(), Instant::now())
        .map_err(|wait| ApiError::rate_limited("for this write key", wait))
}

/// Reads the body (within the limits) and, when the header named no key, checks the body's
/// `writeKey`.
async fn read_authenticated(
    state: &AppState,
    headers: &HeaderMap,
    header_key: Option<String>,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<String, ApiError> {
    let text = body::read_text(headers, body, limit, what, state.limits.body_read_timeout).await?;
    if header_key.is_none() {
        let key = body_write_key(&text);
        check_write_key(state, key.as_deref()).await?;
        if let Some(key) = &key {
            rate_key(state, key)?;
        }
    }
    Ok(text)
}

async fn single(
    State(state): State<AppState>,
    ip: ClientIp,
    kind: MessageType,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let key = admit(&state, &ip, &headers).await?;
    let text = read_authenticated(
        &state,
        &headers,
        key,
        body,
        MAX_MESSAGE_BYTES,
        "per message",
    )
    .await?;
    let message = Message::parse(&text, Some(kind), now_ms())?;
    let outcomes = state.engine.ingest(vec![message]).await?;
    if let Some(Outcome::Refused(r)) = outcomes.first() {
        return Err((*r).into());
    }
    Ok(Json(Accepted { success: true }))
}

async fn batch(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchAccepted>, ApiError> {
    let key = admit(&state, &ip, &headers).await?;
    let text = read_authenticated(
        &state,
        &headers,
        key,
        body,
        MAX_BATCH_BYTES,
        "per batch request",
    )
    .await?;
    let parsed = parse_batch(&text)?;
    let now = now_ms();
    let total = parsed.messages.len();
    let mut accepted = Vec::with_capacity(total);
    // Each accepted message's index in the batch, to report a refusal by the store.
    let mut indexes = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    for (index, raw) in parsed.messages.iter().enumerate() {
        match Message::parse_sent(raw.get(), None, now, parsed.sent_at) {
            Ok(m) => {
                accepted.push(m);
                indexes.push(index);
            }
            Err(e) => rejected.push(Rejected {
                index,
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }
    if !rejected.is_empty() && accepted.is_empty() {
        return Err(none_accepted(total, rejected));
    }
    let outcomes = state.engine.ingest(accepted).await?;
    let mut stored = 0;
    let mut duplicates = 0;
    for (outcome, index) in outcomes.into_iter().zip(indexes) {
        match outcome {
            Outcome::Stored => stored += 1,
            Outcome::Duplicate => duplicates += 1,
            Outcome::Refused(r) => rejected.push(Rejected::refused(index, r)),
        }
    }
    rejected.sort_by_key(|r| r.index);
    if !rejected.is_empty() && stored + duplicates == 0 {
        return Err(none_accepted(total, rejected));
    }
    Ok(Json(BatchAccepted {
        success: true,
        accepted: stored + duplicates,
        duplicates,
        rejected,
    }))
}

/// A batch none of whose messages was stored (refused at parsing, or by the store's bounds):
/// a 400 naming the first reason, with every message's reason listed.
fn none_accepted(total: usize, rejected: Vec<Rejected>) -> ApiError {
    let first = rejected
        .first()
        .map(|r| format!("; message {}: {}", r.index, r.message))
        .unwrap_or_default();
    let mut error = ApiError::new(
        ErrorCode::InvalidBatch,
        format!("none of the {total} messages was accepted{first}"),
    );
    error.rejected = Some(rejected);
    error
}
