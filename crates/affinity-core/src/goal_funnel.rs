//! A seeded goal funnel for tests and benchmarks of goal-based recommendations: users of a
//! few kinds add products to their cart (`Product Added`, the exposure) and complete orders
//! (`Order Completed`, the outcome). Each kind browses its own part of the shop, uniformly,
//! so exposure counts and personal affinity cannot tell which items convert; a few items of
//! each kind's part convert far more often for that kind (the right answers tests check).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::timestamp::format_millis;

#[derive(Debug, Clone)]
pub struct FunnelSpec {
    pub users: u32,
    /// Items; kind `g` browses the items `i` with `i % kinds == g`.
    pub items: u32,
    pub kinds: u32,
    pub exposures_per_user: u32,
    /// Converting items per kind.
    pub converting: u32,
    /// Outcome probability after an exposure to one of the kind's converting items…
    pub high_rate: f64,
    /// …and to any other item.
    pub low_rate: f64,
    /// Share of a user's exposures outside the kind's part of the shop.
    pub wander: f64,
    pub seed: u64,
    pub end_ms: i64,
    pub days: u32,
}

impl Default for FunnelSpec {
    fn default() -> Self {
        Self {
            users: 300,
            items: 60,
            kinds: 3,
            exposures_per_user: 24,
            converting: 3,
            high_rate: 0.5,
            low_rate: 0.04,
            wander: 0.25,
            seed: 7,
            end_ms: 1_790_000_000_000,
            days: 60,
        }
    }
}

impl FunnelSpec {
    /// The kind of user `u` (`u{u}` on the wire).
    pub fn kind(&self, user: u32) -> u32 {
        user % self.kinds
    }

    /// The item ids that convert for `kind`: the last `converting` of its part, so they are
    /// neither the first nor the most exposed.
    pub fn converting_items(&self, kind: u32) -> Vec<String> {
        let part: Vec<u32> = (0..self.items).filter(|i| i % self.kinds == kind).collect();
        part.iter()
            .rev()
            .take(self.converting as usize)
            .map(|i| item_id(*i))
            .collect()
    }

    /// Every message, in time order per user (users interleaved).
    pub fn messages(&self) -> Vec<Value> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let span = i64::from(self.days.max(1)) * 86_400_000;
        let start = self.end_ms - span;
        let mut out = Vec::new();
        for u in 0..self.users {
            let kind = self.kind(u);
            let part: Vec<u32> = (0..self.items).filter(|i| i % self.kinds == kind).collect();
            let converting = self.converting_items(kind);
            for e in 0..self.exposures_per_user {
                let item = if rng.random_bool(self.wander) {
                    rng.random_range(0..self.items)
                } else {
                    part[rng.random_range(0..part.len())]
                };
                let id = item_id(item);
                let step = span / i64::from(self.exposures_per_user + 1);
                let ts = start + step * i64::from(e) + rng.random_range(0..step / 2);
                out.push(json!({"type": "track", "userId": format!("u{u}"),
                    "event": "Product Added", "messageId": format!("gf-{}-{u}-{e}", self.seed),
                    "timestamp": format_millis(ts), "properties": {"product_id": id}}));
                let rate = if converting.contains(&id) {
                    self.high_rate
                } else {
                    self.low_rate
                };
                if rng.random_bool(rate) {
                    let later = ts + rng.random_range(60_000..3_600_000);
                    out.push(json!({"type": "track", "userId": format!("u{u}"),
                        "event": "Order Completed", "messageId": format!("gf-{}-{u}-{e}-o", self.seed),
                        "timestamp": format_millis(later),
                        "properties": {"product_id": id, "revenue": 20 + (item % 7) * 30}}));
                }
            }
        }
        out
    }
}

pub fn item_id(i: u32) -> String {
    format!("sku-{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_the_converting_items_convert_more() {
        let spec = FunnelSpec::default();
        assert_eq!(spec.messages(), spec.messages());
        let converting = spec.converting_items(1);
        assert_eq!(converting, ["sku-58", "sku-55", "sku-52"]);
        let outcomes = spec
            .messages()
            .into_iter()
            .filter(|m| m["event"] == "Order Completed" && m["userId"] == "u1")
            .count();
        assert!(outcomes > 0);
    }
}
