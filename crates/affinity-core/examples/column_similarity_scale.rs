//! What targeting a new item costs at scale: an audience for an item nobody engaged with looks
//! up the engaged items sharing its columns (`column_similarity`) before it is queued. Prints
//! the time of that lookup beside its baseline, the plain scan that resolved a column target
//! before (`ItemCatalog::items_matching`), on a catalog of ITEMS items (brand, category,
//! price) and INTERACTIONS interactions.
//!
//! `cargo run --release -p affinity-core --example column_similarity_scale -- [ITEMS] [INTERACTIONS]`

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use affinity_core::catalog::CatalogConfig;
use affinity_core::column_similarity::{ColumnValues, alike_by_columns, engaged_items};
use affinity_core::item_catalog::CatalogBuilder;

fn main() {
    let mut args = std::env::args().skip(1);
    let items: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let interactions: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let config: CatalogConfig = serde_json::from_value(json!({
        "events": [{"name": "Order Completed", "product_id_property": "product_id"}],
        "columns": [
            {"name": "brand", "properties": {"Order Completed": "brand"}},
            {"name": "category", "properties": {"Order Completed": "category"}},
            {"name": "price", "properties": {"Order Completed": "price"}}
        ]
    }))
    .expect("config");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut builder = CatalogBuilder::new(config);
    let started = Instant::now();
    for n in 0..interactions {
        let item = rng.random_range(0..items);
        builder.add_event(
            rng.random_range(0..interactions as i64 / 20),
            0,
            n as i64 * 1000,
            &json!({"product_id": format!("sku-{item}"), "brand": format!("brand-{}", item % 1000),
                    "category": format!("category-{}", item % 100), "price": 5 + item % 500}),
        );
    }
    let catalog = builder.finish();
    eprintln!(
        "catalog: {} items, {} interactions, built in {:.1} s",
        catalog.items.len(),
        catalog.interactions.len(),
        started.elapsed().as_secs_f64()
    );
    let brand = catalog.column("brand").expect("brand");
    let time = |label: &str, f: &mut dyn FnMut() -> usize| {
        let runs = 5;
        let mut best = f64::MAX;
        let mut found = 0;
        for _ in 0..runs {
            let t = Instant::now();
            found = f();
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!("{label:<58} {best:>9.1} ms (best of {runs})  {found} items");
    };
    // The first use builds the catalog's column indexes (cached afterwards, as on a server).
    let t = Instant::now();
    let _ = catalog.column_index(brand);
    println!(
        "{:<58} {:>9.1} ms (once per catalog)",
        "column indexes built",
        t.elapsed().as_secs_f64() * 1000.0
    );
    time("baseline: items_matching(brand = brand-7)", &mut || {
        catalog.items_matching(brand, "brand-7").len()
    });
    time("engaged_items (one pass over interactions)", &mut || {
        engaged_items(&catalog).iter().filter(|&&e| e).count()
    });
    let engaged = engaged_items(&catalog);
    let new_item: ColumnValues = vec![
        ("brand".into(), json!("brand-7")),
        ("category".into(), json!("category-7")),
        ("price".into(), json!("12.5")),
    ];
    time("alike_by_columns: one new item", &mut || {
        alike_by_columns(&catalog, std::slice::from_ref(&new_item), &engaged, 10)
            .items
            .len()
    });
    let new_brand: Vec<ColumnValues> = (0..1000)
        .map(|i| {
            vec![
                ("category".into(), json!(format!("category-{}", i % 100))),
                ("price".into(), json!(5 + i % 500)),
            ]
        })
        .collect();
    time("alike_by_columns: a new brand of 1,000 items", &mut || {
        alike_by_columns(&catalog, &new_brand, &engaged, 10)
            .items
            .len()
    });
}
