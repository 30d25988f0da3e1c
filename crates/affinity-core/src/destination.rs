//! A destination definition: where audience and trait messages go (a webhook, a
//! Segment-compatible Tracking API, a file under the export directory). Parsed by hand from
//! JSON so that every problem of a request is named at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audience::FieldProblem;

/// Segment's own Tracking API, the default of a `segment` destination.
pub const SEGMENT_API: &str = "https://api.segment.io";
/// Messages per request a webhook may ask for (Segment's `/v1/batch` takes 500 KB; a
/// message of ours is well under 1 KB).
pub const MAX_BATCH_SIZE: u32 = 500;
/// Headers a webhook may not set: the delivery owns them (the signature would not match a
/// body it did not sign, the length is the body's).
const RESERVED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "user-agent",
    "x-signature",
    "x-signature-256",
    "host",
    "transfer-encoding",
    "connection",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Jsonl,
    Csv,
}

/// What kind of receiver, with its settings (secrets included: never shown back whole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DestinationConfig {
    Webhook {
        url: String,
        #[serde(default)]
        secret: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        batch_size: u32,
        #[serde(default)]
        max_per_second: Option<f64>,
    },
    Segment {
        write_key: String,
        url: String,
    },
    File {
        /// Relative to the export directory, checked to stay inside it.
        path: String,
        format: FileFormat,
    },
}

impl DestinationConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Segment { .. } => "segment",
            Self::File { .. } => "file",
        }
    }

    /// Messages the receiver takes per request.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Webhook { batch_size, .. } => *batch_size as usize,
            // Segment's `/v1/batch` limit is 500 KB per request; 100 messages stay well below.
            Self::Segment { .. } => 100,
            Self::File { .. } => 1000,
        }
    }

    pub fn max_per_second(&self) -> Option<f64> {
        match self {
            Self::Webhook { max_per_second, .. } => *max_per_second,
            _ => None,
        }
    }
}

/// A destination as created: a name and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationSpec {
    pub name: String,
    #[serde(flatten)]
    pub config: DestinationConfig,
}

fn p(field: &str, message: impl Into<String>) -> FieldProblem {
    (field.to_string(), message.into())
}

/// `http://` or `https://` with a host, no spaces: what a receiver URL must look like.
pub fn check_url(field: &str, url: &str, out: &mut Vec<FieldProblem>) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        None => out.push(p(
            field,
            format!("must start with http:// or https://; got {url:?}"),
        )),
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.is_empty() || url.chars().any(char::is_whitespace) || url.len() > 2000 {
                out.push(p(
                    field,
                    format!("must be a URL with a host, without spaces, under 2000 characters; got {url:?}"),
                ));
            }
        }
    }
}

