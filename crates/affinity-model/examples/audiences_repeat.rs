//! Benchmark of product-based audiences on a generated repeat-purchase store, driven by
//! `bench/audiences_repeat.sh` (not a test: it prints what it measured).
//!
//! Store: `affinity_core::synthetic` with repeat purchases on (a share of shoppers re-buy
//! one to three staples, each on its own 7–45-day cycle, mostly of their preferred brand),
//! on top of the generator's preference-driven views, adds and orders. Only orders are
//! interactions: the question is "who will buy".
//!
//! Protocol (next window): the cutoff is `--horizon-days` before the last event; the catalog
//! is built only from orders before it; every catalog user is scored; positives of a target
//! are the scored users who ordered it in the window. Targets: the `--products` most-ordered
//! products, the `--brands` most-ordered brands, and every category. Reported per kind:
//! mean lift of the top 20% and average precision over the whole ranking, for the learned
//! ranking (guard off), the served ranking (the API's: `PropensityContext::audience` with
//! its default options) and each heuristic, computed here from the catalog.
//!
//! Usage: `audiences_repeat [--users N] [--items N] [--events N] [--seed N]
//! [--horizon-days N|auto] [--products N] [--brands N] [--internal-only]` and the learner flags
//! of `support/audience_flags.rs`. `--internal-only` prints only the learned ranking's own
//! backtest estimate (what tuning may look at) and reads no evaluation labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::time::Instant;

