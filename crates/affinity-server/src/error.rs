use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thiserror::Error;

use affinity_core::MessageError;
use affinity_store::StoreError;

/// Errors of the server's own work (starting, training); HTTP answers use [`ApiError`].
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no catalog is configured yet: PUT /api/v1/catalog first")]
    NotConfigured,
    #[error(transparent)]
    Model(#[from] affinity_model::ModelError),
}

/// An error answered to an HTTP client as `{"error":{"code","message",...details}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields of the error object, such as the list of problems of a 422.
    pub details: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_detail(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.details.push((key, value));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A 422 listing every problem at once, each as `{"field","message"}`.
    pub fn problems<F: AsRef<str>, M: AsRef<str>>(code: &'static str, problems: &[(F, M)]) -> Self {
        let text: Vec<String> = problems
            .iter()
            .map(|(f, m)| format!("{}: {}", f.as_ref(), m.as_ref()))
            .collect();
        let list: Vec<serde_json::Value> = problems
            .iter()
            .map(|(f, m)| json!({"field": f.as_ref(), "message": m.as_ref()}))
            .collect();
        Self::unprocessable(
            code,
            format!("{} problem(s): {}", problems.len(), text.join("; ")),
        )
        .with_detail("problems", json!(list))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code, "message": self.message});
        for (key, value) in &self.details {
            error[*key] = value.clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Storage failures are ours, not the client's: 503 tells Segment clients to retry.
        tracing::error!(error = %e, "store error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the store could not complete the request ({e}); retry later"),
        )
    }
}
