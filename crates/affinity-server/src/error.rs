//! Every error the server answers, and the one place where the other crates' errors become
//! HTTP: [`ErrorCode`] owns each code's status, and the `From` conversions below match every
//! variant exhaustively, so a new variant anywhere forces a decision here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use affinity_core::MessageError;
use affinity_engine::data::Refusal;
use affinity_engine::error::Invalid;
use affinity_engine::{EngineError, Problem, StoreError};

/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: u64 = 5;

/// The stable snake_case codes clients match on, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // Authentication.
    Unauthorized,
    /// The Profile API's code for a missing or wrong access token (Segment's).
    AuthenticationError,
    // Requests the client must fix.
    NotFound,
    /// The path exists, not with this method (`Allow` lists the ones it has).
    MethodNotAllowed,
    /// The request target (path and query) is longer than the server reads.
    UriTooLong,
    /// Too many request headers, or too large.
    HeadersTooLarge,
    /// The path is not UTF-8 once percent-decoded.
    InvalidPath,
    /// A plain error of another status, answered in JSON (see [`ErrorCode::for_status`]).
    BadRequest,
    /// The Profile API's code for a bad request (Segment's).
    InvalidRequestError,
    InvalidParameter,
    InvalidJson,
    /// Tracking: the body (or a message) is JSON but not an object.
    InvalidBody,
    /// Management: the JSON body does not have the expected shape.
    InvalidBodyShape,
    BodyTooLarge,
    InvalidGzip,
    UnsupportedEncoding,
    InvalidBatch,
    MissingField,
    InvalidField,
    InvalidType,
    MessageTooLarge,
    BatchTooLarge,
    /// Tracking: the message would add an event name beyond the store's bound.
    TooManyEventNames,
    InvalidCatalog,
    InvalidCatalogFile,
    InvalidTrait,
    InvalidAudience,
    InvalidDestination,
    InvalidGoal,
    /// The request body did not arrive within the body read timeout.
    RequestTimeout,
    /// Over a rate limit: retry after the time in `Retry-After`.
    RateLimited,
    /// A bounded queue of background work (audiences, previews) is full: retry after the
    /// time in `Retry-After`.
    QueueFull,
    // The state of the product.
    CatalogNotReady,
    ModelNotReady,
    AudienceComputing,
    /// An audience's destinations kept changing while its snapshot was published.
    DestinationsChanging,
    /// A definition by that name exists: update it with PUT.
    TraitExists,
    // Ours.
    StoreUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::AuthenticationError => "authentication_error",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::InvalidPath => "invalid_path",
            Self::BadRequest => "bad_request",
            Self::InvalidRequestError => "invalid_request_error",
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody | Self::InvalidBodyShape => "invalid_body",
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidGzip => "invalid_gzip",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::InvalidBatch => "invalid_batch",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::InvalidType => "invalid_type",
            Self::MessageTooLarge => "message_too_large",
            Self::BatchTooLarge => "batch_too_large",
            Self::TooManyEventNames => "too_many_event_names",
            Self::InvalidCatalog => "invalid_catalog",
            Self::InvalidCatalogFile => "invalid_catalog_file",
            Self::InvalidTrait => "invalid_trait",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidDestination => "invalid_destination",
            Self::InvalidGoal => "invalid_goal",
            Self::CatalogNotReady => "catalog_not_ready",
            Self::ModelNotReady => "model_not_ready",
            Self::AudienceComputing => "audience_computing",
            Self::DestinationsChanging => "destinations_changing",
            Self::TraitExists => "trait_exists",
            Self::StoreUnavailable => "store_unavailable",
            Self::RequestTimeout => "request_timeout",
            Self::RateLimited => "rate_limited",
            Self::QueueFull => "queue_full",
            Self::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::AuthenticationError => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::InvalidRequestError
            | Self::InvalidPath
            | Self::BadRequest
            | Self::InvalidParameter
            | Self::InvalidJson
            | Self::InvalidBody
            | Self::InvalidGzip
            | Self::InvalidBatch
            | Self::MissingField
            | Self::InvalidField
            | Self::InvalidType
            | Self::MessageTooLarge
            | Self::BatchTooLarge
            | Self::TooManyEventNames => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidBodyShape
            | Self::InvalidCatalog
            | Self::InvalidCatalogFile
            | Self::InvalidTrait
            | Self::InvalidAudience
            | Self::InvalidDestination => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidGoal => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CatalogNotReady
            | Self::ModelNotReady
            | Self::AudienceComputing
            | Self::DestinationsChanging
            | Self::TraitExists => StatusCode::CONFLICT,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited | Self::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ErrorCode {
    /// The code for an error answer made without one (the router's `405`, an extractor's
    /// plain-text rejection), by its status; `status()` of the result may differ only for a
    /// status no code has, which then answers as itself (the caller keeps the status).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::URI_TOO_LONG => Self::UriTooLong,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::PAYLOAD_TOO_LARGE => Self::BodyTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedEncoding,
            StatusCode::UNPROCESSABLE_ENTITY => Self::InvalidBodyShape,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::SERVICE_UNAVAILABLE => Self::StoreUnavailable,
            s if s.is_server_error() => Self::Internal,
            _ => Self::BadRequest,
        }
    }
}

/// One problem of a 422, naming the field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemBody {
    pub field: String,
    pub message: String,
}

impl From<Problem> for ProblemBody {
    fn from(p: Problem) -> Self {
        Self {
            field: p.field,
            message: p.message,
        }
    }
}

/// One message of a batch that was refused, by its index in the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

