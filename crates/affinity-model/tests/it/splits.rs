//! Train/test splits.

use std::collections::BTreeMap;

use affinity_model::Triplet;
use affinity_model::split::{TimedEvent, random_split_per_user, time_holdout};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn time_holdout_puts_the_cutoff_itself_in_test() {
    let events: Vec<TimedEvent> = vec![
        (0, 0, 1.0, 10),
        (0, 1, 1.0, 20),
        (1, 0, 2.0, 19),
        (1, 2, 1.0, 25),
        (0, 0, 1.0, 30), // a re-consumption after the cutoff
    ];
    let split = time_holdout(&events, 20);
    assert_eq!(split.train, vec![(0, 0, 1.0), (1, 0, 2.0)]);
    assert_eq!(split.test, vec![(0, 1, 1.0), (1, 2, 1.0), (0, 0, 1.0)]);
}

fn sorted(mut v: Vec<Triplet>) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<_> = v.drain(..).map(|(u, i, w)| (u, i, w.to_bits())).collect();
    out.sort_unstable();
    out
}

#[test]
fn per_user_random_split_follows_recbole_counts_and_is_seeded() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // user u has u + 1 interactions (1..=30), so every rounding case occurs
    let triplets: Vec<Triplet> = (0..30u32)
        .flat_map(|u| (0..=u).map(move |i| (u, i, 1.0)))
        .map(|(u, i, _)| (u, i, rng.random_range(1..9) as f32))
        .collect();
    let a = random_split_per_user(&triplets, [0.8, 0.1, 0.1], 42).unwrap();
    let b = random_split_per_user(&triplets, [0.8, 0.1, 0.1], 42).unwrap();
    let c = random_split_per_user(&triplets, [0.8, 0.1, 0.1], 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.test, c.test, "seed is ignored");

    // Nothing lost or duplicated.
    let all: Vec<Triplet> = [a.train.clone(), a.valid.clone(), a.test.clone()].concat();
    assert_eq!(sorted(all), sorted(triplets.clone()));

    // Counts per user, against RecBole's rule worked by hand:
    // n = 1 → (1,0,0); 2 → (1,0,1); 3..=9 → (n−2,1,1); 10 → (8,1,1);
    // 20 → (16,2,2); 25 → (21,2,2).
    let count = |side: &[Triplet]| {
        let mut m = BTreeMap::new();
        for t in side {
            *m.entry(t.0).or_insert(0usize) += 1;
        }
        m
    };
    let (tr, va, te) = (count(&a.train), count(&a.valid), count(&a.test));
    let get = |m: &BTreeMap<u32, usize>, u: u32| m.get(&u).copied().unwrap_or(0);
    for (n, want) in [
        (1, (1, 0, 0)),
        (2, (1, 0, 1)),
        (3, (1, 1, 1)),
        (9, (7, 1, 1)),
        (10, (8, 1, 1)),
        (20, (16, 2, 2)),
        (25, (21, 2, 2)),
    ] {
        let u = n - 1;
        assert_eq!(
            (get(&tr, u), get(&va, u), get(&te, u)),
            want,
            "user with {n}"
        );
    }

    assert!(random_split_per_user(&triplets, [0.0, 0.0, 0.0], 1).is_err());
    assert!(random_split_per_user(&triplets, [0.8, -0.1, 0.3], 1).is_err());
}
