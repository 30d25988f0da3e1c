//! Fuzzing what hostile clients control: tracking messages and batches, request body decoding
//! (gzip, text), catalog configurations and files, audience and trait definitions.
//!
//! - [`targets`]: one function per target, running the server's own parsing code and checking
//!   what must hold for any input.
//! - [`mutate`]: seeded structure-aware mutations; [`seeds`]: the valid inputs they start from.
//! - [`run`]: the driver: a fixed number of inputs per target, reproducible from a seed, with
//!   panics caught, counted and their inputs saved. `scripts/fuzz.sh` runs every target.
//!
//! Why not `cargo fuzz`: it needs nightly, the `cargo-fuzz` tool and a sanitizer build of the
//! whole dependency tree (bundled SQLite included); this runs on the stable toolchain the
//! project builds with, in its normal release profile, so CI and every developer can run it.

pub mod mutate;
pub mod seeds;
pub mod targets;

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::mutate::Mutator;
use crate::targets::Target;

/// How a run is made.
#[derive(Debug, Clone)]
pub struct Options {
    pub inputs: u64,
    pub seed: u64,
    /// Longest input generated (bytes).
    pub max_len: usize,
    /// Where inputs that panicked are written (None: not written).
    pub crashes: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inputs: 1_000_000,
            seed: 1,
            max_len: 4096,
            crashes: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub inputs: u64,
    pub elapsed: Duration,
    /// Distinct outcome signatures reached (errors by kind, successes by shape).
    pub outcomes: usize,
    pub corpus: usize,
    /// Inputs that panicked, and the distinct panic messages (with the saved input's path).
    pub panics: u64,
    pub findings: Vec<String>,
}

/// Inputs kept for mutation beyond the seeds.
const CORPUS_CAP: usize = 4096;

/// The message of the last panic on this thread, captured by the hook [`run`] installs.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn capture_panics() {
    panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{place}: {message}"));
    }));
}

/// Runs `target` on `options.inputs` generated inputs (seeds first).
pub fn run(target: Target, options: &Options) -> Report {
    run_with(
        target.name(),
        seeds::seeds(target),
        |input| target.run(input),
        options,
    )
}

/// Runs `check` on `options.inputs` inputs mutated from `seeds` (the seeds first).
pub fn run_with(
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    check: impl Fn(&[u8]) -> String,
    options: &Options,
) -> Report {
    capture_panics();
    let started = Instant::now();
    let mut corpus = seeds;
    let seeded = corpus.len();
    let mut mutator = Mutator::new(ChaCha8Rng::seed_from_u64(options.seed), options.max_len);
    let mut outcomes = HashSet::new();
    let mut findings = Vec::new();
    let mut seen_panics = HashSet::new();
    let mut panics = 0;
    for n in 0..options.inputs {
        let input = if (n as usize) < seeded {
            corpus[n as usize].clone()
        } else if mutator.rng().random_ratio(1, 64) {
            let len = mutator.rng().random_range(0..256);
            (0..len).map(|_| mutator.rng().random()).collect()
        } else {
            let base = mutator.rng().random_range(0..corpus.len());
            let other = mutator.rng().random_range(0..corpus.len());
            let (base, other) = (corpus[base].clone(), &corpus[other]);
            mutator.mutate(&base, other)
        };
        match panic::catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(signature) => {
                if outcomes.insert(signature) {
                    if corpus.len() < CORPUS_CAP {
                        corpus.push(input);
                    } else {
                        let i = mutator.rng().random_range(seeded..corpus.len());
                        corpus[i] = input;
                    }
                }
            }
            Err(_) => {
                panics += 1;
                let message = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                if seen_panics.insert(message.clone()) {
                    let saved = options.crashes.as_ref().and_then(|dir| {
                        std::fs::create_dir_all(dir).ok()?;
                        let path = dir.join(format!("{name}-{n}.bin"));
                        std::fs::write(&path, &input).ok()?;
                        Some(path.display().to_string())
                    });
                    findings.push(format!(
                        "{message} (input {n}, {} bytes{})",
                        input.len(),
                        saved.map(|p| format!(", saved to {p}")).unwrap_or_default()
                    ));
                }
            }
        }
    }
    let _ = panic::take_hook();
    Report {
        target: name,
        inputs: options.inputs,
        elapsed: started.elapsed(),
        outcomes: outcomes.len(),
        corpus: corpus.len(),
        panics,
        findings,
    }
}

/// Runs one saved input (a finding) again, with the normal panic output.
pub fn replay(target: Target, input: &[u8]) -> String {
    target.run(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver finds what a target hides behind a parse (nested brackets here), reports
    /// each distinct panic once with its input saved, and the saved input reproduces it.
    #[test]
    fn panics_are_caught_counted_and_saved() {
        let dir = std::env::temp_dir().join(format!("affinity-fuzz-test-{}", std::process::id()));
        let options = Options {
            inputs: 20_000,
            seed: 3,
            crashes: Some(dir.clone()),
            ..Options::default()
        };
        let check = |input: &[u8]| {
            let nested = serde_json::from_slice::<serde_json::Value>(input)
                .ok()
                .and_then(|v| v.get("a").and_then(|a| a.as_array()).map(|a| a.len()));
            assert!(nested != Some(2), "planted bug");
            format!("{nested:?}")
        };
        let r = run_with("planted", vec![br#"{"a":[1]}"#.to_vec()], check, &options);
        assert!(
            r.panics > 0,
            "the planted bug was not found in {} inputs",
            r.inputs
        );
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert!(r.findings[0].contains("planted bug"), "{:?}", r.findings);
        let saved = std::fs::read_dir(&dir)
            .expect("crashes saved")
            .next()
            .expect("one file")
            .expect("entry")
            .path();
        let input = std::fs::read(&saved).expect("read");
        assert!(panic::catch_unwind(|| check(&input)).is_err());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
