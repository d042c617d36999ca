//! Item attributes (`Store::set_attributes`): string key/value pairs, a key
//! may repeat (`genre` = `Comedy`, `genre` = `Drama`). Each item's whole set
//! is logged as one record (kind 9, replacing the last), kept with the
//! rest of the behaviour (`crate::store::behaviour`: in memory until the next
//! checkpoint, then in a keyed run), and held in memory with a posting
//! list per (key, value), built at open by one scan of the runs. Memory is
//! bounded by items times attributes, not by events or users: filters
//! need the postings anyway.
//!
//! The posting lists are what filters are planned with: a filter resolves
//! to the sorted ids that match (or that do not), and its size is the
//! selectivity estimate (see `query::filter`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::idmap::IdMap;
use crate::runs::RunKind;
use crate::store::behaviour::features::FeatureSet;
use crate::store::behaviour::Behaviour;
use crate::store::{Store, Written};
use crate::wal::record;

/// The attribute key `ember ingest --items` stores titles under, and that
/// `ember knn` shows beside an id.
pub const TITLE_KEY: &str = "title";

impl Store {
    /// Sets `item`'s attributes, replacing any set before: string
    /// key/value pairs, a key may repeat (`("genre", "Comedy"), ("genre",
    /// "Drama"), ("year", "1995")`); an empty slice removes them. Filters
    /// (`Query::filter`) select on them, and a key holding integers can be
    /// filtered by range. The item need not be in any space yet. Logged,
    /// durable as the store's durability says, and included in snapshots.
    /// Refused (nothing changes): an empty key, a key or value of more than
    /// 256 bytes, more than 256 pairs.
    pub fn set_attributes(&self, item: u64, attributes: &[(&str, &str)]) -> Result<()> {
        check(item, attributes)?;
        self.mutate(|w| {
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_attributes(out, seq, item, attributes))?;
            w.core.next_seq += 1;
            let set: FeatureSet = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            self.shared.behaviour.set_attributes(seq, item, set.clone());
            self.shared.attributes.set(item, set);
            Ok(Written::At(end, ()))
        })
    }

    /// `item`'s attributes, in the order they were set (empty if none).
    pub fn attributes(&self, item: u64) -> Vec<(String, String)> {
        self.shared.attributes.get(item).as_ref().clone()
    }

    /// `item`'s title: its first [`TITLE_KEY`] attribute.
    pub fn title(&self, item: u64) -> Option<String> {
        self.shared
            .attributes
            .get(item)
            .iter()
            .find(|(k, _)| k == TITLE_KEY)
            .map(|(_, v)| v.clone())
    }
}

/// Items' attributes and the (key, value) -> items postings over them.
pub(crate) struct ItemAttributes {
    inner: RwLock<Inner>,
}

/// A map keyed by attribute keys or values (ahash, as [`IdMap`]).
type StrMap<V> = HashMap<String, V, ahash::RandomState>;

#[derive(Default)]
struct Inner {
    items: IdMap<u64, Arc<FeatureSet>>,
    /// key -> value -> the items that have it.
    postings: StrMap<StrMap<Posting>>,
}

/// The items with one (key, value). Most values of a key like a title
/// belong to one item: those are held inline, without a tree (a million
/// one-item trees were most of an open's attribute postings).
enum Posting {
    One(u64),
    Many(BTreeSet<u64>),
}

