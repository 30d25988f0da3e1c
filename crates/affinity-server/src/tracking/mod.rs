//! The Segment-compatible Tracking API: every path and short form, write keys in a header or
//! the body, JSON or text/plain, gzip, CORS, Segment's limits, per-message validation.

mod body;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};

use affinity_core::batch::parse_batch;
use affinity_core::limits::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};
use affinity_core::{Message, MessageType};
use affinity_engine::clock::now_ms;
use affinity_engine::data::Outcome;

use crate::auth::{basic_user, check_write_key};
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
        let handler = move |state, headers, body| single(state, kind, headers, body);
        router = router
            .route(&long, post(handler))
            .route(&short, post(handler));
    }
    for path in ["/v1/batch", "/v1/b", "/v1/import"] {
        router = router.route(path, post(batch));
    }
    // Browsers (analytics.js) post from the site's own origin.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any)
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

async fn authenticate(state: &AppState, headers: &HeaderMap, text: &str) -> Result<(), ApiError> {
    let key = match basic_user(headers)? {
        Some(k) => Some(k),
        None => body_write_key(text),
    };
    check_write_key(state, key.as_deref())
}

async fn single(
    State(state): State<AppState>,
    kind: MessageType,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let text = body::read_text(&headers, body, MAX_MESSAGE_BYTES, "per message").await?;
    authenticate(&state, &headers, &text).await?;
    let message = Message::parse(&text, Some(kind), now_ms())?;
    state.engine.ingest(vec![message]).await?;
    Ok(Json(Accepted { success: true }))
}

async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchAccepted>, ApiError> {
    let text = body::read_text(&headers, body, MAX_BATCH_BYTES, "per batch request").await?;
    authenticate(&state, &headers, &text).await?;
    let parsed = parse_batch(&text)?;
    let now = now_ms();
    let total = parsed.messages.len();
    let mut accepted = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    for (index, raw) in parsed.messages.iter().enumerate() {
        match Message::parse(raw.get(), None, now) {
            Ok(m) => accepted.push(m),
            Err(e) => rejected.push(Rejected {
                index,
                code: e.code(),
                message: e.to_string(),
            }),
        }
    }
    if let Some(first) = rejected.first()
        && accepted.is_empty()
    {
        let mut error = ApiError::new(
            ErrorCode::InvalidBatch,
            format!(
                "none of the {total} messages was accepted; message {}: {}",
                first.index, first.message
            ),
        );
        error.rejected = Some(rejected);
        return Err(error);
    }
    let outcomes = state.engine.ingest(accepted).await?;
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == Outcome::Duplicate)
        .count();
    Ok(Json(BatchAccepted {
        success: true,
        accepted: outcomes.len(),
        duplicates,
        rejected,
    }))
}
