use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use affinity_core::synthetic::{Generator, SyntheticSpec};

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
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = SyntheticSpec {
        users: args.users,
        items: args.items,
        brands: args.brands,
        categories: args.categories,
        events: args.events,
        seed: args.seed,
        days: args.days,
        ..SyntheticSpec::default()
    };
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
    for message in Generator::new(spec) {
        serde_json::to_writer(&mut out, &message)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    eprintln!("generated {n} messages");
    Ok(())
}
