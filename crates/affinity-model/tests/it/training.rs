//! The training pipeline on a synthetic store whose users have latent preferences: it must
//! evaluate every candidate on its default (per-user time) holdout, choose a personalized
//! model over the baselines, and be reproducible for a seed.

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::{CatalogBuilder, ItemCatalog};
use affinity_core::synthetic::{Generator, SyntheticSpec};
use affinity_core::timestamp::parse_millis;
use affinity_model::training::{Candidate, Progress, TrainingOptions, train};
use serde_json::json;

pub(crate) fn synthetic_catalog(events: u64) -> ItemCatalog {
    let config: CatalogConfig = serde_json::from_value(json!({
        "events": [
            {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
            {"name": "Product Added", "product_id_property": "product_id", "weight": 2.0},
            {"name": "Product Viewed", "product_id_property": "product_id"}
        ],
        "columns": [{"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand", "Product Added": "brand"}}]
    }))
    .unwrap();
    let spec = SyntheticSpec {
        users: 800,
        items: 400,
        events,
        ..SyntheticSpec::default()
    };
    let mut builder = CatalogBuilder::new(config.clone());
    for m in Generator::new(spec) {
        let Some(event) = m["event"].as_str() else {
            continue;
        };
        let Some((index, _)) = config.event(event) else {
            continue;
        };
        // Anonymous and identified ids of one person map to one profile, as the store does.
        let who = m["userId"]
            .as_str()
            .map(|u| u[1..].to_string())
            .or_else(|| m["anonymousId"].as_str().map(|a| a[5..].to_string()));
        let profile: i64 = who.unwrap().parse().unwrap();
        let ts = parse_millis(m["timestamp"].as_str().unwrap()).unwrap();
        builder.add_event(profile, index, ts, &m["properties"]);
    }
    builder.finish()
}

#[test]
fn the_pipeline_prefers_a_personalized_model_and_is_reproducible() {
    let catalog = synthetic_catalog(30_000);
    let options = TrainingOptions::with_seed(7);
    let mut stages = Vec::new();
    let model = train(&catalog, &options, &mut |p| stages.push(p)).unwrap();

    // Every candidate, then the blend of the best two families, then (when the next-items
    // holdout placed its known items) the chosen model as it serves.
    let placed = matches!(model.chosen, Candidate::Repeat { .. });
    assert_eq!(
        model.results.len(),
        options.candidates.len() + 1 + usize::from(placed)
    );
    let chosen_base = match &model.chosen {
        Candidate::Repeat { base, .. } => base.as_ref(),
        other => other,
    };
    assert!(
        model.results.iter().all(|r| r.metrics.is_some()),
        "every candidate evaluated"
    );
    let ndcg = |name: &str| {
        model
            .results
            .iter()
            .filter(|r| r.candidate.name() == name)
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.ndcg)
            .fold(0.0, f64::max)
    };
    assert!(
        ndcg("als") > 1.3 * ndcg("popularity"),
        "als {} vs popularity {}",
        ndcg("als"),
        ndcg("popularity")
    );
    assert!(
        !matches!(
            chosen_base,
            Candidate::Popularity | Candidate::Trending { .. }
        ),
        "chose a baseline: {:?}",
        model.chosen
    );
    // The blend mixes the best two families; it serves only when 1% better than the best
    // single model, which serves otherwise.
    let (singles, blend): (Vec<_>, Vec<_>) = model
        .results
        .iter()
        .filter(|r| r.candidate.name() != "repeat")
        .partition(|r| r.candidate.name() != "blend");
    let Candidate::Blend { parts } = &blend[0].candidate else {
        panic!("no blend: {:?}", blend[0].candidate)
    };
    let mut families: Vec<(&str, f64)> = Vec::new();
    for r in &singles {
        let n = r.metrics.as_ref().unwrap().ndcg;
        match families.iter_mut().find(|f| f.0 == r.candidate.name()) {
            Some(f) => f.1 = f.1.max(n),
            None => families.push((r.candidate.name(), n)),
        }
    }
    families.sort_by(|a, b| b.1.total_cmp(&a.1));
    let names: Vec<&str> = parts.iter().map(|(_, c)| c.name()).collect();
    assert_eq!(names, vec![families[0].0, families[1].0]);
    assert!((parts[0].0 + parts[1].0 - 1.0).abs() < 1e-6 && parts[0].0 >= 0.4);
    let best_single = families[0].1;
    let blend_ndcg = blend[0].metrics.as_ref().unwrap().ndcg;
    let served = model.metrics.as_ref().map(|m| m.ndcg);
    if blend_ndcg >= 1.01 * best_single {
        assert_eq!(chosen_base.name(), "blend");
        assert_eq!(served, Some(blend_ndcg));
    } else {
        assert_eq!(served, Some(best_single), "the best NDCG@10 is served");
    }
    let holdout = model.holdout.clone().unwrap();
    assert!(holdout.test_users > 50 && holdout.evaluated_users == holdout.test_users);
    assert!(holdout.train_interactions > 9 * holdout.test_interactions / 2);
    assert_eq!(
        stages.last(),
        Some(&Progress::Fitting {
            candidate: model.chosen.name()
        })
    );

    // The same data and seed give the same choice, metrics and recommendations.
    let again = train(&catalog, &options, &mut |_| {}).unwrap();
    let metrics = |m: &affinity_model::training::TrainedModel| {
        m.results
            .iter()
            .map(|r| r.metrics.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics(&again), metrics(&model));
    assert_eq!(again.metrics, model.metrics);
    for user in 0..50 {
        assert_eq!(
            again.recommender.recommend(user, 10, &[]).unwrap(),
            model.recommender.recommend(user, 10, &[]).unwrap()
        );
    }
}

