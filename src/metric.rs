//! [`Metric`]: how vectors are compared. A leaf module, so the index, the
//! kernels and the options can all name it without importing each other.

use serde::{Deserialize, Serialize};

/// How vectors are compared. Scores in [`crate::Hit`] follow the metric:
/// cosine similarity and inner product (higher is nearer), squared L2
/// distance (lower is nearer). Results are always sorted nearest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Vectors are normalised on insert; the score is the cosine similarity.
    Cosine,
    /// Maximum inner product search (two-tower style); no normalisation.
    InnerProduct,
    /// Squared Euclidean distance.
    L2,
}