/// A path relative to the export directory that cannot leave it: no absolute path, no `..`.
pub fn check_export_path(path: &str, out: &mut Vec<FieldProblem>) {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.starts_with('\\')
        || path.contains(':')
        || path.contains('\0')
        || path
            .split(['/', '\\'])
            .any(|part| part == ".." || part.is_empty());
    if bad {
        out.push(p(
            "path",
            format!(
                "must be a relative path inside the export directory (such as \"audiences/buyers.jsonl\"): no leading /, no .., no empty parts; got {path:?}"
            ),
        ));
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn text<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

impl DestinationSpec {
    /// Parses and validates a create request, listing every problem.
    pub fn parse(body: &Value) -> Result<DestinationSpec, Vec<FieldProblem>> {
        let mut out = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![p("body", "must be a JSON object")]);
        };
        let kind = text(obj, "type").unwrap_or_default();
        let fields: &[&str] = match kind {
            "webhook" => &[
                "name",
                "type",
                "url",
                "secret",
                "headers",
                "batch_size",
                "max_per_second",
            ],
            "segment" => &["name", "type", "write_key", "url"],
            "file" => &["name", "type", "path", "format"],
            _ => {
                out.push(p(
                    "type",
                    format!(
                        "must be \"webhook\", \"segment\" or \"file\"; got {}",
                        obj.get("type").map_or("nothing".into(), Value::to_string)
                    ),
                ));
                &["name", "type"]
            }
        };
        if !["webhook", "segment", "file"].contains(&kind) {
            // Without a type the other fields cannot be judged; the name still can.
        } else {
            for key in obj.keys().filter(|k| !fields.contains(&k.as_str())) {
                out.push(p(
                    key,
                    format!(
                        "unknown field for a {kind} destination; fields are: {}",
                        fields.join(", ")
                    ),
                ));
            }
        }
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => s.clone(),
            _ => {
                out.push(p("name", "is required: a name of 1 to 200 characters"));
                String::new()
            }
        };
        let config = match kind {
            "webhook" => Self::webhook(obj, &mut out),
            "segment" => Self::segment(obj, &mut out),
            "file" => Self::file(obj, &mut out),
            _ => None,
        };
        match (out.is_empty(), config) {
            (true, Some(config)) => Ok(DestinationSpec { name, config }),
            _ => Err(out),
        }
    }

    fn webhook(
        obj: &serde_json::Map<String, Value>,
        out: &mut Vec<FieldProblem>,
    ) -> Option<DestinationConfig> {
        let url = match text(obj, "url") {
            Some(u) => {
                check_url("url", u, out);
                u.to_string()
            }
            None => {
                out.push(p(
                    "url",
                    "is required: the http(s) URL messages are posted to",
                ));
                String::new()
            }
        };
        let secret = match obj.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 1000 => Some(s.clone()),
            Some(_) => {
                out.push(p(
                    "secret",
                    "must be a string of 1 to 1000 characters (it signs each request), or omitted",
                ));
                None
            }
        };
        let mut headers = BTreeMap::new();
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let field = format!("headers.{k}");
                    if !is_token(k) {
                        out.push(p(&field, "is not a valid header name"));
                    } else if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                        out.push(p(
                            &field,
                            format!(
                                "is set by the delivery itself and cannot be overridden (reserved: {})",
                                RESERVED_HEADERS.join(", ")
                            ),
                        ));
                    }
                    match v.as_str() {
                        Some(s) if s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => {
                            headers.insert(k.clone(), s.to_string());
                        }
                        _ => out.push(p(&field, "must be a string of printable ASCII characters")),
                    }
                }
            }
            Some(_) => out.push(p(
                "headers",
                "must be an object of header names to string values",
            )),
        }
        let batch_size = match obj.get("batch_size") {
            None | Some(Value::Null) => 1,
            Some(v) => match v.as_u64() {
                Some(n @ 1..) if n <= u64::from(MAX_BATCH_SIZE) => n as u32,
                _ => {
                    out.push(p(
                        "batch_size",
                        format!(
                            "must be a whole number from 1 (one message per request, as Segment's webhook) to {MAX_BATCH_SIZE} (posted as {{\"batch\":[...]}}); got {v}"
                        ),
                    ));
                    1
                }
            },
        };
        let max_per_second = match obj.get("max_per_second") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(r) if r > 0.0 && r <= 100_000.0 => Some(r),
                _ => {
                    out.push(p(
                        "max_per_second",
                        format!("must be a number of messages per second above 0 and at most 100000, or omitted for no limit; got {v}"),
                    ));
                    None
                }
            },
        };
        Some(DestinationConfig::Webhook {
            url,
            secret,
            headers,
            batch_size,
            max_per_second,
        })
    }

    fn segment(
        obj: &serde_json::Map<String, Value>,
        out: &mut Vec<FieldProblem>,
    ) -> Option<DestinationConfig> {
        let write_key = match text(obj, "write_key") {
            Some(k) if !k.is_empty() && k.len() <= 1000 && !k.contains(':') => k.to_string(),
            _ => {
                out.push(p(
                    "write_key",
                    "is required: the write key of the source to send through (no ':')",
                ));
                String::new()
            }
        };
        let url = match obj.get("url") {
            None | Some(Value::Null) => SEGMENT_API.to_string(),
            Some(Value::String(u)) => {
                check_url("url", u, out);
                u.trim_end_matches('/').to_string()
            }
            Some(v) => {
                out.push(p(
                    "url",
                    format!("must be the base URL of a Segment-compatible Tracking API; got {v}"),
                ));
                String::new()
            }
        };
        Some(DestinationConfig::Segment { write_key, url })
    }

    fn file(
        obj: &serde_json::Map<String, Value>,
        out: &mut Vec<FieldProblem>,
    ) -> Option<DestinationConfig> {
        let path = match text(obj, "path") {
            Some(path) => {
                check_export_path(path, out);
                path.to_string()
            }
            None => {
                out.push(p(
                    "path",
                    "is required: a file path relative to the export directory",
                ));
                String::new()
            }
        };
        let format = match text(obj, "format") {
            Some("jsonl") => FileFormat::Jsonl,
            Some("csv") => FileFormat::Csv,
            _ => {
                out.push(p(
                    "format",
                    format!(
                        "must be \"jsonl\" or \"csv\"; got {}",
                        obj.get("format").map_or("nothing".into(), Value::to_string)
                    ),
                ));
                FileFormat::Jsonl
            }
        };
        Some(DestinationConfig::File { path, format })
    }
}

