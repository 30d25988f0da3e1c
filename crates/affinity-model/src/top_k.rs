//! Streaming top-k: the `k` best keys seen so far, for ranking that looks at every item's
//! score once and keeps only the head.
//!
//! Ranking a user means scanning ~100k scores of which a handful survive. Collecting all of
//! them and selecting (what [`crate::recommender`]'s `top_k` does for evaluation) costs a
//! pass of writes and a partition per user; here nearly every score is rejected by one
//! comparison against [`TopK::floor`], the current k-th best score.

/// One kept key: its score and its tie-break rank (lower wins on equal scores).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry {
    pub key: u32,
    pub score: f32,
    pub rank: u32,
}

impl Entry {
    /// Best-first: higher score, then lower rank. Scores are finite (callers skip others).
    fn beats(&self, other: &Entry) -> bool {
        self.score > other.score || (self.score == other.score && self.rank < other.rank)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    /// Best first, at most `k`.
    entries: Vec<Entry>,
    /// A score below this cannot enter: the worst kept score once full, −∞ before.
    floor: f32,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            entries: Vec::with_capacity(k + 1),
            floor: if k == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
        }
    }

    /// Scores strictly below the floor can be skipped without calling [`TopK::offer`].
    #[inline(always)]
    pub fn floor(&self) -> f32 {
        self.floor
    }

    /// Offers a key not currently kept (item ids: each is offered once).
    pub fn offer(&mut self, entry: Entry) {
        if self.entries.len() == self.k && !self.entries.last().is_some_and(|w| entry.beats(w)) {
            return;
        }
        let at = self.entries.partition_point(|e| e.beats(&entry));
        self.entries.insert(at, entry);
        self.entries.truncate(self.k);
        self.refresh_floor();
    }

    /// Offers a key that may already be kept, whose score is the best of its offers (a
    /// column value scored by its best item). A key once dropped can come back with a later,
    /// higher score; one that never beat the floor was never among the best, so the result
    /// is exactly the top k of every key's best score.
    pub fn offer_max(&mut self, entry: Entry) {
        match self.entries.iter().position(|e| e.key == entry.key) {
            Some(at) if entry.beats(&self.entries[at]) => {
                self.entries.remove(at);
                let to = self.entries.partition_point(|e| e.beats(&entry));
                self.entries.insert(to, entry);
                self.refresh_floor();
            }
            Some(_) => {}
            None => self.offer(entry),
        }
    }

    fn refresh_floor(&mut self) {
        if self.entries.len() == self.k
            && let Some(worst) = self.entries.last()
        {
            self.floor = worst.score;
        }
    }

    /// The kept entries, best first.
    pub fn into_sorted(self) -> Vec<Entry> {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: u32, score: f32) -> Entry {
        Entry {
            key,
            score,
            rank: key,
        }
    }

    /// The reference: every key's best score, sorted, first k.
    fn naive(offers: &[(u32, f32)], k: usize) -> Vec<Entry> {
        let mut best: std::collections::BTreeMap<u32, f32> = Default::default();
        for &(key, s) in offers {
            let b = best.entry(key).or_insert(s);
            *b = b.max(s);
        }
        let mut all: Vec<Entry> = best.into_iter().map(|(k, s)| e(k, s)).collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.rank.cmp(&b.rank)));
        all.truncate(k);
        all
    }

    #[test]
    fn matches_sorting_everything_including_ties_and_repeated_keys() {
        // A deterministic jumble with many equal scores and keys offered several times.
        let offers: Vec<(u32, f32)> = (0..2_000u32)
            .map(|i| ((i * 7919) % 97, ((i * 104_729) % 23) as f32))
            .collect();
        for k in [0, 1, 3, 10, 96, 97, 200] {
            let mut top = TopK::new(k);
            for &(key, s) in &offers {
                if s >= top.floor() {
                    top.offer_max(e(key, s));
                }
            }
            assert_eq!(top.into_sorted(), naive(&offers, k), "k = {k}");
        }
        // Distinct keys through `offer`.
        let distinct: Vec<(u32, f32)> = (0..500u32).map(|i| (i, ((i * 31) % 17) as f32)).collect();
        let mut top = TopK::new(10);
        for &(key, s) in &distinct {
            if s >= top.floor() {
                top.offer(e(key, s));
            }
        }
        assert_eq!(top.into_sorted(), naive(&distinct, 10));
    }
}
