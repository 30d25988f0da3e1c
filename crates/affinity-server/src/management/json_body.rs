//! JSON request bodies for the management API: unknown fields are refused (a typo must not be
//! silently ignored), and every rejection is our JSON error naming what was wrong.

use axum::body::{Body, to_bytes};
use serde::de::DeserializeOwned;

use crate::{ApiError, ErrorCode};

const MAX_BODY: usize = 1024 * 1024;

pub async fn parse<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("management requests are limited to {MAX_BODY} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::new(
                ErrorCode::InvalidBodyShape,
                format!("the body does not have the expected shape: {e}"),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            )
        }
    })
}
