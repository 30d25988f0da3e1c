//! The fuzz targets: each takes arbitrary bytes, runs exactly the code the server runs on a
//! request body, and checks what must hold whatever the input (a panic or a failed check is a
//! finding). Each returns a short signature of what happened (which error, which shape of
//! success), which the driver uses to keep inputs that reached somewhere new.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

use affinity_core::audience::AudienceSpec;
use affinity_core::batch::parse_batch;
use affinity_core::catalog::CatalogConfig;
use affinity_core::item_rules::TraitDefinition;
use affinity_core::limits::MAX_BATCH_MESSAGES;
use affinity_core::{Message, MessageError, MessageType};
use affinity_engine::catalog_file::{self, FileFormat};
use affinity_server::tracking::body;

/// A fixed receipt time, so that a run is reproducible from its seed.
const RECEIVED_AT: i64 = 1_764_000_000_000;

/// Separates the parts of an input that feeds two parsers (a catalog config and the
/// properties it reads from). 0xFF never occurs in UTF-8, so no text part contains it.
pub const SEPARATOR: u8 = 0xFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One message of `/v1/track`, `/v1/identify`, … (`Message::parse` with and without the
    /// type the path implies).
    Message,
    /// A `/v1/batch` body: `parse_batch`, then every message as the handler parses it.
    Batch,
    /// Body decoding: no encoding, `identity`, `gzip`, unknown encodings; size limits; UTF-8.
    Body,
    /// A catalog configuration (`PUT /api/v1/catalog`): decoding, validation, and reading
    /// items out of event properties with it.
    Catalog,
    /// A catalog file upload (CSV or JSONL items).
    CatalogFile,
    /// An audience definition (`POST /api/v1/audiences`) and a trait definition.
    Audience,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Message,
        Target::Batch,
        Target::Body,
        Target::Catalog,
        Target::CatalogFile,
        Target::Audience,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Batch => "batch",
            Self::Body => "body",
            Self::Catalog => "catalog",
            Self::CatalogFile => "catalog_file",
            Self::Audience => "audience",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target on one input.
    pub fn run(self, input: &[u8]) -> String {
        match self {
            Self::Message => message(input),
            Self::Batch => batch(input),
            Self::Body => body_decoding(input),
            Self::Catalog => catalog(input),
            Self::CatalogFile => catalog_file(input),
            Self::Audience => audience(input),
        }
    }
}

/// An error's kind without the parts that echo the input (numbers, quoted values), so that
/// signatures stay few.
fn kind(text: &str) -> String {
    let cut = text.find(['"', '`', '(']).unwrap_or(text.len());
    text[..cut]
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(48)
        .collect()
}

fn message_error(e: &MessageError) -> String {
    kind(&e.to_string())
}

/// Checks what holds for every accepted message.
fn check_message(m: &Message, raw: &str) {
    assert_eq!(m.raw, raw, "the stored text is the text received");
    assert_eq!(m.received_at, RECEIVED_AT);
    assert!(
        m.user_id.is_some() || m.anonymous_id.is_some(),
        "every accepted message names someone"
    );
    assert!(!m.message_id.is_empty(), "every message has an id");
}

fn message(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let mut signature = String::new();
    // As `/v1/batch` parses it (no implied type), and as one path chosen by the input (each
    // of `/v1/track`, `/v1/identify`, … in turn across inputs).
    let path = MessageType::ALL[input.len() % MessageType::ALL.len()];
    for implied in [None, Some(path)] {
        match Message::parse(&text, implied, RECEIVED_AT) {
            Ok(m) => {
                check_message(&m, &text);
                if let Some(k) = implied {
                    assert_eq!(m.kind, k, "the path's type wins");
                }
                signature.push_str(m.kind.as_str());
            }
            Err(e) => signature.push_str(&message_error(&e)),
        }
        signature.push('|');
    }
    signature
}

fn batch(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    match parse_batch(&text) {
        Ok(parsed) => {
            assert!(parsed.messages.len() <= MAX_BATCH_MESSAGES);
            let mut ok = 0;
            let mut errors = std::collections::BTreeSet::new();
            for raw in &parsed.messages {
                match Message::parse(raw.get(), None, RECEIVED_AT) {
                    Ok(m) => {
                        check_message(&m, raw.get());
                        ok += 1;
                    }
                    Err(e) => {
                        errors.insert(message_error(&e));
                    }
                }
            }
            format!(
                "batch key={} ok={} errors={errors:?}",
                parsed.write_key.is_some(),
                ok.min(2)
            )
        }
        Err(e) => message_error(&e),
    }
}

const ENCODINGS: [Option<&str>; 7] = [
    None,
    Some("identity"),
    Some("gzip"),
    Some(" GZIP "),
    Some("x-gzip"),
    Some(""),
    Some("br"),
];
const LIMITS: [usize; 3] = [64, 4096, 512 * 1024];

