//! Checks on a request's head before routing: a URI or headers too large (`414`, `431`) and a
//! path that is not UTF-8 once percent-decoded (`400 invalid_path`), each answered in the
//! JSON error shape. hyper has its own, larger limits (a URI of 64 KB, [`HYPER_MAX_HEADERS`]
//! headers, ~400 KB of head) past which it answers by itself with an empty body before any
//! of our code runs: the limits here are set well below them, so a client meets ours.
//!
//! Also [`json_error_bodies`]: the errors produced by the router itself (a `405`, an
//! extractor's plain-text rejection) are rewritten into the same JSON shape.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, ErrorCode};

/// Longest request target (path and query) answered: nginx's default header buffer.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers, and their total size (names and values).
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's own header count limit, above ours so that ours is the one clients meet.
pub const HYPER_MAX_HEADERS: usize = 1_000;

/// Longest plain-text error body carried over into a JSON message.
const MAX_PLAIN_ERROR_BYTES: usize = 4 * 1024;

/// Refuses oversized heads and non-UTF-8 paths, then routes; rewrites plain error answers.
pub async fn check(request: Request, next: Next) -> Response {
    if let Some(refused) = refusal(&request) {
        return refused.into_response();
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    json_error_bodies(&method, &path, next.run(request).await).await
}

fn refusal(request: &Request) -> Option<ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!(
                "the request target is {target} bytes; the limit is {MAX_URI_BYTES}: send long \
                 values in a request body"
            ),
        ));
    }
    if let Some(problem) = headers_problem(request.headers()) {
        return Some(ApiError::new(ErrorCode::HeadersTooLarge, problem));
    }
    if percent_decoded(request.uri().path()).is_none() {
        return Some(ApiError::new(
            ErrorCode::InvalidPath,
            format!(
                "the path {} is not UTF-8 once percent-decoded: ids in paths must be UTF-8 \
                 text, percent-encoded",
                request.uri().path()
            ),
        ));
    }
    None
}

fn headers_problem(headers: &HeaderMap) -> Option<String> {
    if headers.len() > MAX_HEADERS {
        return Some(format!(
            "{} request headers; the limit is {MAX_HEADERS}",
            headers.len()
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (bytes > MAX_HEADER_BYTES)
        .then(|| format!("request headers are {bytes} bytes; the limit is {MAX_HEADER_BYTES}"))
}

/// The path with `%XX` escapes decoded, if that is UTF-8. A `%` not followed by two hex
/// digits is kept as it is (the router matches the raw path; only UTF-8 matters here).
fn percent_decoded(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An error answer that is not JSON (the router's `405`, an extractor's plain-text
/// rejection) becomes `{"error":{"code","message"}}` with the same status and headers,
/// the original text kept as the message.
async fn json_error_bodies(method: &Method, path: &str, response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = ErrorCode::for_status(status);
    let message = match code {
        // The router adds `Allow` after this layer has run, so it is named, not copied.
        ErrorCode::MethodNotAllowed => format!(
            "{method} is not allowed on {path}; the `Allow` header lists the methods it accepts"
        ),
        _ if !text.is_empty() => text,
        _ => format!(
            "{method} {path}: {}",
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let json = ApiError::new(code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (json_parts, json_body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}

#[cfg(test)]
mod tests {
    use super::percent_decoded;

    #[test]
    fn paths_decode_to_utf8_or_not_at_all() {
        assert_eq!(percent_decoded("/a%20b/%C3%A9").as_deref(), Some("/a b/é"));
        assert_eq!(percent_decoded("/100%").as_deref(), Some("/100%"));
        assert_eq!(percent_decoded("/%zz").as_deref(), Some("/%zz"));
        assert_eq!(percent_decoded("/u/%FF"), None);
        assert_eq!(percent_decoded("/u/%C3"), None);
    }
}
