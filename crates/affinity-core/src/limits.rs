//! The Tracking API's limits, the same as Segment's so that clients tuned for Segment work.

/// Largest accepted single message, in bytes of its JSON text.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest accepted request body of `/v1/batch` (after gzip decoding), in bytes.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Most messages accepted in one batch request.
pub const MAX_BATCH_MESSAGES: usize = 2_500;

/// Most distinct track event names a store keeps. Anyone holding the public write key can
/// invent names, and every reader of the event list (pickers, catalog checks) pays for each
/// one; a tracking plan has tens to hundreds of names, so ten thousand leaves room for any real
/// one while a client that puts ids or timestamps into names is stopped early. A message that
/// would add a name beyond this is refused (`too_many_event_names`), not stored.
pub const MAX_EVENT_NAMES: u64 = 10_000;

/// Most distinct property keys discovery lists per event name (`products[].key` counts as one
/// key). Real events carry tens of keys (Mixpanel caps an event at 255); a thousand is well
/// beyond any tracking plan, yet bounds the listing at ten million rows for a full store. A key
/// beyond it is left out of discovery only: the message is stored whole, because refusing a
/// real purchase because of a sibling's stray keys would lose the data recommendations train on.
pub const MAX_PROPERTY_KEYS_PER_EVENT: u64 = 1_000;
