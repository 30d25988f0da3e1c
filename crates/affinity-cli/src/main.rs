//! The `affinity` binary: a thin layer that parses arguments once into typed settings and
//! calls the library crates.

mod catalog;
mod credentials;
mod demo;
mod generate;
mod import;
mod memory;
mod serve;
mod settings;
mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "affinity",
    version,
    about = "Self-hosted recommendations and audiences from Segment events"
)]
struct Cli {
    /// Configuration file (default: ./affinity.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides AFFINITY_DATA_DIR and the file).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: Tracking API, management API, Profile API.
    Serve {
        /// Address to listen on (overrides AFFINITY_LISTEN and the file).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Load Segment messages from a JSONL file (one message a line, `type` inside).
    Import(import::ImportArgs),
    /// Write a seeded synthetic event stream as JSONL (for tests, demos and benchmarks).
    Generate(generate::GenerateArgs),
    /// A self-contained tour: generate a shop, train, compute a trait and an audience.
    Demo(demo::DemoArgs),
    /// Set the catalog configuration from a JSON file (or print it).
    Catalog(catalog::CatalogArgs),
    /// Build the catalog, train and compare every candidate, record the chosen model.
    Train(train::TrainArgs),
    /// Print the time-holdout metrics of every candidate (records nothing).
    Eval(train::TrainArgs),
    /// List, rotate or revoke the write keys and API tokens (stored as hashes).
    Credentials(credentials::CredentialsArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    match cli.command {
        Command::Serve { listen } => {
            let overrides = settings::Overrides {
                listen,
                data_dir: cli.data_dir,
            };
            let config = settings::load(cli.config.as_deref(), &overrides, env)?;
            serve::run(config)
        }
        Command::Import(args) => {
            import::run(&data_dir(cli.config.as_deref(), cli.data_dir, env)?, &args)
        }
        Command::Generate(args) => generate::run(&args),
        Command::Demo(args) => {
            // The demo keeps its data apart from a real store unless told otherwise.
            let overrides = settings::Overrides {
                listen: None,
                data_dir: Some(
                    cli.data_dir
                        .unwrap_or_else(|| PathBuf::from("./affinity-demo")),
                ),
            };
            demo::run(
                &settings::load(cli.config.as_deref(), &overrides, env)?,
                &args,
            )
        }
        Command::Catalog(args) => {
            catalog::run(&data_dir(cli.config.as_deref(), cli.data_dir, env)?, &args)
        }
        Command::Train(args) => {
            train::run_train(&data_dir(cli.config.as_deref(), cli.data_dir, env)?, &args)
        }
        Command::Credentials(args) => {
            let overrides = settings::Overrides {
                listen: None,
                data_dir: cli.data_dir,
            };
            credentials::run(
                &settings::load(cli.config.as_deref(), &overrides, env)?.engine,
                &args,
            )
        }
        Command::Eval(args) => {
            train::run_eval(&data_dir(cli.config.as_deref(), cli.data_dir, env)?, &args)
        }
    }
}

/// The data directory from the layered settings, for commands that only need that.
fn data_dir(
    config: Option<&std::path::Path>,
    flag: Option<PathBuf>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<PathBuf> {
    let overrides = settings::Overrides {
        listen: None,
        data_dir: flag,
    };
    Ok(settings::load(config, &overrides, env)?.engine.data_dir)
}
