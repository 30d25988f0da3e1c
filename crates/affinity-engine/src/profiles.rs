//! People and what is known of them: identifiers, identify traits, computed traits, events.

use affinity_core::IdKind;
use affinity_store::{Profile, Profiles, RefusedMerge, StoredEvent, Trait, TraitStore};

use crate::Engine;
use crate::engine::blocking;
use crate::error::{EngineError, Result};

impl Engine {
    /// The profile known by `id` of `kind`, or not found (with Segment's own wording).
    pub async fn profile(&self, kind: IdKind, id: String) -> Result<Profile> {
        let store = self.store.clone();
        blocking(move || store.profile(kind, &id)?.ok_or_else(not_found)).await
    }

    /// The profile's newest events, including those sent under identifiers merged into it.
    pub async fn profile_events(&self, profile_id: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let store = self.store.clone();
        blocking(move || Ok(store.profile_events(profile_id, limit)?)).await
    }

    /// Merges refused by the identity rule (one userId per profile), newest first: those
    /// recorded before `before` (`None` for the first page), at most `limit`.
    pub async fn refused_merges(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RefusedMerge>> {
        let store = self.store.clone();
        blocking(move || Ok(store.refused_merges(before, limit)?)).await
    }

    /// The profile with the traits Affinity computed for it.
    pub async fn profile_with_computed_traits(
        &self,
        kind: IdKind,
        id: String,
    ) -> Result<(Profile, Vec<Trait>)> {
        let store = self.store.clone();
        blocking(move || {
            let profile = store.profile(kind, &id)?.ok_or_else(not_found)?;
            let computed = store.computed_traits(profile.id)?;
            Ok((profile, computed))
        })
        .await
    }
}

fn not_found() -> EngineError {
    EngineError::NotFound("Profile was not found.".to_string())
}
