//! One training round, independent of the store: from the users' events up
//! to a cut, the next trainer state.
//!
//! A full round starts the vectors over and trains `epochs` passes on every
//! history. An incremental round warm-starts from the current vectors and
//! trains `incremental_epochs` passes on the histories that gained events
//! since the last round (the new items in the context of the user's older
//! ones), plus a replay sample of the other histories, so that items nobody
//! touched lately keep their place relative to the new ones. Either way the
//! vocabulary grows with the new items and the counts (hence the negative
//! sampler and subsampling) are recomputed from all histories.

use super::corpus::Corpus;
use super::options::TrainOptions;
use super::rng::Rng;
use super::sgns::{self, Hyper, RunStats};
use super::state::TrainerState;

/// One event of a history as a round sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RoundEvent {
    pub item: u64,
    pub seq: u64,
    pub ts: u64,
}

/// One user's history as a round sees it, oldest first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserEvents<'a> {
    pub user: u64,
    pub events: &'a [RoundEvent],
}

/// Every history a round trains on, in user order, held flat: each part's
/// events in one vector and each user as the end of its slice. A gather
/// of 100 M events made a vector per user (a million allocations, and
/// the threads of a parallel gather contending for the address space as
/// the allocator grew its arenas); parts are what the gather's threads
/// made, joined without a copy.
#[derive(Debug, Default)]
pub(crate) struct Histories {
    parts: Vec<HistoriesPart>,
}

/// One part of [`Histories`]: users ascending, `ends[i]` the end of user
/// `users[i]`'s events in `events`.
#[derive(Debug, Default)]
pub(crate) struct HistoriesPart {
    users: Vec<u64>,
    ends: Vec<usize>,
    events: Vec<RoundEvent>,
}

impl HistoriesPart {
    /// A part with room for `events` events (reserved, not touched).
    pub fn with_capacity(events: usize) -> Self {
        HistoriesPart {
            users: Vec::new(),
            ends: Vec::new(),
            events: Vec::with_capacity(events),
        }
    }

    /// Adds `user`'s history (after every user already added); a user
    /// without events is not added.
    pub fn push(&mut self, user: u64, events: impl IntoIterator<Item = RoundEvent>) {
        let before = self.events.len();
        self.events.extend(events);
        if self.events.len() > before {
            self.users.push(user);
            self.ends.push(self.events.len());
        }
    }

    fn iter(&self) -> impl Iterator<Item = UserEvents<'_>> + '_ {
        self.users.iter().enumerate().map(|(i, &user)| {
            let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
            UserEvents {
                user,
                events: &self.events[start..self.ends[i]],
            }
        })
    }
}

impl Histories {
    /// The parts in user order (each part's users above the last one's).
    pub fn from_parts(parts: Vec<HistoriesPart>) -> Self {
        Histories { parts }
    }

    /// Users with a history.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.users.len()).sum()
    }

    /// Every user's history, in user order.
    pub fn iter(&self) -> impl Iterator<Item = UserEvents<'_>> + '_ {
        self.parts.iter().flat_map(HistoriesPart::iter)
    }
}

impl<'a> IntoIterator for &'a Histories {
    type Item = UserEvents<'a>;
    type IntoIter = Box<dyn Iterator<Item = UserEvents<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// What a round did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrainReport {
    /// The space the round trained.
    pub space: String,
    /// The generation the round published (unchanged if it had nothing to do).
    pub generation: u64,
    /// A full retrain rather than an incremental round.
    pub full: bool,
    /// Events the round saw for the first time.
    pub new_events: u64,
    /// Items in the vocabulary after the round: each has a trained vector.
    pub items: usize,
    /// Of those, the items this round added to the vocabulary.
    pub new_items: usize,
    /// User histories trained because they have new events (every history
    /// in a full round).
    pub fresh_histories: usize,
    /// Older histories without new events, trained again beside them so
    /// the model does not forget them (`replay_ratio`; 0 in a full round).
    pub replayed_histories: usize,
    /// Passes over the histories: the options' `epochs` in a full round,
    /// `incremental_epochs` in an incremental one; 0 when the round had
    /// nothing new to train on.
    pub epochs: usize,
    /// Pairs, items read, seconds and threads of the training itself.
    pub run: RunStats,
    /// Seconds to gather the histories from the store before training.
    pub gather_seconds: f64,
    /// Seconds to write and swap in the new generation (segments,
    /// indexes, trainer state) after training.
    pub publish_seconds: f64,
    /// A YouTube DNN space's run: examples, steps, loss, achieved GFLOP/s
    /// (`run` then counts examples as pairs and tokens).
    pub dnn: Option<crate::train::DnnRunStats>,
}

impl TrainReport {
    /// Positive pairs per second per training thread.
    pub fn pairs_per_second_per_thread(&self) -> f64 {
        if self.run.seconds <= 0.0 {
            return 0.0;
        }
        self.run.pairs as f64 / self.run.seconds / self.run.threads.max(1) as f64
    }
}

