//! Benchmark driver for `bench/als_vs_implicit.sh` (not a test).
//!
//! Subcommands (all flags `--name value`):
//! - `generate --users N --items M --nnz Z --seed S --test-fraction F --out DIR`
//!   writes a synthetic data set, already split by time, as DIR/train.bin,
//!   DIR/test.bin (records of little-endian u32 user, u32 item, f32 weight) and
//!   DIR/meta.txt (`n_users n_items`).
//! - `fit --data DIR --threads T [--factors --iterations --regularization
//!   --alpha --cg-steps --seed]` fits our ALS on train.bin and scores it (and
//!   the popularity baseline) on test.bin.
//! - `score --data DIR --recs FILE` scores another system's top-k lists
//!   (records of i32: user, then k item ids; negative ids = padding).
//!
//! Every measurement is printed as one `RESULT key=value ...` line for the
//! shell script to collect.

use std::collections::HashMap;
use std::error::Error;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use affinity_model::metrics::{RankingReport, evaluate, evaluate_lists};
use affinity_model::split::{TimedEvent, time_holdout};
use affinity_model::{AlsModel, AlsParams, Interactions, Popularity, Triplet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "support/flags.rs"]
mod flags;

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const K: usize = 10;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .ok_or("usage: als_vs_implicit generate|fit|score --flag value ...")?;
    let flags = Flags::parse(rest)?;
    match cmd.as_str() {
        "generate" => generate(&flags),
        "fit" => fit(&flags),
        "score" => score(&flags),
        other => Err(format!("unknown subcommand {other}").into()),
    }
}

struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> AnyResult<Flags> {
        Ok(Flags(flags::parse(args)?))
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> AnyResult<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name) {
            Some(v) => v.parse().map_err(|e| format!("--{name} {v}: {e}").into()),
            None => default.ok_or_else(|| format!("--{name} is required").into()),
        }
    }
}

// ---------------------------------------------------------------------------
// Data generation

