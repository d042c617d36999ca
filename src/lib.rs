//! emberdb: an embedded vector store for recommendation recall.
//!
//! ```
//! use emberdb::{Durability, Event, Metric, Options, Query, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("store");
//! let store = Store::open(&path, Options::new(4).metric(Metric::Cosine).durability(Durability::Sync))?;
//! store.append_event(Event::new(7, 42, 1_700_000_000_000))?;
//! store.upsert(42, &[0.1, 0.2, 0.3, 0.4])?;
//! store.upsert(43, &[0.4, 0.3, 0.2, 0.1])?;
//! let hits = store.knn(&Query::vector(&[0.1, 0.2, 0.3, 0.5]).k(10))?;
//! assert_eq!(hits[0].id, 42);
//! assert_eq!(store.history(7)?, vec![42]);
//! # Ok(()) }
//! ```
//!
//! See `ARCHITECTURE.md` for the layers and the on-disk formats.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// Segment files, index files and the trainer's matrices are cast between
// bytes and numbers in place (bytemuck, zero-copy mmap), which assumes the
// little-endian layout they are written in.
#[cfg(target_endian = "big")]
compile_error!("emberdb reads its files zero-copy as little-endian: big-endian targets are not supported");

mod codec;
mod durability;
mod error;
mod event;
/// Injected I/O failures for the crate's own crash and fault tests
/// (feature `test-hooks`; never in a host's build).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod faults;
#[cfg(not(feature = "test-hooks"))]
mod faults;
mod fsutil;
/// Decoder entry points for the fuzzers (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod fuzz;
mod idmap;
mod index;
mod kernels;
mod meta;
mod metric;
mod options;
mod query;
pub(crate) mod runs;
mod segment;
mod stamp;
mod store;
mod train;
mod validate;
mod version;
mod wal;

pub use durability::Durability;
pub use error::{Error, Result};
pub use event::Event;
/// What the benches (`ember bench`, `ember bench-dnn`) measure the
/// library's pieces with, beside the references they compare against
/// (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod bench_support {
    pub use crate::index::ivf_training::{
        training_sample as ivf_training_sample, DEFAULT_POINTS_PER_LIST as IVF_DEFAULT_POINTS_PER_LIST,
        MIN_POINTS_PER_LIST as IVF_MIN_POINTS_PER_LIST,
    };
    pub use crate::kernels::gemm::{measure_gemm, GemmKernel};
}
pub use index::{faiss_compile_options, IndexSpec};
pub use kernels::{simd_level, SimdLevel};
pub use metric::Metric;
pub use options::DEFAULT_TRENDING_WINDOW;
pub use options::{
    Options, SpaceKind, SpaceSpec, DEFAULT_MERGE_THREADS, DEFAULT_RECENT_BYTES, DEFAULT_SPACE, MAX_DIM, MAX_SPACE_NAME,
    MIN_META_CACHE_BYTES, MIN_RECENT_BYTES,
};
pub use query::{
    Filter, Hit, Pooling, Query, MAX_EF_SEARCH, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_K, MAX_NPROBE, MAX_RECENT,
    SEED_RECENT_ITEMS, USER_RECENT_ITEMS,
};
pub use store::behaviour::attributes::check as check_attributes;
pub use store::behaviour::features::{check as check_user_features, MAX_FEATURES, MAX_FEATURE_BYTES};
#[cfg(feature = "parquet")]
pub use store::{
    check_events_parquet, check_vectors_parquet, ExportOptions, ExportReport, ImportOptions, ImportReport,
};
pub use store::{
    restore, CompactOptions, CompactReport, Progress, RecoveryReport, RepairOptions, RepairReport, RoundKind,
    RunFileStats, SnapshotInfo, Space, SpaceStats, Stats, Store, TrainRequest, TrainerStats, VectorRows, VerifyOptions,
    VerifyReport, RECOMMEND_POPULAR_WEIGHT, RECOMMEND_USER_WEIGHT, TITLE_KEY,
};
pub use train::{DnnOptions, DnnRunStats, RoundOverrides, RunStats, Sigmoid, TrainOptions, TrainPolicy, TrainReport};
pub use validate::{check_event, check_vector, MAX_FUTURE_MS};
