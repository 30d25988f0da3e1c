//! `affinity credentials list|rotate|revoke`: the write keys and API tokens of a data
//! directory. The store keeps only their hashes, so `list` shows a short prefix, never a
//! secret, and a lost secret is replaced by `rotate`, which prints the new one once. Safe
//! while a server uses the directory: the server re-reads credentials at most a second
//! after a change.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use affinity_core::timestamp::format_millis;
use affinity_engine::EngineConfig;
use affinity_engine::credentials::{REFRESH_AFTER, rotate};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{CredentialKind, CredentialStore};

#[derive(Args)]
pub struct CredentialsArgs {
    #[command(subcommand)]
    command: CredentialsCommand,
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// List the stored credentials: id, kind, prefix, creation time (never the secret).
    List,
    /// Create a new secret of KIND and print it once; the previous ones of that kind stop
    /// working unless --keep-old.
    Rotate {
        kind: Kind,
        /// Keep the previous credentials of this kind working (say, write keys deployed in
        /// clients), until `affinity credentials revoke ID`.
        #[arg(long)]
        keep_old: bool,
    },
    /// Delete one credential by the id `list` shows.
    Revoke { id: i64 },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// The management API's token (`Authorization: Bearer …`).
    Admin,
    /// Segment's Profile API token (`-u TOKEN:`).
    Profile,
    /// A Tracking API write key (`-u WRITE_KEY:`).
    WriteKey,
}

impl From<Kind> for CredentialKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Admin => CredentialKind::Admin,
            Kind::Profile => CredentialKind::Profile,
            Kind::WriteKey => CredentialKind::WriteKey,
        }
    }
}

/// The setting that, when present, overrides the stored credentials of a kind.
fn override_of(config: &EngineConfig, kind: CredentialKind) -> Option<&'static str> {
    let set = match kind {
        CredentialKind::WriteKey => !config.write_keys.is_empty(),
        CredentialKind::Admin => config.admin_token.is_some(),
        CredentialKind::Profile => config.profile_token.is_some(),
    };
    set.then_some(match kind {
        CredentialKind::WriteKey => "AFFINITY_WRITE_KEYS (or write_keys in the file)",
        CredentialKind::Admin => "AFFINITY_ADMIN_TOKEN (or admin_token in the file)",
        CredentialKind::Profile => "AFFINITY_PROFILE_TOKEN (or profile_token in the file)",
    })
}

pub fn run(config: &EngineConfig, args: &CredentialsArgs) -> anyhow::Result<()> {
    let dir: &Path = &config.data_dir;
    if !dir.join(affinity_store::sqlite::DB_FILE).exists() {
        bail!(
            "no Affinity store in {}: pass --data-dir (or set AFFINITY_DATA_DIR) to the server's data directory",
            dir.display()
        );
    }
    let store = SqliteStore::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    match &args.command {
        CredentialsCommand::List => {
            let all = store.credentials()?;
            println!(
                "{:<4} {:<10} {:<10} {:<25} origin",
                "id", "kind", "prefix", "created"
            );
            for c in &all {
                println!(
                    "{:<4} {:<10} {:<10} {:<25} {}",
                    c.id,
                    c.kind.as_str(),
                    format!("{}…", c.prefix),
                    format_millis(c.created_at),
                    c.origin
                );
            }
            for kind in CredentialKind::ALL {
                if let Some(setting) = override_of(config, kind) {
                    println!(
                        "note: {setting} is set here; a server started with it uses that {} instead of the stored ones",
                        kind.as_str()
                    );
                } else if !all.iter().any(|c| c.kind == kind) {
                    println!(
                        "note: no stored {0}: the next `affinity serve` generates one, or run `affinity credentials rotate {1}`",
                        kind.as_str(),
                        kind.as_str().replace('_', "-")
                    );
                }
            }
        }
        CredentialsCommand::Rotate { kind, keep_old } => {
            let kind = CredentialKind::from(*kind);
            let new = rotate(&store, kind, *keep_old)?;
            println!(
                "New {} (id {}), shown only now; the store keeps its hash:\n  {}",
                kind.as_str(),
                new.record.id,
                new.secret
            );
            if *keep_old {
                println!(
                    "The previous {} credentials still work: `affinity credentials revoke ID` when clients have moved over.",
                    kind.as_str()
                );
            } else {
                println!(
                    "The previous {} credentials no longer work (a running server notices within {}s).",
                    kind.as_str(),
                    REFRESH_AFTER.as_secs()
                );
            }
            if let Some(setting) = override_of(config, kind) {
                println!(
                    "warning: {setting} is set here; a server started with it ignores stored {} credentials",
                    kind.as_str()
                );
            }
        }
        CredentialsCommand::Revoke { id } => match store.revoke_credential(*id)? {
            Some(c) => println!(
                "Revoked {} {} ({}…); a running server refuses it within {}s.",
                c.kind.as_str(),
                c.id,
                c.prefix,
                REFRESH_AFTER.as_secs()
            ),
            None => bail!(
                "no credential with id {id} in {}: `affinity credentials list` shows the ids",
                dir.display()
            ),
        },
    }
    Ok(())
}