/// A synthetic implicit-feedback data set with structure to learn:
/// - items belong to one of `TOPICS` latent topics and have a Zipf-like
///   popularity (weight ∝ 1/rank^0.9 over a random ranking), so item counts
///   follow a power law;
/// - user activity is Pareto-distributed (tail exponent 1.2), scaled so the
///   number of distinct (user, item) pairs is exactly `nnz`;
/// - each user has a primary and a secondary topic; an interaction picks the
///   primary topic with p = 0.6, the secondary with 0.25, and the global
///   popularity distribution otherwise, then an item within that by popularity;
/// - the weight is a play count (1 + geometric(0.5)), and the timestamp is
///   uniform, so the temporal holdout is also a uniform 1 − test_fraction split.
fn generate(flags: &Flags) -> AnyResult<()> {
    const TOPICS: usize = 32;
    let n_users: usize = flags.get("users", None)?;
    let n_items: usize = flags.get("items", None)?;
    let nnz: usize = flags.get("nnz", None)?;
    let seed: u64 = flags.get("seed", Some(42))?;
    let test_fraction: f64 = flags.get("test-fraction", Some(0.1))?;
    let out: PathBuf = flags.get("out", None)?;
    // A user can have at most this many distinct items; keeps the heaviest
    // users plausible (and rejection sampling fast).
    let cap = (n_items / 10).max(1);
    if nnz > n_users * cap {
        return Err(format!("nnz {nnz} > users × per-user cap {cap}").into());
    }
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Items: topic and popularity.
    let topic_of: Vec<usize> = (0..n_items).map(|_| rng.random_range(0..TOPICS)).collect();
    let mut rank: Vec<usize> = (0..n_items).collect();
    for i in (1..n_items).rev() {
        rank.swap(i, rng.random_range(0..=i));
    }
    let pop: Vec<f64> = rank
        .iter()
        .map(|&r| 1.0 / ((r + 1) as f64).powf(0.9))
        .collect();
    let global = Sampler::new((0..n_items as u32).collect(), &pop);
    let topics: Vec<Sampler> = (0..TOPICS)
        .map(|t| {
            let ids: Vec<u32> = (0..n_items as u32)
                .filter(|&i| topic_of[i as usize] == t)
                .collect();
            Sampler::new(ids, &pop)
        })
        .collect();

    // Users: activity, scaled to hit nnz exactly.
    let raw: Vec<f64> = (0..n_users)
        .map(|_| (1.0 - rng.random::<f64>()).powf(-1.0 / 1.2))
        .collect();
    let scale = nnz as f64 / raw.iter().sum::<f64>();
    let mut counts: Vec<usize> = raw
        .iter()
        .map(|a| ((a * scale) as usize).clamp(1, cap))
        .collect();
    let mut total: usize = counts.iter().sum();
    while total != nnz {
        let u = rng.random_range(0..n_users);
        if total < nnz && counts[u] < cap {
            counts[u] += 1;
            total += 1;
        } else if total > nnz && counts[u] > 1 {
            counts[u] -= 1;
            total -= 1;
        }
    }

    let mut events: Vec<TimedEvent> = Vec::with_capacity(nnz);
    let mut chosen: Vec<u32> = Vec::new();
    for (u, &n_u) in counts.iter().enumerate() {
        let primary = rng.random_range(0..TOPICS);
        let secondary = rng.random_range(0..TOPICS);
        chosen.clear();
        let mut attempts = 0usize;
        while chosen.len() < n_u {
            attempts += 1;
            let roll: f64 = rng.random();
            // After many rejections the user's topics are exhausted; draw
            // globally so heavy users still reach their count.
            let sampler = if attempts > 20 * n_u || roll >= 0.85 {
                &global
            } else if roll < 0.6 {
                &topics[primary]
            } else {
                &topics[secondary]
            };
            let Some(item) = sampler.draw(&mut rng) else {
                continue;
            };
            if !chosen.contains(&item) {
                chosen.push(item);
            }
        }
        for &item in &chosen {
            let mut plays = 1u32;
            while plays < 50 && rng.random::<f64>() < 0.5 {
                plays += 1;
            }
            let t = rng.random_range(0..1_000_000i64);
            events.push((u as u32, item, plays as f32, t));
        }
    }
    let cutoff = (1_000_000.0 * (1.0 - test_fraction)) as i64;
    let split = time_holdout(&events, cutoff);

    fs::create_dir_all(&out)?;
    write_triplets(&out.join("train.bin"), &split.train)?;
    write_triplets(&out.join("test.bin"), &split.test)?;
    fs::write(out.join("meta.txt"), format!("{n_users} {n_items}\n"))?;
    println!(
        "RESULT generate users={n_users} items={n_items} nnz={} train={} test={} cutoff={cutoff} seed={seed} seconds={:.2}",
        events.len(),
        split.train.len(),
        split.test.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Draws ids proportionally to weights by binary search on the cumulative sum.
struct Sampler {
    ids: Vec<u32>,
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(ids: Vec<u32>, weights: &[f64]) -> Sampler {
        let mut acc = 0.0;
        let cumulative = ids
            .iter()
            .map(|&i| {
                acc += weights[i as usize];
                acc
            })
            .collect();
        Sampler { ids, cumulative }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Option<u32> {
        let total = *self.cumulative.last()?;
        let x = rng.random::<f64>() * total;
        let pos = self.cumulative.partition_point(|&c| c <= x);
        self.ids.get(pos.min(self.ids.len() - 1)).copied()
    }
}

fn write_triplets(path: &Path, triplets: &[Triplet]) -> AnyResult<()> {
    let mut w = BufWriter::new(fs::File::create(path)?);
    for &(u, i, x) in triplets {
        w.write_all(&u.to_le_bytes())?;
        w.write_all(&i.to_le_bytes())?;
        w.write_all(&x.to_le_bytes())?;
    }
    w.flush()?;
    Ok(())
}

fn read_triplets(path: &Path) -> AnyResult<Vec<Triplet>> {
    let bytes = fs::read(path)?;
    if bytes.len() % 12 != 0 {
        return Err(format!("{}: size is not a multiple of 12", path.display()).into());
    }
    let word = |c: &[u8]| -> [u8; 4] { [c[0], c[1], c[2], c[3]] };
    Ok(bytes
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(word(&c[0..4])),
                u32::from_le_bytes(word(&c[4..8])),
                f32::from_le_bytes(word(&c[8..12])),
            )
        })
        .collect())
}

fn read_meta(dir: &Path) -> AnyResult<(usize, usize)> {
    let text = fs::read_to_string(dir.join("meta.txt"))?;
    let mut parts = text.split_whitespace().map(str::parse::<usize>);
    match (parts.next(), parts.next()) {
        (Some(Ok(u)), Some(Ok(i))) => Ok((u, i)),
        _ => Err("meta.txt must hold `n_users n_items`".into()),
    }
}

// ---------------------------------------------------------------------------
// Fitting and scoring

