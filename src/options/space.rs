//! [`SpaceSpec`]: what one vector space of a store holds. A store has a
//! default space (named `"default"`, made by `Options::new` or
//! `Options::trained`) and may have more (`Options::space`); every space
//! shares the store's event log, user histories and item ids, and has its
//! own dimension, metric, index, segments and (for trained kinds) trainer.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::IndexSpec;
use crate::metric::Metric;
use crate::train::{DnnOptions, TrainOptions};

/// The name of the space `Options::new` and `Options::trained` make, which
/// `Store::upsert`, `get`, `delete` and queries without `.space(..)` use.
pub const DEFAULT_SPACE: &str = "default";

/// The longest space name, in bytes.
pub const MAX_SPACE_NAME: usize = 64;

/// Where a space's vectors come from (persisted: fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpaceKind {
    /// The host upserts them (text or image embeddings, say).
    Host,
    /// Trained inside the store from the events: item2vec (skip-gram with
    /// negative sampling over each user's items).
    Item2vec,
    /// Trained inside the store from the events and the users' features:
    /// the YouTube DNN's softmax item vectors, searched by inner product
    /// with the user tower's output.
    YoutubeDnn,
}

impl SpaceKind {
    /// `host`, `item2vec`, `youtube-dnn`.
    pub fn name(self) -> &'static str {
        match self {
            SpaceKind::Host => "host",
            SpaceKind::Item2vec => "item2vec",
            SpaceKind::YoutubeDnn => "youtube-dnn",
        }
    }

    /// Whether the store trains this space's vectors.
    pub fn is_trained(self) -> bool {
        !matches!(self, SpaceKind::Host)
    }

    /// Components of a stored row for vectors of `dim`: a DNN space stores
    /// each item as `[v, b]` (its softmax bias folded in).
    pub fn row_dim(self, dim: usize) -> usize {
        match self {
            SpaceKind::YoutubeDnn => dim + 1,
            _ => dim,
        }
    }
}

/// One space: built as `SpaceSpec::host(384).metric(Metric::Cosine)` or
/// `SpaceSpec::item2vec(64).train_options(..)`. Dimension, metric and kind
/// are persisted and checked on every open; the index and the training
/// options may change between opens.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceSpec {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) kind: SpaceKind,
    /// None: the stored spec of an existing space, else HNSW.
    pub(crate) index: Option<IndexSpec>,
    /// item2vec: its options (defaults unless given).
    pub(crate) train: Option<TrainOptions>,
    /// YouTube DNN: its options (defaults unless given).
    pub(crate) dnn: Option<DnnOptions>,
}

impl SpaceSpec {
    /// Vectors of `dim` components that the host upserts, by cosine.
    pub fn host(dim: usize) -> Self {
        SpaceSpec {
            dim,
            metric: Metric::Cosine,
            kind: SpaceKind::Host,
            index: None,
            train: None,
            dnn: None,
        }
    }

    /// Item vectors of `dim` components trained by item2vec from the
    /// store's events, by cosine.
    pub fn item2vec(dim: usize) -> Self {
        SpaceSpec {
            dim,
            metric: Metric::Cosine,
            kind: SpaceKind::Item2vec,
            index: None,
            train: Some(TrainOptions::default()),
            dnn: None,
        }
    }

    /// Deep candidate generation (the YouTube DNN): item vectors of `dim`
    /// components (the softmax's output vectors, each stored with its bias
    /// as `dim + 1` components) and a user tower, trained from the events
    /// and the users' features; searched by inner product.
    pub fn youtube_dnn(dim: usize) -> Self {
        SpaceSpec {
            dim,
            metric: Metric::InnerProduct,
            kind: SpaceKind::YoutubeDnn,
            index: None,
            train: None,
            dnn: Some(DnnOptions::default()),
        }
    }

    /// The hyperparameters of a `youtube_dnn` space.
    pub fn dnn_options(mut self, dnn: DnnOptions) -> Self {
        self.dnn = Some(dnn);
        self
    }

    /// The metric (persisted).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// How the space's sealed segments are indexed (HNSW by default; may
    /// change between opens, and is remembered).
    pub fn index(mut self, spec: IndexSpec) -> Self {
        self.index = Some(spec);
        self
    }

