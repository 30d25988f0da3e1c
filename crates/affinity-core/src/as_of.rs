//! The models' "now" (`as_of`): the time training, lookback windows, decay and audience
//! horizons count back from.
//!
//! The newest interaction is a fragile "now": after a historical import that ends months ago,
//! one live event (or one with a wrong date) would move it to today, and every window counted
//! back from it (a 30-day audience backtest, `lookback_days`) would hold no engagement. The
//! rule here lets a handful of late interactions wait: start at the interaction below which
//! 99% of them lie (`TAIL_SHARE`), follow the interactions forward while each comes at most
//! `MAX_GAP_MS` after the previous one, and take the newest reached. So
//!
//! - a store with steady live traffic has no long gap in its newest 1%: `as_of` is its newest
//!   interaction, the present;
//! - an import followed, after a pause of more than a week, by fewer than 1% of its size in
//!   live interactions keeps the import's end; those interactions are counted
//!   (`after_as_of`) and join once they are 1% of the store (or the pause closes).
//!
//! At most 1% of the interactions are ever left after `as_of`, and only behind such a gap.

/// The share of interactions that may be left after `as_of` (see the module comment).
pub const TAIL_SHARE: f64 = 0.01;
/// A pause longer than this between two interactions separates a history from what follows.
pub const MAX_GAP_MS: i64 = 7 * 86_400_000;

/// The chosen "now" and the data's own end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// Unix ms; 0 for a catalog without interactions.
    pub as_of: i64,
    /// The newest interaction (Unix ms); 0 without interactions.
    pub data_end: i64,
    /// Interactions after `as_of` (left out of training until they join).
    pub after_as_of: u64,
    /// The pause (ms) between `as_of` and the next interaction, when some were left out.
    pub gap_ms: Option<i64>,
}

impl AsOf {
    /// Chooses `as_of` from interaction times sorted ascending.
    pub fn choose(sorted: &[i64]) -> Self {
        let Some(&data_end) = sorted.last() else {
            return Self {
                as_of: 0,
                data_end: 0,
                after_as_of: 0,
                gap_ms: None,
            };
        };
        let n = sorted.len();
        let tail = ((n as f64) * TAIL_SHARE).floor() as usize;
        let mut i = n - 1 - tail.min(n - 1);
        while i + 1 < n && sorted[i + 1] - sorted[i] <= MAX_GAP_MS {
            i += 1;
        }
        // Interactions at the same instant as `as_of` are included (`<= as_of` everywhere).
        let after = n - 1 - i;
        Self {
            as_of: sorted[i],
            data_end,
            after_as_of: after as u64,
            gap_ms: (after > 0).then(|| sorted[i + 1] - sorted[i]),
        }
    }

    /// How `as_of` was chosen, in words, for records and answers.
    pub fn rule(&self) -> String {
        match self.gap_ms {
            None => "the newest interaction".to_string(),
            Some(gap) => format!(
                "the end of the history: the {} newest interactions (under {}% of all) came {} days after it and wait until they are {}% of the store",
                self.after_as_of,
                TAIL_SHARE * 100.0,
                gap / 86_400_000,
                TAIL_SHARE * 100.0,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    /// `n` interactions one every `step` ms, ending at `end`.
    fn steady(n: usize, step: i64, end: i64) -> Vec<i64> {
        (0..n as i64)
            .map(|i| end - (n as i64 - 1 - i) * step)
            .collect()
    }

    #[test]
    fn steady_traffic_uses_the_newest_interaction() {
        let t = steady(100_000, 60_000, 1_000 * DAY);
        let a = AsOf::choose(&t);
        assert_eq!(
            (a.as_of, a.data_end, a.after_as_of),
            (1_000 * DAY, 1_000 * DAY, 0)
        );
        assert_eq!(a.rule(), "the newest interaction");
        // Small stores, gaps or not: nothing is left out below 100 interactions.
        let sparse = [0, 30 * DAY, 90 * DAY];
        assert_eq!(AsOf::choose(&sparse).as_of, 90 * DAY);
        assert_eq!(AsOf::choose(&[]).as_of, 0);
    }

    #[test]
    fn a_few_live_events_after_an_import_do_not_move_it() {
        let mut t = steady(100_000, 60_000, 1_000 * DAY);
        t.extend([1_300 * DAY, 1_300 * DAY + 5, 1_301 * DAY]);
        let a = AsOf::choose(&t);
        assert_eq!(a.as_of, 1_000 * DAY);
        assert_eq!(a.data_end, 1_301 * DAY);
        assert_eq!(a.after_as_of, 3);
        assert_eq!(a.gap_ms, Some(300 * DAY));
        assert!(
            a.rule().contains("the 3 newest interactions"),
            "{}",
            a.rule()
        );
    }

    #[test]
    fn live_traffic_that_grows_past_the_share_becomes_the_present() {
        let mut t = steady(100_000, 60_000, 1_000 * DAY);
        t.extend(steady(1_500, 60_000, 1_300 * DAY));
        let a = AsOf::choose(&t);
        assert_eq!((a.as_of, a.after_as_of), (1_300 * DAY, 0));
        // A pause of less than the gap is not a break: the live data joins at once.
        let mut t = steady(100_000, 60_000, 1_000 * DAY);
        t.push(1_003 * DAY);
        assert_eq!(AsOf::choose(&t).as_of, 1_003 * DAY);
    }
}