/// Trains the next state from `current` on `users` (sorted by user id,
/// events before the cut only); returns None if nothing is new (and the
/// round is not full), or if `keep_going` stopped it. `users` is taken so
/// that it is dropped once the histories are item indexes (24 bytes an
/// event, 2.4 GB at 100 M events, against the 4 bytes the training
/// keeps): it is not held beside the corpus and the matrices.
pub(crate) fn run(
    current: &TrainerState,
    users: Histories,
    cut: u64,
    opts: &TrainOptions,
    full: bool,
    keep_going: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(f64) + Sync),
) -> Option<Result<(TrainerState, TrainReport), Stopped>> {
    let watermark = current.watermark;
    let new_events: u64 = users
        .iter()
        .map(|u| u.events.iter().filter(|e| e.seq >= watermark).count() as u64)
        .sum();
    let full = full || current.generation == 0;
    if new_events == 0 && !full {
        return None;
    }
    let mut next = current.clone();
    let known = next.len();
    next.counts.iter_mut().for_each(|c| *c = 0);
    let mut sequences: Vec<Vec<u32>> = Vec::with_capacity(users.len());
    // Which histories gained events since the last round.
    let mut gained: Vec<bool> = Vec::with_capacity(users.len());
    for u in &users {
        let seq: Vec<u32> = u.events.iter().map(|e| next.intern(e.item, opts.seed)).collect();
        for &i in &seq {
            next.counts[i as usize] += 1;
        }
        sequences.push(seq);
        gained.push(u.events.iter().any(|e| e.seq >= watermark));
    }
    drop(users);
    if full {
        next.reinitialise(opts.seed);
    } else {
        warm_start_new_items(&mut next, known, &sequences);
    }
    let mut corpus = Corpus::new();
    let (mut fresh, mut replayed) = (0, 0);
    if full {
        for s in &sequences {
            corpus.push(s);
        }
        fresh = sequences.len();
    } else {
        let mut old = Vec::new();
        for (&gained, s) in gained.iter().zip(&sequences) {
            if gained {
                corpus.push(s);
                fresh += 1;
            } else {
                old.push(s);
            }
        }
        // A partial Fisher-Yates shuffle picks the replay sample.
        let want = ((fresh as f64 * opts.replay_ratio).ceil() as usize).min(old.len());
        let mut rng = Rng::new(opts.seed, 0x5245_504C ^ current.rounds);
        for i in 0..want {
            let j = i + rng.below((old.len() - i) as u32) as usize;
            old.swap(i, j);
            corpus.push(old[i]);
        }
        replayed = want;
    }
    // The corpus holds its own copy of every sequence it trains on.
    drop(sequences);
    let epochs = if full { opts.epochs } else { opts.incremental_epochs };
    let hyper = Hyper {
        epochs,
        negative: opts.negative,
        alpha: if full { opts.alpha } else { opts.incremental_alpha },
        min_alpha: opts.min_alpha,
        window: opts.window,
        sample: opts.sample,
        ns_exponent: opts.ns_exponent,
        threads: opts.threads,
        seed: opts.seed ^ current.rounds.wrapping_mul(0x9E37_79B9),
        sigmoid: opts.sigmoid,
    };
    let dim = next.dim;
    let counts = next.counts.clone();
    let (input, output) = (&mut next.input, &mut next.output);
    let control = sgns::Control { keep_going, progress };
    let Some(run) = sgns::train(&corpus, &counts, input, output, dim, &hyper, &control) else {
        return Some(Err(Stopped));
    };
    next.generation += 1;
    next.watermark = cut;
    next.rounds += 1;
    let report = TrainReport {
        // Set by the store, which knows the space's name.
        space: String::new(),
        generation: next.generation,
        full,
        new_events,
        items: next.len(),
        new_items: next.len() - known,
        fresh_histories: fresh,
        replayed_histories: replayed,
        epochs,
        run,
        gather_seconds: 0.0,
        publish_seconds: 0.0,
        dnn: None,
    };
    Some(Ok((next, report)))
}

/// Starts each new item (vocabulary index `known` and up) at the mean input
/// vector of the known items its users touched, the trained counterpart of
/// its provisional vector, so that a short incremental round refines it
/// rather than learning it from noise. Items with no known neighbour keep
/// their random start.
fn warm_start_new_items(state: &mut TrainerState, known: usize, sequences: &[Vec<u32>]) {
    let dim = state.dim;
    let fresh = state.len() - known;
    if fresh == 0 || known == 0 {
        return;
    }
    let mut sums = vec![0f64; fresh * dim];
    let mut counts = vec![0u64; fresh];
    let mut seq_sum = vec![0f64; dim];
    for seq in sequences {
        if !seq.iter().any(|&i| i as usize >= known) {
            continue;
        }
        seq_sum.fill(0.0);
        let mut n = 0;
        for &i in seq.iter().filter(|&&i| (i as usize) < known) {
            seq_sum.iter_mut().zip(state.row(i)).for_each(|(s, x)| *s += *x as f64);
            n += 1;
        }
        for &i in seq.iter().filter(|&&i| i as usize >= known) {
            let f = i as usize - known;
            sums[f * dim..][..dim]
                .iter_mut()
                .zip(&seq_sum)
                .for_each(|(s, x)| *s += x);
            counts[f] += n;
        }
    }
    for (f, &count) in counts.iter().enumerate() {
        if count > 0 {
            let row = &mut state.input[(known + f) * dim..][..dim];
            row.iter_mut()
                .zip(&sums[f * dim..][..dim])
                .for_each(|(r, s)| *r = (s / count as f64) as f32);
        }
    }
}

/// A round was stopped before it finished (the store is closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;
