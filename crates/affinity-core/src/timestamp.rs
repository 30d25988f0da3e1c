//! Event times: ISO 8601 / RFC 3339 strings as Segment clients send them, held as Unix
//! milliseconds (UTC) so that stores and models compare integers.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

/// How far past its receipt an event time may lie before it is clamped to the receipt: a
/// client clock a few minutes fast is ordinary, an event dated next year is a bug, and one
/// such event must not become the store's "now".
pub const FUTURE_TOLERANCE_MS: i64 = 10 * 60 * 1000;

/// When an event happened, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// Unix milliseconds.
    pub millis: i64,
    /// The time the client gave (after the `sentAt` correction) lay more than
    /// [`FUTURE_TOLERANCE_MS`] after receipt and was replaced by the receipt time.
    pub clamped: bool,
}

/// Segment's rule for the event time. `stated` is the message's `timestamp` (else
/// `originalTimestamp`), both read on the client's clock; `sent_at` is the client's clock when
/// it sent the request. With `sentAt`, the client's skew is removed:
/// `stated - sent_at + received_at` (how long before sending the event happened, counted back
/// from our receipt). Without a stated time the event happened at receipt. A result more than
/// [`FUTURE_TOLERANCE_MS`] in the future of receipt is clamped to the receipt.
pub fn event_time(stated: Option<i64>, sent_at: Option<i64>, received_at: i64) -> EventTime {
    let millis = match (stated, sent_at) {
        (None, _) => received_at,
        (Some(t), None) => t,
        (Some(t), Some(sent)) => t.saturating_sub(sent).saturating_add(received_at),
    };
    if millis > received_at.saturating_add(FUTURE_TOLERANCE_MS) {
        EventTime {
            millis: received_at,
            clamped: true,
        }
    } else {
        EventTime {
            millis,
            clamped: false,
        }
    }
}

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
    fn sent_at_removes_the_client_clock_skew() {
        let received = 1_795_256_541_000;
        let hour = 3_600_000;
        // A client clock 1 h fast: the event happened 5 s before it was sent.
        let t = event_time(
            Some(received + hour - 5_000),
            Some(received + hour),
            received,
        );
        assert_eq!(
            t,
            EventTime {
                millis: received - 5_000,
                clamped: false
            }
        );
        // A historical event sent now keeps its date when the clocks agree.
        let old = received - 400 * 24 * hour;
        assert_eq!(event_time(Some(old), Some(received), received).millis, old);
        // No stated time: the receipt.
        assert_eq!(
            event_time(None, Some(received - hour), received).millis,
            received
        );
    }

    #[test]
    fn future_times_beyond_the_tolerance_are_clamped() {
        let received = 1_795_256_541_000;
        let near = received + FUTURE_TOLERANCE_MS;
        assert_eq!(
            event_time(Some(near), None, received),
            EventTime {
                millis: near,
                clamped: false
            }
        );
        let far = received + 5 * 365 * 86_400_000;
        assert_eq!(
            event_time(Some(far), None, received),
            EventTime {
                millis: received,
                clamped: true
            }
        );
        // sentAt cannot rescue a time stated after the sending itself.
        let t = event_time(Some(received + 86_400_000), Some(received), received);
        assert!(t.clamped);
    }

    #[test]
    fn formats_round_trip() {
        let ms = 1_795_256_541_123;
        assert_eq!(format_millis(ms), "2026-11-21T10:22:21.123Z");
        assert_eq!(parse_millis(&format_millis(ms)), Some(ms));
    }
}
