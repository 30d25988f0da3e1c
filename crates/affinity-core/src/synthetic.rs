//! A seeded generator of Segment messages with something to learn: users have latent
//! preferences for a few categories and brands, item popularity and user activity follow
//! power laws, and behaviour runs through a funnel of event types (view → add → order with
//! `products[]`). Some users start anonymous and are identified later, as on a real site.
//!
//! The same parameters always give the same messages (and `messageId`s), so importing a
//! generated file twice must add nothing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::timestamp::format_millis;

#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    pub users: u32,
    pub items: u32,
    pub brands: u32,
    pub categories: u32,
    /// Total track events to generate (identifies and aliases come on top).
    pub events: u64,
    pub seed: u64,
    /// Event times run over `days` days ending at `end_ms`.
    pub days: u32,
    pub end_ms: i64,
    /// Share of a user's choices drawn from their preferred categories and brands.
    pub preference_strength: f64,
    /// Shoppers who re-buy staples on their own cycle; `None` (the default) generates none,
    /// and the other messages are the same with or without it.
    pub repeat: Option<RepeatPurchases>,
}

/// Repeat purchasing: a share of users each re-buy a few staples, every one on its own
/// cycle (with ±15% jitter from one purchase to the next), mostly from their preferred
/// brand. Staple orders come on top of `events`, in their own seeded stream.
#[derive(Debug, Clone)]
pub struct RepeatPurchases {
    /// Share of users with staples.
    pub share_of_users: f64,
    /// Staples per such user: 1 to this many.
    pub max_staples: u32,
    /// Each staple's cycle is drawn uniformly from these days.
    pub min_cycle_days: u32,
    pub max_cycle_days: u32,
    /// Probability that a staple is of the user's preferred brand (else of a preferred
    /// category): brand loyalty.
    pub brand_loyalty: f64,
    /// Probability that a due repurchase is skipped (life happens; also keeps a cycle from
    /// being a perfect oracle).
    pub skip: f64,
}

impl Default for RepeatPurchases {
    fn default() -> Self {
        Self {
            share_of_users: 0.4,
            max_staples: 3,
            min_cycle_days: 7,
            max_cycle_days: 45,
            brand_loyalty: 0.8,
            skip: 0.1,
        }
    }
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            users: 10_000,
            items: 2_000,
            brands: 50,
            categories: 20,
            events: 200_000,
            seed: 42,
            days: 90,
            // 2026-01-01T00:00:00Z: fixed so that generated stores are reproducible.
            end_ms: 1_767_225_600_000,
            preference_strength: 0.8,
            repeat: None,
        }
    }
}

/// A main-stream event is a view below this roll, a cart add below the next, else an order.
const VIEWS_BELOW: f64 = 0.62;
const ADDS_BELOW: f64 = 0.88;
/// The share of the main stream's events that are orders.
pub const ORDER_SHARE: f64 = 1.0 - ADDS_BELOW;
/// A main-stream order holds one product and 0 to this many more, each picked alike.
pub const MAX_EXTRA_PRODUCTS: u32 = 2;
/// Of the picks drawn from a user's preferences, the share from a preferred category (the
/// rest from their preferred brand).
const CATEGORY_PICK: f64 = 0.7;
/// Each staple's next purchase comes this many cycles after the last (drawn uniformly).
pub const STAPLE_JITTER: std::ops::Range<f64> = 0.85..1.15;

/// What drew one user's messages. Benchmarks read it to bound what any ranking could learn
/// from the messages (a Bayes ceiling); no product path does.
#[derive(Debug, Clone)]
pub struct UserTruth {
    /// The share of the main stream's events that are this user's.
    pub activity_share: f64,
    /// Their tastes: one pick's chance of each item is [`TasteModel::pick`] of them.
    pub categories: [u32; 2],
    pub brand: u32,
}

/// How a user's tastes (two categories, which may be the same, and a brand) become picks.
/// A pick is from popularity with chance `1 - preference`, else from one of the two
/// categories (each alike) with chance `category_pick`, else from the brand; within a group,
/// by popularity (from all items where the group is empty). Each category is drawn
/// uniformly, the brand by `brand_prior`.
#[derive(Debug, Clone)]
pub struct TasteModel {
    pub popular: Vec<f64>,
    pub category: Vec<Vec<f64>>,
    pub brand: Vec<Vec<f64>>,
    pub preference: f64,
    pub category_pick: f64,
    pub brand_prior: Vec<f64>,
}

