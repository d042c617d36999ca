//! The users' categorical features as the tower sees them: each key has a
//! table of embeddings whose row 0 stands for "no value" (the user has none
//! for the key), row 1 for "other" (a value the vocabulary has not seen: a
//! new value maps here until a round adds it), and rows 2.. for the values
//! seen, in the order they were first seen. A user with several values of a
//! key gets the mean of their rows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The row of a key's table for a user without a value for it.
pub(crate) const MISSING: u32 = 0;
/// The row for a value the vocabulary does not know.
pub(crate) const OTHER: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureKey {
    pub name: String,
    pub values: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl FeatureKey {
    /// Rows of the key's table.
    pub fn rows(&self) -> usize {
        self.values.len() + 2
    }

    fn row_of(&self, value: &str) -> u32 {
        self.index.get(value).copied().unwrap_or(OTHER)
    }
}

/// Keys in the order of the tower's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureVocab {
    pub keys: Vec<FeatureKey>,
}

impl FeatureVocab {
    /// The vocabulary of every key and value in `users` (keys sorted by
    /// name, values in order of first appearance).
    pub fn build<'a>(users: impl Iterator<Item = &'a [(String, String)]>) -> Self {
        let mut vocab = FeatureVocab::default();
        let mut keys: Vec<String> = Vec::new();
        let users: Vec<&[(String, String)]> = users.collect();
        for features in &users {
            for (k, _) in features.iter() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys.sort();
        vocab.keys = keys
            .into_iter()
            .map(|name| FeatureKey {
                name,
                values: Vec::new(),
                index: HashMap::new(),
            })
            .collect();
        vocab.extend(users.into_iter());
        vocab
    }

    /// Adds the values of known keys not seen before; returns, per key, how
    /// many rows it had (new rows follow). Keys not in the vocabulary are
    /// left for the next full round (they would widen the tower).
    pub fn extend<'a>(&mut self, users: impl Iterator<Item = &'a [(String, String)]>) -> Vec<usize> {
        let before: Vec<usize> = self.keys.iter().map(FeatureKey::rows).collect();
        for features in users {
            for (k, v) in features {
                if let Some(key) = self.keys.iter_mut().find(|key| key.name == *k) {
                    if !key.index.contains_key(v) {
                        let row = key.rows() as u32;
                        key.index.insert(v.clone(), row);
                        key.values.push(v.clone());
                    }
                }
            }
        }
        before
    }

    pub fn rebuild_indexes(&mut self) {
        for key in &mut self.keys {
            key.index = key
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (v.clone(), i as u32 + 2))
                .collect();
        }
    }

    /// The rows of `features`, key by key: `MISSING` alone for a key the
    /// user has no value of.
    pub fn encode(&self, features: &[(String, String)]) -> Vec<Vec<u32>> {
        self.keys
            .iter()
            .map(|key| {
                let rows: Vec<u32> = features
                    .iter()
                    .filter(|(k, _)| *k == key.name)
                    .map(|(_, v)| key.row_of(v))
                    .collect();
                if rows.is_empty() {
                    vec![MISSING]
                } else {
                    rows
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_map_to_rows_and_unknown_ones_to_other() {
        let users = [
            f(&[("gender", "F"), ("genre", "a"), ("genre", "b")]),
            f(&[("gender", "M")]),
        ];
        let mut vocab = FeatureVocab::build(users.iter().map(Vec::as_slice));
        assert_eq!(
            vocab.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            ["gender", "genre"]
        );
        assert_eq!(vocab.encode(&users[0]), vec![vec![2], vec![2, 3]]);
        assert_eq!(vocab.encode(&users[1]), vec![vec![3], vec![MISSING]]);
        assert_eq!(
            vocab.encode(&f(&[("gender", "X"), ("age", "9")])),
            vec![vec![OTHER], vec![MISSING]]
        );
        // A later round adds the new value; a new key waits for a full round.
        let before = vocab.extend([f(&[("gender", "X"), ("age", "9")])].iter().map(Vec::as_slice));
        assert_eq!(before, [4, 4]);
        assert_eq!(vocab.encode(&f(&[("gender", "X")])), vec![vec![4], vec![MISSING]]);
        let mut copy = vocab.clone();
        copy.keys.iter_mut().for_each(|k| k.index.clear());
        copy.rebuild_indexes();
        assert_eq!(copy, vocab);
    }
}
