//! Metric functions on hand-computed examples.

use affinity_model::metrics::{
    RankingReport, evaluate, evaluate_lists, ndcg_at_k, precision_at_k, recall_at_k,
};
use affinity_model::{Interactions, ModelError, Popularity};

/// 1 / log2(pos + 2), the discount at 0-based position `pos`.
fn d(pos: u32) -> f64 {
    1.0 / f64::from(pos + 2).log2()
}

struct Case {
    name: &'static str,
    recommended: &'static [u32],
    relevant: &'static [u32],
    k: usize,
    precision: f64,
    recall: f64,
    ndcg: f64,
}

fn check(case: Case) {
    let got = [
        precision_at_k(case.recommended, case.relevant, case.k),
        recall_at_k(case.recommended, case.relevant, case.k),
        ndcg_at_k(case.recommended, case.relevant, case.k),
    ];
    let want = [case.precision, case.recall, case.ndcg];
    for ((name, g), w) in ["precision", "recall", "ndcg"].iter().zip(got).zip(want) {
        assert!(
            (g - w).abs() < 1e-12,
            "{}: {name} = {g}, expected {w}",
            case.name
        );
    }
}

#[test]
fn per_user_metrics_match_hand_computed_values() {
    for case in [
        Case {
            // hits at positions 1 and 3; ideal list has 3 hits in the top 4
            name: "two of three found",
            recommended: &[1, 2, 3, 4],
            relevant: &[2, 4, 9],
            k: 4,
            precision: 2.0 / 4.0,
            recall: 2.0 / 3.0,
            ndcg: (d(1) + d(3)) / (d(0) + d(1) + d(2)),
        },
        Case {
            name: "perfect single",
            recommended: &[5],
            relevant: &[5],
            k: 1,
            precision: 1.0,
            recall: 1.0,
            ndcg: 1.0,
        },
        Case {
            // precision divides by k, not by the (empty) list length
            name: "nothing recommended",
            recommended: &[],
            relevant: &[1],
            k: 3,
            precision: 0.0,
            recall: 0.0,
            ndcg: 0.0,
        },
        Case {
            // the repeated 7 counts once
            name: "duplicate recommendation",
            recommended: &[7, 7, 8],
            relevant: &[7],
            k: 3,
            precision: 1.0 / 3.0,
            recall: 1.0,
            ndcg: 1.0,
        },
        Case {
            // the hit is at position 2, outside k = 2
            name: "hit beyond k",
            recommended: &[1, 2, 3],
            relevant: &[3],
            k: 2,
            precision: 0.0,
            recall: 0.0,
            ndcg: 0.0,
        },
        Case {
            // IDCG uses min(k, |relevant|) = 2 hits, so a full top-2 is ideal
            name: "more relevant than k",
            recommended: &[1, 2],
            relevant: &[1, 2, 3, 4],
            k: 2,
            precision: 1.0,
            recall: 0.5,
            ndcg: 1.0,
        },
        Case {
            name: "single hit at the bottom",
            recommended: &[9, 8, 7],
            relevant: &[7, 100],
            k: 3,
            precision: 1.0 / 3.0,
            recall: 0.5,
            ndcg: d(2) / (d(0) + d(1)),
        },
    ] {
        check(case);
    }
}

#[test]
fn evaluate_averages_over_users_with_test_items_and_measures_coverage() {
    // Popularity: item 0 (3 users) > item 1 (2) > item 2 (1) > item 3 (0).
    let train = Interactions::from_triplets(
        3,
        4,
        &[
            (0, 0, 1.0),
            (1, 0, 1.0),
            (1, 1, 1.0),
            (2, 0, 1.0),
            (2, 1, 1.0),
            (2, 2, 1.0),
        ],
    )
    .unwrap();
    // user 2 has no test items, so only users 0 and 1 are averaged
    let test = Interactions::from_triplets(3, 4, &[(0, 1, 1.0), (1, 3, 1.0)]).unwrap();
    let report = evaluate(&Popularity::fit(&train), &train, &test, 2).unwrap();
    // user 0: recs [1, 2] (0 is seen) → hit at 0: P 1/2, R 1, NDCG 1
    // user 1: recs [2, 3] (0, 1 seen) → hit at 1: P 1/2, R 1, NDCG d(1)/d(0)
    // coverage: {1, 2, 3} of 4 items
    let want = RankingReport {
        k: 2,
        users: 2,
        precision: 0.5,
        recall: 1.0,
        ndcg: (1.0 + d(1)) / 2.0,
        coverage: 0.75,
    };
    assert_eq!(report.users, want.users);
    for (g, w) in [
        (report.precision, want.precision),
        (report.recall, want.recall),
        (report.ndcg, want.ndcg),
        (report.coverage, want.coverage),
    ] {
        assert!((g - w).abs() < 1e-12, "{report:?} vs {want:?}");
    }

    // A user missing from external lists counts as all misses, not skipped.
    let partial =
        evaluate_lists(&test, 2, |u| Ok(if u == 0 { vec![1, 2] } else { vec![] })).unwrap();
    assert_eq!(partial.users, 2);
    assert!((partial.recall - 0.5).abs() < 1e-12);

    assert!(matches!(
        evaluate_lists(&test, 0, |_| Ok(vec![])),
        Err(ModelError::InvalidParameter { name: "k", .. })
    ));
    let other_shape = Interactions::from_triplets(3, 5, &[]).unwrap();
    assert!(matches!(
        evaluate(&Popularity::fit(&train), &train, &other_shape, 2),
        Err(ModelError::DimensionMismatch { .. })
    ));
}
