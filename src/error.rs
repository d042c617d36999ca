//! The crate's one error type. Every variant that concerns a file carries its
//! path; every variant that concerns an item carries its id.

use std::path::PathBuf;

/// Everything that can go wrong in emberdb. New variants may come in a
/// minor release: match the ones you handle and keep a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Bytes on disk failed a checksum or structural check.
    #[error("corruption in {file} at byte offset {offset}: {reason}")]
    Corruption { file: PathBuf, offset: u64, reason: String },

    /// Another `Store` (in this process or another) holds the directory.
    #[error("store {path} is locked by another open Store (in this or another process)")]
    Locked { path: PathBuf },

    /// The directory holds no emberdb store (when one must exist).
    #[error("{path} is not an emberdb store")]
    NotAStore { path: PathBuf },

    /// The directory was written by a newer emberdb than this one.
    #[error("{path} was written by format version {found}; this build reads up to {supported}")]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },

    /// `Options` disagree with the configuration a space of the store was
    /// created with (`space` names it; `"default"` for the default space).
    #[error("store {path}: space {space:?} was created with {field} = {stored}, but was opened with {requested}")]
    ConfigMismatch {
        path: PathBuf,
        space: String,
        field: &'static str,
        stored: String,
        requested: String,
    },

    /// A space name the store does not have.
    #[error("store {path} has no space {name:?} (its spaces: {})", known.join(", "))]
    UnknownSpace {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },

    /// A vector has the wrong number of components (`context` names the
    /// item and, outside the default space, the space).
    #[error("vector for {context} has {got} components, the space's dimension is {expected}")]
    DimensionMismatch {
        context: String,
        expected: usize,
        got: usize,
    },

    /// A vector holds NaN or an infinite component.
    #[error("vector for {context} has a non-finite component at index {index}")]
    NonFiniteVector { context: String, index: usize },

    /// A vector of norm zero cannot be normalised under cosine.
    #[error("vector for {context} is all zeros, which has no direction under the cosine metric")]
    ZeroVector { context: String },

    /// A vector so long that scores against it could overflow f32.
    #[error("vector for {context} is too long: its squared norm {norm_squared:e} passes f32::MAX / 4, so its scores could overflow")]
    VectorTooLong { context: String, norm_squared: f64 },

    /// `k` is zero or above the limit.
    #[error("k = {k} is out of range: it must be between 1 and {max}")]
    InvalidK { k: usize, max: usize },

    /// An event that cannot be taken as it is.
    #[error("event of user {user} on item {item} is invalid: {reason}")]
    InvalidEvent { user: u64, item: u64, reason: String },

    /// User features that cannot be taken as they are.
    #[error("features of user {user} are invalid: {reason}")]
    InvalidFeatures { user: u64, reason: String },

    /// Item attributes that cannot be taken as they are.
    #[error("attributes of item {item} are invalid: {reason}")]
    InvalidAttributes { item: u64, reason: String },

    /// A Parquet file could not be written or read as asked.
    #[error("parquet file {path}: {reason}")]
    Parquet { path: PathBuf, reason: String },

    /// A query's filter or blend cannot be run as asked.
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// An id that must exist does not (or was deleted).
    #[error("item {id} is not in the store")]
    UnknownItem { id: u64 },

    /// `Store::repair` of a store whose metadata opens and whose every
    /// record decodes: a repair replaces only damaged or missing metadata
    /// (it would lose the histories older than the log). `problems` are
    /// what `verify` finds elsewhere, which a repair would not fix.
    #[error("nothing to repair in {path}: its metadata opens and every record decodes{}", describe_problems(.problems))]
    NothingToRepair { path: PathBuf, problems: Vec<String> },

    /// Options that cannot work together or are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// A record could not be encoded or decoded by the codec.
    #[error("codec error in {context}: {reason}")]
    Codec { context: String, reason: String },

    /// A batch call's parts do not go together (ids and rows of different
    /// counts).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),

    /// Faiss failed to build, load or search the index of a segment.
    #[error("index of segment {segment}: {reason}")]
    Index { segment: u64, reason: String },

    /// The space trains its own item vectors: the host cannot write them.
    #[error("store {path}: space {space:?} trains its item vectors from events; {operation} is for host-fed spaces")]
    TrainedStore {
        path: PathBuf,
        space: String,
        operation: &'static str,
    },

    /// Training was asked of a store with no trained space (`space` is
    /// empty), or of a space whose vectors the host brings.
    #[error(
        "{}; create a trained one with Options::trained or SpaceSpec::item2vec",
        if space.is_empty() { format!("store {} has no trained space", path.display()) }
        else { format!("space {space:?} of store {} is host-fed", path.display()) }
    )]
    NotTrained { path: PathBuf, space: String },

    /// A user with no recorded events.
    #[error("user {id} has no events in the store")]
    UnknownUser { id: u64 },

    /// A training round was abandoned because the store is closing.
    #[error("training round on {path} stopped: the store is closing")]
    TrainingStopped { path: PathBuf },

    /// The metadata database reported an error (its own type is not part
    /// of this API: the database behind the metadata may change).
    #[error("metadata store error at {path}: {source}")]
    Meta {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// An earlier write or fsync of the log, or of the metadata store,
    /// failed (for example on a full disk), so what is on disk is unknown:
    /// the store refuses further writes until it is reopened (and
    /// recovered from the log). Free the space first.
    #[error(
        "store {path} is poisoned by an earlier failed write or fsync of its log or metadata (a full disk?); free the space and reopen the store to recover"
    )]
    Poisoned { path: PathBuf },

    /// A write (or anything that writes: training, compaction, a flush, a
    /// snapshot) on a store opened with `Store::open_read_only`.
    #[error("store {path} is open read-only; open it with Store::open to change it")]
    ReadOnly { path: PathBuf },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an `std::io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The tail of `NothingToRepair`'s message.
fn describe_problems(problems: &[String]) -> String {
    if problems.is_empty() {
        "; verify finds nothing wrong either".into()
    } else {
        format!(
            "; what verify finds is not in the metadata, and a repair would not fix it: {}",
            problems.join("; ")
        )
    }
}