use affinity_core::catalog::CatalogConfig;
use affinity_core::item_catalog::{CatalogBuilder, ItemCatalog};
use affinity_core::synthetic::{Generator, RepeatPurchases, SyntheticSpec};
use affinity_core::timestamp::parse_millis;
use affinity_model::propensity::{
    AudienceOptions, PropensityContext, PropensityParams, choose_horizon,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

#[path = "support/audience_flags.rs"]
mod audience_flags;
#[path = "support/flags.rs"]
mod flags;

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Related targets per audience, as the engine's `MAX_RELATED`.
const RELATED: usize = 15;
const DAY_MS: i64 = 86_400_000;
const TOP: f64 = 0.20;
/// With `--horizon-days auto`: days of data kept after the cutoff to evaluate on.
const AUTO_WINDOW_DAYS: u32 = 30;

struct Order {
    profile: i64,
    timestamp: i64,
    properties: Value,
}

const NAMES: [&str; 9] = [
    "learned",
    "served",
    "random",
    "past_count",
    "past_share",
    "target_recency",
    "decayed_count",
    "most_active",
    "most_recent",
];
const FIRST_BASELINE: usize = 3;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = flags::parse_allowing_switches(&args)?;
    let internal_only = flags.contains_key("internal-only");
    let options = audience_flags::audience_options(&flags)?;
    let get =
        |k: &str, d: u64| -> AnyResult<u64> { Ok(flags.get(k).map_or(Ok(d), |v| v.parse())?) };
    // `--horizon-days auto`: each audience's horizon is chosen from the catalog as the API
    // does when `horizon_days` is not given (`choose_horizon`), capped at the 30 days of data
    // after the cutoff, and each target is evaluated on its own window (cutoff, cutoff + h].
    // With a month the shortest horizon chosen from a rhythm, on a history of 60 days or
    // more that is 30 days for every target.
    let auto_horizon = flags.get("horizon-days").is_some_and(|v| v == "auto");
    let horizon = if auto_horizon {
        AUTO_WINDOW_DAYS
    } else {
        get("horizon-days", 30)? as u32
    };
    let spec = SyntheticSpec {
        users: get("users", 20_000)? as u32,
        items: get("items", 3_000)? as u32,
        brands: 40,
        categories: 20,
        events: get("events", 300_000)?,
        seed: get("seed", 42)?,
        days: 180,
        repeat: Some(RepeatPurchases::default()),
        ..SyntheticSpec::default()
    };
    let n_products = get("products", 20)? as usize;
    let n_brands = get("brands", 15)? as usize;

    let started = Instant::now();
    let mut orders = Vec::new();
    for m in Generator::new(spec.clone()) {
        if m["event"] != "Order Completed" {
            continue;
        }
        // Anonymous and identified ids of one person are one profile, as in the store.
        let who = m["userId"]
            .as_str()
            .and_then(|u| u.strip_prefix('u'))
            .or_else(|| {
                m["anonymousId"]
                    .as_str()
                    .and_then(|a| a.strip_prefix("anon-"))
            })
            .ok_or("a sender")?;
        orders.push(Order {
            profile: who.parse()?,
            timestamp: m["timestamp"]
                .as_str()
                .and_then(parse_millis)
                .ok_or("timestamp")?,
            properties: m["properties"].clone(),
        });
    }
    orders.sort_by_key(|o| (o.timestamp, o.profile));
    let last = orders.last().ok_or("no orders")?.timestamp;
    let cutoff = last - i64::from(horizon) * DAY_MS;

    let config: CatalogConfig = serde_json::from_value(json!({
        "events": [{"name": "Order Completed", "product_id_property": "products[].product_id"}],
        "columns": [
            {"name": "brand", "properties": {"Order Completed": "brand"}},
            {"name": "category", "properties": {"Order Completed": "category"}}
        ]
    }))?;
    let mut builder = CatalogBuilder::new(config);
    for o in orders.iter().filter(|o| o.timestamp < cutoff) {
        builder.add_event(o.profile, 0, o.timestamp, &o.properties);
    }
    let catalog = builder.finish();
    let n_users = catalog.users.len();
    println!(
        "store: {} users, {} items, {} events + staple orders (seed {}), {} orders; cutoff {} days before the last; catalog {} item-orders, {n_users} users; generated in {:.1} s; threads {}",
        spec.users,
        spec.items,
        spec.events,
        spec.seed,
        orders.len(),
        horizon,
        catalog.interactions.len(),
        started.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );

    println!("model: {}", audience_flags::describe(&options));
    // The future: who ordered which item in the window, and when.
    let mut bought: Vec<(u32, u32, i64)> = Vec::new();
    for o in orders.iter().filter(|o| o.timestamp >= cutoff) {
        let Some(u) = catalog.user_index(o.profile) else {
            continue;
        };
        for p in o.properties["products"].as_array().into_iter().flatten() {
            if let Some(i) = p["product_id"]
                .as_str()
                .and_then(|id| catalog.item_index(id))
            {
                bought.push((u, i, o.timestamp));
            }
        }
    }

    let mut targets: Vec<(&str, String, Vec<u32>)> = Vec::new();
    let mut item_orders = vec![0usize; catalog.items.len()];
    for x in &catalog.interactions {
        item_orders[x.item as usize] += 1;
    }
    let mut by_orders: Vec<u32> = (0..catalog.items.len() as u32).collect();
    by_orders.sort_by_key(|&i| (std::cmp::Reverse(item_orders[i as usize]), i));
    for &i in by_orders.iter().take(n_products) {
        targets.push(("product", catalog.items[i as usize].clone(), vec![i]));
    }
    // Each kind's targets, the most ordered first: an audience's related targets are the
    // first 15 others of its kind, as the engine chooses them (audience_target.rs).
    let mut ranked: BTreeMap<&str, Vec<(String, Vec<u32>)>> = BTreeMap::new();
    ranked.insert(
        "product",
        by_orders
            .iter()
            .filter(|&&i| item_orders[i as usize] > 0)
            .map(|&i| (catalog.items[i as usize].clone(), vec![i]))
            .collect(),
    );
    for (kind, limit) in [("brand", n_brands), ("category", usize::MAX)] {
        let column = catalog.column(kind).ok_or("column")?;
        let mut values: Vec<(usize, String, Vec<u32>)> = catalog
            .column_values(column, None, 10_000)
            .into_iter()
            .filter_map(|v| v.value.as_str().map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|v| {
                let items = catalog.items_matching(column, &v);
                let n = items.iter().map(|&i| item_orders[i as usize]).sum();
                (n, v, items)
            })
            .collect();
        values.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.insert(
            kind,
            values
                .iter()
                .filter(|v| v.0 > 0)
                .map(|v| (v.1.clone(), v.2.clone()))
                .collect(),
        );
        for (_, v, items) in values.into_iter().take(limit) {
            targets.push((kind, v, items));
        }
    }

    // sums[kind][method] = (lift, ap, targets)
    let mut sums: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut served_by: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut horizons: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    let mut seconds = 0f64;
    // The learned ranking's own cross-fitted backtest estimate (before the cutoff): what
    // tuning may look at. kind → (lift@20%, AP, targets with backtest positives).
    let mut internal: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    let target_horizon: Vec<u32> = targets
        .iter()
        .map(|(_, _, items)| {
            if auto_horizon {
                choose_horizon(&catalog, items, None)
                    .horizon_days
                    .min(AUTO_WINDOW_DAYS)
            } else {
                horizon
            }
        })
        .collect();
    // One context (and one set of baselines) per horizon used, as the engine caches them.
    let mut contexts: BTreeMap<u32, (PropensityContext, Baselines)> = BTreeMap::new();
    for &h in &target_horizon {
        if contexts.contains_key(&h) {
            continue;
        }
        let params = PropensityParams {
            horizon_days: h,
            ..PropensityParams::default()
        };
        let started = Instant::now();
        let context = PropensityContext::build(&catalog, &params)?;
        println!(
            "context build ({h}-day horizon) {:.1} s",
            started.elapsed().as_secs_f64()
        );
        contexts.insert(h, (context, Baselines::new(&catalog, cutoff, h)));
    }
    for ((kind, name, items), &h) in targets.iter().zip(&target_horizon) {
        *horizons.entry((kind, h)).or_default() += 1;
        let (context, baselines) = &contexts[&h];
        let until = cutoff + i64::from(h) * DAY_MS;
        let started = Instant::now();
        let options = AudienceOptions {
            related: ranked[kind]
                .iter()
                .filter(|(other, _)| other != name)
                .take(RELATED)
                .map(|(_, items)| items.clone())
                .collect(),
            ..options.clone()
        };
        let learned = context.audience(
            items,
            &AudienceOptions {
                best_of_heuristics: false,
                ..options.clone()
            },
        )?;
        if learned.positives_in_backtest > 0 {
            let e = internal.entry(kind).or_default();
            e.0 += learned
                .curve
                .iter()
                .find(|p| (p.fraction - TOP).abs() < 1e-9)
                .map_or(0.0, |p| p.lift);
            e.1 += learned.average_precision;
            e.2 += 1;
        }
        if internal_only {
            seconds += started.elapsed().as_secs_f64();
            continue;
        }
        let served = context.audience(items, &options)?;
        seconds += started.elapsed().as_secs_f64();
        let in_target: HashSet<u32> = items.iter().copied().collect();
        let mut positive = vec![false; n_users];
        for &(u, i, t) in &bought {
            if t < until && in_target.contains(&i) {
                positive[u as usize] = true;
            }
        }
        if !positive.iter().any(|&p| p) {
            continue;
        }
        *served_by
            .entry((kind, served.ranking.served.clone()))
            .or_default() += 1;
        let rankings = [
            learned.ranked.iter().map(|&(u, _)| u).collect::<Vec<u32>>(),
            served.ranked.iter().map(|&(u, _)| u).collect(),
            baselines.random.clone(),
        ];
        let heuristics = baselines.target(&catalog, &in_target);
        let row = sums
            .entry(kind)
            .or_insert_with(|| vec![(0.0, 0.0); NAMES.len()]);
        *counted.entry(kind).or_default() += 1;
        for (k, ranking) in rankings.iter().chain(heuristics.iter()).enumerate() {
            let (lift, ap) = measure(ranking, &positive);
            row[k].0 += lift;
            row[k].1 += ap;
        }
        let _ = name;
    }

    println!(
        "\nthe learned ranking's own 2-fold backtest before the cutoff (no evaluation labels read): mean lift@20% / AP"
    );
    for (kind, (lift, ap, n)) in &internal {
        let n = (*n).max(1) as f64;
        println!("  {kind:<9} {:>5.2}  {:.3}", lift / n, ap / n);
    }
    for (kind, row) in &sums {
        let n = counted[kind] as f64;
        println!("\n{kind} audiences ({n} targets with positives): mean lift@20% / AP");
        for (k, name) in NAMES.iter().enumerate() {
            println!("  {:<15} {:>5.2}  {:.3}", name, row[k].0 / n, row[k].1 / n);
        }
        let best = |m: fn(&(f64, f64)) -> f64| {
            (FIRST_BASELINE..NAMES.len())
                .max_by(|&a, &b| m(&row[a]).total_cmp(&m(&row[b])))
                .unwrap_or(FIRST_BASELINE)
        };
        let (bl, ba) = (best(|r| r.0), best(|r| r.1));
        for k in [0, 1] {
            println!(
                "  {} vs best heuristic: lift@20% {:.2} vs {:.2} ({}) = {:.3}x; AP {:.3} vs {:.3} ({}) = {:.3}x",
                NAMES[k],
                row[k].0 / n,
                row[bl].0 / n,
                NAMES[bl],
                row[k].0 / row[bl].0,
                row[k].1 / n,
                row[ba].1 / n,
                NAMES[ba],
                row[k].1 / row[ba].1
            );
        }
    }
    println!("\nserved rankings: {served_by:?}");
    println!("horizons (kind, days): targets {horizons:?}");
    println!(
        "time: {} targets, {:.2} s of audiences (learned + served each)",
        targets.len(),
        seconds
    );
    Ok(())
}

