use thiserror::Error;

/// Why a message (or a whole request body) was refused. Each variant names the field or limit
/// and says how to fix it, because the text goes back to the client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("body is not valid JSON: {0}; send one JSON object")]
    InvalidJson(String),
    #[error("{what} must be a JSON object, got {got}")]
    NotAnObject {
        what: &'static str,
        got: &'static str,
    },
    #[error("`{field}` is required{hint}")]
    MissingField {
        field: &'static str,
        hint: &'static str,
    },
    #[error("`{field}` must be {expected}, got {got}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("`type` must be one of track, identify, page, screen, group, alias; got {0:?}")]
    UnknownType(String),
    #[error("message is {size} bytes; the limit is {limit} bytes per message")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("batch has {count} messages; the limit is {limit} per request: split it")]
    TooManyMessages { count: usize, limit: usize },
}

impl MessageError {
    /// The stable snake_case code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject { .. } => "invalid_body",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnknownType(_) => "invalid_type",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::TooManyMessages { .. } => "batch_too_large",
        }
    }
}

/// A short name for a JSON value's type, for error messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
