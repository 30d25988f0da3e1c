//! `affinity catalog FILE.json`: sets the catalog configuration, with the same validation as
//! `PUT /api/v1/catalog`; without a file, prints the current one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use affinity_core::catalog::CatalogConfig;
use affinity_engine::catalog::configuration_warnings;
use affinity_store::CatalogStore;
use affinity_store::sqlite::SqliteStore;

#[derive(Args)]
pub struct CatalogArgs {
    /// A JSON file shaped like the body of PUT /api/v1/catalog.
    file: Option<PathBuf>,
}

pub fn run(data_dir: &Path, args: &CatalogArgs) -> anyhow::Result<()> {
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("cannot open {}", data_dir.display()))?;
    let Some(file) = &args.file else {
        match store.catalog_config()? {
            Some(c) => println!("{}", serde_json::to_string_pretty(&c)?),
            None => println!("no catalog configured"),
        }
        return Ok(());
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config: CatalogConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a catalog configuration", file.display()))?;
    let problems = config.validate();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  {}: {}", p.field, p.message);
        }
        bail!(
            "{} problem(s) in {}; nothing was stored",
            problems.len(),
            file.display()
        );
    }
    store.set_catalog_config(&config)?;
    for w in configuration_warnings(&store, &config)? {
        eprintln!("warning: {}: {}", w.field, w.message);
    }
    println!(
        "catalog set: {} interaction event(s), {} column(s)",
        config.events.len(),
        config.columns.len()
    );
    Ok(())
}