/// Lift of the top 20% and average precision over the whole ranking.
fn measure(ranking: &[u32], positive: &[bool]) -> (f64, f64) {
    let n = ranking.len();
    let total = positive.iter().filter(|&&p| p).count() as f64;
    if n == 0 || total == 0.0 {
        return (0.0, 0.0);
    }
    let k = ((TOP * n as f64).round() as usize).clamp(1, n);
    let hits = ranking[..k]
        .iter()
        .filter(|&&u| positive[u as usize])
        .count() as f64;
    let (mut found, mut ap) = (0f64, 0f64);
    for (i, &u) in ranking.iter().enumerate() {
        if positive[u as usize] {
            found += 1.0;
            ap += found / (i + 1) as f64;
        }
    }
    ((hits / k as f64) / (total / n as f64), ap / total)
}

/// Rank by (primary, secondary) descending, then user index.
fn rank_by(primary: &[f64], secondary: &[f64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..primary.len() as u32).collect();
    order.sort_by(|&a, &b| {
        let (a_, b_) = (a as usize, b as usize);
        primary[b_]
            .total_cmp(&primary[a_])
            .then(secondary[b_].total_cmp(&secondary[a_]))
            .then(a.cmp(&b))
    });
    order
}

/// The marketer's rankings, computed here from the catalog (independently of the model's
/// own feature code), ties broken as a marketer would: by the other obvious signal.
struct Baselines {
    random: Vec<u32>,
    cutoff: i64,
    half_life_days: f64,
    count: Vec<f64>,
    recency: Vec<f64>,
    days: Vec<f64>,
}

