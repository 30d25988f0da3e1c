//! Benchmark baseline: how fast this machine inserts the same messages into a bare SQLite
//! table (messageId with a unique index, raw text) with the same pragmas and chunking as
//! `affinity import`, and none of Affinity's work (validation, identities, counts).
//! Lines are read and their messageIds extracted before the clock starts.
//!
//! Usage: cargo run --release -p affinity-store --example sqlite_floor -- FILE.jsonl DIR

use std::io::BufRead;
use std::time::Instant;

use rusqlite::{Connection, params};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (file, dir) = (&args[1], std::path::Path::new(&args[2]));
    std::fs::create_dir_all(dir)?;
    let path = dir.join("floor.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(file)?).lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let id = v["messageId"].as_str().unwrap_or_default().to_string();
        rows.push((id, line));
    }
    let mut conn = Connection::open(&path)?;
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.execute_batch(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, raw TEXT NOT NULL);
         CREATE UNIQUE INDEX events_message_id ON events (message_id);",
    )?;
    let started = Instant::now();
    for chunk in rows.chunks(20_000) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (message_id, raw) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for (id, raw) in chunk {
                stmt.execute(params![id, raw])?;
            }
        }
        tx.commit()?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"messages": rows.len(), "seconds": seconds,
                           "messages_per_second": rows.len() as f64 / seconds})
    );
    Ok(())
}