/// Input: one byte choosing the encoding and limit, one choosing the mode, then the body. In
/// mode 0 the body is sent as it is (for gzip: a mutated compressed stream). In mode 1 the
/// body is text that the target compresses itself, so the round trip can be checked exactly;
/// mode 2 appends the compressed text to itself (two members: must be refused).
fn body_decoding(input: &[u8]) -> String {
    let (choice, mode, rest) = match input {
        [a, b, rest @ ..] => (*a as usize, *b % 3, rest),
        _ => return "short".into(),
    };
    let encoding = ENCODINGS[choice % ENCODINGS.len()];
    let limit = LIMITS[(choice / ENCODINGS.len()) % LIMITS.len()];
    let gzip = matches!(
        encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref(),
        Some("gzip" | "x-gzip")
    );
    let sent = match mode {
        0 => rest.to_vec(),
        _ if !gzip => rest.to_vec(),
        _ => {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(rest).expect("compress into memory");
            let one = e.finish().expect("compress into memory");
            if mode == 2 {
                [one.clone(), one].concat()
            } else {
                one
            }
        }
    };
    let result = body::decode(encoding, &sent, limit, "for the fuzz target");
    if let Ok(text) = &result {
        assert!(
            text.len() <= limit || !gzip,
            "decoded text within the limit"
        );
        if gzip && mode == 1 {
            assert_eq!(text.as_bytes(), rest, "gzip round trip");
        }
        if !gzip {
            assert_eq!(text.as_bytes(), &sent[..], "identity is the bytes as sent");
        }
    }
    match (&result, gzip, mode) {
        // Our own compression of text within the limit must decode.
        (Err(e), true, 1) if rest.len() <= limit && std::str::from_utf8(rest).is_ok() => {
            panic!("valid gzip of valid text refused: {}", e.message)
        }
        // A second member is never accepted silently.
        (Ok(_), true, 2) => panic!("a body of two gzip members was accepted"),
        _ => {}
    }
    match result {
        Ok(_) => format!("ok {encoding:?} {mode}"),
        Err(e) => format!("{} {}", e.code.as_str(), kind(&e.message)),
    }
}

/// Splits an input at the first [`SEPARATOR`].
fn two_parts(input: &[u8]) -> (String, Option<String>) {
    match input.iter().position(|&b| b == SEPARATOR) {
        Some(i) => (
            String::from_utf8_lossy(&input[..i]).into_owned(),
            Some(String::from_utf8_lossy(&input[i + 1..]).into_owned()),
        ),
        None => (String::from_utf8_lossy(input).into_owned(), None),
    }
}

/// Input: a catalog configuration, then (after [`SEPARATOR`]) an event's properties.
fn catalog(input: &[u8]) -> String {
    let (config, properties) = two_parts(input);
    let config: CatalogConfig = match serde_json::from_str(&config) {
        Ok(c) => c,
        Err(e) => return format!("decode {:?}", e.classify()),
    };
    let problems = config.validate();
    // Whatever the configuration, reading items never fails or panics; a valid one reads
    // every configured column for each item.
    let properties: Value = properties
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or(Value::Null);
    let mut items = 0;
    for event in 0..=config.events.len() {
        for item in config.extract(event, &properties) {
            assert_eq!(item.columns.len(), config.columns.len());
            assert!(!item.id.trim().is_empty(), "an item id is never blank");
            items += 1;
        }
    }
    let mut fields: Vec<String> = problems.iter().map(|p| kind(&p.field)).collect();
    fields.dedup();
    format!("problems={fields:?} items={}", items.min(3))
}

/// Input: one byte choosing the format hint (none, CSV, JSONL), then the file.
fn catalog_file(input: &[u8]) -> String {
    let Some((&hint, rest)) = input.split_first() else {
        return "empty".into();
    };
    let hint = match hint % 3 {
        0 => None,
        1 => Some(FileFormat::Csv),
        _ => Some(FileFormat::Jsonl),
    };
    match catalog_file::parse(rest.to_vec(), hint) {
        Ok(file) => {
            if let Some(h) = hint {
                assert_eq!(file.format, h, "the hint decides the format");
            }
            for (id, _) in &file.rows {
                assert!(!id.is_empty(), "a row without an item id is refused");
            }
            format!(
                "ok {} rows={}",
                file.format.as_str(),
                file.rows.len().min(3)
            )
        }
        Err(e) => kind(&e.to_string()),
    }
}

/// Input: a JSON body, read as an audience definition and as a trait definition.
fn audience(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return format!("json {:?}", e.classify()),
    };
    let spec = match AudienceSpec::parse(&value) {
        Ok(spec) => {
            // What is stored is read back as the same definition, and what is shown (the same
            // fields) is accepted again as the same definition.
            let stored = serde_json::to_value(&spec).expect("encode a definition");
            let read: AudienceSpec =
                serde_json::from_value(stored.clone()).expect("decode a stored definition");
            assert_eq!(read, spec, "the stored definition round-trips");
            let again = AudienceSpec::parse(&stored);
            assert_eq!(
                again.as_ref(),
                Ok(&spec),
                "a shown definition is accepted again"
            );
            assert!(spec.horizon_days.is_none_or(|d| (1..=365).contains(&d)));
            let _ = spec.wanted(usize::MAX);
            let _ = spec.wanted(0);
            "ok".to_string()
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal names its problems");
            // Unknown fields are named after the input's keys: one signature for all of them.
            const KNOWN: [&str; 9] = [
                "name",
                "target",
                "max_size",
                "horizon_days",
                "control_percent",
                "destinations",
                "refresh",
                "event",
                "question",
            ];
            let mut fields: Vec<&str> = problems
                .iter()
                .map(|(f, _)| {
                    KNOWN
                        .iter()
                        .find(|k| f.starts_with(**k))
                        .copied()
                        .unwrap_or("other")
                })
                .collect();
            fields.dedup();
            format!("{:?}", &fields[..fields.len().min(4)])
        }
    };
    let definition = match serde_json::from_value::<TraitDefinition>(value) {
        Ok(d) => {
            let columns = ["item_id".to_string(), "brand".to_string()];
            format!("trait problems={}", d.problems(&columns).len().min(3))
        }
        Err(_) => "trait refused".to_string(),
    };
    format!("{spec} {definition}")
}
