//! `affinity demo`: a self-contained tour on a generated store. Everything goes through the
//! same functions as the server's API (import, catalog, training, traits, audiences), and the
//! result stays in the data directory for `affinity serve` to show.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use affinity_core::Message;
use affinity_core::audience::{AudienceQuestion, AudienceSpec, MaxSize, Target};
use affinity_core::catalog::CatalogConfig;
use affinity_core::item_rules::TraitDefinition;
use affinity_core::synthetic::{Generator, SyntheticSpec};
use affinity_engine::Credentials;
use affinity_engine::clock::now_ms;
use affinity_engine::training::run_training;
use affinity_engine::{audiences, traits};
use affinity_model::training::TrainingOptions;
use affinity_server::ServerConfig;
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CatalogStore, EventLog, ModelRegistry, TraitStore};

#[derive(Args)]
pub struct DemoArgs {
    /// Users in the generated store.
    #[arg(long, default_value_t = 20_000)]
    users: u32,
    /// Track events to generate.
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const CATALOG: &str = include_str!("../../../examples/shop-catalog.json");

pub fn run(server: &ServerConfig, args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = &server.engine;
    let dir = &config.data_dir;
    println!(
        "Affinity demo: a generated shop in {} (seed {})\n",
        dir.display(),
        args.seed
    );
    let store = SqliteStore::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;

    let spec = SyntheticSpec {
        users: args.users,
        items: 2_000,
        brands: 50,
        categories: 20,
        events: args.events,
        seed: args.seed,
        ..SyntheticSpec::default()
    };
    ingest(&store, spec)?;

    let catalog: CatalogConfig = serde_json::from_str(CATALOG).context("the demo catalog")?;
    store.set_catalog_config(&catalog)?;
    let record = store.create_model(now_ms())?;
    let bar = ProgressBar::new_spinner().with_message("training: building the catalog");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let serving = run_training(
        &store,
        record,
        &TrainingOptions::with_seed(args.seed),
        None,
        &mut |p| bar.set_message(format!("training: {p:?}")),
    )?;
    bar.finish_and_clear();
    let m = &serving.model;
    println!(
        "2. Trained model {} in {:.1}s on {} users × {} items ({} interactions). Candidates on each user's newest items, held out:",
        serving.record.id,
        serving.record.duration_ms.unwrap_or(0) as f64 / 1000.0,
        serving.catalog.users.len(),
        serving.catalog.items.len(),
        serving.catalog.interactions.len()
    );
    for r in &m.results {
        if let Some(x) = &r.metrics {
            let chosen = if r.candidate == m.chosen {
                "  <- serving"
            } else {
                ""
            };
            println!(
                "     {:<30} NDCG@10 {:.4}  recall@10 {:.4}  coverage {:.3}{chosen}",
                r.candidate.label(),
                x.ndcg,
                x.recall,
                x.coverage
            );
        }
    }

    let definition = TraitDefinition {
        name: "recommended_brands".into(),
        column: "brand".into(),
        k: 3,
        exclude_interacted: false,
        exclude: Vec::new(),
        destinations: Vec::new(),
    };
    store.save_trait_definition(
        &definition.name,
        &serde_json::to_value(&definition)?,
        now_ms(),
    )?;
    let written = traits::compute(&store, &serving, &definition, &Default::default())?;
    println!("\n3. Trait `recommended_brands` (k = 3) written onto {written} profiles, e.g.:");
    for user in ["u0", "u1", "u2"] {
        if let Some(p) =
            affinity_store::Profiles::profile(&store, affinity_core::IdKind::UserId, user)?
        {
            let values = store
                .computed_traits(p.id)?
                .into_iter()
                .find(|t| t.name == definition.name)
                .map(|t| t.value);
            println!("     {user:<4} {}", values.unwrap_or(json!(null)));
        }
    }

    // The fifth most popular brand: big enough to learn from, not the obvious one.
    let brand_col = serving
        .catalog
        .column("brand")
        .context("the demo catalog has a brand column")?;
    let brands = serving.catalog.column_values(brand_col, None, 10);
    let Some(brand) = brands.get(4).or(brands.first()) else {
        bail!("the generated catalog has no brands")
    };
    let brand = brand.value.as_str().unwrap_or_default().to_string();
    let spec = AudienceSpec {
        name: format!("Likely {brand} buyers"),
        target: Target::Column {
            column: "brand".into(),
            value: brand.clone(),
        },
        max_size: MaxSize::Percent { percent: 20.0 },
        horizon_days: Some(30),
        control_percent: 10.0,
        destinations: Vec::new(),
        refresh: Default::default(),
        // "Buyers": who will order it, learned from their views and cart adds too.
        event: Some("Order Completed".into()),
        // What the API gives a request with this horizon and no question.
        question: AudienceQuestion::unasked(Some(30)),
    };
    let t = Instant::now();
    let (id, computed) = audiences::create_now(&store, &serving, &spec, args.seed)?;
    let e = &computed.estimate;
    let at_size = e.at_size.unwrap_or(audiences::Expectation {
        expected_precision: 0.0,
        expected_recall: 0.0,
        lift: 0.0,
    });
    println!(
        "\n4. Audience {id} \"{}\": {} members ({} held out as control) in {:.1}s (includes preparing the propensity model).",
        spec.name,
        computed.members.len(),
        e.control_size,
        t.elapsed().as_secs_f64()
    );
    println!(
        "   Backtested estimate: precision {:.3} vs base rate {:.3} → lift {:.2}× over a random audience; ~{:.0} of them order it within 30 days.",
        at_size.expected_precision,
        e.base_rate,
        at_size.lift,
        e.expected_engaged.unwrap_or(0.0)
    );
    if let Some(model) = &e.model {
        let weights: Vec<String> = model
            .features
            .iter()
            .map(|f| format!("{} {:+.2}", f.name, f.coefficient))
            .collect();
        println!(
            "   Learned weights (per standard deviation): {}",
            weights.join(", ")
        );
    }
    println!("   Top members:");
    for m in computed.members.iter().take(5) {
        println!(
            "     #{:<3} {:<8} score {:.3}{}",
            m.rank,
            m.user_id,
            m.score,
            if m.control { " (control)" } else { "" }
        );
    }
    // The tokens the next steps need: generated here on a new store (a later `serve` finds
    // them and prints nothing), since the store keeps only their hashes.
    let (_, generated) = Credentials::resolve(&store, config)?;
    println!(
        "\nDone in {:.1}s. Serve it (the same binary):\n  {} serve --data-dir {}",
        started.elapsed().as_secs_f64(),
        this_binary(),
        dir.display()
    );
    let secret = |name: &str| {
        generated
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
    };
    let admin = if generated.is_empty() {
        println!(
            "Credentials: this store already had them and keeps only their hashes. New ones, printed once:\n  {0} credentials rotate admin --data-dir {1}\n  {0} credentials rotate write-key --keep-old --data-dir {1}",
            this_binary(),
            dir.display()
        );
        "ADMIN_TOKEN".to_string()
    } else {
        println!("Credentials generated for this store (shown only now; it keeps their hashes):");
        for c in &generated {
            println!("  {:<14} {}", c.name, c.value);
        }
        secret("admin_token").unwrap_or_else(|| "$AFFINITY_ADMIN_TOKEN".to_string())
    };
    let base = format!("http://{}", server.listen);
    println!("Then, from another terminal:");
    for path in [
        "/api/v1/models".to_string(),
        format!("/api/v1/audiences/{id}"),
        "/api/v1/users/u0/recommendations".to_string(),
    ] {
        println!("  curl -H 'authorization: Bearer {admin}' {base}{path}");
    }
    Ok(())
}

/// How to run this binary again: its path as started (relative to the working directory
/// when inside it, as `./target/release/affinity` after `cargo run --release`), since after
/// `cargo run` no `affinity` is on the PATH.
fn this_binary() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "cargo run --release --".to_string();
    };
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf))
    {
        Some(relative) => format!("./{}", relative.display()),
        None => exe.display().to_string(),
    }
}

