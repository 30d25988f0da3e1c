//! `affinity-fuzz [TARGET|all] [--inputs N] [--seed S] [--max-len BYTES] [--crashes DIR]`
//! runs targets for a fixed number of inputs and prints what it measured;
//! `affinity-fuzz replay TARGET FILE` runs one saved input again. Exits 1 if anything panicked.

use std::path::PathBuf;
use std::process::ExitCode;

use affinity_fuzz::targets::Target;
use affinity_fuzz::{Options, replay, run};

const USAGE: &str = "usage: affinity-fuzz [TARGET|all] [--inputs N] [--seed S] [--max-len BYTES] [--crashes DIR]\n       affinity-fuzz replay TARGET FILE\ntargets: message batch body catalog catalog_file audience";

fn parse_args(args: &[String]) -> Result<(Vec<Target>, Options), String> {
    let mut options = Options::default();
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .cloned()
        };
        let number = |name: &str, v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{name} {v:?} is not a whole number"))
        };
        match a.as_str() {
            "--inputs" => options.inputs = number("--inputs", value("--inputs")?)?,
            "--seed" => options.seed = number("--seed", value("--seed")?)?,
            "--max-len" => options.max_len = number("--max-len", value("--max-len")?)? as usize,
            "--crashes" => options.crashes = Some(PathBuf::from(value("--crashes")?)),
            "all" => targets.extend(Target::ALL),
            name => {
                targets.push(Target::parse(name).ok_or_else(|| format!("unknown target {name:?}"))?)
            }
        }
    }
    if targets.is_empty() {
        targets.extend(Target::ALL);
    }
    Ok((targets, options))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("replay") {
        let (Some(target), Some(file)) = (args.get(1).and_then(|t| Target::parse(t)), args.get(2))
        else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        let input = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot read {file}: {e}");
                return ExitCode::from(2);
            }
        };
        println!("{}", replay(target, &input));
        return ExitCode::SUCCESS;
    }
    let (targets, options) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{:<13} {:>10} {:>9} {:>11} {:>9} {:>7} {:>7}",
        "target", "inputs", "seconds", "inputs/s", "outcomes", "corpus", "panics"
    );
    let mut failed = false;
    for target in targets {
        let r = run(target, &options);
        let secs = r.elapsed.as_secs_f64();
        println!(
            "{:<13} {:>10} {:>9.1} {:>11.0} {:>9} {:>7} {:>7}",
            target.name(),
            r.inputs,
            secs,
            r.inputs as f64 / secs.max(1e-9),
            r.outcomes,
            r.corpus,
            r.panics
        );
        for f in &r.findings {
            println!("  panic: {f}");
        }
        failed |= r.panics > 0;
    }
    println!(
        "seed {}, max input {} bytes; rerun: scripts/fuzz.sh --inputs {} --seed {}",
        options.seed, options.max_len, options.inputs, options.seed
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
