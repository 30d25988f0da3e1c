//! Behaviour of the fitted models, through the shared `Recommender` interface
//! where possible.

use affinity_model::metrics::evaluate;
use affinity_model::{
    AlsModel, AlsParams, EaseModel, EaseParams, Interactions, ItemKnn, ItemKnnParams, ModelError,
    Popularity, Recommender,
};

use crate::data::Clusters;

/// The cluster data is rank 4 and tiny; more factors than that overfit unless
/// regularized hard, hence λ = 5.
fn params(factors: usize) -> AlsParams {
    AlsParams {
        factors,
        regularization: 5.0,
        iterations: 10,
        seed: 3,
        ..AlsParams::default()
    }
}

pub fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// What every `Recommender` must do, whatever its scores mean.
fn check_contract(model: &dyn Recommender, train: &Interactions) {
    for user in 0..train.n_users() as u32 {
        let scores = model.score_items(user).unwrap();
        assert_eq!(scores.len(), model.n_items());
        let seen = train.user_items(user).unwrap();
        let recs = model.recommend(user, 10, seen.ids).unwrap();
        assert_eq!(recs.len(), 10.min(model.n_items() - seen.len()));
        for (pos, &(item, score)) in recs.iter().enumerate() {
            assert!(!seen.contains(item), "user {user}: recommended a seen item");
            assert_eq!(
                score, scores[item as usize],
                "score differs from score_items"
            );
            if let Some(&(next_item, next_score)) = recs.get(pos + 1) {
                assert!(
                    score > next_score || (score == next_score && item < next_item),
                    "user {user}: not in (score desc, id asc) order at {pos}"
                );
            }
        }
        // Nothing left out scores better than the last one returned.
        if let Some(&(last_item, last_score)) = recs.last() {
            for (item, &s) in scores.iter().enumerate() {
                let item = item as u32;
                if !seen.contains(item) && !recs.iter().any(|r| r.0 == item) {
                    assert!(s < last_score || (s == last_score && item > last_item));
                }
            }
        }
    }
    // k larger than the catalogue returns everything not excluded.
    assert_eq!(
        model.recommend(0, 10_000, &[]).unwrap().len(),
        model.n_items()
    );
    assert!(model.recommend(0, 0, &[]).unwrap().is_empty());
}

#[test]
fn every_model_honours_the_recommender_contract() {
    let d = Clusters::generate(11);
    let als = AlsModel::fit(&d.train, &params(16)).unwrap();
    let ease = EaseModel::fit(&d.train, &EaseParams::default()).unwrap();
    let knn = ItemKnn::fit(&d.train, &ItemKnnParams::default()).unwrap();
    // Few neighbours leave many items at score 0: ties the contract must
    // still order by id.
    let sparse_knn = ItemKnn::fit(
        &d.train,
        &ItemKnnParams {
            neighbours: 2,
            ..ItemKnnParams::default()
        },
    )
    .unwrap();
    let models: [(&str, &dyn Recommender); 5] = [
        ("als", &als),
        ("popularity", &Popularity::fit(&d.train)),
        ("ease", &ease),
        ("item_knn", &knn),
        ("item_knn k=2", &sparse_knn),
    ];
    for (name, model) in models {
        eprintln!("checking {name}");
        check_contract(model, &d.train);
    }
}

