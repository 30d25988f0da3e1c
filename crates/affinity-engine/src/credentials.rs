//! Write keys, the admin token and the Profile API token: configured, or generated on first
//! start and kept in the store so that restarts keep them.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use affinity_store::{Meta, StoreError};

use crate::EngineConfig;

#[derive(Debug, Clone)]
pub struct Credentials {
    pub write_keys: Vec<String>,
    pub admin_token: String,
    pub profile_token: String,
}

/// A credential generated on this start, to be printed once.
#[derive(Debug, Clone)]
pub struct GeneratedCredential {
    pub name: &'static str,
    pub value: String,
}

impl Credentials {
    pub fn resolve(
        store: &impl Meta,
        config: &EngineConfig,
    ) -> Result<(Credentials, Vec<GeneratedCredential>), StoreError> {
        let mut generated = Vec::new();
        let write_keys = if config.write_keys.is_empty() {
            let stored = stored_or_generate(store, "write_keys", "wk", &mut generated)?;
            stored.split(',').map(str::to_string).collect()
        } else {
            config.write_keys.clone()
        };
        let admin_token = match &config.admin_token {
            Some(t) => t.clone(),
            None => stored_or_generate(store, "admin_token", "adm", &mut generated)?,
        };
        let profile_token = match &config.profile_token {
            Some(t) => t.clone(),
            None => stored_or_generate(store, "profile_token", "prf", &mut generated)?,
        };
        Ok((
            Credentials {
                write_keys,
                admin_token,
                profile_token,
            },
            generated,
        ))
    }

    pub fn is_write_key(&self, key: &str) -> bool {
        self.write_keys.iter().any(|k| constant_time_eq(k, key))
    }

    pub fn is_admin_token(&self, token: &str) -> bool {
        constant_time_eq(&self.admin_token, token)
    }

    pub fn is_profile_token(&self, token: &str) -> bool {
        constant_time_eq(&self.profile_token, token)
    }
}

fn stored_or_generate(
    store: &impl Meta,
    key: &'static str,
    prefix: &str,
    generated: &mut Vec<GeneratedCredential>,
) -> Result<String, StoreError> {
    if let Some(v) = store.get_meta(key)? {
        return Ok(v);
    }
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let value = format!("{prefix}_{random}");
    store.set_meta(key, &value)?;
    generated.push(GeneratedCredential {
        name: key,
        value: value.clone(),
    });
    Ok(value)
}

/// Compares secrets in time independent of where they differ and of their lengths: both are
/// hashed to 32 bytes first, then every byte is compared, so response time reveals neither
/// how much of a guess was right nor how long the secret is.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn secrets_match_only_when_equal_whatever_their_lengths() {
        assert!(constant_time_eq("adm_secret", "adm_secret"));
        assert!(!constant_time_eq("adm_secret", "adm_secreT"));
        assert!(!constant_time_eq("adm_secret", "adm_secret_longer"));
        assert!(!constant_time_eq("", "x"));
    }
}
