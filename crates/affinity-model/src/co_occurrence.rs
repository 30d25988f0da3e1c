//! "People who engaged with X also engaged with Y": co-occurrence of items in the same users'
//! histories within a lookback window, each interaction weighted by its recency so the list
//! follows current trends, normalized like a cosine so popular items do not win by size alone.

use std::collections::HashMap;

use affinity_core::item_catalog::ItemCatalog;

const DAY_MS: f64 = 86_400_000.0;
/// The most recent users of an item considered per query: bounds the cost for very popular
/// items while keeping the freshest evidence.
const MAX_USERS_PER_QUERY: usize = 5_000;

/// Interactions indexed both ways, newest last.
pub struct CoOccurrence {
    as_of: i64,
    by_item: Vec<Vec<(u32, i64)>>,
    by_user: Vec<Vec<(u32, i64)>>,
}

#[derive(Debug, Clone, Copy)]
pub struct SimilarQuery {
    pub k: usize,
    /// Only interactions within this many days before `as_of` count.
    pub lookback_days: Option<u32>,
    /// Interactions lose half their weight every this many days.
    pub half_life_days: f64,
}

impl CoOccurrence {
    pub fn new(catalog: &ItemCatalog) -> Self {
        let mut by_item = vec![Vec::new(); catalog.items.len()];
        let mut by_user = vec![Vec::new(); catalog.users.len()];
        // The catalog's interactions are sorted by time, so both indexes end up sorted too.
        for x in &catalog.interactions {
            by_item[x.item as usize].push((x.user, x.timestamp));
            by_user[x.user as usize].push((x.item, x.timestamp));
        }
        Self {
            as_of: catalog.as_of,
            by_item,
            by_user,
        }
    }

    pub fn has_interactions(&self, item: u32, lookback_days: Option<u32>) -> bool {
        let since = self.since(lookback_days);
        self.by_item
            .get(item as usize)
            .is_some_and(|v| v.last().is_some_and(|&(_, t)| t >= since))
    }

    fn since(&self, lookback_days: Option<u32>) -> i64 {
        lookback_days.map_or(i64::MIN, |d| self.as_of - i64::from(d) * 86_400_000)
    }

    /// Interactions with `item` at or after `since` (at least 1, to divide by).
    fn count_since(&self, item: u32, since: i64) -> f64 {
        let v = &self.by_item[item as usize];
        (v.len() - v.partition_point(|&(_, t)| t < since)).max(1) as f64
    }

    /// Items most often engaged with by the recent users of `item`, best first (ties by item
    /// index), never `item` itself, only items `allow` accepts.
    pub fn similar(
        &self,
        item: u32,
        query: &SimilarQuery,
        allow: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Some(users) = self.by_item.get(item as usize) else {
            return Vec::new();
        };
        let since = self.since(query.lookback_days);
        let decay = |t: i64| {
            0.5f64.powf((self.as_of - t).max(0) as f64 / DAY_MS / query.half_life_days.max(1e-9))
        };
        // Each user counts once per item, with their most recent interaction's weight.
        let mut user_weight: HashMap<u32, f64> = HashMap::new();
        for &(u, t) in users.iter().rev().filter(|&&(_, t)| t >= since) {
            if user_weight.len() >= MAX_USERS_PER_QUERY && !user_weight.contains_key(&u) {
                continue;
            }
            user_weight.entry(u).or_insert_with(|| decay(t));
        }
        let mut scores: HashMap<u32, f64> = HashMap::new();
        for (&u, &wu) in &user_weight {
            let mut best: HashMap<u32, f64> = HashMap::new();
            for &(other, t) in self.by_user[u as usize]
                .iter()
                .filter(|&&(i, t)| t >= since && i != item)
            {
                let w = decay(t);
                let slot = best.entry(other).or_insert(0.0);
                *slot = slot.max(w);
            }
            for (other, w) in best {
                *scores.entry(other).or_default() += wu * w;
            }
        }
        let norm_x = self.count_since(item, since);
        let mut out: Vec<(u32, f32)> = scores
            .into_iter()
            .filter(|&(j, _)| allow(j))
            .map(|(j, s)| (j, (s / (norm_x * self.count_since(j, since)).sqrt()) as f32))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(query.k);
        out
    }
}
