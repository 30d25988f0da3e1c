//! The item-item models (EASE, item kNN): exact small cases, "similar items",
//! limits and determinism.

use affinity_model::{
    EaseModel, EaseParams, Interactions, ItemKnn, ItemKnnParams, ModelError, Recommender,
};

use crate::data::Clusters;
use crate::models::in_pool;

/// Gauss–Jordan inverse with partial pivoting in f64: a different algorithm
/// from the crate's Cholesky, to check it against.
fn invert(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let mut inv: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
            inv.swap(col * n + k, pivot * n + k);
        }
        let d = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= d;
            inv[col * n + k] /= d;
        }
        for r in 0..n {
            if r != col {
                let f = a[r * n + col];
                for k in 0..n {
                    a[r * n + k] -= f * a[col * n + k];
                    inv[r * n + k] -= f * inv[col * n + k];
                }
            }
        }
    }
    inv
}

#[test]
fn ease_matches_a_hand_computed_two_item_case() {
    // X = [[1, 1], [1, 0]]: XᵀX + I = [[3, 1], [1, 2]], P = [[2, −1], [−1, 3]] / 5,
    // B_01 = −P_01 / P_11 = 1/3, B_10 = −P_10 / P_00 = 1/2.
    let data = Interactions::from_triplets(2, 2, &[(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0)]).unwrap();
    let ease = EaseModel::fit(
        &data,
        &EaseParams {
            lambda: 1.0,
            ..EaseParams::default()
        },
    )
    .unwrap();
    let want = [0.0, 1.0 / 3.0, 0.5, 0.0];
    for (got, want) in ease.weights().iter().zip(want) {
        assert!(
            (got - want).abs() < 1e-6,
            "{:?} vs {want:?}",
            ease.weights()
        );
    }
    // user 1 has item 0 only: scores = row 0 of B
    let scores = ease.score_items(1).unwrap();
    assert!(
        scores[0] == 0.0 && (scores[1] - 1.0 / 3.0).abs() < 1e-6,
        "{scores:?}"
    );
}

#[test]
fn ease_matches_an_independent_inverse_with_weights() {
    // 70 items: more than one Cholesky panel (64) and not a multiple of the
    // 4 × 4 tiles, with integer weights and some items nobody has.
    let (n_users, n_items) = (40, 70);
    let triplets: Vec<(u32, u32, f32)> = (0..n_users as u32)
        .flat_map(|u| {
            (0..n_items as u32)
                .filter(move |&i| (u * 7 + i * 13) % 11 < 3 && i % 23 != 5)
                .map(move |i| (u, i, 1.0 + ((u + i) % 3) as f32))
        })
        .collect();
    let data = Interactions::from_triplets(n_users, n_items, &triplets).unwrap();
    let lambda = 3.0;
    let ease = EaseModel::fit(
        &data,
        &EaseParams {
            lambda,
            ..EaseParams::default()
        },
    )
    .unwrap();

    let mut g = vec![0f64; n_items * n_items];
    for u in 0..n_users as u32 {
        let row = data.user_items(u).unwrap();
        for (i, wi) in row.iter() {
            for (j, wj) in row.iter() {
                g[i as usize * n_items + j as usize] += (wi * wj) as f64;
            }
        }
    }
    for i in 0..n_items {
        g[i * n_items + i] += lambda as f64;
    }
    let p = invert(g, n_items);
    let mut worst = 0f64;
    for i in 0..n_items {
        for j in 0..n_items {
            let want = if i == j {
                0.0
            } else {
                -p[i * n_items + j] / p[j * n_items + j]
            };
            let got = ease.weights()[i * n_items + j] as f64;
            worst = worst.max((got - want).abs());
        }
    }
    assert!(worst < 1e-5, "max |B − B_exact| = {worst}");
    // and the scores are x_u · B
    let b = ease.weights();
    for u in [0u32, 17, 39] {
        let scores = ease.score_items(u).unwrap();
        for j in 0..n_items {
            let want: f32 = data
                .user_items(u)
                .unwrap()
                .iter()
                .map(|(i, w)| w * b[i as usize * n_items + j])
                .sum();
            assert!((scores[j] - want).abs() < 1e-4, "user {u} item {j}");
        }
    }
}

