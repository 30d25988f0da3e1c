//! Bayes ceilings of the repeat shop's next-order audiences (not the product: yardsticks for
//! `bench/audiences_repeat.sh`'s bar). How far above "share of past orders" could any ranking
//! get on that data, and what would it have to know? Each ceiling ranks the tested shoppers
//! by their chance of the target given some of the generator's own truth.
//!
//! For a next-order split (DIR/train.jsonl, DIR/test.json, as `bench/audiences_http.py
//! split-repeat` writes them) it rebuilds the generator with the same flags and reads each
//! tested shopper's true tastes (two categories and a brand, and so one pick's chance of each
//! item), how often they act, and their staples (item and cycle). From the training messages
//! it takes when the shopper last ordered before the held-out order, when each staple was last
//! bought (staple orders are told apart by their `r-` order ids, which the product does not
//! read), and which products their other orders, views and cart adds picked.
//!
//! What the held-out order is: drawing the staples' purchases after their last seen one (the
//! generator's jitter and skips; a draw with a purchase before the last order, which would have
//! been seen, is dropped), and with the main stream's orders Poisson at the shopper's rate, it
//! is a main-stream order or one of the staples with chances that depend on what is known:
//!
//! 0. `oracle`: it is the only order after the last seen (the protocol's whole truth);
//! 1. `oracle_next`: it is the first order after the last seen, and comes before the end;
//! 2. `oracle_now`: it is the first order after the end, none having come since the last seen
//!    (what a ranking made at the end of the messages is asked in real use);
//! 3. `oracle_rates`: no timing at all, the shopper's long-run rates of each.
//!
//! A target's chance is then that of a main-stream order holding it (one pick and 0–2 more, by
//! the shopper's tastes) plus that of the order being a staple of it. Those four know the true
//! tastes. Three more infer them, by the exact posterior under the generator's model and prior:
//!
//! 4. `oracle_orders`: as 0, tastes inferred from the main-stream orders' products and the
//!    staples' items (what a ranking learned from orders alone could at best know, and more:
//!    it is told the staples and their timing);
//! 5. `oracle_views`: as 4, with the views' and cart adds' products too;
//! 6. `oracle_blind`: no staple known: tastes from every order's products, every order taken
//!    for a main-stream one (a posterior of the wrong model, not a bound: what tastes alone
//!    explain, without re-buying).
//!
//! Ranking by 0, 4 or 5's chances is the best a ranking knowing that much can expect to do, up
//! to the draws' noise and the Poisson approximation of the main stream: 4 bounds what can be
//! learned from the orders. 1, 2 and 3 are reference columns, not bounds: the tested shoppers are
//! chosen by having exactly one order left, which they do not weigh.
//!
//! Writes DIR/oracle.json: per tested shopper, the seven chances of each category, each brand
//! with orders and the `--products` most ordered products (default 50); the bench's scorer
//! ranks by them and prints them beside the heuristics.
//!
//! A window split (`split-repeat-window`: a common cut, test.json's `cut`) asks instead who
//! orders the target within a span after the cut: each of `--horizons` (days, default 30,60:
//! the audiences' horizons there) and the whole rest of the run. Everything up to the cut is
//! seen; a shopper's chance is one minus the chance that neither a main-stream order holding
//! the target (Poisson, thinned) nor a purchase of a staple of it comes within the span, with
//! the true tastes (`oracle`), or tastes inferred from the orders (`oracle_orders`) or from
//! every event (`oracle_views`), staples and timing told as above.
//!
//! Usage: `repeat_oracle DIR [--draws N] [--products N] [--horizons D,D] [affinity generate
//! flags]` (the flags the split's messages were generated with; `--repeat` is implied).

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};

use affinity_core::synthetic::{
    Generator, MAX_EXTRA_PRODUCTS, ORDER_SHARE, RepeatPurchases, STAPLE_JITTER, StapleTruth,
    SyntheticSpec, TasteModel, brand_name, category_name,
};
use affinity_core::timestamp::parse_millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

