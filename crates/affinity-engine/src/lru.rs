//! A small least-recently-used cache. Its users hold a handful of large values (propensity
//! contexts: about 113 MB each at 100 000 users, 1 GB at 1M), so a linear scan over a short
//! list beats a linked hash map and needs no new dependency.

/// At most `capacity` values; inserting beyond it evicts the one used longest ago.
#[derive(Debug)]
pub struct LruCache<K, V> {
    capacity: usize,
    /// (key, value, tick of the last use); unordered, at most `capacity` long.
    entries: Vec<(K, V, u64)>,
    tick: u64,
    evictions: u64,
}

impl<K: PartialEq, V: Clone> LruCache<K, V> {
    /// A capacity of 0 is taken as 1: a cache that cannot hold the value just built would
    /// build it again for every use.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Vec::new(),
            tick: 0,
            evictions: 0,
        }
    }

    /// The value for `key`, marking it used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.iter_mut().find(|(k, _, _)| k == key).map(|e| {
            e.2 = tick;
            e.1.clone()
        })
    }

    /// Stores `value` under `key` as the most recently used, evicting the least recently used
    /// entry when full.
    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if let Some(e) = self.entries.iter_mut().find(|(k, _, _)| *k == key) {
            e.1 = value;
            e.2 = self.tick;
            return;
        }
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
            self.evictions += 1;
        }
        self.entries.push((key, value, self.tick));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted since the cache was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The keys held, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _, _)| k)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, _, _)| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut cache = LruCache::new(2);
        cache.insert(7, "seven");
        cache.insert(30, "thirty");
        // 7 used after 30 was inserted: 30 is now the oldest.
        assert_eq!(cache.get(&7), Some("seven"));
        cache.insert(90, "ninety");
        assert_eq!((cache.len(), cache.evictions()), (2, 1));
        assert!(cache.contains(&7) && cache.contains(&90) && !cache.contains(&30));
        assert_eq!(cache.get(&30), None);
        // Replacing a present key evicts nothing.
        cache.insert(90, "ninety again");
        assert_eq!((cache.len(), cache.evictions()), (2, 1));
        assert_eq!(cache.get(&90), Some("ninety again"));
    }

    #[test]
    fn distinct_keys_never_grow_it_past_its_capacity() {
        let mut cache = LruCache::new(3);
        for horizon in 1..=365u32 {
            cache.insert(horizon, horizon);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.evictions(), 362);
        assert!(cache.contains(&365) && cache.contains(&363) && !cache.contains(&362));
        assert_eq!(LruCache::<u32, u32>::new(0).capacity(), 1);
    }
}
