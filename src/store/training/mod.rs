//! The store's side of training: rounds (gather the histories, train,
//! publish), provisional vectors for items first seen in events, and the
//! background policy. The trainer's own state is `trainer::Trainer`.

pub(crate) mod publish;
pub(crate) mod request;
pub(crate) mod trainer;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::segment::visibility::Seen;
use crate::store::space::SpaceState;
use crate::store::state::{Shared, WriteState};
use crate::store::training::trainer::{Model, ModelOptions, Trainer};
use crate::train::dnn;
use crate::train::round::{self, Stopped, TrainReport};
use crate::train::state::TrainerState;
use crate::train::{RoundOverrides, RunStats};

/// Items of the user's recent history whose vectors make a new item's
/// provisional vector.
const PROVISIONAL_CONTEXT: usize = 20;

/// What a training round trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoundKind {
    /// The events since the last round, warm-started from its vectors (a
    /// full retrain when the store was never trained, or when
    /// `TrainOptions::full_retrain` asks for it).
    #[default]
    Incremental,
    /// Every history, from scratch.
    Full,
}

/// Refuses a round of `space` with `overrides` before anything runs: a
/// host-fed space, a read-only store, overrides its options refuse.
pub(crate) fn check_round(shared: &Shared, space: &SpaceState, overrides: &RoundOverrides) -> Result<()> {
    let trainer = space.trainer.as_ref().ok_or_else(|| Error::NotTrained {
        path: shared.path.clone(),
        space: space.name.clone(),
    })?;
    shared.refuse_if_read_only()?;
    match &trainer.opts {
        ModelOptions::Item2vec(o) => overrides.item2vec(o).map(drop),
        ModelOptions::Dnn(o) => overrides.dnn(o).map(drop),
    }
}

