//! Reading a tracking request body: size limits (before and after gzip), gzip decoding, and
//! UTF-8. JSON parsing is left to the caller, which knows what shape to expect.

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, header};
// The buffered decoder reads straight from the slice, so what it leaves is what followed
// the compressed stream.
use flate2::bufread::GzDecoder;

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
/// so a small gzip bomb cannot inflate past it) or a body that takes longer than `deadline`
/// to arrive (a client dripping bytes holds a connection, not the server).
pub async fn read_text(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
    deadline: Duration,
) -> Result<String, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit, what));
    }
    let bytes = tokio::time::timeout(deadline, to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the request body did not arrive within {deadline:?}; send it at once"),
            )
        })?
        .map_err(|_| too_large(limit, what))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    decode(encoding, &bytes, limit, what)
}

/// Decodes a received body as its `Content-Encoding` says (none, `identity`, `gzip`) into
/// UTF-8 text of at most `limit` bytes. Synchronous and free of I/O, so that the fuzz targets
/// (`crates/affinity-fuzz`) exercise exactly what the server runs.
pub fn decode(
    encoding: Option<&str>,
    bytes: &[u8],
    limit: usize,
    what: &str,
) -> Result<String, ApiError> {
    let encoding = encoding.map(|v| v.trim().to_ascii_lowercase());
    let bytes = match encoding.as_deref() {
        None | Some("") | Some("identity") => bytes.to_vec(),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            let invalid = |why: String| {
                ApiError::new(
                    ErrorCode::InvalidGzip,
                    format!("Content-Encoding is gzip but the body is not valid gzip: {why}"),
                )
            };
            let mut decoder = GzDecoder::new(bytes);
            (&mut decoder)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| invalid(e.to_string()))?;
            if out.len() > limit {
                return Err(too_large(limit, what));
            }
            // One gzip member and nothing after it: bytes the decoder did not read (a second
            // member, trailing garbage) would otherwise be dropped without a word.
            let rest = decoder.into_inner();
            if !rest.is_empty() {
                return Err(invalid(format!(
                    "{} bytes follow the compressed data; send one gzip stream",
                    rest.len()
                )));
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
