//! Event times: ISO 8601 / RFC 3339 strings as Segment clients send them, held as Unix
//! milliseconds (UTC) so that stores and models compare integers.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Parses an RFC 3339 timestamp ("2026-11-21T10:22:21.123Z", "+02:00" offsets). A timestamp
/// without an offset ("2026-11-21T10:22:21") is read as UTC, as Segment does.
pub fn parse_millis(s: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(to_millis(t));
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, naive)
        .ok()
        .map(|t| to_millis(t.assume_utc()))
}

fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats Unix milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let z = parse_millis("2026-11-21T10:22:21.123Z");
        assert_eq!(z, Some(1_795_256_541_123));
        assert_eq!(parse_millis("2026-11-21T12:22:21.123+02:00"), z);
        assert_eq!(parse_millis("2026-11-21T10:22:21.123"), z);
        assert_eq!(
            parse_millis("2026-11-21T10:22:21Z"),
            Some(1_795_256_541_000)
        );
        assert_eq!(parse_millis("yesterday"), None);
        assert_eq!(parse_millis("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn formats_round_trip() {
        let ms = 1_795_256_541_123;
        assert_eq!(format_millis(ms), "2026-11-21T10:22:21.123Z");
        assert_eq!(parse_millis(&format_millis(ms)), Some(ms));
    }
}