#[test]
fn ease_refuses_catalogues_above_max_items_and_bad_lambda() {
    let d = Clusters::generate(3);
    let n_items = d.train.n_items();
    let limit = EaseParams {
        max_items: n_items - 1,
        ..EaseParams::default()
    };
    assert_eq!(
        EaseModel::fit(&d.train, &limit),
        Err(ModelError::TooManyItems {
            n_items,
            max_items: n_items - 1
        })
    );
    let exactly = EaseParams {
        max_items: n_items,
        ..EaseParams::default()
    };
    assert!(EaseModel::fit(&d.train, &exactly).is_ok());
    for lambda in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let p = EaseParams {
            lambda,
            ..EaseParams::default()
        };
        assert!(
            matches!(
                EaseModel::fit(&d.train, &p),
                Err(ModelError::InvalidParameter { name: "lambda", .. })
            ),
            "lambda {lambda}"
        );
    }
    let ease = EaseModel::fit(&d.train, &exactly).unwrap();
    assert!(matches!(
        ease.score_items(100),
        Err(ModelError::UserOutOfRange { .. })
    ));
}

#[test]
fn item_knn_matches_hand_computed_cosines_and_scores() {
    // users: u0 {0, 1}, u1 {0, 1}, u2 {0, 2}; item norms √3, √2, 1
    let data = Interactions::from_triplets(
        3,
        3,
        &[
            (0, 0, 1.0),
            (0, 1, 1.0),
            (1, 0, 1.0),
            (1, 1, 1.0),
            (2, 0, 1.0),
            (2, 2, 1.0),
        ],
    )
    .unwrap();
    let s01 = 2.0 / (3f32.sqrt() * 2f32.sqrt());
    let s02 = 1.0 / 3f32.sqrt();
    let knn = ItemKnn::fit(&data, &ItemKnnParams::default()).unwrap();
    let close = |got: &[(u32, f32)], want: &[(u32, f32)]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| g.0 == w.0 && (g.1 - w.1).abs() < 1e-6)
    };
    let sim0 = knn.similar_items(0, 5).unwrap();
    assert!(close(&sim0, &[(1, s01), (2, s02)]), "{sim0:?}");
    // items 1 and 2 share no user: similarity 0 is not a neighbour
    let sim1 = knn.similar_items(1, 5).unwrap();
    assert!(close(&sim1, &[(0, s01)]), "{sim1:?}");
    assert!(close(&knn.similar_items(0, 1).unwrap(), &[(1, s01)]));

    // With shrink 1 the denominators grow by 1.
    let shrunk = ItemKnn::fit(
        &data,
        &ItemKnnParams {
            neighbours: 100,
            shrink: 1.0,
        },
    )
    .unwrap();
    let want = 2.0 / (3f32.sqrt() * 2f32.sqrt() + 1.0);
    assert!(close(&shrunk.similar_items(1, 5).unwrap(), &[(0, want)]));

    // One neighbour each: N(0) = {1}, N(1) = {0}, N(2) = {0}. A candidate is
    // scored by its own neighbours: u2 has {0, 2}, so item 1 gets sim(0, 1)
    // (0 ∈ N(1)) and item 0 gets nothing (its only neighbour, 1, is unseen).
    let one = ItemKnn::fit(
        &data,
        &ItemKnnParams {
            neighbours: 1,
            shrink: 0.0,
        },
    )
    .unwrap();
    let scores = one.score_items(2).unwrap();
    assert!(
        scores[0] == 0.0 && (scores[1] - s01).abs() < 1e-6 && (scores[2] - s02).abs() < 1e-6,
        "{scores:?}"
    );
    assert!(matches!(
        one.similar_items(3, 1),
        Err(ModelError::ItemOutOfRange { .. })
    ));
    assert!(matches!(
        one.score_items(3),
        Err(ModelError::UserOutOfRange { .. })
    ));
    for bad in [
        ItemKnnParams {
            neighbours: 0,
            shrink: 0.0,
        },
        ItemKnnParams {
            neighbours: 5,
            shrink: -1.0,
        },
        ItemKnnParams {
            neighbours: 5,
            shrink: f32::NAN,
        },
    ] {
        assert!(matches!(
            ItemKnn::fit(&data, &bad),
            Err(ModelError::InvalidParameter { .. })
        ));
    }
}