impl TasteModel {
    /// One pick's chance of each item, for these tastes.
    pub fn pick(&self, categories: [u32; 2], brand: u32) -> Vec<f64> {
        let (p, c) = (self.preference, self.category_pick);
        let [c1, c2] = categories.map(|k| &self.category[k as usize]);
        let b = &self.brand[brand as usize];
        (0..self.popular.len())
            .map(|i| {
                (1.0 - p) * self.popular[i] + p * c / 2.0 * (c1[i] + c2[i]) + p * (1.0 - c) * b[i]
            })
            .collect()
    }
}

/// One staple a user re-buys (see [`RepeatPurchases`]), and when they bought it (the
/// purchases not skipped, in time order): a user may have two staples of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct StapleTruth {
    pub user: u32,
    pub item: u32,
    pub cycle_ms: f64,
    pub purchases: Vec<i64>,
}

/// One generated catalog item.
#[derive(Debug, Clone)]
pub struct SyntheticItem {
    pub id: String,
    pub name: String,
    pub brand: String,
    pub category: String,
    pub price: f64,
}

struct UserState {
    categories: [u32; 2],
    brand: u32,
    anonymous_until: u64,
    identified: bool,
}

/// Cumulative weights for sampling by binary search.
struct Sampler {
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(weights: impl Iterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cumulative = weights
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.cumulative.len().saturating_sub(1))
    }

    /// The probability that `sample` returns index `i`.
    fn probability(&self, i: usize) -> f64 {
        let before = if i == 0 { 0.0 } else { self.cumulative[i - 1] };
        (self.cumulative[i] - before) / self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// The probability that `sample` returns each index.
    fn probabilities(&self) -> Vec<f64> {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let mut before = 0.0;
        self.cumulative
            .iter()
            .map(|&c| {
                let p = (c - before) / total;
                before = c;
                p
            })
            .collect()
    }
}

/// An iterator over generated messages as JSON values, in time order per user but
/// interleaved across users.
pub struct Generator {
    spec: SyntheticSpec,
    rng: ChaCha8Rng,
    items: Vec<SyntheticItem>,
    item_category: Vec<u32>,
    item_brand: Vec<u32>,
    by_category: Vec<(Vec<u32>, Sampler)>,
    by_brand: Vec<(Vec<u32>, Sampler)>,
    popularity: Sampler,
    activity: Sampler,
    /// The chance that a user's preferred brand is each brand.
    brand_prior: Vec<f64>,
    users: Vec<UserState>,
    emitted: u64,
    pending: Vec<Value>,
    /// Staple orders (time, user, item), newest first so the next one pops off the end.
    staples: Vec<(i64, u32, u32)>,
    staple_truth: Vec<StapleTruth>,
    staples_emitted: u64,
}

impl Generator {
    pub fn new(spec: SyntheticSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let n_items = spec.items.max(1);
        let brands = spec.brands.max(1);
        let categories = spec.categories.max(1);
        let brand_pop = Sampler::new((0..brands).map(|b| 1.0 / f64::from(b + 1)));
        let mut items = Vec::with_capacity(n_items as usize);
        let mut item_category = Vec::with_capacity(n_items as usize);
        let mut item_brand = Vec::with_capacity(n_items as usize);
        for i in 0..n_items {
            let category = rng.random_range(0..categories);
            let brand = brand_pop.sample(&mut rng) as u32;
            item_category.push(category);
            item_brand.push(brand);
            items.push(SyntheticItem {
                id: format!("sku-{i}"),
                name: format!("Product {i}"),
                brand: brand_name(brand),
                category: category_name(category),
                price: f64::from(rng.random_range(500u32..50_000)) / 100.0,
            });
        }
        // Item popularity: Zipf over a shuffled order, so popularity is independent of id.
        let mut order: Vec<u32> = (0..n_items).collect();
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let mut weight = vec![0.0; n_items as usize];
        for (rank, &item) in order.iter().enumerate() {
            weight[item as usize] = 1.0 / (rank as f64 + 10.0);
        }
        let group = |key: &[u32], n: u32| -> Vec<(Vec<u32>, Sampler)> {
            (0..n)
                .map(|g| {
                    let members: Vec<u32> =
                        (0..n_items).filter(|&i| key[i as usize] == g).collect();
                    let sampler = Sampler::new(members.iter().map(|&i| weight[i as usize]));
                    (members, sampler)
                })
                .collect()
        };
        let by_category = group(&item_category, categories);
        let by_brand = group(&item_brand, brands);
        let popularity = Sampler::new(weight.iter().copied());
        let n_users = spec.users.max(1);
        let activity = Sampler::new((0..n_users).map(|u| 1.0 / (f64::from(u) + 20.0).powf(0.8)));
        let users = (0..n_users)
            .map(|_| UserState {
                categories: [
                    rng.random_range(0..categories),
                    rng.random_range(0..categories),
                ],
                brand: brand_pop.sample(&mut rng) as u32,
                anonymous_until: if rng.random_bool(0.3) {
                    rng.random_range(1..4)
                } else {
                    0
                },
                identified: false,
            })
            .collect();
        let mut generator = Self {
            spec,
            rng,
            items,
            item_category,
            item_brand,
            by_category,
            by_brand,
            popularity,
            activity,
            brand_prior: brand_pop.probabilities(),
            users,
            emitted: 0,
            pending: Vec::new(),
            staples: Vec::new(),
            staple_truth: Vec::new(),
            staples_emitted: 0,
        };
        (generator.staples, generator.staple_truth) = generator.plan_staples();
        generator
    }

