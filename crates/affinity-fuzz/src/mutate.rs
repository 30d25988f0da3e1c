//! Seeded, structure-aware mutation of inputs: byte edits (flips, inserts, deletions,
//! duplications) and JSON-aware ones (tokens of the formats under test, boundary numbers,
//! broken escapes, deep nesting, splices of other corpus entries). Without coverage
//! instrumentation (stable Rust, no libFuzzer), knowing the formats is what gets inputs past
//! the first parse error.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Tokens of the formats under test: JSON syntax, Segment fields and values, catalog and
/// audience keys, numbers and strings at the edges of what parsers handle.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1.5",
    "1e308",
    "1e309",
    "-1e309",
    "4294967296",
    "18446744073709551616",
    "9007199254740993",
    "98765432109876543210001",
    "0.1e-400",
    "\"\"",
    "[]",
    "{}",
    "\" \"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\uZZZZ\"",
    "\"\u{feff}\"",
    "\"\u{10ffff}\"",
    "\"type\"",
    "\"track\"",
    "\"identify\"",
    "\"page\"",
    "\"screen\"",
    "\"group\"",
    "\"alias\"",
    "\"userId\"",
    "\"anonymousId\"",
    "\"previousId\"",
    "\"groupId\"",
    "\"event\"",
    "\"name\"",
    "\"properties\"",
    "\"traits\"",
    "\"context\"",
    "\"timestamp\"",
    "\"originalTimestamp\"",
    "\"sentAt\"",
    "\"messageId\"",
    "\"batch\"",
    "\"writeKey\"",
    "\"products\"",
    "\"product_id\"",
    "\"brand\"",
    "\"2026-01-01T00:00:00Z\"",
    "\"2026-02-30T25:61:61Z\"",
    "\"9999-12-31T23:59:59.999+14:00\"",
    "\"0000-01-01T00:00:00-23:59\"",
    "\"1970-01-01\"",
    "\"events\"",
    "\"columns\"",
    "\"product_id_property\"",
    "\"products[].sku\"",
    "\"products[]\"",
    "\"products[].\"",
    "\"weight\"",
    "\"lookback_days\"",
    "\"half_life_days\"",
    "\"model_selection\"",
    "\"user_time\"",
    "\"target\"",
    "\"column\"",
    "\"value\"",
    "\"item_id\"",
    "\"max_size\"",
    "\"percent\"",
    "\"count\"",
    "\"horizon_days\"",
    "\"question\"",
    "\"within_horizon\"",
    "\"next_visit\"",
    "\"control_percent\"",
    "\"destinations\"",
    "\"k\"",
    "\"exclude\"",
    "\"exclude_interacted\"",
    "item_id",
    "item_id,brand\n",
    "\r\n",
    "\n",
    "\"a,b\"",
    "\"\"\"",
    ",,,",
    "NaN",
    "Infinity",
    ",0",
    ",\"x\"",
    ",null",
    ",{}",
    ",[]",
    ",true",
    "0,",
    "\"k\":1,",
];

/// Values inserted as new array elements or object members (see the element edit).
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "1e309",
    "\"\"",
    "\"x\"",
    "\"Brand 001\"",
    "null",
    "true",
    "[]",
    "{}",
    "[1]",
    "{\"a\":1}",
    "\"\\ud800\"",
    "18446744073709551616",
];

/// Bytes that break UTF-8, JSON or gzip in interesting ways.
const BYTES: &[u8] = &[
    0x00, 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xfe, 0xff, b'"',
    b'\\', b'{', b'[', b',', b'\n', 0x1f, 0x8b, 0x08,
];

pub struct Mutator {
    rng: ChaCha8Rng,
    max_len: usize,
}

impl Mutator {
    pub fn new(rng: ChaCha8Rng, max_len: usize) -> Self {
        Self { rng, max_len }
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn pos(&mut self, len: usize) -> usize {
        self.rng.random_range(0..=len)
    }

    fn token(&mut self) -> &'static [u8] {
        TOKENS[self.rng.random_range(0..TOKENS.len())].as_bytes()
    }