#[test]
fn item_knn_similar_items_stay_in_block() {
    let d = Clusters::generate(8);
    let knn = ItemKnn::fit(&d.train, &ItemKnnParams::default()).unwrap();
    for item in 0..d.train.n_items() as u32 {
        let similar = knn.similar_items(item, 5).unwrap();
        assert_eq!(similar.len(), 5, "item {item}");
        assert!(similar.iter().all(|&(i, _)| i != item));
        assert!(similar.iter().all(|&(_, s)| s > 0.0 && s <= 1.0 + 1e-5));
        assert!(
            similar
                .windows(2)
                .all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0))
        );
        for (i, _) in similar {
            assert_eq!(
                d.cluster_of_item(i),
                d.cluster_of_item(item),
                "item {item} → {i}"
            );
        }
    }
}

#[test]
fn ease_with_low_pass_matches_a_hand_computed_two_item_case() {
    // The same X as above with λ = 1, so B = [[0, 1/3], [1/2, 0]]. Item degrees d = (2, 1);
    // the rank-1 filter is popularity, W[i][j] = d_j / Σd = [[2/3, 1/3], [2/3, 1/3]].
    // Scores of B: user 0 (1/2, 1/3), user 1 (0, 1/3), squares 17/36; of W: (4/3, 2/3) and
    // (2/3, 1/3), squares 100/36. So W is scaled by √(17/100) and then by the weight 1/2.
    let data = Interactions::from_triplets(2, 2, &[(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0)]).unwrap();
    let ease = EaseModel::fit(
        &data,
        &EaseParams {
            lambda: 1.0,
            low_pass_rank: 1,
            low_pass_weight: 0.5,
            ..EaseParams::default()
        },
    )
    .unwrap();
    let c = 0.5 * (17.0f32 / 100.0).sqrt();
    let want = [
        c * 2.0 / 3.0,
        1.0 / 3.0 + c / 3.0,
        0.5 + c * 2.0 / 3.0,
        c / 3.0,
    ];
    for (got, want) in ease.weights().iter().zip(want) {
        assert!(
            (got - want).abs() < 1e-5,
            "{:?} vs {want:?}",
            ease.weights()
        );
    }
    // Weight 0 is plain EASE.
    let plain = |low_pass_weight| {
        EaseModel::fit(
            &data,
            &EaseParams {
                lambda: 1.0,
                low_pass_rank: 1,
                low_pass_weight,
                ..EaseParams::default()
            },
        )
    };
    assert_eq!(
        plain(0.0).unwrap().weights(),
        EaseModel::fit(
            &data,
            &EaseParams {
                lambda: 1.0,
                ..EaseParams::default()
            }
        )
        .unwrap()
        .weights()
    );
    for bad in [-0.1, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(
                plain(bad),
                Err(ModelError::InvalidParameter {
                    name: "low_pass_weight",
                    ..
                })
            ),
            "weight {bad}"
        );
    }
}

#[test]
fn ease_and_item_knn_are_bit_identical_across_thread_counts() {
    let d = Clusters::generate(2);
    let p = EaseParams::default();
    let one = in_pool(1, || EaseModel::fit(&d.train, &p).unwrap());
    let two = in_pool(2, || EaseModel::fit(&d.train, &p).unwrap());
    let bits = |m: &EaseModel| m.weights().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two), "ease: 1 vs 2 threads");
    // With the low-pass filter (its power iteration, scale and sum) as well; and it changes
    // the weights.
    let p = EaseParams {
        low_pass_rank: 8,
        ..EaseParams::default()
    };
    let one_lp = in_pool(1, || EaseModel::fit(&d.train, &p).unwrap());
    let two_lp = in_pool(2, || EaseModel::fit(&d.train, &p).unwrap());
    assert_eq!(
        bits(&one_lp),
        bits(&two_lp),
        "ease + low-pass: 1 vs 2 threads"
    );
    assert_ne!(bits(&one_lp), bits(&one), "the filter adds nothing");
    assert_eq!(
        bits(&one_lp),
        bits(&EaseModel::fit(&d.train, &p).unwrap()),
        "ease + low-pass: refit"
    );

    let p = ItemKnnParams {
        neighbours: 7,
        shrink: 2.0,
    };
    let one = in_pool(1, || ItemKnn::fit(&d.train, &p).unwrap());
    let two = in_pool(2, || ItemKnn::fit(&d.train, &p).unwrap());
    assert_eq!(one, two, "item_knn: 1 vs 2 threads");
    for u in 0..d.train.n_users() as u32 {
        let s1: Vec<u32> = one
            .score_items(u)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let s2: Vec<u32> = two
            .score_items(u)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(s1, s2);
    }
}
