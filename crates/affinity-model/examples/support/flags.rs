//! `--name value` command-line flags for the benchmark examples (shared with
//! `#[path = "support/flags.rs"] mod flags;`: Cargo does not treat this folder as an example).

use std::collections::HashMap;

/// Every argument must be `--name value`.
#[allow(dead_code)] // each example uses one of the two forms
pub fn parse(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("expected --flag, got {arg}"))?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        map.insert(name.to_string(), value.clone());
    }
    Ok(map)
}

/// Like [`parse`], but a flag followed by another flag (or by nothing) is a switch with an
/// empty value, e.g. `--internal-only`.
#[allow(dead_code)]
pub fn parse_allowing_switches(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("expected --flag, got {arg}"))?;
        let value = match it.peek() {
            Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
            _ => String::new(),
        };
        map.insert(name.to_string(), value);
    }
    Ok(map)
}