    /// A copy of `base` with 1 to 8 stacked edits; `other` is another corpus entry to splice
    /// from. Never longer than `max_len`.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        // 1, 2, 4 or 8 stacked edits, as AFL's havoc stage: single edits are common enough
        // for small steps (one more element) to survive.
        let edits = 1 << self.rng.random_range(0..4);
        for _ in 0..edits {
            self.edit(&mut out, other);
        }
        out.truncate(self.max_len);
        out
    }

    fn edit(&mut self, out: &mut Vec<u8>, other: &[u8]) {
        let len = out.len();
        match self.rng.random_range(0..14) {
            0 if len > 0 => {
                let i = self.rng.random_range(0..len);
                out[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = self.rng.random_range(0..len);
                out[i] = self.rng.random();
            }
            2 => {
                let i = self.pos(len);
                let b = BYTES[self.rng.random_range(0..BYTES.len())];
                out.insert(i, b);
            }
            3 if len > 0 => {
                let i = self.rng.random_range(0..len);
                let n = self.rng.random_range(1..=16.min(len - i));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = self.rng.random_range(0..len);
                let n = self.rng.random_range(1..=64.min(len - i));
                let copy = out[i..i + n].to_vec();
                let at = self.pos(len);
                out.splice(at..at, copy);
            }
            5 | 6 => {
                let i = self.pos(len);
                let t = self.token();
                out.splice(i..i, t.iter().copied());
            }
            7 if len > 0 => {
                // Replace a range with a token: swaps values, keys and punctuation.
                let i = self.rng.random_range(0..len);
                let n = self.rng.random_range(1..=12.min(len - i));
                let t = self.token();
                out.splice(i..i + n, t.iter().copied());
            }
            8 if !other.is_empty() => {
                let i = self.rng.random_range(0..other.len());
                let n = self.rng.random_range(1..=256.min(other.len() - i));
                let at = self.pos(len);
                out.splice(at..at, other[i..i + n].iter().copied());
            }
            9 => {
                // Deep nesting or long runs: recursion limits and quadratic paths.
                let i = self.pos(len);
                let unit: &[u8] = match self.rng.random_range(0..4) {
                    0 => b"[",
                    1 => b"{\"a\":",
                    2 => b"\\\\",
                    _ => b"x",
                };
                let n = self.rng.random_range(1..600);
                let run: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * n).collect();
                out.splice(i..i, run);
            }
            10 if len > 1 => {
                let cut = self.rng.random_range(0..len);
                out.truncate(cut);
            }
            11 => {
                // A digit run replaced with a boundary number.
                if let Some(start) = (0..len)
                    .map(|k| (k + self.rng.random_range(0..len.max(1))) % len.max(1))
                    .find(|&k| out.get(k).is_some_and(u8::is_ascii_digit))
                {
                    let end = (start..len)
                        .find(|&k| !out[k].is_ascii_digit())
                        .unwrap_or(len);
                    let n = [
                        "0",
                        "-1",
                        "2147483648",
                        "4294967295",
                        "18446744073709551615",
                        "1e400",
                        "365",
                        "366",
                        "100.0000001",
                    ][self.rng.random_range(0..9)];
                    out.splice(start..end, n.bytes());
                }
            }
            12 => {
                // A new element after a `[` or `,` (a new member after a `{`): grows lists
                // and objects one well-formed step at a time.
                let starts: Vec<usize> = (0..len)
                    .filter(|&k| matches!(out[k], b'[' | b',' | b'{'))
                    .collect();
                if !starts.is_empty() {
                    let at = starts[self.rng.random_range(0..starts.len())];
                    let value = VALUES[self.rng.random_range(0..VALUES.len())];
                    let element = if out[at] == b'{' {
                        format!("\"k{}\":{value},", self.rng.random_range(0..4))
                    } else {
                        format!("{value},")
                    };
                    out.splice(at + 1..at + 1, element.bytes());
                }
            }
            _ => {
                // Swap two bytes: reorders punctuation.
                if len > 1 {
                    let a = self.rng.random_range(0..len);
                    let b = self.rng.random_range(0..len);
                    out.swap(a, b);
                }
            }
        }
    }
}
