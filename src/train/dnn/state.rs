//! The YouTube DNN's persistent state: the item vocabulary, the users'
//! feature vocabulary, every trained tensor (item input embeddings,
//! feature embeddings, the tower's layers, item output vectors and biases),
//! Adam's moments, and how far the event log is trained. One file per
//! generation, named by the manifest like item2vec's trainer file.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `b"EMBERDNN"` |
//! | 8..12 | version u32 LE | [`DNN_VERSION`] |
//! | 12..16 | dim u32 LE | components of the user and item vectors |
//! | 16..24 | items u64 LE | vocabulary size |
//! | 24..32 | generation u64 LE | |
//! | 32..40 | watermark u64 LE | events with a smaller sequence number are trained |
//! | 40..48 | body_len u64 LE | bytes after the header |
//! | 48..52 | body_crc u32 LE | crc32 of the body |
//! | 52..60 | reserved | zero |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | body | the state, bincode (standard config), checked before decoding |

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::options::DnnOptions;
use super::tower::Layer;
use super::vocab::FeatureVocab;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::stamp::{Header, HeaderWriter, HEADER_LEN};
use crate::train::rng::Rng;

pub(crate) const MAGIC: &[u8; 8] = b"EMBERDNN";
pub(crate) const DNN_VERSION: u32 = 1;

/// Every trained tensor of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Params {
    /// `items x embed_dim`: the embeddings the watch vector averages.
    pub item_in: Vec<f32>,
    /// Per feature key, `rows x feature_dim` (see `FeatureVocab`).
    pub features: Vec<Vec<f32>>,
    pub layers: Vec<Layer>,
    /// `items x dim` and `items`: the softmax's item vectors and biases.
    pub item_out: Vec<f32>,
    pub item_bias: Vec<f32>,
}

impl Params {
    /// The same shapes, all zero (Adam's moments).
    pub fn zeros_like(&self) -> Params {
        let zeros = |v: &Vec<f32>| vec![0.0; v.len()];
        Params {
            item_in: zeros(&self.item_in),
            features: self.features.iter().map(zeros).collect(),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    inputs: l.inputs,
                    outputs: l.outputs,
                    w: zeros(&l.w),
                    b: zeros(&l.b),
                })
                .collect(),
            item_out: zeros(&self.item_out),
            item_bias: zeros(&self.item_bias),
        }
    }
}

/// Adam's state: the step count and the first and second moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Adam {
    pub step: u64,
    pub m: Params,
    pub v: Params,
}

/// What the model is trained to, and on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DnnState {
    pub dim: usize,
    pub embed_dim: usize,
    pub feature_dim: usize,
    /// Whether the tower's input has the feature embeddings and the example
    /// age (fixed when the tower was built, by a full round).
    pub use_features: bool,
    pub example_age: bool,
    /// Items the watch vector averages (the options' `watch_len` when the
    /// tower was built).
    pub watch_len: usize,
    /// Items the recent vector averages (0: no recent vector).
    pub recent_len: usize,
    pub ids: Vec<u64>,
    pub counts: Vec<u64>,
    pub features: FeatureVocab,
    pub params: Params,
    pub adam: Adam,
    pub generation: u64,
    pub watermark: u64,
    pub rounds: u64,
    /// The span of event times the last round saw, and its latest time: an
    /// example's age is `(latest - ts) / span` (0 at serving).
    pub age_span: f64,
    pub latest_ts: u64,
    #[serde(skip)]
    index: HashMap<u64, u32>,
}

impl DnnState {
    /// A model with no items, for a space never trained.
    pub fn empty(dim: usize, opts: &DnnOptions) -> Self {
        let mut state = DnnState {
            dim,
            embed_dim: opts.embed_dim,
            feature_dim: opts.feature_dim,
            use_features: opts.use_features,
            example_age: opts.example_age,
            watch_len: opts.watch_len,
            recent_len: opts.recent_len,
            ids: Vec::new(),
            counts: Vec::new(),
            features: FeatureVocab::default(),
            params: Params {
                item_in: Vec::new(),
                features: Vec::new(),
                layers: Vec::new(),
                item_out: Vec::new(),
                item_bias: Vec::new(),
            },
            adam: Adam {
                step: 0,
                m: empty_params(),
                v: empty_params(),
            },
            generation: 0,
            watermark: 0,
            rounds: 0,
            age_span: 1.0,
            latest_ts: 0,
            index: HashMap::new(),
        };
        state.build_tower(opts, 0);
        state
    }

