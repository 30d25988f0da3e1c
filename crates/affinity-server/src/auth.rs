//! Credentials on requests: write keys (tracking), the admin token (management).

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use affinity_engine::data::CredentialKind;

use crate::{ApiError, AppState};

/// The write key from HTTP Basic auth: the key as user, empty password, with or without the
/// colon (`base64("KEY:")` or `base64("KEY")`). `Ok(None)`: no Authorization header.
pub fn basic_user(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::unauthorized(
            "the Authorization header must be `Basic base64(WRITE_KEY:)`: the write key as user, \
             empty password",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    Ok(Some(user.to_string()))
}

/// Checks a write key found in a header or a body.
pub async fn check_write_key(state: &AppState, key: Option<&str>) -> Result<(), ApiError> {
    match key {
        None | Some("") => Err(ApiError::unauthorized(
            "no write key: send it as HTTP Basic user (`-u WRITE_KEY:`) or as `writeKey` in the body",
        )),
        Some(k)
            if state
                .engine
                .verify_credential(CredentialKind::WriteKey, k)
                .await =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::unauthorized(
            "unknown write key: use a key from AFFINITY_WRITE_KEYS, the one printed at first start, \
             or a new one from `affinity credentials rotate write-key`",
        )),
    }
}

/// Extractor that admits only requests bearing the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            // The scheme is case-insensitive (RFC 9110): `BEARER x` is a bearer token too.
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token {
            Some(t)
                if state
                    .engine
                    .verify_credential(CredentialKind::Admin, t)
                    .await =>
            {
                Ok(Admin)
            }
            Some(_) => Err(ApiError::unauthorized(
                "unknown admin token: use AFFINITY_ADMIN_TOKEN, the one printed at first start, or \
                 a new one from `affinity credentials rotate admin`",
            )),
            None => Err(ApiError::unauthorized(
                "the management API needs `Authorization: Bearer <admin token>`",
            )),
        }
    }
}

/// The client's address, when the server knows it (connections accepted by [`crate::serve`];
/// an app driven in-process has none).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
