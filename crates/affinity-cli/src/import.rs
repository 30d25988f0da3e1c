//! `affinity import FILE`: JSONL Segment messages into the store, through the same validation
//! and deduplication as the HTTP API. One thread reads and parses while this one writes, so
//! parsing and SQLite overlap on two cores.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use affinity_core::timestamp::FUTURE_TOLERANCE_MS;
use affinity_core::{Message, MessageError};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{EventLog, Outcome, Refusal};

use crate::memory::peak_rss_mib;

#[derive(Args)]
pub struct ImportArgs {
    /// JSONL file, one Segment message a line with its `type`; `-` reads standard input.
    file: PathBuf,
    /// Print the summary as one JSON object (for scripts and benchmarks).
    #[arg(long)]
    json: bool,
}

/// Messages per transaction: large enough that the commit's fsync is amortised, small enough
/// that a crash mid-import loses little work (a re-run skips what was stored).
const CHUNK: usize = 20_000;
/// Rejection reasons kept for the summary.
const SHOWN_REJECTIONS: usize = 10;

struct Chunk {
    messages: Vec<Message>,
    rejected: Vec<(u64, MessageError)>,
    bytes: u64,
}

#[derive(Default)]
struct Summary {
    lines: u64,
    stored: u64,
    duplicates: u64,
    rejected: u64,
    first_rejections: Vec<(u64, MessageError)>,
    /// Valid messages the store refused (over a discovery bound), with the first reason.
    refused: u64,
    first_refusal: Option<Refusal>,
    /// Stored messages dated more than the tolerance after the import: clamped to its time.
    clamped: u64,
}

pub fn run(data_dir: &Path, args: &ImportArgs) -> anyhow::Result<()> {
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let mut writer = store.bulk_writer()?;

    let progress = match size {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )?
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    let started = Instant::now();
    let (sender, receiver) = mpsc::sync_channel::<Chunk>(2);
    let reader = std::thread::Builder::new()
        .name("import-parse".into())
        .spawn(move || parse_lines(input, sender))?;

    let mut summary = Summary::default();
    for chunk in receiver {
        let outcomes = writer.append(&chunk.messages)?;
        summary.lines += (chunk.messages.len() + chunk.rejected.len()) as u64;
        summary.stored += outcomes.iter().filter(|o| **o == Outcome::Stored).count() as u64;
        summary.duplicates += outcomes
            .iter()
            .filter(|o| **o == Outcome::Duplicate)
            .count() as u64;
        summary.rejected += chunk.rejected.len() as u64;
        summary.clamped += outcomes
            .iter()
            .zip(&chunk.messages)
            .filter(|(o, m)| **o == Outcome::Stored && m.timestamp_clamped)
            .count() as u64;
        for o in &outcomes {
            if let Outcome::Refused(r) = o {
                summary.refused += 1;
                summary.first_refusal.get_or_insert(*r);
            }
        }
        for r in chunk.rejected {
            if summary.first_rejections.len() < SHOWN_REJECTIONS {
                summary.first_rejections.push(r);
            }
        }
        progress.inc(chunk.bytes);
        // Freeing tens of thousands of parsed messages takes real time: not on this thread,
        // which is the bottleneck.
        std::thread::spawn(move || drop(chunk.messages));
    }
    let read_result = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the parsing thread panicked"))?;
    read_result.with_context(|| format!("error reading {}", args.file.display()))?;
    writer.finish()?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    report(args, &summary, seconds);
    if summary.stored + summary.duplicates == 0 && summary.rejected + summary.refused > 0 {
        bail!("no message in {} was valid", args.file.display());
    }
    Ok(())
}

fn parse_lines(
    input: Box<dyn Read + Send>,
    sender: mpsc::SyncSender<Chunk>,
) -> std::io::Result<()> {
    let received_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut chunk = Chunk {
        messages: Vec::with_capacity(CHUNK),
        rejected: Vec::new(),
        bytes: 0,
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        chunk.bytes += n as u64;
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(e) => {
                let reason = MessageError::InvalidJson(format!(
                    "not UTF-8 text at byte {}",
                    e.valid_up_to()
                ));
                chunk.rejected.push((number, reason));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match Message::parse(text, None, received_at) {
            Ok(m) => chunk.messages.push(m),
            Err(e) => chunk.rejected.push((number, e)),
        }
        if chunk.messages.len() >= CHUNK {
            let full = std::mem::replace(
                &mut chunk,
                Chunk {
                    messages: Vec::with_capacity(CHUNK),
                    rejected: Vec::new(),
                    bytes: 0,
                },
            );
            if sender.send(full).is_err() {
                return Ok(()); // the writer stopped on an error it reports itself
            }
        }
    }
    let _ = sender.send(chunk);
    Ok(())
}

fn report(args: &ImportArgs, s: &Summary, seconds: f64) {
    let rate = s.lines as f64 / seconds.max(1e-9);
    let peak = peak_rss_mib();
    if args.json {
        let rejections: Vec<_> = s
            .first_rejections
            .iter()
            .map(|(line, e)| json!({"line": line, "code": e.code(), "message": e.to_string()}))
            .collect();
        println!(
            "{}",
            json!({
                "file": args.file.display().to_string(),
                "lines": s.lines, "stored": s.stored, "duplicates": s.duplicates,
                "rejected": s.rejected, "first_rejections": rejections,
                "refused_over_limits": s.refused,
                "future_timestamps_clamped": s.clamped,
                "first_refusal": s.first_refusal.map(|r| json!({"code": r.code(), "message": r.to_string()})),
                "seconds": seconds, "messages_per_second": rate, "peak_rss_mib": peak,
            })
        );
        return;
    }
    println!(
        "Imported {}: {} messages in {:.1}s ({:.0}/s): {} stored, {} duplicates, {} rejected",
        args.file.display(),
        s.lines,
        seconds,
        rate,
        s.stored,
        s.duplicates,
        s.rejected
    );
    for (line, e) in &s.first_rejections {
        println!("  line {line}: [{}] {e}", e.code());
    }
    if s.rejected > s.first_rejections.len() as u64 {
        println!(
            "  … and {} more rejected lines",
            s.rejected - s.first_rejections.len() as u64
        );
    }
    if s.clamped > 0 {
        println!(
            "  {} stored messages were dated more than {} minutes in the future: their time is the import's",
            s.clamped,
            FUTURE_TOLERANCE_MS / 60_000
        );
    }
    if let Some(r) = &s.first_refusal {
        println!(
            "{} valid messages were not stored: [{}] {r}",
            s.refused,
            r.code()
        );
    }
}