impl Baselines {
    fn new(catalog: &ItemCatalog, cutoff: i64, horizon: u32) -> Baselines {
        let n = catalog.users.len();
        let mut random: Vec<u32> = (0..n as u32).collect();
        random.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
        let mut count = vec![0f64; n];
        let mut recency = vec![f64::MIN; n];
        let mut day_set = HashSet::new();
        for x in &catalog.interactions {
            count[x.user as usize] += 1.0;
            recency[x.user as usize] = recency[x.user as usize].max(x.timestamp as f64);
            day_set.insert((x.user, x.timestamp.div_euclid(DAY_MS)));
        }
        let mut days = vec![0f64; n];
        for (u, _) in day_set {
            days[u as usize] += 1.0;
        }
        Baselines {
            random,
            cutoff,
            half_life_days: f64::from(horizon),
            count,
            recency,
            days,
        }
    }

    /// past_count, past_share, target_recency, decayed_count, most_active, most_recent.
    fn target(&self, catalog: &ItemCatalog, target: &HashSet<u32>) -> [Vec<u32>; 6] {
        let n = catalog.users.len();
        let mut count = vec![0f64; n];
        let mut last = vec![f64::MIN; n];
        let mut decayed = vec![0f64; n];
        let mut day_set: HashMap<u32, HashSet<i64>> = HashMap::new();
        for x in catalog
            .interactions
            .iter()
            .filter(|x| target.contains(&x.item))
        {
            let u = x.user as usize;
            count[u] += 1.0;
            last[u] = last[u].max(x.timestamp as f64);
            let age = (self.cutoff - x.timestamp) as f64 / DAY_MS as f64;
            decayed[u] += 0.5f64.powf(age / self.half_life_days);
            day_set
                .entry(x.user)
                .or_default()
                .insert(x.timestamp.div_euclid(DAY_MS));
        }
        let mut share = vec![0f64; n];
        for (u, d) in day_set {
            share[u as usize] = d.len() as f64 / self.days[u as usize].max(1.0);
        }
        [
            rank_by(&count, &self.recency),
            rank_by(&share, &count),
            rank_by(&last, &count),
            rank_by(&decayed, &self.recency),
            rank_by(&self.count, &self.recency),
            rank_by(&self.recency, &self.count),
        ]
    }
}