fn fit(flags: &Flags) -> AnyResult<()> {
    let dir: PathBuf = flags.get("data", None)?;
    let threads: usize = flags.get("threads", Some(2))?;
    let defaults = AlsParams::default();
    let params = AlsParams {
        factors: flags.get("factors", Some(defaults.factors))?,
        regularization: flags.get("regularization", Some(defaults.regularization))?,
        alpha: flags.get("alpha", Some(defaults.alpha))?,
        iterations: flags.get("iterations", Some(defaults.iterations))?,
        cg_steps: flags.get("cg-steps", Some(defaults.cg_steps))?,
        seed: flags.get("seed", Some(defaults.seed))?,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;

    let (n_users, n_items) = read_meta(&dir)?;
    let train_triplets = read_triplets(&dir.join("train.bin"))?;
    let test = read_test(flags, &dir, n_users, n_items)?;
    let rss_before = rss_kib("VmRSS");

    // Timed: building both orientations from triplets, then fitting. implicit's
    // fit() includes its own transpose, so this is the comparable span (and a
    // superset: implicit gets its CSR matrix built by scipy outside the timer).
    let (train, model, build_s, fit_s, cpu_s) = pool.install(|| -> AnyResult<_> {
        let t0 = Instant::now();
        let cpu0 = cpu_seconds();
        let train = Interactions::from_triplets(n_users, n_items, &train_triplets)?;
        let build_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let model = AlsModel::fit(&train, &params)?;
        let fit_s = t1.elapsed().as_secs_f64();
        Ok((train, model, build_s, fit_s, cpu_seconds() - cpu0))
    })?;
    drop(train_triplets);
    let peak_after_fit = rss_kib("VmHWM");

    println!(
        "RESULT ours threads={threads} factors={} iterations={} cg_steps={} regularization={} alpha={} build_seconds={build_s:.3} fit_seconds={fit_s:.3} total_seconds={:.3} cpu_seconds={cpu_s:.2} rss_before_fit_mib={:.1} peak_rss_fit_mib={:.1} simd={}",
        params.factors,
        params.iterations,
        params.cg_steps,
        params.regularization,
        params.alpha,
        build_s + fit_s,
        mib(rss_before),
        mib(peak_after_fit),
        simd_level(),
    );
    if !flags.get("evaluate", Some(true))? {
        return Ok(());
    }
    let (als, pop) = pool.install(|| -> AnyResult<_> {
        Ok((
            evaluate(&model, &train, &test, K)?,
            evaluate(&Popularity::fit(&train), &train, &test, K)?,
        ))
    })?;
    print_report("ours", &als);
    print_report("popularity", &pop);
    println!(
        "RESULT ours_after_eval peak_rss_mib={:.1}",
        mib(rss_kib("VmHWM"))
    );
    Ok(())
}

fn score(flags: &Flags) -> AnyResult<()> {
    let dir: PathBuf = flags.get("data", None)?;
    let recs_path: PathBuf = flags.get("recs", None)?;
    let name: String = flags.get("name", Some("implicit".to_string()))?;
    let (n_users, n_items) = read_meta(&dir)?;
    let test = read_test(flags, &dir, n_users, n_items)?;
    let bytes = fs::read(&recs_path)?;
    let record = 4 * (K + 1);
    if bytes.len() % record != 0 {
        return Err(format!("{}: expected records of {} i32", recs_path.display(), K + 1).into());
    }
    let mut lists: HashMap<u32, Vec<u32>> = HashMap::new();
    for rec in bytes.chunks_exact(record) {
        let vals: Vec<i32> = rec
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let user = u32::try_from(vals[0])?;
        let items = vals[1..]
            .iter()
            .filter_map(|&v| u32::try_from(v).ok())
            .collect();
        lists.insert(user, items);
    }
    // Users missing from the file score zero (evaluate_lists counts them).
    let report = evaluate_lists(&test, K, |u| Ok(lists.get(&u).cloned().unwrap_or_default()))?;
    print_report(&name, &report);
    Ok(())
}

/// The test matrix, optionally restricted to users below `--eval-max-user`
/// (users are exchangeable in the generator, so this is an unbiased sample;
/// it keeps full-catalogue scoring affordable for the large run). The Python
/// side applies the same rule.
fn read_test(flags: &Flags, dir: &Path, n_users: usize, n_items: usize) -> AnyResult<Interactions> {
    let max_user: u64 = flags.get("eval-max-user", Some(u64::MAX))?;
    let mut triplets = read_triplets(&dir.join("test.bin"))?;
    triplets.retain(|t| u64::from(t.0) < max_user);
    Ok(Interactions::from_triplets(n_users, n_items, &triplets)?)
}

/// CPU seconds (user + system, all threads) used by this process so far, from
/// /proc/self/stat, assuming the usual 100 ticks per second.
fn cpu_seconds() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields overall, i.e. the 12th and 13th after it.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn print_report(name: &str, r: &RankingReport) {
    println!(
        "RESULT metrics model={name} k={} users={} precision={:.5} recall={:.5} ndcg={:.5} coverage={:.5}",
        r.k, r.users, r.precision, r.recall, r.ndcg, r.coverage
    );
}

/// A field of /proc/self/status in KiB (VmHWM = peak resident set so far).
fn rss_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Which vector instructions the hot loops ran with: the binary's compile target, and the
/// copy chosen at run time (see `affinity_model::cpu`).
fn simd_level() -> String {
    let compiled = if cfg!(target_feature = "avx512f") {
        "avx512"
    } else if cfg!(target_feature = "avx2") {
        "avx2"
    } else if cfg!(target_feature = "sse2") {
        "sse2"
    } else {
        "scalar"
    };
    format!(
        "compiled:{compiled},running:{}",
        affinity_model::cpu::instruction_set().replace(' ', "-")
    )
}
