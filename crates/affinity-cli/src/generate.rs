use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use affinity_core::goal_funnel::FunnelSpec;
use affinity_core::synthetic::{Generator, RepeatPurchases, SyntheticSpec};

#[derive(Args)]
pub struct GenerateArgs {
    /// Output file (JSONL); `-` for standard output.
    #[arg(long, short, default_value = "-")]
    out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    users: u32,
    #[arg(long, default_value_t = 2_000)]
    items: u32,
    #[arg(long, default_value_t = 50)]
    brands: u32,
    #[arg(long, default_value_t = 20)]
    categories: u32,
    /// Track events to generate (identifies come on top).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days the events span, ending at 2026-01-01.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Add repeat purchases: a share of shoppers re-buy a few staples, each on its own cycle
    /// (single-product `Order Completed` orders on top of `--events`; the other messages are
    /// unchanged). The `--repeat-*` flags tune them and imply `--repeat`.
    #[arg(long)]
    repeat: bool,
    /// Share of users with staples (0–1).
    #[arg(long, value_name = "SHARE")]
    repeat_share: Option<f64>,
    /// Staples per such user: 1 to this many.
    #[arg(long, value_name = "N")]
    repeat_max_staples: Option<u32>,
    /// Shortest re-buy cycle, in days.
    #[arg(long, value_name = "DAYS")]
    repeat_min_cycle_days: Option<u32>,
    /// Longest re-buy cycle, in days.
    #[arg(long, value_name = "DAYS")]
    repeat_max_cycle_days: Option<u32>,
    /// Probability that a staple is of the shopper's preferred brand (0–1).
    #[arg(long, value_name = "P")]
    repeat_brand_loyalty: Option<f64>,
    /// Probability that a due re-buy is skipped (0–1).
    #[arg(long, value_name = "P")]
    repeat_skip: Option<f64>,
    /// Generate a goal funnel instead of the shop: users of `--funnel-kinds` kinds add
    /// products to their cart (`Product Added`, `product_id`) and complete orders (`Order
    /// Completed`), and each kind converts far more often on three items of its own (printed
    /// on standard error), for trying goal-based recommendations. `--users`, `--items`,
    /// `--events` (cart adds in all), `--seed` and `--days` apply.
    #[arg(long, conflicts_with_all = ["repeat", "repeat_share", "repeat_max_staples",
        "repeat_min_cycle_days", "repeat_max_cycle_days", "repeat_brand_loyalty", "repeat_skip"])]
    goal_funnel: bool,
    /// Kinds of users in the goal funnel (implies `--goal-funnel`).
    #[arg(long, value_name = "N")]
    funnel_kinds: Option<u32>,
}

impl GenerateArgs {
    /// The repeat purchases asked for, if any; shares and probabilities must lie in 0–1.
    fn repeat(&self) -> anyhow::Result<Option<RepeatPurchases>> {
        let on = self.repeat
            || self.repeat_share.is_some()
            || self.repeat_max_staples.is_some()
            || self.repeat_min_cycle_days.is_some()
            || self.repeat_max_cycle_days.is_some()
            || self.repeat_brand_loyalty.is_some()
            || self.repeat_skip.is_some();
        if !on {
            return Ok(None);
        }
        for (flag, value) in [
            ("--repeat-share", self.repeat_share),
            ("--repeat-brand-loyalty", self.repeat_brand_loyalty),
            ("--repeat-skip", self.repeat_skip),
        ] {
            if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                anyhow::bail!("{flag} must be between 0 and 1, got {v}");
            }
        }
        let d = RepeatPurchases::default();
        let r = RepeatPurchases {
            share_of_users: self.repeat_share.unwrap_or(d.share_of_users),
            max_staples: self.repeat_max_staples.unwrap_or(d.max_staples),
            min_cycle_days: self.repeat_min_cycle_days.unwrap_or(d.min_cycle_days),
            max_cycle_days: self.repeat_max_cycle_days.unwrap_or(d.max_cycle_days),
            brand_loyalty: self.repeat_brand_loyalty.unwrap_or(d.brand_loyalty),
            skip: self.repeat_skip.unwrap_or(d.skip),
        };
        if r.max_staples == 0 || r.min_cycle_days == 0 || r.min_cycle_days > r.max_cycle_days {
            anyhow::bail!(
                "repeat purchases need --repeat-max-staples ≥ 1 and 1 ≤ --repeat-min-cycle-days ≤ --repeat-max-cycle-days (got {}, {}, {})",
                r.max_staples,
                r.min_cycle_days,
                r.max_cycle_days
            );
        }
        Ok(Some(r))
    }
}

impl GenerateArgs {
    /// The goal funnel asked for, if any.
    fn funnel(&self) -> anyhow::Result<Option<FunnelSpec>> {
        if !self.goal_funnel && self.funnel_kinds.is_none() {
            return Ok(None);
        }
        if self.repeat()?.is_some() {
            anyhow::bail!("--goal-funnel and --funnel-kinds cannot be combined with --repeat*");
        }
        let d = FunnelSpec::default();
        let kinds = self.funnel_kinds.unwrap_or(d.kinds);
        if kinds == 0 || self.users == 0 || self.items < kinds * d.converting {
            anyhow::bail!(
                "a goal funnel needs --funnel-kinds ≥ 1, --users ≥ 1 and at least {} items per kind (--items {} for {kinds} kinds; got --users {}, --items {})",
                d.converting,
                kinds * d.converting,
                self.users,
                self.items
            );
        }
        let exposures_per_user = (self.events / u64::from(self.users)).clamp(1, 100_000) as u32;
        Ok(Some(FunnelSpec {
            users: self.users,
            items: self.items,
            kinds,
            exposures_per_user,
            seed: self.seed,
            days: self.days.max(1),
            end_ms: SyntheticSpec::default().end_ms,
            ..d
        }))
    }
}

fn write_all(
    args: &GenerateArgs,
    messages: impl Iterator<Item = serde_json::Value>,
) -> anyhow::Result<()> {
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut n = 0u64;
    for message in messages {
        serde_json::to_writer(&mut out, &message)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    eprintln!("generated {n} messages");
    Ok(())
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    if let Some(funnel) = args.funnel()? {
        for kind in 0..funnel.kinds {
            // What a goal on this store should find: the answer key of the funnel.
            eprintln!(
                "kind {kind} (users u<n> with n % {} = {kind}) converts on {}",
                funnel.kinds,
                funnel.converting_items(kind).join(", ")
            );
        }
        return write_all(args, funnel.messages().into_iter());
    }
    let spec = SyntheticSpec {
        users: args.users,
        items: args.items,
        brands: args.brands,
        categories: args.categories,
        events: args.events,
        seed: args.seed,
        days: args.days,
        repeat: args.repeat()?,
        ..SyntheticSpec::default()
    };
    write_all(args, Generator::new(spec))
}
