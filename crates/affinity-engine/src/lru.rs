//! A small least-recently-used cache. Its users hold a handful of large values (propensity
//! contexts: about 113 MB each at 100 000 users, 1 GB at 1M), so a linear scan over a short
//! list beats a linked hash map and needs no new dependency.

/// At most `capacity` values weighing at most `max_bytes` together; inserting beyond either
/// evicts the values used longest ago (never the one just inserted).
#[derive(Debug)]
pub struct LruCache<K, V> {
    capacity: usize,
    max_bytes: usize,
    /// (key, value, tick of the last use, bytes); unordered, at most `capacity` long.
    entries: Vec<(K, V, u64, usize)>,
    tick: u64,
    evictions: u64,
}

impl<K: PartialEq, V: Clone> LruCache<K, V> {
    /// A capacity of 0 is taken as 1: a cache that cannot hold the value just built would
    /// build it again for every use. Likewise one value is kept whatever it weighs.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            entries: Vec::new(),
            tick: 0,
            evictions: 0,
        }
    }

    /// The value for `key`, marking it used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.iter_mut().find(|(k, ..)| k == key).map(|e| {
            e.2 = tick;
            e.1.clone()
        })
    }

    /// Stores `value` (weighing `bytes`) under `key` as the most recently used, evicting the
    /// least recently used entries while the cache holds more than its capacity or its bytes.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.tick += 1;
        if let Some(i) = self.entries.iter().position(|(k, ..)| *k == key) {
            self.entries.swap_remove(i);
        }
        self.entries.push((key, value, self.tick, bytes));
        while self.entries.len() > self.capacity
            || (self.entries.len() > 1 && self.bytes() > self.max_bytes)
        {
            // The newest has the highest tick: with two entries or more, never the oldest.
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
            else {
                break;
            };
            self.entries.swap_remove(oldest);
            self.evictions += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// What the values held weigh together.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.3).sum()
    }

    /// Entries evicted since the cache was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The keys held, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, ..)| k)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, ..)| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut cache = LruCache::new(2, usize::MAX);
        cache.insert(7, "seven", 0);
        cache.insert(30, "thirty", 0);
        // 7 used after 30 was inserted: 30 is now the oldest.
        assert_eq!(cache.get(&7), Some("seven"));
        cache.insert(90, "ninety", 0);
        assert_eq!((cache.len(), cache.evictions()), (2, 1));
        assert!(cache.contains(&7) && cache.contains(&90) && !cache.contains(&30));
        assert_eq!(cache.get(&30), None);
        // Replacing a present key evicts nothing.
        cache.insert(90, "ninety again", 0);
        assert_eq!((cache.len(), cache.evictions()), (2, 1));
        assert_eq!(cache.get(&90), Some("ninety again"));
    }

    #[test]
    fn distinct_keys_never_grow_it_past_its_capacity() {
        let mut cache = LruCache::new(3, usize::MAX);
        for horizon in 1..=365u32 {
            cache.insert(horizon, horizon, 0);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.evictions(), 362);
        assert!(cache.contains(&365) && cache.contains(&363) && !cache.contains(&362));
        // A capacity of 0 holds one.
        let mut one = LruCache::new(0, usize::MAX);
        one.insert(1, 1, 0);
        one.insert(2, 2, 0);
        assert_eq!((one.len(), one.get(&2)), (1, Some(2)));
    }

    #[test]
    fn the_bytes_held_stay_within_the_budget_but_one_value_is_always_kept() {
        let mut cache = LruCache::new(4, 100);
        cache.insert(30, "a", 40);
        cache.insert(60, "b", 40);
        assert_eq!((cache.len(), cache.bytes(), cache.evictions()), (2, 80, 0));
        // 30 used last: 60 goes to make room for 50 bytes.
        assert_eq!(cache.get(&30), Some("a"));
        cache.insert(90, "c", 50);
        assert!(cache.contains(&30) && cache.contains(&90) && !cache.contains(&60));
        assert_eq!((cache.bytes(), cache.evictions()), (90, 1));
        // A value over the whole budget is kept alone.
        cache.insert(7, "d", 500);
        assert_eq!((cache.len(), cache.bytes(), cache.evictions()), (1, 500, 3));
        assert_eq!(cache.get(&7), Some("d"));
        // Replacing a key re-weighs it: the new weight counts, not the old.
        cache.insert(7, "e", 10);
        assert_eq!((cache.len(), cache.bytes()), (1, 10));
    }
}
