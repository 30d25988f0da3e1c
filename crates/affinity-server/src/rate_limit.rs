//! Per-client rate limits for the Tracking API: a token bucket per source IP and per write
//! key, refilled continuously. Over the limit, a request is answered `429` with
//! `Retry-After`, before its body is read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most per limiter; beyond, full (idle) buckets are dropped first, so a flood
/// of distinct keys costs bounded memory.
const MAX_BUCKETS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key: `rate` tokens a second, up to `rate` in a burst.
pub struct RateLimiter<K> {
    rate: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(per_second: u32) -> Self {
        Self {
            rate: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let rate = self.rate;
            buckets.retain(|_, b| refilled(b, rate, now) < rate);
            if buckets.len() >= MAX_BUCKETS {
                // Every bucket is in use: a flood of keys; refuse newcomers briefly.
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        bucket.tokens = refilled(bucket, self.rate, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

fn refilled(b: &Bucket, rate: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate).min(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check(&"a", t0).is_ok());
        }
        let wait = limiter
            .check(&"a", t0)
            .expect_err("the 11th in the same instant");
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(
            limiter.check(&"b", t0).is_ok(),
            "another key has its own bucket"
        );
        assert!(limiter.check(&"a", t0 + Duration::from_millis(150)).is_ok());
    }
}
