//! The body of `/v1/batch` (and `/v1/import`): `{"batch":[...], "writeKey":"..."}`.
//! Messages stay raw here so each keeps its exact text and is validated on its own: one bad
//! message must not sink the others.

use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::error::{MessageError, json_type};
use crate::limits::MAX_BATCH_MESSAGES;
use crate::timestamp::parse_millis;

#[derive(Debug)]
pub struct BatchBody<'a> {
    pub write_key: Option<String>,
    /// The batch's `sentAt` (Unix ms): Segment's server libraries put the client's send time
    /// on the batch rather than on each message. A message's own `sentAt` wins.
    pub sent_at: Option<i64>,
    pub messages: Vec<&'a RawValue>,
}

pub fn parse_batch(text: &str) -> Result<BatchBody<'_>, MessageError> {
    let top: HashMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            MessageError::NotAnObject {
                what: "a batch body",
                got: first_json_type(text),
            }
        } else {
            MessageError::InvalidJson(e.to_string())
        }
    })?;
    let write_key = match top.get("writeKey") {
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get()).map_err(|_| {
            MessageError::InvalidField {
                field: "writeKey",
                expected: "a string",
                got: first_json_type(raw.get()).to_string(),
            }
        })?,
        None => None,
    };
    let sent_at = match top.get("sentAt") {
        Some(raw) => match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(None) => None,
            Ok(Some(text)) => {
                Some(
                    parse_millis(&text).ok_or_else(|| MessageError::InvalidField {
                        field: "sentAt",
                        expected: "an ISO 8601 date-time such as \"2026-01-31T12:00:00.000Z\"",
                        got: format!("{text:?}"),
                    })?,
                )
            }
            Err(_) => {
                return Err(MessageError::InvalidField {
                    field: "sentAt",
                    expected: "an ISO 8601 date-time string",
                    got: first_json_type(raw.get()).to_string(),
                });
            }
        },
        None => None,
    };
    let Some(batch) = top.get("batch") else {
        return Err(MessageError::MissingField {
            field: "batch",
            hint: ": send {\"batch\": [message, ...]}",
        });
    };
    let messages: Vec<&RawValue> =
        serde_json::from_str(batch.get()).map_err(|_| MessageError::InvalidField {
            field: "batch",
            expected: "an array of messages",
            got: first_json_type(batch.get()).to_string(),
        })?;
    if messages.len() > MAX_BATCH_MESSAGES {
        return Err(MessageError::TooManyMessages {
            count: messages.len(),
            limit: MAX_BATCH_MESSAGES,
        });
    }
    Ok(BatchBody {
        write_key,
        sent_at,
        messages,
    })
}

/// The JSON type of a text already known to be valid JSON, for error messages.
fn first_json_type(text: &str) -> &'static str {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|v| json_type(&v))
        .unwrap_or("invalid JSON")
}