#[test]
fn als_finds_held_out_cluster_items_and_popularity_does_not() {
    let d = Clusters::generate(5);
    // 16 takes the specialized fixed-size solver, 6 the generic one.
    for factors in [16, 6] {
        let als = AlsModel::fit(&d.train, &params(factors)).unwrap();
        let als_report = evaluate(&als, &d.train, &d.test, 10).unwrap();
        let pop_report = evaluate(&Popularity::fit(&d.train), &d.train, &d.test, 10).unwrap();
        eprintln!("factors {factors}: als {als_report:?}\npopularity {pop_report:?}");
        assert_eq!(als_report.users, d.test.n_users());
        // Each user has 11 unseen items in its block, 3 of them held out, so
        // a model that recommends 10 of those 11 scores recall ≈ 0.9; one that
        // ignores clusters hits a block item about a quarter of the time.
        assert!(als_report.recall > 0.75, "als recall {}", als_report.recall);
        assert!(
            als_report.recall > 2.0 * pop_report.recall,
            "als {} vs popularity {}",
            als_report.recall,
            pop_report.recall
        );
        assert!(als_report.ndcg > 2.0 * pop_report.ndcg);

        // Recommendations come from the user's own block.
        let (mut inside, mut total) = (0, 0);
        for u in 0..d.train.n_users() as u32 {
            let seen = d.train.user_items(u).unwrap();
            let recs = als.recommend(u, 10, seen.ids).unwrap();
            for (rank, (item, _)) in recs.iter().enumerate() {
                let own = d.cluster_of_item(*item) == d.cluster_of_user(u);
                if rank < 3 {
                    assert!(own, "user {u}: rank {rank} item {item} outside its block");
                }
                inside += usize::from(own);
                total += 1;
            }
        }
        assert!(inside * 100 >= total * 90, "{inside}/{total} in-block");
    }
}

#[test]
fn similar_items_come_from_the_same_block_and_exclude_the_query() {
    let d = Clusters::generate(8);
    let als = AlsModel::fit(&d.train, &params(16)).unwrap();
    for item in 0..d.train.n_items() as u32 {
        let similar = als.similar_items(item, 5).unwrap();
        assert_eq!(similar.len(), 5);
        assert!(similar.iter().all(|&(i, _)| i != item));
        assert!(
            similar
                .iter()
                .all(|&(_, s)| (-1.0..=1.0 + 1e-5).contains(&s))
        );
        for (i, _) in similar {
            assert_eq!(
                d.cluster_of_item(i),
                d.cluster_of_item(item),
                "item {item} → {i}"
            );
        }
    }
    assert!(matches!(
        als.similar_items(80, 5),
        Err(ModelError::ItemOutOfRange { .. })
    ));
}

#[test]
fn als_is_bit_identical_for_a_seed_across_thread_counts() {
    let d = Clusters::generate(2);
    let bits = |m: &AlsModel| -> Vec<u32> {
        m.user_factors()
            .iter()
            .chain(m.item_factors())
            .map(|v| v.to_bits())
            .collect()
    };
    // 100 users is more than one ROWS_PER_TASK block, so two threads really
    // split the rows; 16 and 6 cover both solver paths.
    for factors in [16, 6] {
        let p = params(factors);
        let one = in_pool(1, || AlsModel::fit(&d.train, &p).unwrap());
        let two = in_pool(2, || AlsModel::fit(&d.train, &p).unwrap());
        let again = in_pool(2, || AlsModel::fit(&d.train, &p).unwrap());
        assert_eq!(bits(&one), bits(&two), "1 vs 2 threads, factors {factors}");
        assert_eq!(bits(&two), bits(&again));
        let other_seed = AlsParams { seed: 4, ..p };
        let other = AlsModel::fit(&d.train, &other_seed).unwrap();
        assert_ne!(bits(&one), bits(&other), "seed is ignored");
    }
}

#[test]
fn users_without_history_get_zero_vectors_and_unknown_users_an_error() {
    // user 2 exists but has no interactions; item 3 has none either
    let train =
        Interactions::from_triplets(3, 4, &[(0, 0, 1.0), (0, 1, 2.0), (1, 1, 1.0), (1, 2, 1.0)])
            .unwrap();
    let als = AlsModel::fit(&train, &params(8)).unwrap();
    assert!(als.user_vector(2).unwrap().iter().all(|&v| v == 0.0));
    assert!(als.item_vector(3).unwrap().iter().all(|&v| v == 0.0));
    assert!(als.user_vector(0).unwrap().iter().any(|&v| v != 0.0));
    assert_eq!(
        als.recommend(3, 5, &[]),
        Err(ModelError::UserOutOfRange {
            user: 3,
            n_users: 3
        })
    );
    // All-zero scores: order falls to item id.
    let recs = als.recommend(2, 2, &[0]).unwrap();
    assert_eq!(recs, vec![(1, 0.0), (2, 0.0)]);
    // Popularity serves anyone, ranks by distinct users, ties by id.
    let pop = Popularity::fit(&train);
    assert_eq!(pop.scores(), &[1.0, 2.0, 1.0, 0.0]);
    assert_eq!(
        pop.recommend(99, 3, &[]).unwrap(),
        vec![(1, 2.0), (0, 1.0), (2, 1.0)]
    );
}

