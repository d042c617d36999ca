//! The host's one call that runs training rounds, [`Store::train_with`],
//! and what it takes ([`TrainRequest`]): which spaces, full or
//! incremental, options changed for this round only, and a progress
//! callback. The older calls (`train`, `train_full`, `train_space`, ...)
//! are thin wrappers over it.

use crate::error::{Error, Result};
use crate::store::space::SpaceState;
use crate::store::training::{self, RoundKind};
use crate::store::Store;
use crate::train::{RoundOverrides, TrainReport};

/// A progress callback: the space being trained and the fraction of its
/// round done (0 to 1).
pub type Progress<'a> = &'a (dyn Fn(&str, f64) + Sync);

/// What [`Store::train_with`] runs: by default one incremental round of
/// every trained space, with the stored options and no progress callback.
///
/// A full round of the YouTube DNN space `dnn` only, with one epoch for
/// this round:
///
/// ```
/// use emberdb::{DnnOptions, Durability, Event, Options, RoundOverrides, SpaceSpec, Store, TrainOptions, TrainRequest};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("store");
/// // A small model, to train in a moment.
/// let dnn = DnnOptions {
///     hidden: vec![16],
///     embed_dim: 8,
///     feature_dim: 4,
///     negatives: 8,
///     batch: 16,
///     epochs: 2,
///     threads: 1,
///     ..DnnOptions::default()
/// };
/// let opts = Options::trained(8)
///     .train_options(TrainOptions::default().epochs(2).threads(1))
///     .space("dnn", SpaceSpec::youtube_dnn(8).dnn_options(dnn))
///     .durability(Durability::None);
/// let store = Store::open(&path, opts)?;
/// let events: Vec<Event> = (0..20u64)
///     .flat_map(|u| (0..5u64).map(move |i| Event::new(u, (u + i) % 10, 1_700_000_000_000 + i)))
///     .collect();
/// store.append_events(&events)?;
///
/// let request = TrainRequest::full().space("dnn").overrides(RoundOverrides {
///     epochs: Some(1),
///     ..RoundOverrides::default()
/// });
/// let reports = store.train_with(&request)?;
/// assert_eq!(reports.len(), 1);
/// assert_eq!((reports[0].space.as_str(), reports[0].generation), ("dnn", 1));
/// assert_eq!((reports[0].full, reports[0].epochs), (true, 1));
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct TrainRequest<'a> {
    spaces: Vec<String>,
    kind: RoundKind,
    overrides: RoundOverrides,
    progress: Option<Progress<'a>>,
}

