//! Scale measurement of product-based audiences, driven by `bench/audiences_scale.sh` (not a
//! test: it prints what it measured).
//!
//! Generates a store of `--users` users × `--items` items in `--brands` equal brands with
//! `--events` interactions over 90 days (user activity and item popularity follow power
//! laws; every user has at least one interaction; each user prefers two brands), builds the
//! catalog, then times `PropensityContext::build` and one audience for one brand (≈ items /
//! brands items, with up to `--related` other brands lending rows, 15 by default as in the
//! engine), and reports peak memory (VmHWM). `--earlier-cut 0` leaves out the context's
//! earlier cut (built up to 250 000 users).
//!
//! Events are generated directly (not through `affinity_core::synthetic::Generator`, whose
//! full Segment messages would make generation, not the model, dominate the run).

use std::error::Error;
use std::time::Instant;

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::CatalogBuilder;
use affinity_model::propensity::{AudienceOptions, PropensityContext, PropensityParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[path = "support/flags.rs"]
mod flags;

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const DAY_MS: i64 = 86_400_000;
const END_MS: i64 = 1_767_225_600_000;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = flags::parse(&args)?;
    let get =
        |k: &str, d: u64| -> AnyResult<u64> { Ok(flags.get(k).map_or(Ok(d), |v| v.parse())?) };
    let n_users = get("users", 1_000_000)? as u32;
    let n_items = get("items", 100_000)? as u32;
    let brands = get("brands", 100)? as u32;
    let n_events = get("events", 7_000_000)?;
    let seed = get("seed", 42)?;
    println!(
        "store: {n_users} users × {n_items} items in {brands} brands, {n_events} events; threads {}",
        rayon::current_num_threads()
    );

    let started = Instant::now();
    let config: CatalogConfig = serde_json::from_value(json!({
        "events": [
            {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
            {"name": "Product Viewed", "product_id_property": "product_id"}
        ],
        "columns": [{"name": "brand", "properties": {"Order Completed": "brand", "Product Viewed": "brand"}}]
    }))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<String> = (0..n_items).map(|i| format!("sku-{i}")).collect();
    let brand_names: Vec<String> = (0..brands).map(|b| format!("Brand {b:03}")).collect();
    // Item i belongs to brand i % brands; popularity is Zipf over a scrambled order.
    let item_weight: Vec<f64> = (0..n_items)
        .map(|i| 1.0 / (f64::from(i.wrapping_mul(2_654_435_761) % n_items) + 10.0))
        .collect();
    let by_brand: Vec<Sampler> = (0..brands)
        .map(|b| {
            Sampler::new(
                (b..n_items)
                    .step_by(brands as usize)
                    .map(|i| (i, item_weight[i as usize])),
            )
        })
        .collect();
    let all = Sampler::new((0..n_items).map(|i| (i, item_weight[i as usize])));
    let activity = Sampler::new((0..n_users).map(|u| (u, 1.0 / (f64::from(u) + 20.0).powf(0.8))));
    let prefs: Vec<[u32; 2]> = (0..n_users)
        .map(|_| [rng.random_range(0..brands), rng.random_range(0..brands)])
        .collect();

    let mut builder = CatalogBuilder::new(config);
    let span = 90 * DAY_MS;
    for n in 0..n_events {
        // The first n_users events give every user one interaction; the rest follow activity.
        let user = if n < u64::from(n_users) {
            n as u32
        } else {
            activity.sample(&mut rng)
        };
        let item = if rng.random_bool(0.8) {
            by_brand[prefs[user as usize][rng.random_range(0..2)] as usize].sample(&mut rng)
        } else {
            all.sample(&mut rng)
        };
        let ts = END_MS - span + rng.random_range(0..span);
        let event = usize::from(rng.random_bool(0.1)) ^ 1; // 10% orders, 90% views
        let props = json!({"product_id": ids[item as usize], "brand": brand_names[(item % brands) as usize]});
        builder.add_event(i64::from(user), event, ts, &props);
    }
    let catalog = builder.finish();
    println!(
        "catalog: {} users, {} items, {} interactions, generated in {:.1} s; VmHWM {} MiB",
        catalog.users.len(),
        catalog.items.len(),
        catalog.interactions.len(),
        started.elapsed().as_secs_f64(),
        peak_mib()
    );

    // `--earlier-cut 0`: the backtest time's rows only (up to 250 000 users the context
    // also fits a model one horizon earlier, whose rows train the learners).
    let params = PropensityParams {
        earlier_cut: get("earlier-cut", 1)? != 0,
        ..PropensityParams::default()
    };
    let started = Instant::now();
    let before = resident_mib();
    let context = PropensityContext::build(&catalog, &params)?;
    // What the context keeps (the engine caches up to `propensity_contexts` of them): the
    // resident memory it added, its fits' scratch returned (glibc gives large blocks back).
    println!(
        "PropensityContext::build ({} ALS fits: factors {}, {} iterations; horizon {} days): {:.1} s; the context holds about {} MiB (VmRSS after minus before; {} MiB by its own count); VmHWM {} MiB",
        if context.has_earlier_cut() { 3 } else { 2 },
        params.als.factors,
        params.als.iterations,
        params.horizon_days,
        started.elapsed().as_secs_f64(),
        resident_mib().saturating_sub(before),
        context.heap_bytes() >> 20,
        peak_mib()
    );

    let column = catalog.column("brand").ok_or("no brand column")?;
    let target = catalog.items_matching(column, &brand_names[0]);
    // As the engine asks for a brand: the other brands (up to 15) lend their rows to the
    // learners (`--related 0`: the target's own rows only).
    let related = get("related", 15)? as usize;
    let options = AudienceOptions {
        related: brand_names[1..]
            .iter()
            .take(related)
            .map(|b| catalog.items_matching(column, b))
            .collect(),
        ..AudienceOptions::default()
    };
    let mut in_target = vec![false; catalog.items.len()];
    for &i in &target {
        in_target[i as usize] = true;
    }
    let target_interactions = catalog
        .interactions
        .iter()
        .filter(|x| in_target[x.item as usize])
        .count();
    // Twice: the second run shows the steady state (allocator and caches warm).
    for run in 1..=2 {
        let started = Instant::now();
        let scores = context.audience(&target, &options)?;
        let seconds = started.elapsed().as_secs_f64();
        let top = scores.top_fraction(0.20);
        let at20 = scores
            .curve
            .iter()
            .find(|p| (p.fraction - 0.20).abs() < 1e-9)
            .ok_or("no 20% point")?;
        println!(
            "audience run {run}: target {} ({} items, {} of their interactions; {} related targets), 20% audience = {} users: {seconds:.2} s; backtest: {} eligible, {} positives, base rate {:.4}, expected lift@20% {:.2}, AP {:.3}{}; VmHWM {} MiB",
            brand_names[0],
            target.len(),
            target_interactions,
            options.related.len(),
            top.len(),
            scores.eligible_in_backtest,
            scores.positives_in_backtest,
            scores.base_rate,
            at20.lift,
            scores.average_precision,
            scores
                .fallback_reason
                .as_deref()
                .map(|r| format!(" (fallback: {r})"))
                .unwrap_or_default(),
            peak_mib()
        );
    }
    Ok(())
}

/// Cumulative weights for sampling by binary search.
struct Sampler {
    ids: Vec<u32>,
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(weights: impl Iterator<Item = (u32, f64)>) -> Sampler {
        let mut acc = 0.0;
        let (ids, cumulative) = weights
            .map(|(i, w)| {
                acc += w;
                (i, acc)
            })
            .unzip();
        Sampler { ids, cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random::<f64>() * total;
        let k = self
            .cumulative
            .partition_point(|c| *c <= x)
            .min(self.ids.len().saturating_sub(1));
        self.ids[k]
    }
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
/// Peak resident memory of the process so far (VmHWM), MiB.
fn peak_mib() -> u64 {
    status_mib("VmHWM:")
}

/// Resident memory of the process now (VmRSS), MiB.
fn resident_mib() -> u64 {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
