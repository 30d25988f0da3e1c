//! Benchmark: computing a personalized-items trait for every user, batched
//! (`recommend_many`, ALS scoring cache-blocked batches) against the baseline of one
//! `recommend` call per user, in the same process on the same model. Both run on one
//! thread so the ratio is the algorithm's, not the scheduler's.
//!
//! Usage: cargo run --release -p affinity-model --example trait_speed -- [USERS] [ITEMS] [SAMPLE] [COLUMN] [MODEL]
//! (COLUMN: `item_id`, the default, or `brand` for values aggregated from items. MODEL: `als`,
//! the default, or `blend`: ALS 0.7 + ItemKNN 0.3, as training chose at 1M users.)
//! (SAMPLE users are timed; the per-user rate extrapolates to all users.)

use std::time::Instant;

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::CatalogBuilder;
use affinity_core::synthetic::{Generator, SyntheticSpec};
use affinity_core::timestamp::parse_millis;
use affinity_model::recommend::{RecommendRequest, recommend, recommend_many};
use affinity_model::training::{Candidate, TrainingOptions, train};
use affinity_model::{AlsParams, ItemKnnParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let by_brand = raw.get(3).is_some_and(|c| c == "brand");
    let blend = raw.get(4).is_some_and(|m| m == "blend");
    let args: Vec<usize> = raw
        .iter()
        .take(3)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let users = args.first().copied().unwrap_or(200_000) as u32;
    let items = args.get(1).copied().unwrap_or(100_000) as u32;
    let sample = args.get(2).copied().unwrap_or(4_096);
    let config: CatalogConfig = serde_json::from_value(serde_json::json!({
        "events": [{"name": "Product Viewed", "product_id_property": "product_id"},
                   {"name": "Product Added", "product_id_property": "product_id"},
                   {"name": "Order Completed", "product_id_property": "product_id"}],
        "columns": [{"name": "brand", "properties": {"Product Viewed": "brand", "Product Added": "brand", "Order Completed": "brand"}}]}))?;
    let spec = SyntheticSpec {
        users,
        items,
        brands: 100,
        events: u64::from(users) * 5,
        ..SyntheticSpec::default()
    };
    let mut builder = CatalogBuilder::new(config.clone());
    for m in Generator::new(spec) {
        let (Some(event), Some(ts)) = (m["event"].as_str(), m["timestamp"].as_str()) else {
            continue;
        };
        let Some((index, _)) = config.event(event) else {
            continue;
        };
        let who = m["userId"]
            .as_str()
            .or(m["anonymousId"].as_str())
            .unwrap_or("");
        let profile: i64 = who
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()?;
        builder.add_event(
            profile,
            index,
            parse_millis(ts).unwrap_or(0),
            &m["properties"],
        );
    }
    let catalog = builder.finish();
    let mut options = TrainingOptions::with_seed(1);
    let als = Candidate::Als(AlsParams {
        iterations: 3,
        ..AlsParams::default()
    });
    options.candidates = if blend {
        vec![Candidate::Blend {
            parts: vec![
                (0.7, als),
                (0.3, Candidate::ItemKnn(ItemKnnParams::default())),
            ],
        }]
    } else {
        vec![als]
    };
    options.blend_max_items = 0;
    let model = train(&catalog, &options, &mut |_| {})?;
    let allow = |_: u32| true;
    let column = if by_brand {
        catalog.column("brand")
    } else {
        None
    };
    let request = RecommendRequest {
        user: None,
        k: 10,
        column,
        exclude_interacted: true,
        allow: &allow,
    };
    let chosen: Vec<u32> = (0..catalog.users.len() as u32).take(sample).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (one_by_one, batched) =
        pool.install(|| -> Result<(f64, f64), affinity_model::ModelError> {
            let t = Instant::now();
            for &u in &chosen {
                recommend(
                    &model,
                    &catalog,
                    &RecommendRequest {
                        user: Some(u),
                        ..request
                    },
                )?;
            }
            let one = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for batch in chosen.chunks(256) {
                recommend_many(&model, &catalog, batch, &request)?;
            }
            Ok((one, t.elapsed().as_secs_f64()))
        })?;
    let per_user = |s: f64| s / chosen.len() as f64 * 1e3;
    println!(
        "catalog: {} users × {} items, {} interactions; {}; column {}; {} users timed, 1 thread",
        catalog.users.len(),
        catalog.items.len(),
        catalog.interactions.len(),
        if blend {
            "blend of ALS 64 factors and ItemKNN"
        } else {
            "ALS 64 factors"
        },
        if by_brand { "brand" } else { "item_id" },
        chosen.len()
    );
    println!(
        "baseline, recommend() per user: {:.3} ms/user",
        per_user(one_by_one)
    );
    println!(
        "recommend_many(), batches of 256: {:.3} ms/user ({:.2}× the baseline's time)",
        per_user(batched),
        batched / one_by_one
    );
    println!(
        "extrapolated to all {} users on 2 threads: {:.0} s batched vs {:.0} s one by one",
        catalog.users.len(),
        per_user(batched) * catalog.users.len() as f64 / 2e3,
        per_user(one_by_one) * catalog.users.len() as f64 / 2e3
    );
    Ok(())
}