    /// Every staple order of the run, from a stream seeded apart from the main one so that
    /// turning repeats on changes no other message; and the staples themselves.
    fn plan_staples(&self) -> (Vec<(i64, u32, u32)>, Vec<StapleTruth>) {
        let Some(r) = self.spec.repeat.clone() else {
            return (Vec::new(), Vec::new());
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0x5747_91e5_0000_0001);
        let day = 86_400_000f64;
        let end = self.spec.end_ms;
        let start = end - i64::from(self.spec.days.max(1)) * 86_400_000;
        let (lo, hi) = (
            r.min_cycle_days.max(1),
            r.max_cycle_days.max(r.min_cycle_days.max(1)),
        );
        let mut out = Vec::new();
        let mut truth = Vec::new();
        for (user, state) in self.users.iter().enumerate() {
            if !rng.random_bool(r.share_of_users.clamp(0.0, 1.0)) {
                continue;
            }
            for _ in 0..rng.random_range(1..=r.max_staples.max(1)) {
                let (members, sampler) = if rng.random_bool(r.brand_loyalty.clamp(0.0, 1.0)) {
                    &self.by_brand[state.brand as usize]
                } else {
                    &self.by_category[state.categories[rng.random_range(0..2)] as usize]
                };
                if members.is_empty() {
                    continue;
                }
                let item = members[sampler.sample(&mut rng)];
                let cycle = f64::from(rng.random_range(lo..=hi)) * day;
                let mut purchases = Vec::new();
                let mut t = start as f64 + rng.random::<f64>() * cycle;
                while t < end as f64 {
                    if !rng.random_bool(r.skip.clamp(0.0, 1.0)) {
                        out.push((t as i64, user as u32, item));
                        purchases.push(t as i64);
                    }
                    t += cycle * rng.random_range(STAPLE_JITTER);
                }
                truth.push(StapleTruth {
                    user: user as u32,
                    item,
                    cycle_ms: cycle,
                    purchases,
                });
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        (out, truth)
    }

    /// The next staple order if it is due before the main stream's next event.
    fn next_staple(&mut self) -> Option<Value> {
        let &(ts, user, item) = self.staples.last()?;
        let span = i64::from(self.spec.days.max(1)) * 86_400_000;
        let progress = self.emitted as f64 / self.spec.events.max(1) as f64;
        let main_ts = self.spec.end_ms - span + (progress * span as f64) as i64;
        if ts > main_ts && self.emitted < self.spec.events {
            return None;
        }
        self.staples.pop();
        let seed = self.spec.seed;
        let k = self.staples_emitted;
        self.staples_emitted += 1;
        let product = self.product_json(item);
        let total = product["price"].as_f64().unwrap_or(0.0);
        let mut msg = json!({"type": "track", "event": "Order Completed",
               "properties": {"order_id": format!("r-{seed}-{k}"), "total": total,
                              "currency": "USD", "products": [product]}});
        msg["messageId"] = json!(format!("syn-{seed}-r-{k}"));
        msg["timestamp"] = json!(format_millis(ts));
        self.attribute(user as usize, ts, &mut msg);
        Some(msg)
    }

    pub fn spec(&self) -> &SyntheticSpec {
        &self.spec
    }

    /// What draws `user`'s main-stream events and their products.
    pub fn user_truth(&self, user: u32) -> UserTruth {
        let u = &self.users[user as usize];
        UserTruth {
            activity_share: self.activity.probability(user as usize),
            categories: u.categories,
            brand: u.brand,
        }
    }

    /// How tastes become picks, and how tastes are drawn.
    pub fn taste_model(&self) -> TasteModel {
        let popular = self.popularity.probabilities();
        // A preference pick from an empty group falls back to popularity, as `pick_item` does.
        let group = |(members, sampler): &(Vec<u32>, Sampler)| -> Vec<f64> {
            if members.is_empty() {
                return popular.clone();
            }
            let mut out = vec![0.0; popular.len()];
            for (&item, p) in members.iter().zip(sampler.probabilities()) {
                out[item as usize] = p;
            }
            out
        };
        TasteModel {
            category: self.by_category.iter().map(group).collect(),
            brand: self.by_brand.iter().map(group).collect(),
            popular,
            preference: self.spec.preference_strength,
            category_pick: CATEGORY_PICK,
            brand_prior: self.brand_prior.clone(),
        }
    }

    /// Every user's staples (none without repeat purchases).
    pub fn staples(&self) -> &[StapleTruth] {
        &self.staple_truth
    }

    pub fn items(&self) -> &[SyntheticItem] {
        &self.items
    }

    /// The preferred categories of a user (the "right answers" tests can check against).
    pub fn preferred_categories(&self, user: u32) -> [String; 2] {
        let u = &self.users[user as usize];
        [
            category_name(u.categories[0]),
            category_name(u.categories[1]),
        ]
    }

    pub fn item_category(&self, item: u32) -> u32 {
        self.item_category[item as usize]
    }

    pub fn item_brand(&self, item: u32) -> u32 {
        self.item_brand[item as usize]
    }

    fn pick_item(&mut self, user: usize) -> u32 {
        let rng = &mut self.rng;
        if rng.random_bool(self.spec.preference_strength) {
            let u = &self.users[user];
            let (members, sampler) = if rng.random_bool(CATEGORY_PICK) {
                &self.by_category[u.categories[rng.random_range(0..2)] as usize]
            } else {
                &self.by_brand[u.brand as usize]
            };
            if !members.is_empty() {
                return members[sampler.sample(rng)];
            }
        }
        self.popularity.sample(rng) as u32
    }

    fn product_json(&self, item: u32) -> Value {
        let it = &self.items[item as usize];
        json!({"product_id": it.id, "name": it.name, "brand": it.brand,
               "category": it.category, "price": it.price})
    }

    fn next_event(&mut self) -> Value {
        let n = self.emitted;
        self.emitted += 1;
        let user = self.activity.sample(&mut self.rng);
        let span = i64::from(self.spec.days.max(1)) * 86_400_000;
        // Time grows with the event index so that later events are later, with jitter.
        let progress = n as f64 / self.spec.events.max(1) as f64;
        let jitter = self.rng.random_range(-3_600_000i64..3_600_000);
        let ts = self.spec.end_ms - span + (progress * span as f64) as i64 + jitter;
        let ts = ts.min(self.spec.end_ms);
        let item = self.pick_item(user);
        let roll: f64 = self.rng.random();
        let seed = self.spec.seed;
        let mut msg = if roll < VIEWS_BELOW {
            json!({"type": "track", "event": "Product Viewed", "properties": self.product_json(item)})
        } else if roll < ADDS_BELOW {
            json!({"type": "track", "event": "Product Added", "properties": self.product_json(item)})
        } else {
            let extra = self.rng.random_range(0..MAX_EXTRA_PRODUCTS + 1);
            let mut products = vec![self.product_json(item)];
            for _ in 0..extra {
                let other = self.pick_item(user);
                products.push(self.product_json(other));
            }
            let total: f64 = products.iter().filter_map(|p| p["price"].as_f64()).sum();
            json!({"type": "track", "event": "Order Completed",
                   "properties": {"order_id": format!("o-{seed}-{n}"), "total": (total * 100.0).round() / 100.0,
                                  "currency": "USD", "products": products}})
        };
        msg["messageId"] = json!(format!("syn-{seed}-{n}"));
        msg["timestamp"] = json!(format_millis(ts));
        self.attribute(user, ts, &mut msg);
        msg
    }

    /// Sets who sent `msg`: anonymous for a user's first few events, then their user id
    /// (queueing the identify that links the anonymous history, once).
    fn attribute(&mut self, user: usize, ts: i64, msg: &mut Value) {
        let seed = self.spec.seed;
        let u = &mut self.users[user];
        let anonymous = format!("anon-{user}");
        let user_id = format!("u{user}");
        if u.anonymous_until > 0 {
            u.anonymous_until -= 1;
            msg["anonymousId"] = json!(anonymous);
        } else {
            msg["userId"] = json!(user_id);
            if !u.identified {
                u.identified = true;
                // First identified event: an identify that links the anonymous history.
                self.pending.push(json!({
                    "type": "identify", "userId": user_id, "anonymousId": anonymous,
                    "messageId": format!("syn-{seed}-id-{user}"), "timestamp": format_millis(ts - 1),
                    "traits": {"email": format!("user{user}@example.com"),
                               "plan": if user.is_multiple_of(5) { "pro" } else { "free" }}
                }));
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if let Some(v) = self.pending.pop() {
            return Some(v);
        }
        let event = match self.next_staple() {
            Some(staple) => staple,
            None if self.emitted >= self.spec.events => return None,
            None => self.next_event(),
        };
        if let Some(identify) = self.pending.pop() {
            self.pending.push(event);
            return Some(identify);
        }
        Some(event)
    }
}

pub fn brand_name(b: u32) -> String {
    format!("Brand {b:03}")
}

pub fn category_name(c: u32) -> String {
    format!("Category {c:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MessageType};

    fn small() -> SyntheticSpec {
        SyntheticSpec {
            users: 200,
            items: 300,
            events: 3_000,
            ..SyntheticSpec::default()
        }
    }

    #[test]
    fn same_seed_same_messages() {
        let a: Vec<Value> = Generator::new(small()).collect();
        let b: Vec<Value> = Generator::new(small()).collect();
        assert_eq!(a, b);
        let c: Vec<Value> = Generator::new(SyntheticSpec { seed: 7, ..small() }).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_message_is_valid_and_unique() {
        let mut ids = std::collections::HashSet::new();
        let mut tracks = 0;
        for v in Generator::new(small()) {
            let m = Message::parse(&v.to_string(), None, 0).expect("valid");
            assert!(ids.insert(m.message_id.clone()), "duplicate id");
            tracks += usize::from(m.kind == MessageType::Track);
        }
        assert_eq!(tracks, 3_000);
    }

    #[test]
    fn users_prefer_their_categories() {
        let spec = small();
        let mut g = Generator::new(spec);
        let msgs: Vec<Value> = g.by_ref().collect();
        let mut hits = 0;
        let mut total = 0;
        for m in &msgs {
            let Some(user) = m["userId"].as_str() else {
                continue;
            };
            let Some(cat) = m["properties"]["category"].as_str() else {
                continue;
            };
            let u: u32 = user[1..].parse().expect("numeric");
            total += 1;
            hits += usize::from(g.preferred_categories(u).iter().any(|c| c == cat));
        }
        // Two preferred categories out of 20 would be 10% by chance.
        assert!(
            hits * 2 > total,
            "{hits}/{total} events in preferred categories"
        );
    }

    /// The truth benchmarks bound rankings with must be what drew the messages: the staples
    /// are the staple orders' shoppers and products, and the main stream's shoppers and
    /// products come as often as the activity shares and pick chances say.
    #[test]
    fn the_truth_is_what_drew_the_messages() {
        let spec = SyntheticSpec {
            events: 40_000,
            repeat: Some(RepeatPurchases::default()),
            ..small()
        };
        let g = Generator::new(spec.clone());
        let msgs: Vec<Value> = Generator::new(spec.clone()).collect();
        let user = |m: &Value| -> u32 {
            let id = m["userId"]
                .as_str()
                .or(m["anonymousId"].as_str())
                .unwrap_or("");
            let n = id
                .strip_prefix("anon-")
                .or(id.strip_prefix('u'))
                .unwrap_or("");
            n.parse().expect("generated user id")
        };
        let item = |p: &Value| -> u32 {
            let id = p["product_id"].as_str().unwrap_or("");
            id.trim_start_matches("sku-")
                .parse()
                .expect("generated item id")
        };
        let model = g.taste_model();
        let truth: Vec<UserTruth> = (0..spec.users).map(|u| g.user_truth(u)).collect();
        let picks: Vec<Vec<f64>> = (truth.iter())
            .map(|t| model.pick(t.categories, t.brand))
            .collect();
        // Every staple purchase is a staple order of that shopper and product at that time.
        let mut purchases: Vec<(u32, u32, i64)> = (g.staples().iter())
            .flat_map(|s| s.purchases.iter().map(|&t| (s.user, s.item, t)))
            .collect();
        let mut staple_orders = Vec::new();
        // Main-stream events of the 20 most active users, expected and seen; main-stream order
        // products in a shopper's preferred categories, expected and seen.
        let (mut active_expected, mut active_seen) = (0.0, 0.0);
        let (mut preferred_expected, mut preferred_seen, mut products) = (0.0, 0.0, 0);
        for m in msgs.iter().filter(|m| m["type"] == "track") {
            let u = user(m);
            if m["messageId"].as_str().is_some_and(|id| id.contains("-r-")) {
                let t = m["timestamp"]
                    .as_str()
                    .and_then(crate::timestamp::parse_millis);
                staple_orders.push((u, item(&m["properties"]["products"][0]), t.expect("a time")));
                continue;
            }
            active_seen += f64::from(u8::from(u < 20));
            let Some(ps) = m["properties"]["products"].as_array() else {
                continue;
            };
            let preferred = g.users[u as usize].categories;
            let in_preferred = |i: u32| preferred.contains(&g.item_category(i));
            for p in ps {
                products += 1;
                preferred_seen += f64::from(u8::from(in_preferred(item(p))));
                preferred_expected += (0..spec.items)
                    .filter(|&i| in_preferred(i))
                    .map(|i| picks[u as usize][i as usize])
                    .sum::<f64>();
            }
        }
        for pick in &picks {
            assert!((pick.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        active_expected +=
            truth[..20].iter().map(|t| t.activity_share).sum::<f64>() * spec.events as f64;
        purchases.sort_unstable();
        staple_orders.sort_unstable();
        assert!(
            staple_orders.len() > 100,
            "{} staple orders",
            staple_orders.len()
        );
        assert_eq!(staple_orders, purchases);
        let bought = g.staples().iter().filter(|s| !s.purchases.is_empty());
        assert!(
            bought.count() * 10 >= g.staples().len() * 9,
            "most staples are bought"
        );
        assert!(
            (active_seen / active_expected - 1.0).abs() < 0.05,
            "{active_seen} events of the most active users, {active_expected:.0} expected"
        );
        assert!(products > 5_000, "{products} main-stream order products");
        assert!(
            (preferred_seen / preferred_expected - 1.0).abs() < 0.05,
            "{preferred_seen} products in preferred categories, {preferred_expected:.0} expected"
        );
    }

    #[test]
    fn repeat_shoppers_rebuy_staples_and_leave_the_rest_alone() {
        let plain: Vec<Value> = Generator::new(small()).collect();
        let with = SyntheticSpec {
            repeat: Some(RepeatPurchases::default()),
            ..small()
        };
        let repeated: Vec<Value> = Generator::new(with.clone()).collect();
        assert_eq!(repeated, Generator::new(with).collect::<Vec<_>>());
        // The main stream is unchanged: same messages, staples interleaved.
        let staple = |m: &&Value| m["messageId"].as_str().is_some_and(|id| id.contains("-r-"));
        let ids = |v: &[Value], keep_staples: bool| -> Vec<String> {
            v.iter()
                .filter(|m| staple(m) == keep_staples)
                .filter(|m| m["type"] == "track")
                .map(|m| m["messageId"].to_string())
                .collect()
        };
        assert_eq!(ids(&repeated, false), ids(&plain, false));
        // Staples recur: some (user, product) pairs are bought several times.
        let mut bought: std::collections::HashMap<(String, String), usize> = Default::default();
        for m in repeated.iter().filter(staple) {
            let who = m["userId"]
                .as_str()
                .or(m["anonymousId"].as_str())
                .unwrap_or("");
            let item = m["properties"]["products"][0]["product_id"].to_string();
            *bought.entry((who.to_string(), item)).or_default() += 1;
        }
        assert!(bought.len() > 20, "{} staples", bought.len());
        assert!(bought.values().filter(|&&n| n >= 2).count() * 2 > bought.len());
    }
}
