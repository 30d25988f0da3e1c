//! The one envelope for JSON documents the store keeps: `{"version": N, "<key>": payload}`.
//!
//! A data directory outlives the binary that wrote it, so a reader must tell apart a document
//! it understands, one written by a newer Affinity (refused, like a newer schema) and damaged
//! text (reported with its row, never read as `null`). The version is per document kind and
//! counts changes to that payload's shape; the payload key names what the row holds
//! (`"record"`, `"spec"`…) so a row read by hand explains itself.
//!
//! Changing a payload's shape means bumping its [`Document::version`] and either rewriting
//! the stored rows in a schema migration (`schema.rs`) or teaching the reader the old
//! version; until then [`Document::decode`] refuses any version but the current one.
//!
//! Stored *values* (trait values, uploaded catalog columns, received messages) are not
//! documents: they are arbitrary JSON passed through, with no shape of ours to version.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::StoreError;

/// One kind of stored document: where it lives (for error messages), its payload key and the
/// format version this build writes and reads.
pub(crate) struct Document {
    pub table: &'static str,
    pub column: &'static str,
    pub key: &'static str,
    pub version: u64,
}

const VERSION_KEY: &str = "version";

impl Document {
    /// The stored text of `payload` in the current version.
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, payload: &T) -> Result<String, StoreError> {
        self.encode_as(self.version, payload)
    }

    /// The stored text of `payload` in version `version`: for migrations, which must keep
    /// writing the version they were written for whatever the current one becomes.
    pub(crate) fn encode_as<T: Serialize + ?Sized>(
        &self,
        version: u64,
        payload: &T,
    ) -> Result<String, StoreError> {
        serde_json::to_string(&Envelope {
            key: self.key,
            version,
            payload,
        })
        .map_err(|source| StoreError::Encode {
            table: self.table,
            column: self.column,
            source,
        })
    }

    /// The payload of the stored `text` of row `row`, which must be in the current version.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        row: impl Display,
        text: &str,
    ) -> Result<T, StoreError> {
        let corrupt = |problem: String| StoreError::CorruptDocument {
            table: self.table,
            column: self.column,
            row: row.to_string(),
            problem,
        };
        let stored: Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON ({e})")))?;
        let Value::Object(mut fields) = stored else {
            return Err(corrupt("not a versioned document (not an object)".into()));
        };
        let version = match fields.get(VERSION_KEY) {
            None => return Err(corrupt("no format version".into())),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| corrupt(format!("format version {v} is not a whole number")))?,
        };
        if version > self.version {
            return Err(StoreError::NewerDocument {
                table: self.table,
                column: self.column,
                row: row.to_string(),
                found: version,
                supported: self.version,
            });
        }
        if version != self.version {
            // Older versions are rewritten by schema migrations, so one left over means the
            // row was edited by hand or a migration missed it.
            return Err(corrupt(format!(
                "format version {version} is not one this Affinity reads ({})",
                self.version
            )));
        }
        let payload = fields
            .remove(self.key)
            .ok_or_else(|| corrupt(format!("no \"{}\" field", self.key)))?;
        serde_json::from_value(payload)
            .map_err(|e| corrupt(format!("not a valid version {version} {} ({e})", self.key)))
    }

    /// [`Document::decode`] for a nullable column, where SQL `NULL` (nothing stored yet) reads
    /// as JSON `null`, as callers of the store have always seen it.
    pub(crate) fn decode_nullable(
        &self,
        row: impl Display,
        text: Option<&str>,
    ) -> Result<Value, StoreError> {
        text.map_or(Ok(Value::Null), |t| self.decode(row, t))
    }
}

/// Serialized as a two-entry map, version first, without building an intermediate `Value`.
struct Envelope<'a, T: ?Sized> {
    key: &'static str,
    version: u64,
    payload: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for Envelope<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(VERSION_KEY, &self.version)?;
        map.serialize_entry(self.key, self.payload)?;
        map.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use serde_json::json;

    use super::*;

    const DOC: Document = Document {
        table: "things",
        column: "body",
        key: "thing",
        version: 2,
    };

    #[test]
    fn round_trips_in_the_envelope() {
        let text = DOC.encode(&json!({"a": [1, 2]})).unwrap();
        assert_eq!(text, r#"{"version":2,"thing":{"a":[1,2]}}"#);
        assert_eq!(DOC.decode::<Value>(7, &text).unwrap(), json!({"a": [1, 2]}));
    }

    #[test]
    fn every_defect_is_reported_with_its_row() {
        let cases = [
            ("{not json", "not JSON"),
            ("[1]", "not an object"),
            (r#"{"thing": 1}"#, "no format version"),
            (r#"{"version": "2", "thing": 1}"#, "not a whole number"),
            (
                r#"{"version": 1, "thing": 1}"#,
                "not one this Affinity reads",
            ),
            (r#"{"version": 2}"#, "no \"thing\" field"),
        ];
        for (text, want) in cases {
            match DOC.decode::<Value>(42, text) {
                Err(StoreError::CorruptDocument {
                    table: "things",
                    column: "body",
                    row,
                    problem,
                }) => {
                    assert_eq!(row, "42");
                    assert!(problem.contains(want), "{text}: {problem}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            DOC.decode::<Value>(42, r#"{"version": 3, "thing": 1}"#),
            Err(StoreError::NewerDocument {
                found: 3,
                supported: 2,
                ..
            })
        ));
        // The payload must have the promised shape.
        assert!(matches!(
            DOC.decode::<Vec<u8>>(42, r#"{"version": 2, "thing": "x"}"#),
            Err(StoreError::CorruptDocument { .. })
        ));
    }
}
