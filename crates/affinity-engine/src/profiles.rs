//! People and what is known of them: identifiers, identify traits, computed traits, audience
//! memberships, events.

use affinity_core::IdKind;
use affinity_store::{
    AudienceMembership, Profile, ProfileActivity, ProfileEventsQuery, ProfileIdentifier, Profiles,
    RefusedMerge, StoredEvent, Trait, TraitStore,
};

use crate::Engine;
use crate::engine::blocking;
use crate::error::{EngineError, Result};

/// What the Profile API's traits show of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTraits {
    /// With its identify traits.
    pub profile: Profile,
    /// Traits Affinity computed onto it.
    pub computed: Vec<Trait>,
    /// Live audiences it is a member of (control-group members included).
    pub audiences: Vec<AudienceMembership>,
}

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

    /// The profile with the traits Affinity computed for it and its audiences.
    pub async fn profile_traits(&self, kind: IdKind, id: String) -> Result<ProfileTraits> {
        let store = self.store.clone();
        blocking(move || {
            let profile = store.profile(kind, &id)?.ok_or_else(not_found)?;
            let computed = store.computed_traits(profile.id)?;
            let audiences = store.profile_audiences(profile.id)?;
            Ok(ProfileTraits {
                profile,
                computed,
                audiences,
            })
        })
        .await
    }

    /// The profile with its identifiers and when each was first seen.
    pub async fn profile_identifiers(
        &self,
        kind: IdKind,
        id: String,
    ) -> Result<(Profile, Vec<ProfileIdentifier>)> {
        let store = self.store.clone();
        blocking(move || {
            let profile = store.profile(kind, &id)?.ok_or_else(not_found)?;
            let ids = store.profile_identifiers(profile.id)?;
            Ok((profile, ids))
        })
        .await
    }

    /// The profile with when its messages started and ended.
    pub async fn profile_metadata(
        &self,
        kind: IdKind,
        id: String,
    ) -> Result<(Profile, ProfileActivity)> {
        let store = self.store.clone();
        blocking(move || {
            let profile = store.profile(kind, &id)?.ok_or_else(not_found)?;
            let activity = store.profile_activity(profile.id)?;
            Ok((profile, activity))
        })
        .await
    }

    /// A page of the profile's events, filtered and ordered as `query` says.
    pub async fn profile_events_page(
        &self,
        kind: IdKind,
        id: String,
        query: ProfileEventsQuery,
    ) -> Result<Vec<StoredEvent>> {
        let store = self.store.clone();
        blocking(move || {
            let profile = store.profile(kind, &id)?.ok_or_else(not_found)?;
            Ok(store.profile_events_page(profile.id, &query)?)
        })
        .await
    }
}

fn not_found() -> EngineError {
    EngineError::NotFound("Profile was not found.".to_string())
}
