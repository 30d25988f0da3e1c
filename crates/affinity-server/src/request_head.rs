//! Checks on a request's head before routing: a URI or headers too large (`414`, `431`) and a
//! path that is not UTF-8 once percent-decoded (`400 invalid_path`), each answered in the
//! JSON error shape. hyper has its own, larger limits (a URI of 64 KB, [`HYPER_MAX_HEADERS`]
//! headers, ~400 KB of head) and refuses what is not HTTP at all (raw non-ASCII bytes in the
//! request line); there it answers by itself with an empty body before any of our code runs.
//! The limits here are set well below its own, so a client meets ours, and
//! [`ParseErrorsAsJson`] gives hyper's own answers the JSON body too.
//!
//! Also [`json_error_bodies`]: the errors produced by the router itself (a `405`, an
//! extractor's plain-text rejection) are rewritten into the same JSON shape.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// A connection's byte stream, passing everything through except the answer hyper writes by
/// itself when it cannot parse a request (status 400, 414 or 431, `content-length: 0`, then
/// it closes the connection): that head gets a JSON error body. Every answer of ours to a
/// 4xx has a JSON body, so an empty-bodied 4xx head can only be hyper's. Writes are not
/// vectored, so hyper hands over a response head in one buffer.
pub struct ParseErrorsAsJson<S> {
    inner: S,
    /// A rewritten answer and how much of it is written: the caller's buffer counts as
    /// written only once all of it is.
    rewriting: Option<(Vec<u8>, usize)>,
}

impl<S> ParseErrorsAsJson<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriting: None,
        }
    }
}

/// The answer to write instead of `head`, when `head` is one of hyper's bodiless refusals.
fn json_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    if !rest.ends_with("\r\n\r\n") {
        return None;
    }
    let lines: Vec<&str> = rest.trim_end().split("\r\n").collect();
    let empty = lines
        .iter()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    let error = match status {
        400 => ApiError::new(
            ErrorCode::BadRequest,
            "the request is not valid HTTP/1.1 (raw non-ASCII bytes in the request line, \
             say): percent-encode paths as UTF-8 and send headers as ASCII",
        ),
        414 => ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is over 64 KB; the limit is {MAX_URI_BYTES} bytes"),
        ),
        431 => ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head is too large; the limits are {MAX_HEADERS} headers and \
                 {MAX_HEADER_BYTES} bytes of them"
            ),
        ),
        _ => return None,
    };
    if !empty {
        return None;
    }
    let body = error.body_json();
    let mut out = format!("{status_line}\r\n");
    for line in lines
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
    {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<S: AsyncRead + Unpin> AsyncRead for ParseErrorsAsJson<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ParseErrorsAsJson<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.rewriting.is_none()
            && let Some(answer) = json_refusal(buf)
        {
            this.rewriting = Some((answer, 0));
        }
        let Some((answer, written)) = &mut this.rewriting else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < answer.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        // Written: later writes (there are none, hyper closes the connection) pass through.
        this.rewriting = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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
