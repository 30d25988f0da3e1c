use std::collections::{BTreeSet, HashMap};

use affinity_core::{IdKind, Message};
use affinity_store::sqlite::SqliteStore;
use affinity_store::{EventLog, Profiles};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// A refused merge as the model records it: message, userId, identifier, its owner.
type Refused = (String, String, IdKind, String, String);

/// The identity rules, written as directly as possible: a profile table and an id map. A
/// profile holds at most one user (`user_of` is an `Option`), so every merge or link that
/// would join two users is refused and recorded.
#[derive(Default)]
struct Model {
    ids: HashMap<(IdKind, String), usize>,
    user_of: Vec<Option<String>>,
    merged_into: Vec<Option<usize>>,
    events: Vec<usize>,
    refused: BTreeSet<Refused>,
    /// (userId, anonymousId) pairs whose implied link was already recorded as refused: a
    /// shared device is recorded once, not once per message.
    refused_links: BTreeSet<(String, String)>,
    /// The message being applied, named in the refusals it causes.
    current: String,
}

impl Model {
    fn find(&self, mut p: usize) -> usize {
        while let Some(n) = self.merged_into[p] {
            p = n;
        }
        p
    }
    fn get(&self, kind: IdKind, id: &str) -> Option<usize> {
        self.ids.get(&(kind, id.to_string())).map(|&p| self.find(p))
    }
    fn create(&mut self, user: Option<&str>) -> usize {
        self.user_of.push(user.map(str::to_string));
        self.merged_into.push(None);
        self.user_of.len() - 1
    }
    fn set(&mut self, kind: IdKind, id: &str, p: usize) {
        self.ids.insert((kind, id.to_string()), p);
    }
    fn ensure(&mut self, kind: IdKind, id: &str) -> usize {
        if let Some(p) = self.get(kind, id) {
            return p;
        }
        let p = self.create((kind == IdKind::UserId).then_some(id));
        self.set(kind, id, p);
        p
    }
    fn refuse_link(&mut self, user: &str, anon: &str, owner: usize) {
        if self
            .refused_links
            .insert((user.to_string(), anon.to_string()))
        {
            let owner = self.user_of[owner].clone().expect("identified");
            self.refused.insert((
                self.current.clone(),
                user.to_string(),
                IdKind::AnonymousId,
                anon.to_string(),
                owner,
            ));
        }
    }
    fn merge(&mut self, from: usize, into: usize) {
        if self.user_of[into].is_none() {
            self.user_of[into] = self.user_of[from].clone();
        }
        self.merged_into[from] = Some(into);
    }
    fn link(&mut self, user: &str, anon: &str) -> usize {
        match (
            self.get(IdKind::UserId, user),
            self.get(IdKind::AnonymousId, anon),
        ) {
            (None, None) => {
                let p = self.create(Some(user));
                self.set(IdKind::UserId, user, p);
                self.set(IdKind::AnonymousId, anon, p);
                p
            }
            (Some(p), None) => {
                self.set(IdKind::AnonymousId, anon, p);
                p
            }
            (None, Some(q)) if self.user_of[q].is_none() => {
                self.user_of[q] = Some(user.to_string());
                self.set(IdKind::UserId, user, q);
                q
            }
            (None, Some(q)) => {
                let p = self.create(Some(user));
                self.set(IdKind::UserId, user, p);
                self.refuse_link(user, anon, q);
                p
            }
            (Some(p), Some(q)) if p == q => p,
            (Some(p), Some(q)) if self.user_of[q].is_none() => {
                self.merge(q, p);
                p
            }
            (Some(p), Some(q)) => {
                self.refuse_link(user, anon, q);
                p
            }
        }
    }
    fn apply(&mut self, m: &Message) {
        self.current = m.message_id.clone();
        let p = if let (Some(prev), Some(user)) = (&m.previous_id, &m.user_id) {
            let into = self.ensure(IdKind::UserId, user);
            let before = self
                .get(IdKind::UserId, prev)
                .map(|p| (IdKind::UserId, p))
                .or_else(|| {
                    self.get(IdKind::AnonymousId, prev)
                        .map(|p| (IdKind::AnonymousId, p))
                });
            match before {
                // `into` has a user: a `before` with its own user would make two.
                Some((kind, b)) if b != into => match self.user_of[b].clone() {
                    Some(owner) => {
                        self.refused.insert((
                            m.message_id.clone(),
                            user.clone(),
                            kind,
                            prev.clone(),
                            owner,
                        ));
                    }
                    None => self.merge(b, into),
                },
                Some(_) => {}
                None => self.set(IdKind::AnonymousId, prev, into),
            }
            if let Some(anon) = &m.anonymous_id {
                self.link(user, anon);
            }
            self.find(into)
        } else {
            match (&m.user_id, &m.anonymous_id) {
                (Some(u), Some(a)) => self.link(u, a),
                (Some(u), None) => self.ensure(IdKind::UserId, u),
                (None, Some(a)) => self.ensure(IdKind::AnonymousId, a),
                (None, None) => unreachable!("validated"),
            }
        };
        self.events.push(p);
    }
    /// Every identifier with the set of identifiers sharing its profile.
    fn groups(&self) -> HashMap<(IdKind, String), BTreeSet<(IdKind, String)>> {
        let mut by_profile: HashMap<usize, BTreeSet<(IdKind, String)>> = HashMap::new();
        for (key, &p) in &self.ids {
            by_profile
                .entry(self.find(p))
                .or_default()
                .insert(key.clone());
        }
        self.ids
            .iter()
            .map(|(key, &p)| (key.clone(), by_profile[&self.find(p)].clone()))
            .collect()
    }
}