struct Args {
    dir: String,
    draws: u32,
    products: usize,
    /// A window split's horizons, in days (the end of the run is always one more).
    horizons: Vec<u32>,
    spec: SyntheticSpec,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: repeat_oracle DIR [--draws N] [--products N] [generate flags]")?;
    let mut spec = SyntheticSpec {
        repeat: Some(RepeatPurchases::default()),
        ..SyntheticSpec::default()
    };
    let (mut draws, mut products, mut horizons) = (2_000, 50, vec![30, 60]);
    while let Some(flag) = args.next() {
        if flag == "--repeat" {
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let r = spec.repeat.as_mut().expect("set above");
        match flag.as_str() {
            "--draws" => draws = value.parse()?,
            "--products" => products = value.parse()?,
            "--horizons" => {
                horizons = (value.split(','))
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--users" => spec.users = value.parse()?,
            "--items" => spec.items = value.parse()?,
            "--brands" => spec.brands = value.parse()?,
            "--categories" => spec.categories = value.parse()?,
            "--events" => spec.events = value.parse()?,
            "--seed" => spec.seed = value.parse()?,
            "--days" => spec.days = value.parse()?,
            "--repeat-share" => r.share_of_users = value.parse()?,
            "--repeat-max-staples" => r.max_staples = value.parse()?,
            "--repeat-min-cycle-days" => r.min_cycle_days = value.parse()?,
            "--repeat-max-cycle-days" => r.max_cycle_days = value.parse()?,
            "--repeat-brand-loyalty" => r.brand_loyalty = value.parse()?,
            "--repeat-skip" => r.skip = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(Args {
        dir,
        draws,
        products,
        horizons,
        spec,
    })
}

/// The user index behind a generated message's `userId` ("u7") or `anonymousId` ("anon-7").
fn user_of(m: &Value) -> Option<u32> {
    let id = m["userId"].as_str().or(m["anonymousId"].as_str())?;
    id.strip_prefix("anon-")
        .or(id.strip_prefix('u'))?
        .parse()
        .ok()
}

fn item_of(product_id: &str) -> Option<u32> {
    product_id.strip_prefix("sku-")?.parse().ok()
}

/// What the training messages show of each user.
#[derive(Default)]
struct Seen {
    last_order: HashMap<u32, i64>,
    ordered: HashMap<u32, u64>,
    /// The products of each user's main-stream orders (staple orders left out: the staples
    /// are known), and of their views and cart adds.
    ordered_by: HashMap<u32, Vec<u32>>,
    browsed_by: HashMap<u32, Vec<u32>>,
    staple_lines: HashMap<u32, Vec<u32>>,
}

fn read_train(path: &str) -> Result<Seen, Box<dyn Error>> {
    let mut seen = Seen::default();
    for line in BufReader::new(File::open(path)?).lines() {
        let m: Value = serde_json::from_str(&line?)?;
        let (Some(user), Some(t)) = (user_of(&m), m["timestamp"].as_str().and_then(parse_millis))
        else {
            continue;
        };
        if m["type"] != "track" {
            continue;
        }
        if m["event"] == "Product Viewed" || m["event"] == "Product Added" {
            if let Some(item) = m["properties"]["product_id"].as_str().and_then(item_of) {
                seen.browsed_by.entry(user).or_default().push(item);
            }
            continue;
        }
        if m["event"] != "Order Completed" {
            continue;
        }
        let last = seen.last_order.entry(user).or_insert(t);
        *last = (*last).max(t);
        let products = m["properties"]["products"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let items: Vec<u32> = products
            .iter()
            .filter_map(|p| p["product_id"].as_str().and_then(item_of))
            .collect();
        for &item in &items {
            *seen.ordered.entry(item).or_default() += 1;
        }
        if m["properties"]["order_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("r-"))
        {
            seen.staple_lines.entry(user).or_default().extend(items);
        } else {
            seen.ordered_by.entry(user).or_default().extend(items);
        }
    }
    Ok(seen)
}

/// A target: its kind and value as the bench names them, and its items.
struct Target {
    kind: &'static str,
    value: String,
    items: Vec<u32>,
}

/// Each target's share of a pick vector (one pick's chance of each item).
fn masses(targets: &[Target], pick: &[f64]) -> Vec<f64> {
    targets
        .iter()
        .map(|t| t.items.iter().map(|&i| pick[i as usize]).sum())
        .collect()
}

/// The posterior over a shopper's tastes (the generator's model and prior: two uniform
/// categories and a brand), given the items their main-stream events picked and their staples'
/// items (a staple is of their brand with chance `loyalty`, else of one of their categories);
/// summed over the likeliest tastes, up to 4 000 of them, or fewer where those hold all but
/// 1e-4 of it (the cap binds for a shopper with few orders; summing over every taste moved
/// no ceiling by more than 0.004 in a check). The generator drops a staple drawn from a
/// group with no items, so such a group holds none of a shopper's staples; that the number of
/// staples then depends on the tastes is not weighed (`main` warns where it could matter).
struct TastePosterior<'a> {
    model: &'a TasteModel,
    loyalty: f64,
    empty_category: Vec<bool>,
    empty_brand: Vec<bool>,
    /// Each target's share of a pick from popularity, each category and each brand, weighed
    /// by the chance of such a pick.
    base: Vec<f64>,
    category: Vec<Vec<f64>>,
    brand: Vec<Vec<f64>>,
}

impl<'a> TastePosterior<'a> {
    fn new(
        model: &'a TasteModel,
        loyalty: f64,
        [empty_category, empty_brand]: [Vec<bool>; 2],
        targets: &[Target],
    ) -> Self {
        let (p, c) = (model.preference, model.category_pick);
        let scaled = |pick: &[f64], by: f64| -> Vec<f64> {
            masses(targets, pick).into_iter().map(|m| m * by).collect()
        };
        Self {
            model,
            loyalty,
            empty_category,
            empty_brand,
            base: scaled(&model.popular, 1.0 - p),
            category: (model.category.iter())
                .map(|g| scaled(g, p * c / 2.0))
                .collect(),
            brand: (model.brand.iter())
                .map(|g| scaled(g, p * (1.0 - c)))
                .collect(),
        }
    }

    /// Each target's posterior mean chance of being in a main-stream order.
    fn order_chances(&self, lines: &[u32], staples: &[u32]) -> Vec<f64> {
        self.mean(&self.tastes(lines, staples), |q| q)
    }

    /// Each target's posterior mean of `f` of its chance of being in a main-stream order.
    fn mean(&self, tastes: &[(f64, [u32; 2], u32)], f: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut out = vec![0.0; self.base.len()];
        for &(w, [c1, c2], b) in tastes {
            let (c1, c2, b) = (
                &self.category[c1 as usize],
                &self.category[c2 as usize],
                &self.brand[b as usize],
            );
            for (t, o) in out.iter_mut().enumerate() {
                *o += w * f(order_holds(self.base[t] + c1[t] + c2[t] + b[t]));
            }
        }
        out
    }

    /// The likeliest tastes and their posterior weights (summing to 1).
    fn tastes(&self, lines: &[u32], staples: &[u32]) -> Vec<(f64, [u32; 2], u32)> {
        let m = self.model;
        let (p, c) = (m.preference, m.category_pick);
        let (n_categories, n_brands) = (m.category.len(), m.brand.len());
        // The lines each brand's part touches (every line for an empty brand's dense part).
        let touched: Vec<Vec<usize>> = (0..n_brands)
            .map(|b| {
                (0..lines.len())
                    .filter(|&l| m.brand[b][lines[l] as usize] > 0.0)
                    .collect()
            })
            .collect();
        let mut tastes: Vec<(f64, [u32; 2], u32)> =
            Vec::with_capacity(n_categories * n_categories * n_brands);
        let mut without_brand = vec![0.0; lines.len()];
        for c1 in 0..n_categories {
            for c2 in 0..n_categories {
                let mut log = 0.0;
                for (l, &i) in lines.iter().enumerate() {
                    let i = i as usize;
                    without_brand[l] = (1.0 - p) * m.popular[i]
                        + p * c / 2.0 * (m.category[c1][i] + m.category[c2][i]);
                    log += without_brand[l].ln();
                }
                for (b, lines_of_b) in touched.iter().enumerate() {
                    let picks: f64 = lines_of_b
                        .iter()
                        .map(|&l| {
                            let a = without_brand[l];
                            (a + p * (1.0 - c) * m.brand[b][lines[l] as usize]).ln() - a.ln()
                        })
                        .sum();
                    let chosen: f64 = staples
                        .iter()
                        .map(|&i| {
                            let i = i as usize;
                            let of =
                                |empty: bool, group: &[f64]| if empty { 0.0 } else { group[i] };
                            (self.loyalty * of(self.empty_brand[b], &m.brand[b])
                                + (1.0 - self.loyalty) / 2.0
                                    * (of(self.empty_category[c1], &m.category[c1])
                                        + of(self.empty_category[c2], &m.category[c2])))
                            .max(1e-300)
                            .ln()
                        })
                        .sum();
                    tastes.push((
                        log + picks + chosen + m.brand_prior[b].ln(),
                        [c1 as u32, c2 as u32],
                        b as u32,
                    ));
                }
            }
        }
        let top = tastes.iter().map(|t| t.0).fold(f64::NEG_INFINITY, f64::max);
        tastes.iter_mut().for_each(|t| t.0 = (t.0 - top).exp());
        tastes.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = tastes.iter().map(|t| t.0).sum();
        let (mut kept, mut mass) = (0, 0.0);
        while kept < tastes.len().min(4_000) && mass < total * (1.0 - 1e-4) {
            mass += tastes[kept].0;
            kept += 1;
        }
        tastes.truncate(kept);
        tastes.iter_mut().for_each(|t| t.0 /= mass);
        tastes
    }
}

/// The generated run's span, and how its staples recur.
struct Run {
    start: i64,
    end: i64,
    skip: f64,
    draws: u32,
}

/// How likely an order is a main-stream order, and each of the shopper's staples.
#[derive(Clone)]
struct Kind {
    main: f64,
    staple: Vec<f64>,
}

impl Kind {
    fn normalized(self) -> Option<Kind> {
        let total = self.main + self.staple.iter().sum::<f64>();
        (total > 0.0).then(|| Kind {
            main: self.main / total,
            staple: self.staple.iter().map(|w| w / total).collect(),
        })
    }
}

/// When a staple first comes due after its last purchase `last`, or, with none by then, when
/// its first purchase was drawn: the generator's schedule (`plan_staples`).
fn first_due(cycle: f64, last: Option<i64>, run: &Run, rng: &mut ChaCha8Rng) -> f64 {
    match last {
        Some(t) => t as f64 + cycle * rng.random_range(STAPLE_JITTER),
        None => run.start as f64 + rng.random::<f64>() * cycle,
    }
}

/// What the held-out order is, given four things known: that it is the only order after
/// `after` (the protocol's whole truth); that it is the first order after `after` and comes
/// before the end; that it is the first order after the end, no order having come since
/// `after` (what a ranking made at the end of the messages is asked in real use: the hidden
/// order is not there to see); or the shopper's long-run rates alone (no timing at all).
/// Each is `None` where no draw explains the data.
fn next_order_kind(
    staples: &[(u32, f64, Option<i64>)],
    after: i64,
    rate_per_ms: f64,
    run: &Run,
    rng: &mut ChaCha8Rng,
) -> [Option<Kind>; 4] {
    let &Run {
        end, skip, draws, ..
    } = run;
    let rest = (end - after).max(0) as f64;
    // The main stream's orders in the rest of the run are Poisson: none, or exactly one.
    let (none, one) = (
        (-rate_per_ms * rest).exp(),
        rate_per_ms * rest * (-rate_per_ms * rest).exp(),
    );
    let empty = Kind {
        main: 0.0,
        staple: vec![0.0; staples.len()],
    };
    let (mut only, mut first, mut now) = (empty.clone(), empty.clone(), empty);
    let mut bought: Vec<(f64, usize)> = Vec::new();
    for _ in 0..draws {
        now_draw(staples, run, rate_per_ms, rng, &mut now);
    }
    for _ in 0..draws {
        bought.clear();
        let mut weight = 1.0;
        for (k, &(_, cycle, last)) in staples.iter().enumerate() {
            let mut t = first_due(cycle, last, run, rng);
            while t < end as f64 {
                if t <= after as f64 {
                    // Due by the last order seen, and not bought then: skipped. Weighed
                    // rather than drawn, since a long gap makes that rare.
                    weight *= skip;
                } else if !rng.random_bool(skip) {
                    bought.push((t, k));
                }
                t += cycle * rng.random_range(STAPLE_JITTER);
            }
        }
        match bought.as_slice() {
            [] => only.main += weight * one,
            &[(_, k)] => only.staple[k] += weight * none,
            _ => {}
        }
        // The first order: the main stream's (an exponential wait) before the first staple
        // purchase, or that purchase.
        let until = bought.iter().map(|b| b.0).fold(end as f64, f64::min);
        first.main += weight * (1.0 - (-rate_per_ms * (until - after as f64)).exp());
        if let Some(&(t, k)) = bought.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
            first.staple[k] += weight * (-rate_per_ms * (t - after as f64)).exp();
        }
    }
    let rates = Kind {
        main: rate_per_ms,
        staple: staples.iter().map(|s| (1.0 - skip) / s.1).collect(),
    };
    [
        only.normalized(),
        first.normalized(),
        now.normalized(),
        rates.normalized(),
    ]
}

/// One draw of the first order after the end, seen from the end with no order since the
/// last seen: every staple purchase due before the end was skipped (the draw weighs that
/// chance rather than rejecting, since a long absence makes it rare); after the end, the
/// first staple purchase races the main stream's exponential wait.
fn now_draw(
    staples: &[(u32, f64, Option<i64>)],
    run: &Run,
    rate_per_ms: f64,
    rng: &mut ChaCha8Rng,
    now: &mut Kind,
) {
    let (end, skip, mut weight) = (run.end as f64, run.skip, 1.0);
    let mut soonest: Option<(f64, usize)> = None;
    for (k, &(_, cycle, last)) in staples.iter().enumerate() {
        let mut t = first_due(cycle, last, run, rng);
        while t <= end {
            weight *= skip;
            t += cycle * rng.random_range(STAPLE_JITTER);
        }
        // Skips after the end too, a bounded number of times (skip < 1 makes more negligible).
        for _ in 0..64 {
            if !rng.random_bool(skip) {
                break;
            }
            t += cycle * rng.random_range(STAPLE_JITTER);
        }
        if soonest.is_none_or(|(s, _)| t < s) {
            soonest = Some((t, k));
        }
    }
    match soonest {
        None => now.main += weight,
        Some((t, k)) => {
            let staple_first = (-rate_per_ms * (t - end)).exp();
            now.main += weight * (1.0 - staple_first);
            now.staple[k] += weight * staple_first;
        }
    }
}

/// What a window's ceilings know of one shopper.
struct WindowShopper<'a> {
    staples: &'a [(u32, f64, Option<i64>)],
    /// The cut: every purchase by it is seen.
    after: i64,
    rate_per_ms: f64,
    /// One pick's chance of each item, by the shopper's true tastes.
    pick: &'a [f64],
    ordered: &'a [u32],
    browsed: &'a [u32],
}

/// A shopper's chance of ordering each target within each of `window`'s spans after the cut,
/// as `{kind: {value: [[oracle, oracle_orders, oracle_views] per span]}}`: one minus the chance
/// that neither a main-stream order (Poisson at the shopper's rate, thinned to the orders
/// holding the target) nor a staple of it comes within the span. The tastes are the true
/// ones, or the posterior given the orders (and the staples' items), or given every event.
fn window_chances(
    shopper: &WindowShopper,
    window: &[(String, i64)],
    (targets, posterior): (&[Target], &TastePosterior),
    run: &Run,
    rng: &mut ChaCha8Rng,
) -> Value {
    let spans: Vec<i64> = window.iter().map(|w| w.1).collect();
    let absent: Vec<Vec<f64>> = (shopper.staples.iter())
        .map(|&staple| staple_absent(staple, shopper.after, &spans, run, rng))
        .collect();
    let staple_items: Vec<u32> = shopper.staples.iter().map(|s| s.0).collect();
    let everything: Vec<u32> = (shopper.ordered.iter().chain(shopper.browsed))
        .copied()
        .collect();
    let from_orders = posterior.tastes(shopper.ordered, &staple_items);
    let from_everything = posterior.tastes(&everything, &staple_items);
    let truly: Vec<f64> = (masses(targets, shopper.pick).into_iter())
        .map(order_holds)
        .collect();
    // Per span: per target, [true tastes, tastes from orders, from everything].
    let per_span: Vec<Vec<[f64; 3]>> = (spans.iter().enumerate())
        .map(|(j, &span)| {
            let orders_in_span = shopper.rate_per_ms * span as f64;
            let none = |q: f64| (-orders_in_span * q).exp();
            let (orders, everything) = (
                posterior.mean(&from_orders, none),
                posterior.mean(&from_everything, none),
            );
            (targets.iter().enumerate())
                .map(|(t, target)| {
                    let no_staple: f64 = (shopper.staples.iter().zip(&absent))
                        .filter(|((item, _, _), _)| target.items.contains(item))
                        .map(|(_, a)| a[j])
                        .product();
                    [none(truly[t]), orders[t], everything[t]].map(|m| 1.0 - m * no_staple)
                })
                .collect()
        })
        .collect();
    let mut chances = Map::new();
    for (t, target) in targets.iter().enumerate() {
        let by_kind = chances
            .entry(target.kind)
            .or_insert_with(|| Value::Object(Map::new()));
        by_kind[&target.value] = json!(per_span.iter().map(|s| s[t]).collect::<Vec<_>>());
    }
    Value::Object(chances)
}

/// The chance that a staple is not bought within each of `spans` after `after`, given its
/// last purchase by then (purchases due by then weigh as skipped, as in [`next_order_kind`]).
fn staple_absent(
    (_, cycle, last): (u32, f64, Option<i64>),
    after: i64,
    spans: &[i64],
    run: &Run,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let (mut absent, mut total) = (vec![0.0; spans.len()], 0.0);
    for _ in 0..run.draws {
        let mut t = first_due(cycle, last, run, rng);
        let (mut weight, mut bought) = (1.0, f64::INFINITY);
        while t < run.end as f64 {
            if t <= after as f64 {
                weight *= run.skip;
            } else if !rng.random_bool(run.skip) {
                bought = t;
                break;
            }
            t += cycle * rng.random_range(STAPLE_JITTER);
        }
        total += weight;
        for (a, &span) in absent.iter_mut().zip(spans) {
            if bought > (after + span) as f64 {
                *a += weight;
            }
        }
    }
    if total > 0.0 {
        absent.iter().map(|a| a / total).collect()
    } else {
        vec![1.0; spans.len()]
    }
}

/// The chance that a main-stream order holds a target that one pick hits with chance `p`.
fn order_holds(p: f64) -> f64 {
    let picks = 1..=MAX_EXTRA_PRODUCTS + 1;
    let n = f64::from(MAX_EXTRA_PRODUCTS + 1);
    1.0 - picks.map(|k| (1.0 - p).powi(k as i32)).sum::<f64>() / n
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let spec = args.spec.clone();
    let skip = spec.repeat.as_ref().map_or(0.0, |r| r.skip.clamp(0.0, 1.0));
    let generator = Generator::new(spec.clone());
    let seen = read_train(&format!("{}/train.jsonl", args.dir))?;
    let test: Value = serde_json::from_reader(File::open(format!("{}/test.json", args.dir))?)?;
    let population: Vec<&str> = test["population"]
        .as_array()
        .ok_or("test.json has no population")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let span = i64::from(spec.days.max(1)) * 86_400_000;
    let run = Run {
        start: spec.end_ms - span,
        end: spec.end_ms,
        skip,
        draws: args.draws,
    };
    let items = generator.items().len() as u32;
    let mut products: Vec<(u32, u64)> = seen.ordered.iter().map(|(&i, &n)| (i, n)).collect();
    products.sort_by_key(|&(i, n)| (std::cmp::Reverse(n), i));
    products.truncate(args.products);
    let mut brands: Vec<u32> = (seen.ordered.keys())
        .map(|&i| generator.item_brand(i))
        .collect();
    brands.sort_unstable();
    brands.dedup();
    let members = |hit: &dyn Fn(u32) -> bool| (0..items).filter(|&i| hit(i)).collect();
    let targets: Vec<Target> = (0..spec.categories.max(1))
        .map(|c| Target {
            kind: "category",
            value: category_name(c),
            items: members(&|i| generator.item_category(i) == c),
        })
        .chain(brands.iter().map(|&b| Target {
            kind: "brand",
            value: brand_name(b),
            items: members(&|i| generator.item_brand(i) == b),
        }))
        .chain(products.iter().map(|&(p, _)| Target {
            kind: "product",
            value: format!("sku-{p}"),
            items: vec![p],
        }))
        .collect();
    let model = generator.taste_model();
    let loyalty = spec.repeat.as_ref().map_or(0.0, |r| r.brand_loyalty);
    let empty = [
        (0..spec.categories.max(1))
            .map(|c| (0..items).all(|i| generator.item_category(i) != c))
            .collect::<Vec<bool>>(),
        (0..spec.brands.max(1))
            .map(|b| (0..items).all(|i| generator.item_brand(i) != b))
            .collect(),
    ];
    if empty.iter().flatten().any(|&e| e) {
        eprintln!(
            "warning: some brands or categories have no items; the taste posteriors leave out that \
             a staple drawn from one is dropped (oracle_orders and oracle_views are approximate)"
        );
    }
    let posterior = TastePosterior::new(&model, loyalty, empty, &targets);
    let mut staples_of: HashMap<u32, Vec<&StapleTruth>> = HashMap::new();
    for s in generator.staples() {
        staples_of.entry(s.user).or_default().push(s);
    }
    // A window split (a common cut: `bench/audiences_http.py split-repeat-window`) asks who
    // orders the target within a horizon after the cut, not what the next order holds.
    let cut = test["cut"]
        .as_f64()
        .map(|seconds| (seconds * 1000.0).round() as i64);
    let window: Vec<(String, i64)> = cut.map_or_else(Vec::new, |cut| {
        let mut w: Vec<(String, i64)> = (args.horizons.iter())
            .map(|&d| (d.to_string(), i64::from(d) * 86_400_000))
            .collect();
        w.push(("any".into(), spec.end_ms - cut));
        w
    });
    let (mut out, mut unexplained) = (Map::new(), 0);
    for id in population {
        let user = id.strip_prefix('u').and_then(|n| n.parse::<u32>().ok());
        let Some((user, last_order)) = user.and_then(|u| Some((u, *seen.last_order.get(&u)?)))
        else {
            return Err(format!("tested shopper {id} has no order in train.jsonl").into());
        };
        // Everything up to `after` is seen: the last order before the held-out one, or the
        // last millisecond before the cut (the split trains on what came before it).
        let after = cut.map_or(last_order, |cut| cut - 1);
        let truth = generator.user_truth(user);
        let pick = model.pick(truth.categories, truth.brand);
        let rate = spec.events as f64 * truth.activity_share * ORDER_SHARE / span as f64;
        // Each staple with its own last purchase by the last order seen (the truth tells
        // apart two staples of one item, which the orders show only together).
        let staples: Vec<(u32, f64, Option<i64>)> = (staples_of.get(&user).into_iter().flatten())
            .map(|s| {
                let last = s.purchases.iter().copied().filter(|&t| t <= after).max();
                (s.item, s.cycle_ms, last)
            })
            .collect();
        let staples = staples.as_slice();
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ u64::from(user));
        if !window.is_empty() {
            let row = window_chances(
                &WindowShopper {
                    staples,
                    after,
                    rate_per_ms: rate,
                    pick: &pick,
                    ordered: seen.ordered_by.get(&user).map_or(&[][..], Vec::as_slice),
                    browsed: seen.browsed_by.get(&user).map_or(&[][..], Vec::as_slice),
                },
                &window,
                (&targets, &posterior),
                &run,
                &mut rng,
            );
            out.insert(id.to_string(), row);
            continue;
        }
        let kinds = next_order_kind(staples, after, rate, &run, &mut rng);
        if kinds.iter().any(Option::is_none) {
            unexplained += 1;
        }
        // No draw explains the data (skips too rare to weigh): the main stream only.
        let kinds = kinds.map(|k| {
            k.unwrap_or_else(|| Kind {
                main: 1.0,
                staple: vec![0.0; staples.len()],
            })
        });
        // A main-stream order's chance of each target: by the true tastes, and by the
        // posterior over them given the main-stream orders seen, or every event seen.
        let truly: Vec<f64> = (masses(&targets, &pick).into_iter())
            .map(order_holds)
            .collect();
        let ordered = seen.ordered_by.get(&user).map_or(&[][..], Vec::as_slice);
        let staple_items: Vec<u32> = staples.iter().map(|s| s.0).collect();
        let from_orders = posterior.order_chances(ordered, &staple_items);
        let browsed = seen.browsed_by.get(&user).map_or(&[][..], Vec::as_slice);
        let everything: Vec<u32> = ordered.iter().chain(browsed).copied().collect();
        let from_everything = posterior.order_chances(&everything, &staple_items);
        // No staple known: every order's products as main-stream picks.
        let all_orders: Vec<u32> = (ordered.iter().copied())
            .chain(seen.staple_lines.get(&user).into_iter().flatten().copied())
            .collect();
        let blind = posterior.order_chances(&all_orders, &[]);
        let mut chances = Map::new();
        for (t, target) in targets.iter().enumerate() {
            let staple_part = |kind: &Kind| -> f64 {
                (staples.iter().zip(&kind.staple))
                    .filter(|((item, _, _), _)| target.items.contains(item))
                    .map(|(_, w)| w)
                    .sum()
            };
            let of = |kind: &Kind, main_chance: f64| kind.main * main_chance + staple_part(kind);
            let mut row: Vec<f64> = kinds.iter().map(|k| of(k, truly[t])).collect();
            row.push(of(&kinds[0], from_orders[t]));
            row.push(of(&kinds[0], from_everything[t]));
            row.push(blind[t]);
            let by_kind = chances
                .entry(target.kind)
                .or_insert_with(|| Value::Object(Map::new()));
            by_kind[&target.value] = json!(row);
        }
        chances.insert(
            "main_stream".into(),
            json!(kinds.iter().map(|k| k.main).collect::<Vec<f64>>()),
        );
        out.insert(id.to_string(), Value::Object(chances));
    }
    let path = format!("{}/oracle.json", args.dir);
    if !window.is_empty() {
        serde_json::to_writer(
            BufWriter::new(File::create(&path)?),
            &json!({"draws": args.draws,
                    "window": {"horizons": window.iter().map(|w| &w.0).collect::<Vec<_>>()},
                    "columns": ["oracle", "oracle_orders", "oracle_views"],
                    "users": out}),
        )?;
        eprintln!(
            "{path}: {} shoppers, ordering within {:?} days of the cut",
            out.len(),
            window.iter().map(|w| &w.0).collect::<Vec<_>>()
        );
        return Ok(());
    }
    serde_json::to_writer(
        BufWriter::new(File::create(&path)?),
        &json!({"draws": args.draws, "unexplained": unexplained,
                "columns": ["oracle", "oracle_next", "oracle_now", "oracle_rates", "oracle_orders",
                            "oracle_views", "oracle_blind"],
                "chances": ["the only order after the last seen", "the first order after it",
                            "the first order after the end, none seen since", "long-run rates",
                            "the only order after the last seen, tastes from main-stream orders and staples",
                            "the only order after the last seen, tastes from every event and staples",
                            "an order, tastes from every order's products, no staple known"],
                "users": out}),
    )?;
    eprintln!(
        "{path}: {} shoppers, {} draws each; {unexplained} with no draw explaining their data",
        test["population"].as_array().map_or(0, Vec::len),
        args.draws
    );
    Ok(())
}