impl Posting {
    fn insert(&mut self, id: u64) {
        match self {
            Posting::One(one) if *one == id => {}
            Posting::One(one) => *self = Posting::Many(BTreeSet::from([*one, id])),
            Posting::Many(ids) => {
                ids.insert(id);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        match self {
            Posting::One(one) if *one == id => *self = Posting::Many(BTreeSet::new()),
            Posting::One(_) => {}
            Posting::Many(ids) => {
                ids.remove(&id);
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Posting::Many(ids) if ids.is_empty())
    }

    /// Appends the ids, ascending, to `out`.
    fn extend_into(&self, out: &mut Vec<u64>) {
        match self {
            Posting::One(one) => out.push(*one),
            Posting::Many(ids) => out.extend(ids.iter().copied()),
        }
    }

    #[cfg(test)]
    fn ids(&self) -> Vec<u64> {
        let mut out = Vec::new();
        self.extend_into(&mut out);
        out
    }
}

impl Inner {
    fn set(&mut self, item: u64, attributes: FeatureSet) {
        if let Some(old) = self.items.remove(&item) {
            for (k, v) in old.iter() {
                let Some(values) = self.postings.get_mut(k) else {
                    continue;
                };
                if let Some(ids) = values.get_mut(v) {
                    ids.remove(item);
                    if ids.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(k);
                }
            }
        }
        if attributes.is_empty() {
            return;
        }
        for (k, v) in &attributes {
            // Looked up before inserting: a key or value is copied only
            // the first time any item has it.
            let values = match self.postings.get_mut(k.as_str()) {
                Some(values) => values,
                None => self.postings.entry(k.clone()).or_default(),
            };
            match values.get_mut(v.as_str()) {
                Some(ids) => {
                    ids.insert(item);
                }
                None => {
                    values.insert(v.clone(), Posting::One(item));
                }
            }
        }
        self.items.insert(item, Arc::new(attributes));
    }
}

impl ItemAttributes {
    /// Every item's attributes, from the runs (one scan in item order).
    /// `Inner::set` copies a key or value only the first time it is seen
    /// and holds a value of one item (a title) without a tree: copying a
    /// `String` pair per pair and a tree per value took 2.7-3.1 s of an
    /// open at a million items with a title and two attributes each.
    pub fn load(behaviour: &Behaviour) -> Result<Self> {
        let mut inner = Inner::default();
        behaviour.for_each_keyed(RunKind::Attributes, &mut |item, set| {
            inner.set(item, set);
            Ok(())
        })?;
        Ok(ItemAttributes {
            inner: RwLock::new(inner),
        })
    }

    /// Replaces `item`'s attributes (an empty set removes them) in memory;
    /// the runs get them through `Behaviour::set_attributes`.
    pub fn set(&self, item: u64, attributes: FeatureSet) {
        self.inner.write().set(item, attributes);
    }

    pub fn get(&self, item: u64) -> Arc<FeatureSet> {
        self.inner.read().items.get(&item).cloned().unwrap_or_default()
    }

    /// Every attribute key any item has, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.inner.read().postings.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Items with attributes.
    pub fn len(&self) -> usize {
        self.inner.read().items.len()
    }

    /// The items whose `key` has the value `value`, sorted.
    pub fn with_value(&self, key: &str, value: &str) -> Vec<u64> {
        let inner = self.inner.read();
        inner
            .postings
            .get(key)
            .and_then(|values| values.get(value))
            .map(|ids| {
                let mut out = Vec::new();
                ids.extend_into(&mut out);
                out
            })
            .unwrap_or_default()
    }

    /// The items with an integer value of `key` in `min..=max`, sorted.
    pub fn in_range(&self, key: &str, min: i64, max: i64) -> Vec<u64> {
        let inner = self.inner.read();
        let Some(values) = inner.postings.get(key) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = Vec::new();
        let mut parts = 0;
        for (value, ids) in values {
            if value.trim().parse::<i64>().is_ok_and(|n| (min..=max).contains(&n)) {
                ids.extend_into(&mut out);
                parts += 1;
            }
        }
        if parts > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }
}

impl crate::query::filter::Postings for ItemAttributes {
    fn with_value(&self, key: &str, value: &str) -> Vec<u64> {
        ItemAttributes::with_value(self, key, value)
    }
    fn in_range(&self, key: &str, min: i64, max: i64) -> Vec<u64> {
        ItemAttributes::in_range(self, key, min, max)
    }
}

/// Refuses attributes a store would not keep: an empty key, a key or value
/// longer than [`crate::MAX_FEATURE_BYTES`], or more than [`crate::MAX_FEATURES`] pairs:
/// what `Store::set_attributes` refuses, for readers that check a whole
/// input before writing any of it.
pub fn check(item: u64, attributes: &[(&str, &str)]) -> Result<()> {
    crate::store::behaviour::features::check_pairs(attributes)
        .map_err(|reason| Error::InvalidAttributes { item, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> FeatureSet {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn postings_follow_replacements() {
        let mut inner = Inner::default();
        inner.set(1, pairs(&[("genre", "Comedy"), ("genre", "Drama"), ("year", "1995")]));
        inner.set(2, pairs(&[("genre", "Comedy"), ("year", "1996")]));
        inner.set(1, pairs(&[("genre", "Drama")]));
        let comedy: Vec<u64> = inner.postings["genre"]["Comedy"].ids();
        assert_eq!(comedy, vec![2]);
        assert!(!inner.postings["year"].contains_key("1995"));
        inner.set(2, Vec::new());
        assert!(!inner.postings.contains_key("year"));
        assert_eq!(inner.items.len(), 1);
    }

    #[test]
    fn a_posting_grows_from_one_item_and_empties() {
        let mut p = Posting::One(7);
        p.insert(7);
        assert_eq!(p.ids(), vec![7]);
        p.insert(3);
        assert_eq!(p.ids(), vec![3, 7]);
        p.remove(7);
        p.remove(3);
        assert!(p.is_empty());
        let mut q = Posting::One(9);
        q.remove(8);
        assert_eq!(q.ids(), vec![9]);
        q.remove(9);
        assert!(q.is_empty());
    }

    /// The bulk load from the runs against the same sets applied one by
    /// one: every item's set and every posting, after replacements and
    /// removals spread over runs and the recent part.
    #[test]
    fn loading_from_the_runs_builds_the_postings_that_setting_one_by_one_does() {
        use crate::meta::records::RunManifest;
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let behaviour = Behaviour::open(dir.path(), &RunManifest::default(), 10).unwrap();
        let mut manifest = RunManifest::default();
        let mut by_hand = Inner::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut seq = 0;
        for batch in 0..4 {
            for _ in 0..2_000 {
                let item = rng.gen_range(0..600u64);
                let set: FeatureSet = match rng.gen_range(0..10) {
                    0 => Vec::new(),
                    _ => (0..rng.gen_range(1..4))
                        .map(|_| {
                            let k = ["genre", "year", "title"][rng.gen_range(0..3)];
                            let v = match k {
                                "title" => format!("t{item}"),
                                _ => format!("{}", rng.gen_range(0..5)),
                            };
                            (k.to_string(), v)
                        })
                        .collect(),
                };
                behaviour.set_attributes(seq, item, set.clone());
                by_hand.set(item, set);
                seq += 1;
            }
            if batch < 3 {
                let flushed = behaviour.write_recent(&mut manifest, seq).unwrap();
                behaviour.install_flushed(flushed);
            }
        }
        let loaded = ItemAttributes::load(&behaviour).unwrap();
        assert_eq!(loaded.len(), by_hand.items.len());
        for (item, set) in &by_hand.items {
            assert_eq!(loaded.get(*item).as_ref(), set.as_ref(), "item {item}");
        }
        let inner = loaded.inner.read();
        assert_eq!(inner.postings.len(), by_hand.postings.len());
        for (k, values) in &by_hand.postings {
            assert_eq!(inner.postings[k].len(), values.len(), "key {k}");
            for (v, ids) in values {
                assert_eq!(inner.postings[k][v].ids(), ids.ids(), "{k} = {v}");
            }
        }
    }
}
