//! Synthetic data whose right answers are known, and checks on `Interactions`.

use affinity_model::{Interactions, ModelError, Triplet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Users in `clusters` groups; cluster c owns items
/// `c * block .. (c + 1) * block` and each of its users consumes `per_user` of
/// them at random, plus one random item from anywhere (noise). `held_out` of
/// each user's in-block items go to `test`, the rest (and the noise) to train.
///
/// What a model should learn: a user's unseen items of its own block are the
/// relevant ones, and items from other blocks are not.
pub struct Clusters {
    pub clusters: usize,
    pub block: usize,
    pub users_per_cluster: usize,
    pub train: Interactions,
    pub test: Interactions,
}

impl Clusters {
    pub fn generate(seed: u64) -> Clusters {
        let (clusters, block, users_per_cluster, per_user, held_out) = (4, 20, 25, 12, 3);
        let n_users = clusters * users_per_cluster;
        let n_items = clusters * block;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut train, mut test): (Vec<Triplet>, Vec<Triplet>) = (Vec::new(), Vec::new());
        for u in 0..n_users {
            let c = u / users_per_cluster;
            let mut items: Vec<u32> = (0..block).map(|j| (c * block + j) as u32).collect();
            // partial Fisher–Yates: the first `per_user` are a random subset
            for j in 0..per_user {
                let k = rng.random_range(j..block);
                items.swap(j, k);
            }
            for (j, &item) in items[..per_user].iter().enumerate() {
                let weight = rng.random_range(1..4) as f32;
                let side = if j < held_out { &mut test } else { &mut train };
                side.push((u as u32, item, weight));
            }
            // noise: one item from another cluster's block
            let other = (c + rng.random_range(1..clusters)) % clusters;
            let noise = (other * block + rng.random_range(0..block)) as u32;
            train.push((u as u32, noise, 1.0));
        }
        Clusters {
            clusters,
            block,
            users_per_cluster,
            train: Interactions::from_triplets(n_users, n_items, &train).unwrap(),
            test: Interactions::from_triplets(n_users, n_items, &test).unwrap(),
        }
    }

    pub fn cluster_of_user(&self, user: u32) -> usize {
        user as usize / self.users_per_cluster
    }

    pub fn cluster_of_item(&self, item: u32) -> usize {
        item as usize / self.block
    }
}

#[test]
fn both_orientations_hold_the_same_entries() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let triplets: Vec<Triplet> = (0..500)
        .map(|_| {
            (
                rng.random_range(0..30),
                rng.random_range(0..40),
                rng.random_range(1..5) as f32,
            )
        })
        .collect();
    let m = Interactions::from_triplets(30, 40, &triplets).unwrap();

    // Expected: duplicates summed, via a dense matrix.
    let mut dense = vec![0f32; 30 * 40];
    for &(u, i, w) in &triplets {
        dense[u as usize * 40 + i as usize] += w;
    }
    let from_users: Vec<Triplet> = m.iter().collect();
    let want: Vec<Triplet> = (0..30u32)
        .flat_map(|u| (0..40u32).map(move |i| (u, i)))
        .filter_map(|(u, i)| {
            let w = dense[u as usize * 40 + i as usize];
            (w != 0.0).then_some((u, i, w))
        })
        .collect();
    assert_eq!(from_users, want);
    assert_eq!(m.nnz(), want.len());

    let mut from_items: Vec<Triplet> = (0..40u32)
        .flat_map(|i| {
            let row = m.item_users(i).unwrap();
            assert!(row.ids.windows(2).all(|w| w[0] < w[1]), "item {i} unsorted");
            row.iter().map(move |(u, w)| (u, i, w)).collect::<Vec<_>>()
        })
        .collect();
    from_items.sort_by_key(|&(u, i, _)| (u, i));
    assert_eq!(from_items, want);
}

#[test]
fn rejects_out_of_range_ids_and_non_finite_weights() {
    assert_eq!(
        Interactions::from_triplets(2, 2, &[(2, 0, 1.0)]),
        Err(ModelError::UserOutOfRange {
            user: 2,
            n_users: 2
        })
    );
    assert_eq!(
        Interactions::from_triplets(2, 2, &[(0, 5, 1.0)]),
        Err(ModelError::ItemOutOfRange {
            item: 5,
            n_items: 2
        })
    );
    assert!(matches!(
        Interactions::from_triplets(2, 2, &[(0, 1, f32::NAN)]),
        Err(ModelError::NonFiniteWeight {
            user: 0,
            item: 1,
            ..
        })
    ));
    assert!(matches!(
        Interactions::from_triplets(2, 2, &[(1, 1, f32::MAX), (1, 1, f32::MAX)]),
        Err(ModelError::NonFiniteWeight {
            user: 1,
            item: 1,
            ..
        })
    ));
    let m = Interactions::from_triplets(2, 2, &[]).unwrap();
    assert!(m.user_items(2).is_err());
    assert!(m.item_users(2).is_err());
    assert!(m.user_items(1).unwrap().is_empty());
}

#[test]
fn cluster_generator_matches_its_description() {
    let d = Clusters::generate(1);
    for u in 0..d.test.n_users() as u32 {
        let test = d.test.user_items(u).unwrap();
        assert_eq!(test.len(), 3);
        assert!(
            test.ids
                .iter()
                .all(|&i| d.cluster_of_item(i) == d.cluster_of_user(u))
        );
        let train = d.train.user_items(u).unwrap();
        assert!(train.ids.iter().all(|&i| !test.contains(i)));
        let in_block = train
            .ids
            .iter()
            .filter(|&&i| d.cluster_of_item(i) == d.cluster_of_user(u))
            .count();
        assert_eq!(in_block, 9);
    }
    assert_eq!(d.clusters * d.block, d.train.n_items());
}
