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
        /// The file or directory the call was made on.
        path: PathBuf,
        /// The operating system's error, as `std::io` reported it.
        #[source]
        source: std::io::Error,
    },

    /// Bytes on disk failed a checksum or structural check.
    #[error("corruption in {file} at byte offset {offset}: {reason}")]
    Corruption {
        /// The damaged file (for the metadata database, its directory).
        file: PathBuf,
        /// Where in `file` the damage was found, in bytes from its start;
        /// 0 when it concerns the file as a whole (a bad header, a file
        /// too short, a metadata database that cannot be read).
        offset: u64,
        /// What check failed, in words (for a person, not for matching).
        reason: String,
    },

    /// Another `Store` (in this process or another) holds the directory.
    #[error("store {path} is locked by another open Store (in this or another process)")]
    Locked {
        /// The store directory asked for.
        path: PathBuf,
    },

    /// The directory holds no emberdb store (when one must exist).
    #[error("{path} is not an emberdb store")]
    NotAStore {
        /// The directory asked for.
        path: PathBuf,
    },

    /// The directory was written by a newer emberdb than this one.
    #[error("{path} was written by format version {found}; this build reads up to {supported}")]
    NewerFormat {
        /// The store directory or file with the newer format; for a
        /// metadata record, the record's name (its database and key).
        path: PathBuf,
        /// The format version written there.
        found: u32,
        /// The newest version of that format this build reads.
        supported: u32,
    },

    /// `Options` disagree with the configuration a space of the store was
    /// created with (`space` names it; `"default"` for the default space).
    #[error("store {path}: space {space:?} was created with {field} = {stored}, but was opened with {requested}")]
    ConfigMismatch {
        /// The store directory.
        path: PathBuf,
        /// The name of the space whose configuration differs.
        space: String,
        /// Which setting differs: `"dim"`, `"metric"` or `"vectors"` (the
        /// space's kind).
        field: &'static str,
        /// The setting as the space was created with it.
        stored: String,
        /// The setting as these `Options` ask for it.
        requested: String,
    },

    /// A space name the store does not have.
    #[error("store {path} has no space {name:?} (its spaces: {})", known.join(", "))]
    UnknownSpace {
        /// The store directory.
        path: PathBuf,
        /// The space name asked for.
        name: String,
        /// The names of the spaces the store has, in their order of
        /// creation.
        known: Vec<String>,
    },

    /// A vector has the wrong number of components (`context` names the
    /// item and, outside the default space, the space).
    #[error("vector for {context} has {got} components, the space's dimension is {expected}")]
    DimensionMismatch {
        /// Which vector, in words: `item 7`, `item 7 in space "text"`,
        /// `the query`, `the query in space "text"`.
        context: String,
        /// The space's dimension: the number of components it takes.
        expected: usize,
        /// The number of components the vector has.
        got: usize,
    },

    /// A vector holds NaN or an infinite component.
    #[error("vector for {context} has a non-finite component at index {index}")]
    NonFiniteVector {
        /// Which vector (as in [`Error::DimensionMismatch`]).
        context: String,
        /// The position (from 0) of the first component that is NaN or
        /// infinite.
        index: usize,
    },

    /// A vector of norm zero cannot be normalised under cosine.
    #[error("vector for {context} is all zeros, which has no direction under the cosine metric")]
    ZeroVector {
        /// Which vector (as in [`Error::DimensionMismatch`]).
        context: String,
    },

    /// A vector so long that scores against it could overflow f32.
    #[error("vector for {context} is too long: its squared norm {norm_squared:e} passes f32::MAX / 4, so its scores could overflow")]
    VectorTooLong {
        /// Which vector (as in [`Error::DimensionMismatch`]).
        context: String,
        /// The vector's squared Euclidean norm (the sum of its squared
        /// components, summed in f64), above `f32::MAX / 4`.
        norm_squared: f64,
    },

    /// `k` is zero or above the limit.
    #[error("k = {k} is out of range: it must be between 1 and {max}")]
    InvalidK {
        /// The `k` the query asked for.
        k: usize,
        /// The largest `k` a query takes ([`MAX_K`](crate::MAX_K)).
        max: usize,
    },

    /// An event that cannot be taken as it is.
    #[error("event of user {user} on item {item} is invalid: {reason}")]
    InvalidEvent {
        /// The event's user id.
        user: u64,
        /// The event's item id.
        item: u64,
        /// What is wrong with the event, in words.
        reason: String,
    },

    /// User features that cannot be taken as they are.
    #[error("features of user {user} are invalid: {reason}")]
    InvalidFeatures {
        /// The user the features were given for.
        user: u64,
        /// What is wrong with them, in words.
        reason: String,
    },

    /// Item attributes that cannot be taken as they are.
    #[error("attributes of item {item} are invalid: {reason}")]
    InvalidAttributes {
        /// The item the attributes were given for.
        item: u64,
        /// What is wrong with them, in words.
        reason: String,
    },

    /// A Parquet file could not be written or read as asked.
    #[error("parquet file {path}: {reason}")]
    Parquet {
        /// The Parquet file being written or read.
        path: PathBuf,
        /// What went wrong, in words (the Parquet or Arrow library's
        /// message, or the column or row that does not fit).
        reason: String,
    },

    /// A query's filter or blend cannot be run as asked.
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// An id that must exist does not (or was deleted).
    #[error("item {id} is not in the store")]
    UnknownItem {
        /// The item id asked for.
        id: u64,
    },

    /// `Store::repair` of a store whose metadata opens and whose every
    /// record decodes: a repair replaces only damaged or missing metadata
    /// (it would lose the histories older than the log). `problems` are
    /// what `verify` finds elsewhere, which a repair would not fix.
    #[error("nothing to repair in {path}: its metadata opens and every record decodes{}", describe_problems(.problems))]
    NothingToRepair {
        /// The store directory.
        path: PathBuf,
        /// What `verify` finds wrong outside the metadata, one sentence
        /// each; empty when it finds nothing.
        problems: Vec<String>,
    },

    /// Options that cannot work together or are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// A record could not be encoded or decoded by the codec.
    #[error("codec error in {context}: {reason}")]
    Codec {
        /// The record concerned (the database and key, or the file).
        context: String,
        /// What went wrong, in words (the codec's message, a bad
        /// checksum, a record too short).
        reason: String,
    },

    /// A batch call's parts do not go together (ids and rows of different
    /// counts).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),

    /// Faiss failed to build, load or search the index of a segment.
    #[error("index of segment {segment}: {reason}")]
    Index {
        /// The id of the sealed segment whose index failed.
        segment: u64,
        /// What went wrong, in words (Faiss's message, or the index file
        /// that does not match its settings).
        reason: String,
    },

    /// The space trains its own item vectors: the host cannot write them.
    #[error("store {path}: space {space:?} trains its item vectors from events; {operation} is for host-fed spaces")]
    TrainedStore {
        /// The store directory.
        path: PathBuf,
        /// The name of the trained space written to.
        space: String,
        /// The refused call: `"upsert"` or `"delete"`.
        operation: &'static str,
    },

    /// Training was asked of a store with no trained space (`space` is
    /// empty), or of a space whose vectors the host brings.
    #[error(
        "{}; create a trained one with Options::trained or SpaceSpec::item2vec",
        if space.is_empty() { format!("store {} has no trained space", path.display()) }
        else { format!("space {space:?} of store {} is host-fed", path.display()) }
    )]
    NotTrained {
        /// The store directory.
        path: PathBuf,
        /// The name of the host-fed space training was asked of; empty
        /// when the store has no trained space at all.
        space: String,
    },

    /// A user with no recorded events.
    #[error("user {id} has no events in the store")]
    UnknownUser {
        /// The user id asked for.
        id: u64,
    },

    /// A training round was abandoned because the store is closing.
    #[error("training round on {path} stopped: the store is closing")]
    TrainingStopped {
        /// The store directory.
        path: PathBuf,
    },

    /// The metadata database reported an error (its own type is not part
    /// of this API: the database behind the metadata may change).
    #[error("metadata store error at {path}: {source}")]
    Meta {
        /// The metadata database's directory.
        path: PathBuf,
        /// The database's own error, boxed: for its message (its type is
        /// not part of the API and may change with the database).
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
    Poisoned {
        /// The store directory.
        path: PathBuf,
    },

    /// A write (or anything that writes: training, compaction, a flush, a
    /// snapshot) on a store opened with `Store::open_read_only`.
    #[error("store {path} is open read-only; open it with Store::open to change it")]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
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
