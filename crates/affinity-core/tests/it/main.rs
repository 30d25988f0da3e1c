//! Message parsing, data-driven: each case is an input and what must come out.

mod selection;

use affinity_core::batch::parse_batch;
use affinity_core::{Message, MessageType};

/// Parses `raw` (as a batch message, or with the path's type) and compares a compact
/// description of the result with `expected`.
fn check(raw: &str, implied: Option<MessageType>, expected: &str) {
    let got = match Message::parse(raw, implied, 1_000) {
        Ok(m) => format!(
            "{} id={} user={:?} anon={:?} event={:?} ts={} keys={:?}",
            m.kind.as_str(),
            m.message_id,
            m.user_id,
            m.anonymous_id,
            m.event,
            m.timestamp,
            m.property_keys
        ),
        Err(e) => format!("error {}: {e}", e.code()),
    };
    assert_eq!(got, expected, "input: {raw}");
}

#[test]
fn messages_parse_into_what_the_engine_needs() {
    use MessageType::*;
    check(
        r#"{"type":"track","userId":"u","event":"E","messageId":"m","timestamp":"1970-01-01T00:00:02Z","properties":{"a":1}}"#,
        None,
        r#"track id=m user=Some("u") anon=None event=Some("E") ts=2000 keys=["a"]"#,
    );
    // The path's type wins; numeric ids become strings; no timestamp means receipt time.
    check(
        r#"{"type":"identify","userId":42,"anonymousId":"a","event":"E","messageId":"m"}"#,
        Some(Track),
        r#"track id=m user=Some("42") anon=Some("a") event=Some("E") ts=1000 keys=[]"#,
    );
    // originalTimestamp is the fallback event time.
    check(
        r#"{"type":"page","anonymousId":"a","name":"Home","messageId":"m","originalTimestamp":"1970-01-01T00:00:03Z"}"#,
        None,
        r#"page id=m user=None anon=Some("a") event=Some("Home") ts=3000 keys=[]"#,
    );
    // Keys inside products[] are listed once each, after the top-level keys.
    check(
        r#"{"type":"track","userId":"u","event":"O","messageId":"m","properties":{"products":[{"sku":1,"b":2},{"sku":3}],"total":4}}"#,
        None,
        r#"track id=m user=Some("u") anon=None event=Some("O") ts=1000 keys=["products", "total", "products[].b", "products[].sku"]"#,
    );
    // A top-level key spelled like a nested one is not counted as the nested key.
    check(
        r#"{"type":"track","userId":"u","event":"O","messageId":"m","properties":{"products[].brand":"Fake","products":[{"brand":"B"}]}}"#,
        None,
        r#"track id=m user=Some("u") anon=None event=Some("O") ts=1000 keys=["products", "products[].brand"]"#,
    );
    check(
        r#"{"type":"track","userId":"u","event":"O","messageId":"m","properties":{"products[].brand":"Fake"}}"#,
        None,
        r#"track id=m user=Some("u") anon=None event=Some("O") ts=1000 keys=[]"#,
    );
    check(
        r#"{"userId":"u","event":"E"}"#,
        None,
        "error missing_field: `type` is required in every batch message (track, identify, page, screen, group or alias)",
    );
    check(
        r#"{"type":"buy","userId":"u"}"#,
        None,
        r#"error invalid_type: `type` must be one of track, identify, page, screen, group, alias; got "buy""#,
    );
    check(
        r#"{"type":"track","userId":null,"anonymousId":"","event":"E"}"#,
        None,
        "error missing_field: `userId` is required (or `anonymousId`): every message must say who it is about",
    );
    check(
        r#"{"type":"track","userId":true,"event":"E"}"#,
        None,
        "error invalid_field: `userId` must be a string or a number, got a boolean",
    );
}