    /// Width of the tower's input: the watch vector, the recent vector,
    /// one embedding per feature key, and the example age (its value and
    /// square).
    pub fn input_width(&self) -> usize {
        let features = if self.use_features {
            self.features.keys.len() * self.feature_dim
        } else {
            0
        };
        let recent = if self.recent_len > 0 { self.embed_dim } else { 0 };
        self.embed_dim + recent + features + if self.example_age { 2 } else { 0 }
    }

    /// (Re)builds the tower and the feature tables for the current feature
    /// vocabulary, from `seed`; Adam's moments restart.
    pub fn build_tower(&mut self, opts: &DnnOptions, seed: u64) {
        self.embed_dim = opts.embed_dim;
        self.feature_dim = opts.feature_dim;
        self.use_features = opts.use_features;
        self.example_age = opts.example_age;
        self.watch_len = opts.watch_len;
        self.recent_len = opts.recent_len;
        let mut rng = Rng::new(seed, 0x544F_5745);
        let mut draw = || rng.next_f32();
        let mut widths = vec![self.input_width()];
        widths.extend(&opts.hidden);
        widths.push(self.dim);
        self.params.layers = widths.windows(2).map(|w| Layer::new(w[0], w[1], &mut draw)).collect();
        let scale = 0.5 / self.feature_dim as f32;
        self.params.features = self
            .features
            .keys
            .iter()
            .map(|k| {
                (0..k.rows() * self.feature_dim)
                    .map(|_| (draw() * 2.0 - 1.0) * scale)
                    .collect()
            })
            .collect();
        self.adam = Adam {
            step: 0,
            m: self.params.zeros_like(),
            v: self.params.zeros_like(),
        };
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn index_of(&self, item: u64) -> Option<u32> {
        self.index.get(&item).copied()
    }

    /// The vocabulary index of `item`, adding it (with fresh rows) if new.
    pub fn intern(&mut self, item: u64, seed: u64) -> u32 {
        if let Some(&i) = self.index.get(&item) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(item);
        self.counts.push(0);
        self.index.insert(item, i);
        let mut rng = Rng::new(seed, item);
        let scale = 0.5 / self.embed_dim as f32;
        let p = &mut self.params;
        p.item_in
            .extend((0..self.embed_dim).map(|_| (rng.next_f32() * 2.0 - 1.0) * scale));
        let out_scale = 0.5 / self.dim as f32;
        p.item_out
            .extend((0..self.dim).map(|_| (rng.next_f32() * 2.0 - 1.0) * out_scale));
        p.item_bias.push(0.0);
        for moments in [&mut self.adam.m, &mut self.adam.v] {
            moments.item_in.extend(std::iter::repeat_n(0.0, self.embed_dim));
            moments.item_out.extend(std::iter::repeat_n(0.0, self.dim));
            moments.item_bias.push(0.0);
        }
        i
    }

    /// Re-initialises every item row from `seed` (a full round).
    pub fn reinitialise_items(&mut self, seed: u64) {
        let ids = std::mem::take(&mut self.ids);
        let counts = std::mem::take(&mut self.counts);
        self.index.clear();
        self.params.item_in.clear();
        self.params.item_out.clear();
        self.params.item_bias.clear();
        for moments in [&mut self.adam.m, &mut self.adam.v] {
            moments.item_in.clear();
            moments.item_out.clear();
            moments.item_bias.clear();
        }
        for id in ids {
            self.intern(id, seed);
        }
        self.counts = counts;
    }

    /// Item `i`'s stored vector: `[v_i, b_i]` (`dim + 1` components): an
    /// inner product with `[u, 1]` is the softmax's logit.
    pub fn stored_row(&self, i: u32, out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.params.item_out[i as usize * self.dim..][..self.dim]);
        out.push(self.params.item_bias[i as usize]);
    }

