//! Catalog files uploaded to enrich items: CSV with a header (one column `item_id`) or JSONL
//! (one object a line with `item_id`). All rows or none: a file with bad rows is refused
//! whole, listing them by line.

use serde_json::{Map, Value};

use affinity_core::catalog::ITEM_ID;

use crate::error::{EngineError, Invalid, Problem, Result};

/// Row problems listed in one error; a file with thousands of bad rows is usually one mistake.
const SHOWN_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Jsonl,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

pub type Rows = Vec<(String, Map<String, Value>)>;

pub struct CatalogFile {
    pub rows: Rows,
    pub format: FileFormat,
}

/// Parses a whole file; without a `hint` the format is sniffed (JSONL starts with `{`).
pub fn parse(bytes: Vec<u8>, hint: Option<FileFormat>) -> Result<CatalogFile> {
    let text = String::from_utf8(bytes).map_err(|_| {
        EngineError::invalid(
            Invalid::CatalogFile,
            [Problem::new("file", "the catalog file is not UTF-8 text")],
        )
    })?;
    let format = hint.unwrap_or(if text.trim_start().starts_with('{') {
        FileFormat::Jsonl
    } else {
        FileFormat::Csv
    });
    let (rows, mut problems) = match format {
        FileFormat::Jsonl => parse_jsonl(&text),
        FileFormat::Csv => parse_csv(&text),
    };
    if problems.is_empty() && rows.is_empty() {
        problems.push(Problem::new("file", "the file has no item rows"));
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(SHOWN_PROBLEMS);
        problems.truncate(SHOWN_PROBLEMS);
        if more > 0 {
            problems.push(Problem::new(
                "file",
                format!("{more} more problem(s) not listed; nothing was stored"),
            ));
        }
        return Err(EngineError::invalid(Invalid::CatalogFile, problems));
    }
    Ok(CatalogFile { rows, format })
}

fn line(n: usize) -> String {
    format!("line {n}")
}

fn parse_jsonl(text: &str) -> (Rows, Vec<Problem>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (n, text) in text.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let at = line(n + 1);
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut m)) => match m.remove(ITEM_ID) {
                Some(Value::String(id)) if !id.is_empty() => rows.push((id, m)),
                Some(Value::Number(id)) => rows.push((id.to_string(), m)),
                _ => problems.push(Problem::new(at, "needs a non-empty \"item_id\"")),
            },
            Ok(_) => problems.push(Problem::new(at, "must be a JSON object")),
            Err(e) => problems.push(Problem::new(at, format!("invalid JSON ({e})"))),
        }
    }
    (rows, problems)
}

/// CSV cells are text; a cell holding a JSON array (`["Comedy","Drama"]`) is a list; an empty
/// cell leaves the column unset.
fn parse_csv(text: &str) -> (Rows, Vec<Problem>) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return (Vec::new(), vec![Problem::new("header", e.to_string())]),
    };
    let Some(id_col) = header.iter().position(|h| h == ITEM_ID) else {
        let message = format!(
            "the header needs an `item_id` column; it has: {}",
            header.join(", ")
        );
        return (Vec::new(), vec![Problem::new("header", message)]);
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let at = line(n + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem::new(at, e.to_string()));
                continue;
            }
        };
        let id = record.get(id_col).unwrap_or("").trim();
        if id.is_empty() {
            problems.push(Problem::new(at, "empty item_id"));
            continue;
        }
        let mut columns = Map::new();
        for (i, cell) in record.iter().enumerate() {
            if i == id_col || cell.is_empty() {
                continue;
            }
            let value = if cell.starts_with('[') {
                serde_json::from_str::<Value>(cell)
                    .ok()
                    .filter(Value::is_array)
                    .unwrap_or_else(|| Value::String(cell.to_string()))
            } else {
                Value::String(cell.to_string())
            };
            columns.insert(header[i].clone(), value);
        }
        rows.push((id.to_string(), columns));
    }
    (rows, problems)
}
