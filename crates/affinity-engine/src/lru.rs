//! A small least-recently-used cache. Its users hold a handful of large values (propensity
//! contexts: about 113 MB each at 100 000 users, 1 GB at 1M), so a linear scan over a short
//! list beats a linked hash map and needs no new dependency.

/// At most `capacity` values weighing at most `max_bytes` together; making room evicts the
/// values used longest ago (never the one just inserted). Values are weighed by `weigh`
/// each time room is made, so a value that grew since it was inserted counts as it is now.
#[derive(Debug)]
pub struct LruCache<K, V> {
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&V) -> usize,
    /// (key, value, tick of the last use); unordered, at most `capacity` long.
    entries: Vec<(K, V, u64)>,
    tick: u64,
    evictions: u64,
}

impl<K: PartialEq, V: Clone> LruCache<K, V> {
    /// A capacity of 0 is taken as 1: a cache that cannot hold the value just built would
    /// build it again for every use. Likewise one value is kept whatever it weighs.
    pub fn new(capacity: usize, max_bytes: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            weigh,
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

    /// Evicts the least recently used values until one more weighing `bytes` would fit
    /// (the count and the bytes), all of them if need be: called before building a value,
    /// so the build does not run with a full cache beside it.
    pub fn make_room(&mut self, bytes: usize) {
        while !self.entries.is_empty()
            && (self.entries.len() >= self.capacity
                || self.bytes().saturating_add(bytes) > self.max_bytes)
        {
            self.evict_oldest();
        }
    }

    /// Stores `value` under `key` as the most recently used, evicting the least recently
    /// used entries while the cache holds more than its capacity or its bytes.
    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if let Some(i) = self.entries.iter().position(|(k, ..)| *k == key) {
            self.entries.swap_remove(i);
        }
        self.entries.push((key, value, self.tick));
        // The newest has the highest tick: with two entries or more, never the oldest.
        while self.entries.len() > self.capacity
            || (self.entries.len() > 1 && self.bytes() > self.max_bytes)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.2)
            .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
            self.evictions += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// What the values held weigh together, now.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| (self.weigh)(&e.1)).sum()
    }

    /// The heaviest value held, now (0 when empty).
    pub fn heaviest(&self) -> usize {
        self.entries
            .iter()
            .map(|e| (self.weigh)(&e.1))
            .max()
            .unwrap_or(0)
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

    fn weightless<V>(_: &V) -> usize {
        0
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut cache = LruCache::new(2, usize::MAX, weightless);
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
        let mut cache = LruCache::new(3, usize::MAX, weightless);
        for horizon in 1..=365u32 {
            cache.insert(horizon, horizon);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.evictions(), 362);
        assert!(cache.contains(&365) && cache.contains(&363) && !cache.contains(&362));
        // A capacity of 0 holds one.
        let mut one = LruCache::new(0, usize::MAX, weightless);
        one.insert(1, 1);
        one.insert(2, 2);
        assert_eq!((one.len(), one.get(&2)), (1, Some(2)));
    }

    /// Values that weigh what their cell says, so a test can make one grow after insertion.
    type Weighed = std::rc::Rc<std::cell::Cell<usize>>;

    fn weighed(bytes: usize) -> Weighed {
        std::rc::Rc::new(std::cell::Cell::new(bytes))
    }

    #[test]
    fn the_bytes_held_stay_within_the_budget_but_one_value_is_always_kept() {
        let mut cache: LruCache<u32, Weighed> = LruCache::new(4, 100, |v| v.get());
        cache.insert(30, weighed(40));
        cache.insert(60, weighed(40));
        assert_eq!((cache.len(), cache.bytes(), cache.evictions()), (2, 80, 0));
        // 30 used last: 60 goes to make room for 50 bytes.
        assert!(cache.get(&30).is_some());
        cache.insert(90, weighed(50));
        assert!(cache.contains(&30) && cache.contains(&90) && !cache.contains(&60));
        assert_eq!((cache.bytes(), cache.evictions()), (90, 1));
        // A value over the whole budget is kept alone.
        cache.insert(7, weighed(500));
        assert_eq!((cache.len(), cache.bytes(), cache.evictions()), (1, 500, 3));
        // Replacing a key re-weighs it: the new weight counts, not the old.
        cache.insert(7, weighed(10));
        assert_eq!((cache.len(), cache.bytes()), (1, 10));
    }

    #[test]
    fn values_are_weighed_as_they_are_now_and_room_is_made_before_a_build() {
        let mut cache: LruCache<u32, Weighed> = LruCache::new(4, 100, |v| v.get());
        let grows = weighed(30);
        cache.insert(1, grows.clone());
        cache.insert(2, weighed(30));
        // 1 grew after it was inserted (its tables filled on use): inserting 3 sees it.
        grows.set(70);
        cache.insert(3, weighed(10));
        assert!(!cache.contains(&1) && cache.contains(&2) && cache.contains(&3));
        assert_eq!((cache.bytes(), cache.heaviest()), (40, 30));
        // Before building one like the heaviest (30), the cache keeps at most 70 bytes.
        cache.make_room(cache.heaviest());
        assert_eq!((cache.len(), cache.bytes()), (2, 40));
        // For 80 bytes the oldest (2) goes; for 95, everything.
        cache.make_room(80);
        assert_eq!(
            (cache.len(), cache.bytes(), cache.contains(&3)),
            (1, 10, true)
        );
        cache.make_room(95);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        // Room for the count too: a full cache lets one go before a build.
        let mut full = LruCache::new(2, usize::MAX, weightless);
        full.insert(1, 1);
        full.insert(2, 2);
        full.make_room(0);
        assert_eq!((full.len(), full.contains(&1)), (1, false));
    }
}