#[test]
fn a_message_without_id_gets_a_stable_content_id() {
    let raw = r#"{"type":"track","userId":"u","event":"E"}"#;
    let a = Message::parse(raw, None, 1).expect("valid");
    let b = Message::parse(raw, None, 2).expect("valid");
    let c = Message::parse(r#"{"type":"track","userId":"v","event":"E"}"#, None, 1).expect("valid");
    assert!(a.message_id.starts_with("h-"));
    assert_eq!(
        a.message_id, b.message_id,
        "same bytes, same id, whenever received"
    );
    assert_ne!(a.message_id, c.message_id);
    // The same body sent to /v1/identify is a different message.
    let d = Message::parse(raw, Some(MessageType::Identify), 1).expect("valid");
    assert_ne!(a.message_id, d.message_id);
}

#[test]
fn batch_bodies_keep_each_message_raw() {
    let body =
        r#"{"writeKey":"k","batch":[{"type":"track","userId":"u","event":"E"} , {"b":  2}]}"#;
    let b = parse_batch(body).expect("valid");
    assert_eq!(b.write_key.as_deref(), Some("k"));
    let raws: Vec<&str> = b.messages.iter().map(|m| m.get()).collect();
    assert_eq!(
        raws,
        vec![
            r#"{"type":"track","userId":"u","event":"E"}"#,
            r#"{"b":  2}"#
        ]
    );
    assert_eq!(
        parse_batch(r#"{"batch":[]}"#)
            .expect("valid")
            .messages
            .len(),
        0
    );
    assert_eq!(
        parse_batch("[1]").expect_err("array").code(),
        "invalid_body"
    );
    assert_eq!(
        parse_batch(r#"{"batch":1}"#).expect_err("number").code(),
        "invalid_field"
    );
    assert_eq!(
        parse_batch(r#"{"writeKey":5,"batch":[]}"#)
            .expect_err("key")
            .code(),
        "invalid_field"
    );
}

/// The user id a body resolves to, or the error's code and text.
fn user_of(raw: &str) -> String {
    match Message::parse(raw, Some(MessageType::Identify), 1) {
        Ok(m) => m.user_id.unwrap_or_default(),
        Err(e) => format!("error {}: {e}", e.code()),
    }
}

#[test]
fn numeric_ids_keep_every_digit_and_equal_numbers_are_one_id() {
    // Beyond 2^53 a float cannot tell these apart; the literal's digits can.
    assert_eq!(
        user_of(r#"{"userId":98765432109876543210001}"#),
        "98765432109876543210001"
    );
    assert_eq!(
        user_of(r#"{"userId":98765432109876543210002}"#),
        "98765432109876543210002"
    );
    assert_eq!(
        user_of(r#"{"userId":-98765432109876543210002.00}"#),
        "-98765432109876543210002"
    );
    assert_eq!(
        user_of(r#"{"userId":9007199254740993.0}"#),
        "9007199254740993"
    );
    // One number however written: one person.
    for same in ["100", "100.0", "1e2", "100.000"] {
        assert_eq!(user_of(&format!(r#"{{"userId":{same}}}"#)), "100", "{same}");
    }
    assert_eq!(user_of(r#"{"userId":-0.0}"#), "0");
    assert_eq!(user_of(r#"{"userId":1.5}"#), "1.5");
    assert_eq!(
        user_of(r#"{"userId":18446744073709551615}"#),
        "18446744073709551615"
    );
    // Which integer 1.5e30 means cannot be told: refused, naming the field and the fix.
    let refused = user_of(r#"{"userId":1.5e30}"#);
    assert!(
        refused.starts_with("error invalid_field: `userId` must be a string, or a number")
            && refused.contains("send large or exponent-form ids as strings")
            && refused.contains("1.5e30"),
        "{refused}"
    );
    assert!(
        user_of(r#"{"userId":"x","anonymousId":12345678901234567890123.5}"#)
            .starts_with("error invalid_field: `anonymousId`")
    );
}

#[test]
fn a_write_key_in_the_body_is_not_kept_in_the_raw_text() {
    let raw = r#"{"type":"track", "writeKey":"wk_secret","userId":98765432109876543210001,"event":"E","properties":{"writeKey":"a property, kept","price":1.50}}"#;
    let m = Message::parse(raw, None, 1).expect("valid");
    assert!(!m.raw.contains("wk_secret"), "{}", m.raw);
    // Everything else keeps its exact text and order.
    assert_eq!(
        m.raw,
        r#"{"type":"track","userId":98765432109876543210001,"event":"E","properties":{"writeKey":"a property, kept","price":1.50}}"#
    );
    // Without a write key the text is untouched, whitespace included.
    let plain = r#"{"type":"track",  "userId":"u","event":"E"}"#;
    assert_eq!(Message::parse(plain, None, 1).expect("valid").raw, plain);
    // Duplicate members are all removed.
    let twice = r#"{"writeKey":"a","type":"track","userId":"u","event":"E","writeKey":"b"}"#;
    assert_eq!(
        Message::parse(twice, None, 1).expect("valid").raw,
        r#"{"type":"track","userId":"u","event":"E"}"#
    );
}

#[test]
fn event_time_follows_segments_clock_skew_rule() {
    let received = affinity_core::timestamp::parse_millis("2026-06-01T12:00:00Z").expect("valid");
    let ts = |raw: &str, batch_sent_at: Option<i64>| {
        let m = Message::parse_sent(raw, None, received, batch_sent_at).expect("valid");
        (
            affinity_core::timestamp::format_millis(m.timestamp),
            m.timestamp_clamped,
        )
    };
    // The device clock is 2 h fast: the event happened 30 s before sending.
    let skewed = r#"{"type":"track","userId":"u","event":"E","timestamp":"2026-06-01T13:59:30Z","sentAt":"2026-06-01T14:00:00Z"}"#;
    assert_eq!(ts(skewed, None), ("2026-06-01T11:59:30.000Z".into(), false));
    // The batch's sentAt applies to messages without their own.
    let in_batch =
        r#"{"type":"track","userId":"u","event":"E","timestamp":"2026-06-01T13:59:30Z"}"#;
    let batch_sent = affinity_core::timestamp::parse_millis("2026-06-01T14:00:00Z");
    assert_eq!(
        ts(in_batch, batch_sent),
        ("2026-06-01T11:59:30.000Z".into(), false)
    );
    // Without sentAt a stated time is taken as it is, unless it lies in the future.
    assert_eq!(
        ts(in_batch, None),
        ("2026-06-01T12:00:00.000Z".into(), true)
    );
    let past = r#"{"type":"track","userId":"u","event":"E","timestamp":"2025-12-31T08:00:00Z"}"#;
    assert_eq!(ts(past, None), ("2025-12-31T08:00:00.000Z".into(), false));
    // A message exported from Segment (it carries receivedAt) keeps its corrected timestamp.
    let exported = r#"{"type":"track","userId":"u","event":"E","timestamp":"2025-12-31T08:00:00Z","sentAt":"2025-12-31T08:00:05Z","receivedAt":"2025-12-31T08:00:06Z"}"#;
    assert_eq!(
        ts(exported, None),
        ("2025-12-31T08:00:00.000Z".into(), false)
    );
    let bad = r#"{"type":"track","userId":"u","event":"E","sentAt":"soon"}"#;
    assert_eq!(
        Message::parse(bad, None, received)
            .expect_err("bad sentAt")
            .code(),
        "invalid_field"
    );
    let batch = parse_batch(r#"{"sentAt":"2026-06-01T14:00:00Z","batch":[]}"#).expect("valid");
    assert_eq!(batch.sent_at, batch_sent);
    assert_eq!(
        parse_batch(r#"{"sentAt":"later","batch":[]}"#)
            .expect_err("bad")
            .code(),
        "invalid_field"
    );
}