fn random_message(rng: &mut ChaCha8Rng, n: usize) -> Message {
    let user = format!("u{}", rng.random_range(0..12));
    let anon = format!("a{}", rng.random_range(0..16));
    let body = match rng.random_range(0..10) {
        0..=2 => json!({"type": "track", "event": "E", "userId": user}),
        3..=5 => json!({"type": "track", "event": "E", "anonymousId": anon}),
        6..=7 => {
            json!({"type": "identify", "userId": user, "anonymousId": anon, "traits": {"n": n}})
        }
        8 => {
            let previous = if rng.random_bool(0.5) {
                format!("u{}", rng.random_range(0..12))
            } else {
                anon
            };
            json!({"type": "alias", "userId": user, "previousId": previous})
        }
        _ => json!({"type": "track", "event": "E", "userId": user, "anonymousId": anon}),
    };
    let mut body = body;
    body["messageId"] = json!(format!("m{n}"));
    Message::parse(&body.to_string(), None, n as i64).expect("valid")
}

#[test]
fn random_streams_resolve_as_the_model_says() {
    // Refusals of each kind seen over all seeds: the streams must exercise the rule.
    let (mut alias_refusals, mut link_refusals) = (0, 0);
    for seed in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Model::default();
        let mut writer = store.writer().expect("writer");
        let mut n = 0;
        for round in 0..12 {
            // A fresh writer now and then: its cache must reload the committed state.
            if round % 4 == 3 {
                writer = store.writer().expect("writer");
            }
            let size = rng.random_range(1..25);
            let messages: Vec<Message> = (0..size)
                .map(|_| {
                    n += 1;
                    random_message(&mut rng, n)
                })
                .collect();
            for m in &messages {
                model.apply(m);
            }
            writer.append(&messages).expect("append");
            // Retrying a whole batch changes nothing.
            if rng.random_bool(0.3) {
                writer.append(&messages).expect("retry");
            }
        }
        let stored: BTreeSet<Refused> = store
            .refused_merges(None, 100_000)
            .expect("refused merges")
            .into_iter()
            .map(|r| {
                assert_eq!(r.reason, "user_id_limit");
                (
                    r.message_id,
                    r.user_id,
                    r.identifier_kind,
                    r.identifier,
                    r.owner,
                )
            })
            .collect();
        assert_eq!(stored, model.refused, "seed {seed}: refused merges");
        let aliases = model
            .refused
            .iter()
            .filter(|r| r.2 == IdKind::UserId)
            .count();
        alias_refusals += aliases;
        link_refusals += model.refused.len() - aliases;
        for ((kind, id), expected) in model.groups() {
            let p = store
                .profile(kind, &id)
                .expect("read")
                .expect("profile exists");
            let got: BTreeSet<(IdKind, String)> = p.identities.iter().cloned().collect();
            let users = got.iter().filter(|(k, _)| *k == IdKind::UserId).count();
            assert!(users <= 1, "seed {seed}: {users} user ids on one profile");
            assert_eq!(
                got,
                expected,
                "seed {seed}: identities of {}:{id}",
                kind.as_str()
            );
            let expected_events = model
                .events
                .iter()
                .filter(|&&e| model.find(e) == model.get(kind, &id).expect("known"))
                .count();
            let events = store.profile_events(p.id, 10_000).expect("events");
            assert_eq!(
                events.len(),
                expected_events,
                "seed {seed}: events of {}:{id}",
                kind.as_str()
            );
        }
    }
    assert!(alias_refusals > 0, "no alias between two users was refused");
    assert!(link_refusals > 0, "no shared-device link was refused");
}