#[test]
fn more_iterations_fit_the_training_data_better() {
    // Training loss of implicit ALS, computed densely (tiny matrix).
    fn loss(m: &AlsModel, train: &Interactions, reg: f32) -> f64 {
        let f = m.factors();
        let (xs, ys) = (m.user_factors(), m.item_factors());
        let mut total = 0f64;
        for u in 0..train.n_users() {
            let row = train.user_items(u as u32).unwrap();
            for i in 0..train.n_items() {
                let pred: f32 = (0..f).map(|k| xs[u * f + k] * ys[i * f + k]).sum();
                let (c, p) = match row.ids.binary_search(&(i as u32)) {
                    Ok(pos) => (row.weights[pos], 1.0),
                    Err(_) => (1.0, 0.0),
                };
                total += (c * (p - pred) * (p - pred)) as f64;
            }
        }
        let norms: f32 = xs.iter().chain(ys).map(|v| v * v).sum();
        total + (reg * norms) as f64
    }
    let d = Clusters::generate(9);
    let fit = |iterations| {
        let p = AlsParams {
            iterations,
            ..params(16)
        };
        loss(
            &AlsModel::fit(&d.train, &p).unwrap(),
            &d.train,
            p.regularization,
        )
    };
    let (l1, l3, l10) = (fit(1), fit(3), fit(10));
    assert!(l1 > l3 && l3 > l10, "loss {l1} → {l3} → {l10}");
}

/// The cluster data's known answer, for any model: held-out items are found
/// (recall far above popularity's) and recommendations stay in the user's
/// block.
fn assert_learns_clusters(name: &str, model: &dyn Recommender, d: &Clusters) {
    let report = evaluate(model, &d.train, &d.test, 10).unwrap();
    let pop = evaluate(&Popularity::fit(&d.train), &d.train, &d.test, 10).unwrap();
    eprintln!("{name}: {report:?}\npopularity {pop:?}");
    assert_eq!(report.users, d.test.n_users());
    assert!(report.recall > 0.75, "{name} recall {}", report.recall);
    assert!(
        report.recall > 2.0 * pop.recall && report.ndcg > 2.0 * pop.ndcg,
        "{name} {report:?} vs popularity {pop:?}"
    );
    let (mut inside, mut total) = (0, 0);
    for u in 0..d.train.n_users() as u32 {
        let seen = d.train.user_items(u).unwrap();
        for (rank, (item, _)) in model.recommend(u, 10, seen.ids).unwrap().iter().enumerate() {
            let own = d.cluster_of_item(*item) == d.cluster_of_user(u);
            if rank < 3 {
                assert!(
                    own,
                    "{name} user {u}: rank {rank} item {item} outside its block"
                );
            }
            inside += usize::from(own);
            total += 1;
        }
    }
    assert!(
        inside * 100 >= total * 90,
        "{name}: {inside}/{total} in-block"
    );
}

#[test]
fn ease_and_item_knn_find_held_out_cluster_items() {
    let d = Clusters::generate(5);
    let ease = EaseModel::fit(&d.train, &EaseParams::default()).unwrap();
    assert_learns_clusters("ease", &ease, &d);
    let knn = ItemKnn::fit(&d.train, &ItemKnnParams::default()).unwrap();
    assert_learns_clusters("item_knn", &knn, &d);
    let knn_shrunk = ItemKnn::fit(
        &d.train,
        &ItemKnnParams {
            neighbours: 10,
            shrink: 10.0,
        },
    )
    .unwrap();
    assert_learns_clusters("item_knn k=10 shrink=10", &knn_shrunk, &d);
}