fn ingest(store: &SqliteStore, spec: SyntheticSpec) -> anyhow::Result<()> {
    let t = Instant::now();
    let total = spec.events;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} generating and storing events [{bar:30}] {pos}/{len}",
        )?
        .progress_chars("=> "),
    );
    let mut writer = store.bulk_writer()?;
    let (mut stored, mut seen) = (0usize, 0usize);
    let mut batch = Vec::with_capacity(20_000);
    let now = now_ms();
    for value in Generator::new(spec) {
        let message = Message::parse(&value.to_string(), None, now)
            .map_err(|e| anyhow::anyhow!("generated message invalid: {e}"))?;
        if message.kind == affinity_core::MessageType::Track {
            bar.inc(1);
        }
        batch.push(message);
        if batch.len() == batch.capacity() {
            stored += writer
                .append(&batch)?
                .iter()
                .filter(|o| **o == affinity_store::Outcome::Stored)
                .count();
            seen += batch.len();
            batch.clear();
        }
    }
    seen += batch.len();
    stored += writer
        .append(&batch)?
        .iter()
        .filter(|o| **o == affinity_store::Outcome::Stored)
        .count();
    writer.finish()?;
    bar.finish_and_clear();
    println!(
        "1. Stored {stored} new of {seen} generated Segment messages ({} track events) in {:.1}s{}.",
        total,
        t.elapsed().as_secs_f64(),
        if stored < seen {
            " (the rest were already there: reruns add nothing)"
        } else {
            ""
        }
    );
    Ok(())
}
