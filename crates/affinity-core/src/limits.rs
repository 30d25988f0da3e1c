//! The Tracking API's limits, the same as Segment's so that clients tuned for Segment work.

/// Largest accepted single message, in bytes of its JSON text.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest accepted request body of `/v1/batch` (after gzip decoding), in bytes.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Most messages accepted in one batch request.
pub const MAX_BATCH_MESSAGES: usize = 2_500;