    /// The training options of a trained space (ignored by a host space's
    /// validation: it refuses them).
    pub fn train_options(mut self, train: TrainOptions) -> Self {
        self.train = Some(train);
        self
    }

    /// The dimension of the space's vectors, as given to the constructor
    /// (a YouTube DNN space stores one more component per row, see
    /// [`SpaceKind::row_dim`]).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the space is searched by (set with
    /// [`SpaceSpec::metric`]; cosine unless a YouTube DNN space).
    pub fn get_metric(&self) -> Metric {
        self.metric
    }

    /// The metric ([`SpaceSpec::get_metric`]).
    #[deprecated(note = "use SpaceSpec::get_metric")]
    pub fn metric_kind(&self) -> Metric {
        self.get_metric()
    }

    /// Where the space's vectors come from: the host, or training of which
    /// kind.
    pub fn kind(&self) -> SpaceKind {
        self.kind
    }

    /// The item2vec training options (set with
    /// [`SpaceSpec::train_options`]; None: the defaults, or not item2vec).
    pub fn get_train_options(&self) -> Option<&TrainOptions> {
        self.train.as_ref()
    }

    /// The YouTube DNN's options (set with [`SpaceSpec::dnn_options`]).
    pub fn get_dnn_options(&self) -> Option<&DnnOptions> {
        self.dnn.as_ref()
    }

    /// The index spec, if one was given (or, in `Store::options`, the one
    /// the space runs).
    pub fn get_index(&self) -> Option<IndexSpec> {
        self.index
    }

    /// The item2vec training options.
    #[deprecated(note = "use SpaceSpec::get_train_options")]
    pub fn training(&self) -> Option<&TrainOptions> {
        self.get_train_options()
    }

    /// The YouTube DNN's options.
    #[deprecated(note = "use SpaceSpec::get_dnn_options")]
    pub fn dnn(&self) -> Option<&DnnOptions> {
        self.get_dnn_options()
    }

    /// The index spec.
    #[deprecated(note = "use SpaceSpec::get_index")]
    pub fn index_spec(&self) -> Option<IndexSpec> {
        self.get_index()
    }

    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidOptions(format!("space {name:?}: {what}")));
        if self.dim == 0 || self.dim > super::MAX_DIM {
            return bad(format!(
                "dim must be between 1 and {}, got {}",
                super::MAX_DIM,
                self.dim
            ));
        }
        if let Some(index) = &self.index {
            index.validate()?;
        }
        match (self.kind, &self.train, &self.dnn) {
            (SpaceKind::Host, None, None) => {}
            (SpaceKind::Item2vec, train, None) => {
                if let Some(train) = train {
                    train.validate()?;
                }
            }
            (SpaceKind::YoutubeDnn, None, dnn) => {
                if self.metric != Metric::InnerProduct {
                    return bad("a youtube_dnn space is searched by inner product (its softmax's logits)".into());
                }
                if let Some(dnn) = dnn {
                    dnn.validate()?;
                }
            }
            (kind, _, _) => return bad(format!("options of another kind of space for a {} space", kind.name())),
        }
        Ok(())
    }
}

/// Refuses a name that is empty, too long, or holds control characters,
/// quotes or path separators (names appear in messages and the tools'
/// arguments).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SPACE_NAME
        && name
            .chars()
            .all(|c| !c.is_control() && !matches!(c, '/' | '\\' | '"' | '\''));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOptions(format!(
            "space name {name:?}: 1 to {MAX_SPACE_NAME} bytes, no control characters, quotes or slashes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("text").is_ok());
        assert!(check_name("dnn v2").is_ok());
        for bad in ["", "a/b", "x\n", "\"q\""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_SPACE_NAME + 1)).is_err());
    }

    #[test]
    fn a_host_space_refuses_training_options() {
        let spec = SpaceSpec::host(8).train_options(TrainOptions::default());
        assert!(spec.validate("t").is_err());
        assert!(SpaceSpec::item2vec(8).validate("t").is_ok());
        assert!(SpaceSpec::host(0).validate("t").is_err());
    }
}