/// Parses a `destinations` list (of an audience or a trait): destination ids, as numbers or
/// their decimal text. Whether each exists is the engine's to check.
pub fn parse_destination_ids(v: Option<&Value>, out: &mut Vec<FieldProblem>) -> Vec<String> {
    let hint =
        "must be a list of destination ids (from POST /api/v1/destinations), such as [\"3\"]";
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut ids = Vec::new();
            for (i, x) in a.iter().enumerate() {
                let id = match x {
                    Value::String(s) => s.parse::<u64>().ok(),
                    Value::Number(n) => n.as_u64(),
                    _ => None,
                };
                match id {
                    Some(id) if id >= 1 => {
                        let id = id.to_string();
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    _ => {
                        out.push(p("destinations", format!("{hint}; item {i} is {x}")));
                        return Vec::new();
                    }
                }
            }
            ids
        }
        Some(x) => {
            out.push(p("destinations", format!("{hint}; got {x}")));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        DestinationSpec::parse(&body)
            .expect_err("invalid")
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn a_webhook_lists_every_problem_at_once() {
        assert_eq!(
            fields(json!({"type": "webhook", "url": "ftp://x", "batch_size": 0,
                "max_per_second": -1, "headers": {"X-Signature": "no", "bad name": "v"}, "colour": 1})),
            vec![
                "colour",
                "name",
                "url",
                "headers.X-Signature",
                "headers.bad name",
                "batch_size",
                "max_per_second"
            ]
        );
    }

    #[test]
    fn defaults_and_shapes() {
        let w = DestinationSpec::parse(
            &json!({"name": "crm", "type": "webhook", "url": "https://example.com/hook"}),
        )
        .expect("valid");
        assert_eq!(w.config.batch_size(), 1);
        let s = DestinationSpec::parse(&json!({"name": "s", "type": "segment", "write_key": "k"}))
            .expect("valid");
        assert_eq!(
            s.config,
            DestinationConfig::Segment {
                write_key: "k".into(),
                url: SEGMENT_API.into()
            }
        );
        for bad in ["/etc/passwd", "../x", "a/../../x", "", "a//b", "c:/x"] {
            assert_eq!(
                fields(json!({"name": "f", "type": "file", "path": bad, "format": "csv"})),
                vec!["path"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(json!({"name": "f", "type": "file", "path": "a/b.csv", "format": "xml"})),
            vec!["format"]
        );
        assert_eq!(fields(json!({"name": "x"})), vec!["type"]);
    }

    #[test]
    fn destination_ids_are_numbers_or_their_text() {
        let mut out = Vec::new();
        assert_eq!(
            parse_destination_ids(Some(&json!(["3", 4, "3"])), &mut out),
            vec!["3", "4"]
        );
        assert!(out.is_empty());
        parse_destination_ids(Some(&json!(["d1"])), &mut out);
        assert_eq!(out.len(), 1);
    }
}