/// Runs one round of `kind` on `space` (full also when the options, or a
/// space never trained, say so). `progress` gets the fraction of training
/// done.
pub(crate) fn round(
    shared: &Shared,
    write: &Mutex<WriteState>,
    space: &SpaceState,
    kind: RoundKind,
    overrides: &RoundOverrides,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<TrainReport> {
    let trainer = space.trainer.as_ref().ok_or_else(|| Error::NotTrained {
        path: shared.path.clone(),
        space: space.name.clone(),
    })?;
    shared.refuse_if_read_only()?;
    let round_opts = match &trainer.opts {
        ModelOptions::Item2vec(o) => ModelOptions::Item2vec(overrides.item2vec(o)?),
        ModelOptions::Dnn(o) => ModelOptions::Dnn(overrides.dnn(o)?),
    };
    let _one_round = trainer.round.lock();
    let started = Instant::now();
    let (cut, events_before) = {
        let w = write.lock();
        (w.core.next_seq, trainer.events_since_round.load(Ordering::Relaxed))
    };
    let users = shared.behaviour.round_events(cut)?;
    let gathered = started.elapsed().as_secs_f64();
    let current = load_model(trainer)?;
    log::debug!(
        "round gather: histories {gathered:.2} s, model {:.2} s",
        started.elapsed().as_secs_f64() - gathered
    );
    let keep_going = || !trainer.stop.load(Ordering::Acquire);
    let full = kind == RoundKind::Full || trainer.opts.full_retrain();
    let unchanged = |gather_seconds: f64| TrainReport {
        space: space.name.clone(),
        generation: current.generation(),
        full: false,
        new_events: 0,
        items: current.items(),
        new_items: 0,
        fresh_histories: 0,
        replayed_histories: 0,
        epochs: 0,
        run: RunStats::default(),
        gather_seconds,
        publish_seconds: 0.0,
        dnn: None,
    };
    let stopped = || Error::TrainingStopped {
        path: shared.path.clone(),
    };
    let report = match (&current, &round_opts) {
        (Model::Item2vec(state), ModelOptions::Item2vec(opts)) => {
            let gather_seconds = started.elapsed().as_secs_f64();
            match round::run(state, users, cut, opts, full, &keep_going, progress) {
                None => unchanged(gather_seconds),
                Some(Err(Stopped)) => return Err(stopped()),
                Some(Ok((next, mut report))) => {
                    let publishing = Instant::now();
                    publish::publish(shared, write, space, &publish::Generation::Item2vec(&next))?;
                    report.publish_seconds = publishing.elapsed().as_secs_f64();
                    report.gather_seconds = gather_seconds;
                    report.space = space.name.clone();
                    *trainer.current.lock() = Model::Item2vec(Arc::new(next));
                    report
                }
            }
        }
        (Model::Dnn(state), ModelOptions::Dnn(opts)) => {
            let mut features = std::collections::HashMap::new();
            shared
                .behaviour
                .for_each_keyed(crate::runs::RunKind::Features, &mut |user, set| {
                    features.insert(user, set);
                    Ok(())
                })?;
            let gather_seconds = started.elapsed().as_secs_f64();
            match dnn::round::run(state, &users, &features, cut, opts, full, &keep_going, progress) {
                None => unchanged(gather_seconds),
                Some(Err(Stopped)) => return Err(stopped()),
                Some(Ok((next, round))) => {
                    let next = Arc::new(next);
                    let publishing = Instant::now();
                    publish::publish(shared, write, space, &publish::Generation::Dnn(&next))?;
                    let report = TrainReport {
                        space: space.name.clone(),
                        generation: next.generation,
                        full: round.full,
                        new_events: round.new_events,
                        items: next.len(),
                        new_items: round.new_items,
                        fresh_histories: round.fresh_users,
                        replayed_histories: round.replayed_users,
                        epochs: round.epochs,
                        run: RunStats {
                            pairs: round.run.examples,
                            tokens: round.run.examples,
                            seconds: round.run.seconds,
                            threads: round.run.threads,
                        },
                        gather_seconds,
                        publish_seconds: publishing.elapsed().as_secs_f64(),
                        dnn: Some(round.run),
                    };
                    *trainer.current.lock() = Model::Dnn(next);
                    report
                }
            }
        }
        // `open` builds a trainer's model and options of the same kind.
        _ => {
            return Err(Error::InvalidOptions(format!(
                "{}: the model and the options are of different kinds",
                space.describe()
            )))
        }
    };
    trainer.events_since_round.fetch_sub(events_before, Ordering::Relaxed);
    *trainer.last_round.lock() = Instant::now();
    *trainer.last_report.lock() = Some(report.clone());
    Ok(report)
}

/// The trainer's published model, read from disk first if the store was
/// opened since the last round (`Model::Item2vecStored`): the body's crc is
/// checked here, so a damaged state fails the round with `Corruption`
/// naming the file (and `verify` reports it without a round).
fn load_model(trainer: &Trainer) -> Result<Model> {
    let current = trainer.current.lock().clone();
    let Model::Item2vecStored { path, dim, .. } = &current else {
        return Ok(current);
    };
    // Read outside the lock (hundreds of MiB): `Stats` keeps answering from
    // the summary meanwhile. Rounds are one at a time, so nobody else
    // replaces the stored model while it is read.
    let loaded = Model::Item2vec(Arc::new(TrainerState::read(path, *dim)?));
    *trainer.current.lock() = loaded.clone();
    Ok(loaded)
}

/// Provisional vectors in trained `space` for the items of `events` that
/// have none there yet: the normalised mean of the vectors of the user's
/// recent items, so a new item is queryable (near what its users touched)
/// before the next round. An item whose users touched nothing with a vector
/// gets none until a round trains it.
pub(crate) fn provisional_vectors(
    shared: &Shared,
    space: &SpaceState,
    events: &[Event],
) -> Result<Vec<(u64, Vec<f32>)>> {
    let version = space.catalog.version.load();
    let dim = space.dim;
    let cosine = space.metric == crate::metric::Metric::Cosine;
    let mut out: Vec<(u64, Vec<f32>)> = Vec::new();
    if version.rows() == 0 {
        // Nothing has a vector yet (before the first round).
        return Ok(out);
    }
    let mut done = HashSet::new();
    for e in events {
        if done.contains(&e.item)
            || shared.blocked.contains(e.item)
            || version.trained_row(e.item, Seen::NOW)?.is_some()
        {
            continue;
        }
        done.insert(e.item);
        let mut sum = vec![0f32; dim];
        let mut found = 0;
        for item in &shared.behaviour.recent(e.user, PROVISIONAL_CONTEXT + 1)? {
            if *item == e.item {
                continue;
            }
            if let Some(row) = version.trained_row(*item, Seen::NOW)? {
                // Cosine pools unit vectors, as a user query does; other
                // metrics keep the rows' lengths (a DNN row's bias too).
                let added = if cosine {
                    crate::kernels::add_unit(&mut sum, row, 1.0)
                } else {
                    sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                    row.iter().any(|x| *x != 0.0)
                };
                found += usize::from(added);
            }
        }
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if found > 0 && norm > 0.0 && norm.is_finite() {
            // Cosine rows are unit vectors; other metrics keep the mean.
            let scale = if cosine { 1.0 / norm } else { 1.0 / found as f32 };
            sum.iter_mut().for_each(|x| *x *= scale);
            out.push((e.item, sum));
        }
    }
    Ok(out)
}

/// How often the background thread looks at the policy.
const POLICY_TICK: Duration = Duration::from_millis(50);

/// Whether `space`'s policy asks for a round now.
fn round_due(space: &SpaceState) -> bool {
    let Some(trainer) = space.trainer.as_ref() else {
        return false;
    };
    let policy = trainer.opts.policy();
    let pending = trainer.events_since_round.load(Ordering::Relaxed);
    let by_count = policy.after_events.is_some_and(|n| pending >= n);
    let by_time = policy
        .every
        .is_some_and(|p| pending > 0 && trainer.last_round.lock().elapsed() >= p);
    (by_count || by_time) && !trainer.stop.load(Ordering::Acquire)
}

/// Starts the thread that runs rounds by the policies of the trained
/// spaces, if any has one. One thread serves every space, a round at a time.
pub(crate) fn spawn_background(shared: Arc<Shared>, write: Arc<Mutex<WriteState>>) -> Option<JoinHandle<()>> {
    let any = shared.trained_spaces().filter_map(|s| s.trainer.as_ref()).any(|t| {
        let policy = t.opts.policy();
        policy.after_events.is_some() || policy.every.is_some()
    });
    if !any {
        return None;
    }
    let stopped = |shared: &Shared| {
        shared
            .trained_spaces()
            .filter_map(|s| s.trainer.as_ref())
            .any(|t| t.stop.load(Ordering::Acquire))
    };
    let thread = std::thread::Builder::new()
        .name("emberdb-trainer".into())
        .spawn(move || {
            while !stopped(&shared) {
                std::thread::park_timeout(POLICY_TICK);
                for space in shared.spaces.iter().filter(|s| round_due(s)) {
                    match round(
                        &shared,
                        &write,
                        space,
                        RoundKind::Incremental,
                        &RoundOverrides::default(),
                        &|_| {},
                    ) {
                        Ok(r) => log::info!(
                            "background round of {}: generation {}, {} new events, {:.2} s",
                            space.describe(),
                            r.generation,
                            r.new_events,
                            r.run.seconds + r.publish_seconds
                        ),
                        Err(Error::TrainingStopped { .. }) => return,
                        Err(e) => {
                            log::error!("background training round of {} failed: {e}", space.describe());
                            if let Some(trainer) = &space.trainer {
                                *trainer.last_round.lock() = Instant::now();
                            }
                            std::thread::sleep(POLICY_TICK * 20);
                        }
                    }
                }
            }
        });
    match thread {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!("could not start the background trainer: {e}");
            None
        }
    }
}