/// An error answered as `{"error":{"code","message"[,"problems"]}[,"rejected"]}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub problems: Option<Vec<ProblemBody>>,
    /// For a batch none of whose messages was accepted: each one's reason.
    pub rejected: Option<Vec<Rejected>>,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [Rejected]>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [ProblemBody]>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            problems: None,
            rejected: None,
            retry_after: match code {
                ErrorCode::StoreUnavailable => Some(Duration::from_secs(RETRY_AFTER_SECONDS)),
                _ => None,
            },
        }
    }

    /// A `429` asking the client to come back after `wait`.
    pub fn rate_limited(what: &str, wait: Duration) -> Self {
        let mut e = Self::new(
            ErrorCode::RateLimited,
            format!("too many requests {what}: slow down and retry after the Retry-After seconds"),
        );
        e.retry_after = Some(wait);
        e
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// A 422 listing every problem at once.
    pub fn problems(code: ErrorCode, problems: Vec<Problem>) -> Self {
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        Self {
            code,
            message: format!("{} problem(s): {}", problems.len(), text.join("; ")),
            retry_after: None,
            problems: Some(problems.into_iter().map(ProblemBody::from).collect()),
            rejected: None,
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl ApiError {
    /// The JSON body alone, for an answer written outside axum (see
    /// [`crate::request_head::ParseErrorsAsJson`]).
    pub fn body_json(&self) -> String {
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code.as_str(),
                message: &self.message,
                problems: self.problems.as_deref(),
            },
            rejected: self.rejected.as_deref(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    /// Server-side failures are logged here, where they end as an answer (once, not at every
    /// layer they pass through).
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(code = self.code.as_str(), error = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code.as_str(),
                message: &self.message,
                problems: self.problems.as_deref(),
            },
            rejected: self.rejected.as_deref(),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        let code = match &e {
            MessageError::InvalidJson(_) => ErrorCode::InvalidJson,
            MessageError::NotAnObject { .. } => ErrorCode::InvalidBody,
            MessageError::MissingField { .. } => ErrorCode::MissingField,
            MessageError::InvalidField { .. } => ErrorCode::InvalidField,
            MessageError::UnknownType(_) => ErrorCode::InvalidType,
            MessageError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            MessageError::TooManyMessages { .. } => ErrorCode::BatchTooLarge,
        };
        Self::new(code, e.to_string())
    }
}

/// A message the store refused. 400 rather than 429 or 503: retrying the same message cannot
/// succeed until the sender changes its event names or the operator raises the bound.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let code = match r {
            Refusal::TooManyEventNames { .. } => ErrorCode::TooManyEventNames,
        };
        Self::new(code, r.to_string())
    }
}

impl Rejected {
    /// A batch's message the store refused, reported with the code a single message gets.
    pub fn refused(index: usize, r: Refusal) -> Self {
        let e = ApiError::from(r);
        Self {
            index,
            code: e.code.as_str(),
            message: e.message,
        }
    }
}

/// A multipart body (a catalog upload) that cannot be read: too large, or not well formed.
impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(ErrorCode::BodyTooLarge, e.body_text());
        }
        Self::new(
            ErrorCode::InvalidCatalogFile,
            format!(
                "the multipart/form-data body cannot be read ({}); send the file as curl -F file=@items.csv does",
                e.body_text()
            ),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The store is there but cannot take the work now: Segment's clients retry a 503.
            StoreError::Sqlite(_) | StoreError::Commit(_) | StoreError::Closed => Self::new(
                ErrorCode::StoreUnavailable,
                format!("the store could not complete the request ({e}); retry later"),
            ),
            // Retrying will not help: the data or the installation needs attention.
            StoreError::DataDir { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::Corrupt(_)
            | StoreError::CorruptDocument { .. }
            | StoreError::NewerDocument { .. }
            | StoreError::Encode { .. } => Self::internal(e.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::Model(_)
            | EngineError::Snapshot(_)
            | EngineError::Task(_)
            | EngineError::Internal(_) => Self::internal(message),
            EngineError::NotConfigured
            | EngineError::CatalogBuilding
            | EngineError::CatalogFailed(_)
            | EngineError::NoInteractions(_) => Self::new(ErrorCode::CatalogNotReady, message),
            EngineError::NoModel => Self::new(ErrorCode::ModelNotReady, message),
            EngineError::ModelNotReady(_) => {
                let mut e = Self::new(ErrorCode::ModelNotReady, message);
                e.retry_after = Some(Duration::from_secs(RETRY_AFTER_SECONDS));
                e
            }
            EngineError::NotFound(m) => Self::not_found(m),
            EngineError::InvalidParameter(m) => Self::invalid_parameter(m),
            EngineError::Invalid { kind, problems } => {
                let code = match kind {
                    Invalid::Catalog => ErrorCode::InvalidCatalog,
                    Invalid::CatalogFile => ErrorCode::InvalidCatalogFile,
                    Invalid::Trait => ErrorCode::InvalidTrait,
                    Invalid::Audience => ErrorCode::InvalidAudience,
                    Invalid::Destination => ErrorCode::InvalidDestination,
                    Invalid::Goal => ErrorCode::InvalidGoal,
                };
                Self::problems(code, problems)
            }
            EngineError::AudienceComputing => Self::new(ErrorCode::AudienceComputing, message),
            EngineError::DestinationsChanging { .. } => {
                Self::new(ErrorCode::DestinationsChanging, message)
            }
            // 429 rather than 503: the server is healthy, this client asked for more work than
            // it takes at once; the same request succeeds once the queue has drained.
            EngineError::Busy { retry_after, .. } => {
                let mut e = Self::new(ErrorCode::QueueFull, message);
                e.retry_after = Some(retry_after);
                e
            }
            EngineError::TraitExists(_) => Self::new(ErrorCode::TraitExists, message),
        }
    }
}