    /// Writes the state to `path`, atomically and durably.
    pub fn write(&self, path: &Path) -> Result<()> {
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| Error::Codec {
            context: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let header = HeaderWriter::new(MAGIC, DNN_VERSION)
            .u32(12, self.dim as u32)
            .u64(16, self.ids.len() as u64)
            .u64(24, self.generation)
            .u64(32, self.watermark)
            .u64(40, body.len() as u64)
            .u32(48, crc32fast::hash(&body))
            .finish();
        fsutil::write_atomically_with(path, |out| {
            out.write_all(&header)?;
            out.write_all(&body)
        })
    }

    /// Reads and checks the state at `path` for a space of dimension `dim`
    /// (the stored rows' `dim + 1` less the bias).
    pub fn read(path: &Path, dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path).at(path)?;
        let corrupt = |offset: u64, reason: String| Error::Corruption {
            file: path.to_path_buf(),
            offset,
            reason,
        };
        let h = Header::check(&bytes, MAGIC, DNN_VERSION, path, "DNN trainer state")?;
        if h.u32(12) as usize != dim {
            return Err(corrupt(
                12,
                format!("dimension {} in a space of dimension {dim}", h.u32(12)),
            ));
        }
        let body_len = h.u64(40);
        if body_len != (bytes.len() - HEADER_LEN) as u64 {
            return Err(corrupt(
                40,
                format!("a body of {body_len} bytes in a file of {} bytes", bytes.len()),
            ));
        }
        let body = &bytes[HEADER_LEN..];
        if crc32fast::hash(body) != h.u32(48) {
            return Err(corrupt(
                HEADER_LEN as u64,
                "DNN trainer state body checksum mismatch".into(),
            ));
        }
        let (mut state, used): (DnnState, usize) = crate::codec::decode_bounded(body)
            .map_err(|e| corrupt(HEADER_LEN as u64, format!("undecodable DNN state: {e}")))?;
        if used != body.len() {
            return Err(corrupt(
                HEADER_LEN as u64,
                format!("{} trailing bytes", body.len() - used),
            ));
        }
        state
            .check_shapes()
            .map_err(|reason| corrupt(HEADER_LEN as u64, reason))?;
        state.rebuild_indexes();
        if state.index.len() != state.ids.len() {
            return Err(corrupt(HEADER_LEN as u64, "an item id appears twice".into()));
        }
        Ok(state)
    }

    fn rebuild_indexes(&mut self) {
        self.index = self.ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        self.features.rebuild_indexes();
    }

    /// Every tensor has the size the vocabulary and dimensions say (a file
    /// that passed its checksum but was written wrong must not index out of
    /// bounds later).
    fn check_shapes(&self) -> std::result::Result<(), String> {
        let n = self.ids.len();
        let p = &self.params;
        let ok = self.counts.len() == n
            && p.item_in.len() == n * self.embed_dim
            && p.item_out.len() == n * self.dim
            && p.item_bias.len() == n
            && p.features.len() == self.features.keys.len()
            && p.features
                .iter()
                .zip(&self.features.keys)
                .all(|(t, k)| t.len() == k.rows() * self.feature_dim)
            && !p.layers.is_empty()
            && p.layers[0].inputs == self.input_width()
            && p.layers.last().is_some_and(|l| l.outputs == self.dim)
            && p.layers.windows(2).all(|w| w[0].outputs == w[1].inputs)
            && p.layers
                .iter()
                .all(|l| l.w.len() == l.inputs * l.outputs && l.b.len() == l.outputs)
            && self.adam.m.zeros_like() == p.zeros_like()
            && self.adam.v.zeros_like() == p.zeros_like();
        if ok {
            Ok(())
        } else {
            Err("tensor shapes disagree with the vocabulary and dimensions".into())
        }
    }
}

fn empty_params() -> Params {
    Params {
        item_in: Vec::new(),
        features: Vec::new(),
        layers: Vec::new(),
        item_out: Vec::new(),
        item_bias: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trainer-1.emb");
        let mut state = DnnState::empty(8, &DnnOptions::default());
        for item in [5u64, 9, 2] {
            state.intern(item, 1);
        }
        state.generation = 3;
        state.write(&path).unwrap();
        let back = DnnState::read(&path, 8).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.index_of(9), Some(1));
        assert!(matches!(DnnState::read(&path, 7), Err(Error::Corruption { .. })));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(DnnState::read(&path, 8), Err(Error::Corruption { .. })));
    }
}
