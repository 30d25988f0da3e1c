//! Write keys, the admin token and the Profile API token: configured (environment or file),
//! or generated on first start and kept in the store **as hashes** (the secret is printed
//! once, when it is created, and never again: `affinity credentials rotate` makes a new one).
//!
//! A configured kind (say `AFFINITY_ADMIN_TOKEN`) replaces the stored ones of that kind and is
//! never written to the store. Stored credentials are re-read at most once per
//! [`REFRESH_AFTER`], so a rotation by the CLI (another process) takes effect in a running
//! server within about a second, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;

use affinity_store::sqlite::credentials::secret_hash;
use affinity_store::{CredentialKind, CredentialRecord, CredentialStore, StoreError};

use crate::EngineConfig;
use crate::clock::now_ms;

/// How long a read of the stored credentials is trusted. Bounds both how late a running
/// server sees a rotation and how often a stream of wrong guesses can make it read the store
/// (once per period, whatever the request rate).
pub const REFRESH_AFTER: Duration = Duration::from_secs(1);

/// Random characters in a generated secret: 32 alphanumerics, ~190 bits.
const SECRET_CHARS: usize = 32;

/// The credentials a server checks requests against.
pub struct Credentials {
    /// Hashes of configured secrets, per kind; a configured kind ignores the store.
    configured: HashMap<CredentialKind, Vec<String>>,
    cached: RwLock<Arc<Cached>>,
    /// One refresh at a time: requests arriving meanwhile wait for it rather than each
    /// reading the store.
    refreshing: tokio::sync::Mutex<()>,
}

struct Cached {
    hashes: HashMap<CredentialKind, Vec<String>>,
    read_at: Instant,
}

/// A credential generated on this start, to be printed once.
#[derive(Debug, Clone)]
pub struct GeneratedCredential {
    pub name: &'static str,
    pub value: String,
}

/// A credential just created by [`rotate`]: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub record: CredentialRecord,
    pub secret: String,
}

impl Credentials {
    /// The configured credentials, and for each kind that has none configured the stored
    /// ones, generating (and storing the hash of) one where the store has none yet.
    pub fn resolve(
        store: &impl CredentialStore,
        config: &EngineConfig,
    ) -> Result<(Credentials, Vec<GeneratedCredential>), StoreError> {
        let mut configured = HashMap::new();
        if !config.write_keys.is_empty() {
            configured.insert(
                CredentialKind::WriteKey,
                config.write_keys.iter().map(|k| secret_hash(k)).collect(),
            );
        }
        if let Some(t) = &config.admin_token {
            configured.insert(CredentialKind::Admin, vec![secret_hash(t)]);
        }
        if let Some(t) = &config.profile_token {
            configured.insert(CredentialKind::Profile, vec![secret_hash(t)]);
        }
        let stored = store.credentials()?;
        let mut generated = Vec::new();
        for kind in CredentialKind::ALL {
            if configured.contains_key(&kind) || stored.iter().any(|c| c.kind == kind) {
                continue;
            }
            let secret = new_secret(kind);
            store.add_credential(kind, &secret, "generated", now_ms(), false)?;
            generated.push(GeneratedCredential {
                name: banner_name(kind),
                value: secret,
            });
        }
        let credentials = Credentials {
            configured,
            cached: RwLock::new(Arc::new(read(store)?)),
            refreshing: tokio::sync::Mutex::new(()),
        };
        Ok((credentials, generated))
    }