impl std::fmt::Debug for TrainRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainRequest")
            .field("spaces", &self.spaces)
            .field("kind", &self.kind)
            .field("overrides", &self.overrides)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> TrainRequest<'a> {
    /// One incremental round of every trained space.
    pub fn new() -> Self {
        TrainRequest::default()
    }

    /// A full retrain (every history, from scratch) of every trained space.
    pub fn full() -> Self {
        TrainRequest::new().kind(RoundKind::Full)
    }

    /// Incremental or full rounds.
    pub fn kind(mut self, kind: RoundKind) -> Self {
        self.kind = kind;
        self
    }

    /// Train the space `name` (called again: several spaces, in the order
    /// named). Without it, every trained space, the default one first.
    pub fn space(mut self, name: &str) -> Self {
        if !self.spaces.iter().any(|s| s == name) {
            self.spaces.push(name.to_string());
        }
        self
    }

    /// Options changed for these rounds only (nothing is saved: the next
    /// round uses the stored options again).
    pub fn overrides(mut self, overrides: RoundOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// Called with each space's name and the fraction of its round done
    /// (ending at 1 when the space's round is done).
    pub fn progress(mut self, progress: Progress<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The spaces named (empty: every trained space).
    pub fn spaces(&self) -> &[String] {
        &self.spaces
    }

    /// Incremental or full.
    pub fn round_kind(&self) -> RoundKind {
        self.kind
    }
}

/// The host's calls that run rounds.
impl Store {
    /// Runs the rounds `request` asks for and returns one report per space,
    /// in the order they ran, each naming its space. Each round trains on
    /// the events that arrived since the space's last one (incremental,
    /// warm-started; or a full retrain if asked, if its options say so, or
    /// if it was never trained) and publishes the new generation of its
    /// item vectors: readers keep answering from the old generation until
    /// the new one is swapped in whole. A space with nothing new reports at
    /// once with its generation unchanged.
    ///
    /// Everything is checked before any round runs: a space that does not
    /// exist is `Error::UnknownSpace`, a host-fed one `Error::NotTrained`
    /// (as is a store with no trained space at all), overrides that a
    /// space's options refuse `Error::InvalidOptions`. One round failing
    /// does not keep the others from theirs; the first error is returned
    /// once all ran (and each is logged).
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Query, Store, TrainOptions, TrainRequest};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let opts = Options::trained(8)
    ///     .train_options(TrainOptions::default().epochs(5).incremental_epochs(2).threads(1))
    ///     .durability(Durability::None);
    /// let store = Store::open(&path, opts)?;
    /// let t = 1_700_000_000_000;
    /// let events: Vec<Event> = (0..20u64)
    ///     .flat_map(|u| (0..5u64).map(move |i| Event::new(u, (u + i) % 10, t + i)))
    ///     .collect();
    /// store.append_events(&events)?;
    /// // A trained space answers user queries from its first round on.
    /// assert!(store.knn(&Query::user(3))?.is_empty());
    ///
    /// // Every trained space (here the default one), with a progress callback.
    /// let progress = |space: &str, done: f64| assert!(space == "default" && (0.0..=1.0).contains(&done));
    /// let reports = store.train_with(&TrainRequest::new().progress(&progress))?;
    /// let first = &reports[0];
    /// assert_eq!((first.generation, first.full, first.items), (1, true, 10));
    /// assert!(!store.knn(&Query::user(3))?.is_empty());
    ///
    /// // The next round is incremental, on what arrived since.
    /// store.append_event(Event::new(3, 9, t + 100))?;
    /// let next = &store.train_with(&TrainRequest::new())?[0];
    /// assert_eq!((next.generation, next.full, next.new_events), (2, false, 1));
    ///
    /// // A space the store does not have is refused before any round runs.
    /// assert!(matches!(store.train_with(&TrainRequest::new().space("nope")), Err(Error::UnknownSpace { .. })));
    /// # Ok(()) }
    /// ```
    pub fn train_with(&self, request: &TrainRequest) -> Result<Vec<TrainReport>> {
        let shared = &*self.shared;
        let spaces: Vec<&SpaceState> = if request.spaces.is_empty() {
            shared.trained_spaces().collect()
        } else {
            request
                .spaces
                .iter()
                .map(|name| shared.space(name))
                .collect::<Result<_>>()?
        };
        if spaces.is_empty() {
            return Err(Error::NotTrained {
                path: shared.path.clone(),
                space: String::new(),
            });
        }
        for space in &spaces {
            training::check_round(shared, space, &request.overrides)?;
        }
        let mut reports = Vec::with_capacity(spaces.len());
        let mut failed = None;
        for space in spaces {
            let progress = |fraction: f64| {
                if let Some(progress) = request.progress {
                    progress(&space.name, fraction)
                }
            };
            match training::round(shared, &self.write, space, request.kind, &request.overrides, &progress) {
                Ok(report) => {
                    // A round with little to do may report no fraction
                    // at all; a progress bar still ends at its end.
                    progress(1.0);
                    reports.push(report)
                }
                Err(e) => {
                    log::error!("training round of {} failed: {e}", space.describe());
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    /// One incremental round of every trained space; returns the default
    /// space's report (or, when the default space is host-fed, the first
    /// trained space's). [`Store::train_with`] returns every space's.
    pub fn train(&self) -> Result<TrainReport> {
        self.first_report(&TrainRequest::new())
    }

    /// A full retrain of every trained space; returns the first space's
    /// report as [`Store::train`] does.
    pub fn train_full(&self) -> Result<TrainReport> {
        self.first_report(&TrainRequest::full())
    }

    /// `train` or `train_full`, calling `progress` with the fraction done
    /// of each space's round in turn.
    #[deprecated(note = "use Store::train_with(&TrainRequest::new().kind(kind).progress(..))")]
    pub fn train_with_progress(&self, kind: RoundKind, progress: &(dyn Fn(f64) + Sync)) -> Result<TrainReport> {
        let progress = |_: &str, fraction: f64| progress(fraction);
        self.first_report(&TrainRequest::new().kind(kind).progress(&progress))
    }

    /// One incremental round of the trained space `name`.
    #[deprecated(note = "use Store::train_with(&TrainRequest::new().space(name))")]
    pub fn train_space(&self, name: &str) -> Result<TrainReport> {
        self.first_report(&TrainRequest::new().space(name))
    }

    /// A round of `kind` of the trained space `name`, calling `progress`
    /// with the fraction done.
    #[deprecated(note = "use Store::train_with(&TrainRequest::new().space(name).kind(kind).progress(..))")]
    pub fn train_space_with_progress(
        &self,
        name: &str,
        kind: RoundKind,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<TrainReport> {
        let progress = |_: &str, fraction: f64| progress(fraction);
        self.first_report(&TrainRequest::new().space(name).kind(kind).progress(&progress))
    }

    /// A round of `kind` of the trained space `name` with some of its
    /// options changed for this round only.
    #[deprecated(note = "use Store::train_with(&TrainRequest::new().space(name).kind(kind).overrides(..))")]
    pub fn train_space_with(
        &self,
        name: &str,
        kind: RoundKind,
        overrides: &RoundOverrides,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<TrainReport> {
        let progress = |_: &str, fraction: f64| progress(fraction);
        let request = TrainRequest::new()
            .space(name)
            .kind(kind)
            .overrides(overrides.clone())
            .progress(&progress);
        self.first_report(&request)
    }

    fn first_report(&self, request: &TrainRequest) -> Result<TrainReport> {
        self.train_with(request)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotTrained {
                path: self.shared.path.clone(),
                space: String::new(),
            })
    }
}
