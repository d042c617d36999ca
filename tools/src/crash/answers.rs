//! What a store answers, read whole so that two states can be compared:
//! every probed item's vector in every space (bit for bit), every probed
//! user's history and features, every probed item's attributes, the
//! deleted items and the trending ranking.

use std::collections::{BTreeMap, BTreeSet};

use emberdb::{Query, SpaceKind, Store};

/// Items probed: ids 0..ITEM_PROBE (every scenario and fixture writes
/// below it).
pub const ITEM_PROBE: u64 = 1_000;
/// Users probed: ids 0..USER_PROBE.
pub const USER_PROBE: u64 = 200;

type Pairs = Vec<(String, String)>;

/// One space's stored vectors, as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceAnswers {
    pub kind: SpaceKind,
    pub vectors: BTreeMap<u64, Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub spaces: BTreeMap<String, SpaceAnswers>,
    pub histories: BTreeMap<u64, Vec<u64>>,
    pub features: BTreeMap<u64, Pairs>,
    pub attributes: BTreeMap<u64, Pairs>,
    pub deleted: BTreeSet<u64>,
    /// The trending ranking (id, score bits): its counts must match the
    /// histories whatever the crash.
    pub popular: Vec<(u64, u32)>,
}

impl Answers {
    pub fn read(store: &Store) -> anyhow::Result<Answers> {
        let mut spaces = BTreeMap::new();
        for space in store.spaces() {
            let mut vectors = BTreeMap::new();
            for id in 0..ITEM_PROBE {
                if let Some(v) = space.get(id)? {
                    vectors.insert(id, v.iter().map(|x| x.to_bits()).collect());
                }
            }
            spaces.insert(
                space.name().to_string(),
                SpaceAnswers {
                    kind: space.kind(),
                    vectors,
                },
            );
        }
        let mut histories = BTreeMap::new();
        let mut features = BTreeMap::new();
        for user in 0..USER_PROBE {
            let history = store.history(user)?;
            if !history.is_empty() {
                histories.insert(user, history);
            }
            let f = store.try_user_features(user)?;
            if !f.is_empty() {
                features.insert(user, f);
            }
        }
        let mut attributes = BTreeMap::new();
        let mut deleted = BTreeSet::new();
        for item in 0..ITEM_PROBE {
            let a = store.attributes(item);
            if !a.is_empty() {
                attributes.insert(item, a);
            }
            if store.is_deleted(item) {
                deleted.insert(item);
            }
        }
        let popular = store
            .knn(&Query::popular().k(50))?
            .into_iter()
            .map(|h| (h.id, h.score.to_bits()))
            .collect();
        Ok(Answers {
            spaces,
            histories,
            features,
            attributes,
            deleted,
            popular,
        })
    }

    /// The differences between `self` (what the store answers) and
    /// `expected`, a line each (at most a few per kind). Trained spaces
    /// listed in `either` may instead equal `alternative`'s (a round that
    /// a crash interrupted publishes its generation or not).
    pub fn differences(&self, expected: &Answers, alternative: Option<&Answers>) -> Vec<String> {
        let mut out = Vec::new();
        for (name, space) in &expected.spaces {
            let Some(got) = self.spaces.get(name) else {
                out.push(format!("space {name:?} is missing"));
                continue;
            };
            let other = alternative.and_then(|a| a.spaces.get(name));
            if got == space || other.is_some_and(|o| o == got) {
                continue;
            }
            let ids: BTreeSet<u64> = space.vectors.keys().chain(got.vectors.keys()).copied().collect();
            let wrong: Vec<u64> = ids
                .into_iter()
                .filter(|id| space.vectors.get(id) != got.vectors.get(id))
                .take(5)
                .collect();
            out.push(format!(
                "space {name:?}: {} items expected, {} found; differing items include {wrong:?}",
                space.vectors.len(),
                got.vectors.len()
            ));
        }
        compare_maps("history of user", &self.histories, &expected.histories, &mut out);
        compare_maps("features of user", &self.features, &expected.features, &mut out);
        compare_maps("attributes of item", &self.attributes, &expected.attributes, &mut out);
        if self.deleted != expected.deleted {
            out.push(format!(
                "deleted items: expected {:?}, found {:?}",
                expected.deleted, self.deleted
            ));
        }
        if self.popular != expected.popular && alternative.is_none_or(|a| a.popular != self.popular) {
            out.push(format!(
                "trending ranking: expected {:?}, found {:?}",
                &expected.popular[..expected.popular.len().min(5)],
                &self.popular[..self.popular.len().min(5)]
            ));
        }
        out
    }
}

fn compare_maps<V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<u64, V>,
    expected: &BTreeMap<u64, V>,
    out: &mut Vec<String>,
) {
    let keys: BTreeSet<u64> = got.keys().chain(expected.keys()).copied().collect();
    for key in keys.into_iter().filter(|k| got.get(k) != expected.get(k)).take(3) {
        out.push(format!(
            "{what} {key}: expected {:?}, found {:?}",
            expected.get(&key),
            got.get(&key)
        ));
    }
}
