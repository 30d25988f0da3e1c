//! Saved models: every kind comes back scoring bit for bit as it was fitted, and a damaged,
//! foreign or mismatched file is refused with the reason instead of being served.

use std::io::Cursor;

use affinity_core::item_catalog::ItemCatalog;
use affinity_model::snapshot::{self, SnapshotError, SnapshotMeta};
use affinity_model::training::{Candidate, TrainedModel, TrainingOptions, train};
use affinity_model::{EaseParams, ItemKnnParams, KnownItems};

use crate::training::synthetic_catalog;

fn trained(catalog: &ItemCatalog, candidate: Candidate) -> TrainedModel {
    let mut options = TrainingOptions::with_seed(11);
    options.candidates = vec![candidate];
    options.blend_max_items = 0;
    options.tie_sigmas = 0.0;
    options.place_known_items = false;
    train(catalog, &options, &mut |_| {}).unwrap()
}

fn saved(catalog: &ItemCatalog, model: &TrainedModel) -> Vec<u8> {
    let mut file = Cursor::new(Vec::new());
    let meta = SnapshotMeta::new(7, catalog, model);
    let written = snapshot::write(&mut file, &meta, model).unwrap();
    let bytes = file.into_inner();
    assert_eq!(written, bytes.len() as u64);
    bytes
}

fn loaded(bytes: &[u8], catalog: &ItemCatalog) -> Result<TrainedModel, SnapshotError> {
    let snapshot = snapshot::read(&mut Cursor::new(bytes))?;
    assert_eq!(snapshot.meta.model_id, 7);
    snapshot::restore(snapshot, catalog)
}

fn bits(scores: Vec<f32>) -> Vec<u32> {
    scores.into_iter().map(f32::to_bits).collect()
}

fn als() -> Candidate {
    TrainingOptions::with_seed(11)
        .candidates
        .into_iter()
        .find(|c| matches!(c, Candidate::Als(_)))
        .unwrap()
}

#[test]
fn every_model_kind_round_trips_bit_for_bit() {
    let catalog = synthetic_catalog(8_000);
    let knn = Candidate::ItemKnn(ItemKnnParams::default());
    let kinds = [
        Candidate::Popularity,
        Candidate::Trending {
            half_life_days: 7.0,
        },
        als(),
        knn.clone(),
        Candidate::Ease(EaseParams::default()),
        Candidate::Blend {
            parts: vec![(0.6, als()), (0.4, knn.clone())],
        },
        Candidate::Repeat {
            base: Box::new(knn.clone()),
            known_items: KnownItems::Last,
        },
        Candidate::Repeat {
            base: Box::new(Candidate::Blend {
                parts: vec![(0.6, als()), (0.4, knn)],
            }),
            known_items: KnownItems::Rebuy {
                weight: 4.0,
                half_life_days: Some(30.0),
            },
        },
    ];
    for kind in kinds {
        let model = trained(&catalog, kind.clone());
        assert_eq!(model.chosen, kind);
        let back = loaded(&saved(&catalog, &model), &catalog).unwrap();
        assert_eq!(back.chosen, model.chosen, "{}", kind.label());
        assert_eq!(back.as_of, model.as_of);
        assert_eq!(back.data, model.data, "{}", kind.label());
        assert_eq!(back.fallback, model.fallback);
        assert_eq!(back.recommender.n_items(), model.recommender.n_items());
        for user in 0..catalog.users.len() as u32 {
            assert_eq!(
                bits(back.recommender.score_items(user).unwrap()),
                bits(model.recommender.score_items(user).unwrap()),
                "{} user {user}",
                kind.label()
            );
        }
        // The batched path (ALS's and the blend's own kernels) reads the restored layout too.
        let users: Vec<u32> = (0..catalog.users.len() as u32).step_by(5).collect();
        let collect = |m: &TrainedModel| {
            let mut out = Vec::new();
            m.recommender
                .score_users_with(&users, &mut |row, first, s| {
                    out.push((row, first, bits(s.to_vec())))
                })
                .unwrap();
            out
        };
        assert_eq!(collect(&back), collect(&model), "{}", kind.label());
    }
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let catalog = synthetic_catalog(4_000);
    let model = trained(&catalog, als());
    let good = saved(&catalog, &model);
    assert!(loaded(&good, &catalog).is_ok());

    // One flipped bit deep in the factors: every length still reads, the checksum does not.
    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x10;
    assert!(matches!(
        loaded(&flipped, &catalog),
        Err(SnapshotError::Checksum)
    ));

    let truncated = &good[..good.len() / 2];
    assert!(matches!(
        loaded(truncated, &catalog),
        Err(SnapshotError::Corrupt(_))
    ));

    // A damaged length must be refused before anything is allocated for it.
    let mut huge = good.clone();
    let fallback_len = 56 + 8 * 5 + 32 + 8;
    let chosen_len = u64::from_le_bytes(huge[fallback_len..fallback_len + 8].try_into().unwrap());
    let array_at = fallback_len + 8 + chosen_len as usize;
    huge[array_at..array_at + 8].copy_from_slice(&(u64::MAX / 8).to_le_bytes());
    assert!(matches!(
        loaded(&huge, &catalog),
        Err(SnapshotError::Corrupt(m)) if m.contains("overruns")
    ));

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        loaded(&newer, &catalog),
        Err(SnapshotError::Version { found: 99 })
    ));

    assert!(matches!(
        loaded(b"{\"not\": \"a model\"}", &catalog),
        Err(SnapshotError::NotAModel)
    ));
}

#[test]
fn a_catalog_with_other_users_or_items_is_refused() {
    let catalog = synthetic_catalog(4_000);
    let model = trained(&catalog, Candidate::Popularity);
    let bytes = saved(&catalog, &model);
    // More events: new users and items, so the model's indexes would mean other people.
    let grown = synthetic_catalog(6_000);
    assert_ne!(grown.users.len(), catalog.users.len());
    assert!(matches!(
        loaded(&bytes, &grown),
        Err(SnapshotError::Mismatch(_))
    ));
    // Same sizes, another configuration: refused by the fingerprint.
    let mut reweighted = synthetic_catalog(4_000);
    reweighted.config.events[0].weight = 9.0;
    assert!(matches!(
        loaded(&bytes, &reweighted),
        Err(SnapshotError::Mismatch(m)) if m.contains("changed")
    ));
}
