//! Edit distance, for "did you mean" answers: a mapping naming `sku` where the events carry
//! `product_sku`, a column mapped to `brandx`.

/// Levenshtein distance (insertions, deletions, substitutions) over characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The `n` candidates whose `text` is closest to `wanted` (case-insensitive), nearest first;
/// ties keep the candidates' order (callers pass the most used first).
pub fn closest<T: Clone>(
    wanted: &str,
    candidates: &[T],
    text: impl Fn(&T) -> &str,
    n: usize,
) -> Vec<T> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(usize, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(order, c)| (levenshtein(&wanted, &text(c).to_lowercase()), order))
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(n)
        .map(|(_, i)| candidates[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("brand", "brand"), 0);
        assert_eq!(levenshtein("brandx", "brand"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("sku", "product_sku"), 8);
    }

    #[test]
    fn closest_first_then_the_given_order() {
        let keys = ["price", "brand", "Brandt", "category"];
        assert_eq!(closest("brandx", &keys, |k| k, 2), vec!["brand", "Brandt"]);
        assert_eq!(closest("BRAND", &keys, |k| k, 1), vec!["brand"]);
        let none: [&str; 0] = [];
        assert!(closest("x", &none, |k| k, 3).is_empty());
    }
}
