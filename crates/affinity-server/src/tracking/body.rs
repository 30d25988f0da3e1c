//! Reading a tracking request body: size limits (before and after gzip), gzip decoding, and
//! UTF-8. JSON parsing is left to the caller, which knows what shape to expect.

use std::io::Read;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, header};
use flate2::read::GzDecoder;

use crate::{ApiError, ErrorCode};

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!(
            "the request body is larger than {limit} bytes, the limit {what}: send smaller batches"
        ),
    )
}

/// Reads the body, refusing more than `limit` bytes (the limit applies to the decoded text,
/// so a small gzip bomb cannot inflate past it).
pub async fn read_text(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<String, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit, what));
    }
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit, what))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let bytes = match encoding.as_deref() {
        None | Some("") | Some("identity") => bytes.to_vec(),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            GzDecoder::new(&bytes[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::new(
                        ErrorCode::InvalidGzip,
                        format!("Content-Encoding is gzip but the body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(too_large(limit, what));
            }
            out
        }
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedEncoding,
                format!("Content-Encoding {other:?} is not supported: send gzip or no encoding"),
            ));
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "the body is not UTF-8 text (invalid byte at {}): send JSON",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