    /// Whether `secret` is a current credential of `kind`. Re-reads the store when the last
    /// read is older than [`REFRESH_AFTER`]; `store` is only called then (on the blocking
    /// pool: it reads SQLite). If that read fails, the previous credentials stay in force and
    /// the failure is logged: a locked database must not lock everyone out.
    pub async fn verify<S>(&self, store: &S, kind: CredentialKind, secret: &str) -> bool
    where
        S: CredentialStore + Clone + Send + 'static,
    {
        let hash = secret_hash(secret);
        if let Some(hashes) = self.configured.get(&kind) {
            return contains(hashes, &hash);
        }
        let mut cached = self.current();
        if cached.read_at.elapsed() >= REFRESH_AFTER {
            let _one = self.refreshing.lock().await;
            cached = self.current();
            if cached.read_at.elapsed() >= REFRESH_AFTER {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || read(&store)).await {
                    Ok(Ok(fresh)) => {
                        cached = Arc::new(fresh);
                        if let Ok(mut slot) = self.cached.write() {
                            *slot = Arc::clone(&cached);
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot re-read credentials; keeping the previous ones")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot re-read credentials; keeping the previous ones")
                    }
                }
            }
        }
        cached
            .hashes
            .get(&kind)
            .is_some_and(|hashes| contains(hashes, &hash))
    }

    /// Whether `kind` comes from the configuration (environment or file) rather than the
    /// store.
    pub fn is_configured(&self, kind: CredentialKind) -> bool {
        self.configured.contains_key(&kind)
    }

    fn current(&self) -> Arc<Cached> {
        match self.cached.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

fn read(store: &impl CredentialStore) -> Result<Cached, StoreError> {
    let mut hashes: HashMap<CredentialKind, Vec<String>> = HashMap::new();
    for c in store.credentials()? {
        hashes.entry(c.kind).or_default().push(c.hash);
    }
    Ok(Cached {
        hashes,
        read_at: Instant::now(),
    })
}

/// Creates a new secret of `kind` and stores its hash. Unless `keep_old`, the other
/// credentials of that kind stop working (in the same transaction; a running server notices
/// within [`REFRESH_AFTER`]). Keeping the old write keys lets deployed clients move over
/// before `revoke`.
pub fn rotate(
    store: &impl CredentialStore,
    kind: CredentialKind,
    keep_old: bool,
) -> Result<NewCredential, StoreError> {
    let secret = new_secret(kind);
    let record = store.add_credential(kind, &secret, "rotated", now_ms(), !keep_old)?;
    Ok(NewCredential { record, secret })
}

/// The label a first start prints beside a generated secret.
fn banner_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::WriteKey => "write_key",
        CredentialKind::Admin => "admin_token",
        CredentialKind::Profile => "profile_token",
    }
}

fn new_secret(kind: CredentialKind) -> String {
    let tag = match kind {
        CredentialKind::WriteKey => "wk",
        CredentialKind::Admin => "adm",
        CredentialKind::Profile => "prf",
    };
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_CHARS)
        .map(char::from)
        .collect();
    format!("{tag}_{random}")
}

/// Whether `hash` is among `hashes`, comparing every byte of every candidate: the time taken
/// does not depend on where a guess's hash first differs (the hashes are of equal length,
/// so nothing about a secret's length shows either).
fn contains(hashes: &[String], hash: &str) -> bool {
    hashes.iter().fold(false, |found, h| {
        let same = h.len() == hash.len()
            && h.bytes()
                .zip(hash.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
        found | same
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use affinity_store::sqlite::SqliteStore;

    #[tokio::test]
    async fn configured_kinds_win_and_generated_ones_are_stored_as_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        // An admin token left in the store by an earlier start without the variable.
        let stored_admin = rotate(&store, CredentialKind::Admin, false).expect("rotate");
        let config = EngineConfig {
            admin_token: Some("adm_from_env".into()),
            ..EngineConfig::default()
        };
        let (credentials, generated) = Credentials::resolve(&store, &config).expect("resolve");
        let names: Vec<&str> = generated.iter().map(|g| g.name).collect();
        assert_eq!(names, ["write_key", "profile_token"]);
        for g in &generated {
            let stored = store.credentials().expect("list");
            assert!(stored.iter().any(|c| c.hash == secret_hash(&g.value)));
            assert!(
                stored
                    .iter()
                    .all(|c| c.hash != g.value && c.prefix.len() == 8)
            );
        }
        let admin = CredentialKind::Admin;
        assert!(credentials.verify(&store, admin, "adm_from_env").await);
        assert!(
            !credentials
                .verify(&store, admin, &stored_admin.secret)
                .await
        );
        let key = &generated[0].value;
        assert!(
            credentials
                .verify(&store, CredentialKind::WriteKey, key)
                .await
        );
        // A write key is not an admin token.
        assert!(
            !credentials
                .verify(&store, CredentialKind::Profile, key)
                .await
        );
        // A second start generates nothing.
        let (_, again) = Credentials::resolve(&store, &config).expect("resolve");
        assert!(again.is_empty());
    }

    #[test]
    fn secrets_match_only_when_equal_whatever_their_lengths() {
        let stored = [secret_hash("adm_secret"), secret_hash("adm_other")];
        assert!(contains(&stored, &secret_hash("adm_secret")));
        assert!(contains(&stored, &secret_hash("adm_other")));
        assert!(!contains(&stored, &secret_hash("adm_secreT")));
        assert!(!contains(&stored, &secret_hash("adm_secret_longer")));
        assert!(!contains(&stored, &secret_hash("")));
        assert!(!contains(&[], &secret_hash("adm_secret")));
    }
}