#[test]
fn tiny_stores_train_without_a_holdout_and_say_why() {
    let catalog = synthetic_catalog(10);
    let model = train(&catalog, &TrainingOptions::with_seed(1), &mut |_| {}).unwrap();
    assert!(model.holdout.is_none());
    assert!(
        model
            .holdout_skipped
            .as_deref()
            .unwrap()
            .contains("at least 20")
    );
    assert!(model.metrics.is_none());
    assert!(model.recommender.recommend(0, 3, &[]).is_ok());
}

#[test]
fn random_selection_holds_out_items_per_user() {
    let mut catalog = synthetic_catalog(30_000);
    catalog.config.model_selection = Some(affinity_core::catalog::ModelSelection::Random);
    let model = train(&catalog, &TrainingOptions::with_seed(7), &mut |_| {}).unwrap();
    let holdout = model.holdout.clone().unwrap();
    assert_eq!(
        holdout.selection,
        affinity_core::catalog::ModelSelection::Random
    );
    assert!(holdout.test_users > 100, "{holdout:?}");
    let pairs = holdout.train_interactions + holdout.test_interactions;
    assert!(
        holdout.test_interactions * 20 > pairs && holdout.test_interactions * 5 < pairs,
        "about 10% held out: {holdout:?}"
    );
    assert!(model.results.iter().all(|r| r.metrics.is_some()));
    assert!(
        !matches!(
            model.chosen,
            Candidate::Popularity | Candidate::Trending { .. }
        ),
        "{:?}",
        model.chosen
    );
}

#[test]
fn batched_recommendations_equal_one_by_one_and_a_full_sort() {
    let catalog = synthetic_catalog(20_000);
    // ALS and the blend override the batched scoring: serve each in turn.
    let als = TrainingOptions::with_seed(5)
        .candidates
        .into_iter()
        .find(|c| matches!(c, Candidate::Als(_)))
        .unwrap();
    let knn = Candidate::ItemKnn(affinity_model::ItemKnnParams::default());
    for served in [
        als.clone(),
        Candidate::Blend {
            parts: vec![(0.6, als), (0.4, knn)],
        },
    ] {
        let mut options = TrainingOptions::with_seed(5);
        options.candidates = vec![served];
        options.blend_max_items = 0;
        check_batched_equals_single(&catalog, &options);
    }
}

fn check_batched_equals_single(catalog: &ItemCatalog, options: &TrainingOptions) {
    use affinity_model::Recommender;
    use affinity_model::recommend::{RecommendRequest, personal, recommend, recommend_many};
    let model = train(catalog, options, &mut |_| {}).unwrap();
    let brand = catalog.column("brand");
    let allow = |i: u32| !i.is_multiple_of(7);
    let users: Vec<u32> = (0..catalog.users.len() as u32).step_by(3).collect();
    // The reference: score every item, sort everything, keep the head.
    let full_sort = |u: u32, request: &RecommendRequest<'_>| -> Vec<(serde_json::Value, f32)> {
        let scores = match personal(&model, Some(u)) {
            Some(u) => model.recommender.score_items(u).unwrap(),
            None => model.fallback.score_items(0).unwrap(),
        };
        let seen: Vec<u32> = if request.exclude_interacted {
            model
                .data
                .user_items(u)
                .map(|r| r.ids.to_vec())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let items = (0..scores.len() as u32)
            .filter(|&i| allow(i) && !seen.contains(&i) && scores[i as usize].is_finite());
        let mut ranked: Vec<(String, serde_json::Value, f32)> = match request.column {
            None => items
                .map(|i| {
                    let id = catalog.items[i as usize].clone();
                    (
                        id.clone(),
                        serde_json::Value::String(id),
                        scores[i as usize],
                    )
                })
                .collect(),
            Some(c) => {
                let index = catalog.column_index(c);
                let mut best: std::collections::HashMap<u32, f32> = Default::default();
                for i in items {
                    for &v in &index.of_item[i as usize] {
                        let b = best.entry(v).or_insert(f32::NEG_INFINITY);
                        *b = b.max(scores[i as usize]);
                    }
                }
                for &i in &seen {
                    for v in &index.of_item[i as usize] {
                        best.remove(v);
                    }
                }
                best.into_iter()
                    .map(|(v, s)| {
                        (
                            index.texts[v as usize].clone(),
                            index.values[v as usize].clone(),
                            s,
                        )
                    })
                    .collect()
            }
        };
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(request.k)
            .map(|(_, v, s)| (v, s))
            .collect()
    };
    for column in [None, brand] {
        for exclude_interacted in [true, false] {
            let request = RecommendRequest {
                user: None,
                k: 7,
                column,
                exclude_interacted,
                allow: &allow,
            };
            let many = recommend_many(&model, catalog, &users, &request).unwrap();
            for (&u, batched) in users.iter().zip(&many) {
                let single = recommend(
                    &model,
                    catalog,
                    &RecommendRequest {
                        user: Some(u),
                        ..request
                    },
                )
                .unwrap();
                assert_eq!(batched, &single, "user {u}");
                if u % 30 == 0 {
                    assert_eq!(single.values, full_sort(u, &request), "user {u} {column:?}");
                }
            }
        }
    }
}
