//! Credentials as hashes: the store keeps the SHA-256 of each secret and a short prefix to
//! tell them apart, never the secret.
//!
//! A fast hash is enough here, where a password would need a slow KDF (Argon2, scrypt): a
//! slow KDF makes guessing a *low-entropy* secret from its hash expensive. Every secret hashed
//! here is generated with 32 random alphanumeric characters (~190 bits): no guess list covers
//! that space, however fast each guess. A secret a person chose (`AFFINITY_ADMIN_TOKEN`) is
//! never written to the store at all. And the hash is computed on every tracking request,
//! where a KDF's deliberate ~100 ms would be the server's whole budget.

use rusqlite::params;
use sha2::{Digest, Sha256};

use super::SqliteStore;
use crate::{CredentialKind, CredentialRecord, CredentialStore, StoreError};

/// Characters of a secret shown as its non-secret label: the kind's tag (`adm_`) and 4
/// random characters (~24 of its ~190 bits), enough to tell a handful of credentials apart.
const PREFIX_CHARS: usize = 8;

/// The hex SHA-256 of a secret, as stored and as compared.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first characters of a secret, shown to tell credentials apart.
pub fn secret_prefix(secret: &str) -> String {
    secret.chars().take(PREFIX_CHARS).collect()
}

impl CredentialStore for SqliteStore {
    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, kind, hash, prefix, origin, created_at FROM credentials ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, hash, prefix, origin, created_at) = row?;
                let kind = CredentialKind::parse(&kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("credentials row {id}: unknown kind {kind:?}"))
                })?;
                out.push(CredentialRecord {
                    id,
                    kind,
                    hash,
                    prefix,
                    origin,
                    created_at,
                });
            }
            Ok(out)
        })
    }

    fn add_credential(
        &self,
        kind: CredentialKind,
        secret: &str,
        origin: &str,
        created_at: i64,
        replace: bool,
    ) -> Result<CredentialRecord, StoreError> {
        let mut conn = self.write_conn()?;
        let tx = conn.transaction()?;
        if replace {
            tx.execute("DELETE FROM credentials WHERE kind = ?1", [kind.as_str()])?;
        }
        let (hash, prefix) = (secret_hash(secret), secret_prefix(secret));
        tx.execute(
            "INSERT INTO credentials (kind, hash, prefix, origin, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![kind.as_str(), hash, prefix, origin, created_at],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(CredentialRecord {
            id,
            kind,
            hash,
            prefix,
            origin: origin.to_string(),
            created_at,
        })
    }

    fn revoke_credential(&self, id: i64) -> Result<Option<CredentialRecord>, StoreError> {
        let Some(record) = self.credentials()?.into_iter().find(|c| c.id == id) else {
            return Ok(None);
        };
        let conn = self.write_conn()?;
        conn.execute("DELETE FROM credentials WHERE id = ?1", [id])?;
        Ok(Some(record))
    }
}
