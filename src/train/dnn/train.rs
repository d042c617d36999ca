//! The DNN's training loop: epochs of shuffled examples in batches; each
//! batch shares its negatives; threads split the batch (each runs
//! `step::run_part` on its slice, reading the parameters), then each adds
//! the threads' gradients up in thread order for its share of the elements
//! and applies Adam to them (`update.rs`; lazily to the embedding rows the
//! batch touched). The sums are in a fixed order, so a seed and a thread
//! count give the same bits every time; one thread is the deterministic
//! mode. The phases of a step are described in `shared.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::adam::AdamStep;
use super::examples::{Example, TrainingData};
use super::huge_pages;
use super::options::DnnOptions;
use super::shared::SharedModel;
use super::softmax::{drawn_at, Negatives};
use super::state::DnnState;
use super::step::{run_part, step_flops, Part};
use super::update::{update_share, StepConstants};
use crate::train::rng::Rng;
use crate::train::sampler::{probabilities, NegativeSampler};

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct DnnRunStats {
    /// Training examples seen, over all epochs.
    pub examples: u64,
    /// Gradient steps taken (one per batch), over all epochs.
    pub steps: u64,
    /// Wall-clock seconds of the training loop.
    pub seconds: f64,
    /// Threads the run used: the options' `threads`, at most one per
    /// example of a batch.
    pub threads: usize,
    /// The mean loss of the last epoch.
    pub loss: f64,
    /// Floating-point operations of the matrix products (forward and
    /// backward), for the achieved GFLOP/s.
    pub flops: f64,
}

impl DnnRunStats {
    /// Training examples per second per thread (0 when no time was
    /// measured).
    pub fn examples_per_second_per_thread(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.examples as f64 / self.seconds / self.threads.max(1) as f64
    }

    /// The matrix products' achieved speed, in billions of floating-point
    /// operations per second (0 when no time was measured).
    pub fn gflops(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.flops / self.seconds / 1e9
    }
}

/// How one run trains: epochs and its step size.
pub(crate) struct Schedule {
    pub epochs: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

/// Asked between steps whether to go on (no: the run stops and returns
/// None), and told the fraction done.
pub(crate) struct Control<'a> {
    pub keep_going: &'a (dyn Fn() -> bool + Sync),
    pub progress: &'a (dyn Fn(f64) + Sync),
}

/// Trains `state` on `data`; None if stopped.
pub(crate) fn train(
    state: &mut DnnState,
    data: &TrainingData,
    opts: &DnnOptions,
    schedule: &Schedule,
    control: &Control<'_>,
) -> Option<DnnRunStats> {
    let started = Instant::now();
    let n = state.len();
    let Some(sampler) = NegativeSampler::new(&state.counts, opts.sampler_exponent) else {
        return Some(DnnRunStats::default());
    };
    let draws = opts.negatives.min(n.max(1));
    let log_q: Vec<f32> = probabilities(&state.counts, opts.sampler_exponent)
        .iter()
        .map(|&q| (draws as f64 * q).max(1e-30).ln() as f32)
        .collect();
    let threads = opts.threads.max(1).min(opts.batch.max(1));
    // The tables a step reads and updates at random rows, on huge pages.
    let (p, m, v) = (&state.params, &state.adam.m, &state.adam.v);
    huge_pages::advise(&[
        &p.item_in,
        &p.item_out,
        &m.item_in,
        &m.item_out,
        &v.item_in,
        &v.item_out,
    ]);
    let parts: Vec<RwLock<Part>> = (0..threads).map(|_| RwLock::new(Part::new(state))).collect();
    let scratch: Vec<Mutex<Vec<f32>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    let per_epoch = data.examples_per_epoch(opts.positions_per_user);
    let total_steps = (per_epoch.div_ceil(opts.batch) * schedule.epochs).max(1) as u64;
    let mut stats = DnnRunStats {
        threads,
        ..DnnRunStats::default()
    };
    let d = state.dim;
    // The threads live for the whole run and meet at a barrier three times
    // a step (spawning one per step cost 130 us each, a twentieth of a
    // step): the coordinator (this thread) prepares the step alone, all
    // read the parameters, then all update their shares (`shared.rs`).
    let model = SharedModel::new(state);
    let input = RwLock::new(StepInput::default());
    let barrier = SpinBarrier::new(threads);
    let share = Shared {
        model: &model,
        input: &input,
        parts: &parts,
        barrier: &barrier,
        data,
        watch_len: opts.watch_len,
        log_q: &log_q,
        threads,
        scratch: &scratch,
    };
    let finished = std::thread::scope(|scope| {
        for t in 1..threads {
            let share = &share;
            scope.spawn(move || while share.step(t) {});
        }
        let mut rng = Rng::new(schedule.seed ^ 0x4E45_4753, 0);
        let mut finished = true;
        'epochs: for epoch in 0..schedule.epochs {
            let examples = data.epoch(opts.positions_per_user, schedule.seed, epoch as u64);
            let (mut epoch_loss, mut epoch_examples) = (0.0, 0usize);
            for batch in examples.chunks(opts.batch) {
                if !(control.keep_going)() {
                    finished = false;
                    break 'epochs;
                }
                // The exclusive phase: the other threads wait at the barrier.
                // SAFETY: the exclusive phase, no `read` reference alive.
                let adam_step = unsafe { model.count_step() };
                {
                    // SAFETY: the exclusive phase, after `count_step`; the
                    // reference is dropped at the end of this block.
                    let state = unsafe { model.read() };
                    stats.flops += step_flops(state, batch.len(), draws);
                    let mut inp = input.write();
                    inp.fill(state, batch, threads, draws, &sampler, &log_q, d, &mut rng);
                    let dense = AdamStep::new(adam_step, schedule.learning_rate, batch.len(), 0.0);
                    inp.constants = Some(StepConstants {
                        sparse: dense.with_l2(opts.l2),
                        dense,
                    });
                }
                share.step(0);
                epoch_loss += parts.iter().map(|p| p.read().loss).sum::<f64>();
                epoch_examples += batch.len();
                stats.examples += batch.len() as u64;
                stats.steps += 1;
                if stats.steps.is_multiple_of(16) {
                    (control.progress)(stats.steps as f64 / total_steps as f64);
                }
            }
            stats.loss = epoch_loss / epoch_examples.max(1) as f64;
        }
        input.write().stop = true;
        barrier.wait();
        finished
    });
    if !finished {
        return None;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Some(stats)
}

/// A barrier that spins (then yields) instead of parking: the threads of a
/// run are never more than the cores, and a parked thread's wake-up on this
/// machine took long enough, at each barrier of a step, to make two threads
/// barely faster than one (measured: 1.3x; parked threads varied from 22 to
/// 38 k examples per second per thread between runs).
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once all `threads` threads called it (for this generation).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < 1 << 14 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// What every thread reads in a step.
#[derive(Default)]
struct StepInput {
    examples: Vec<Example>,
    /// Examples per thread.
    per: usize,
    items: Vec<u32>,
    vectors: Vec<f32>,
    bias: Vec<f32>,
    log_q: Vec<f32>,
    by_item: Vec<(u32, u32)>,
    /// The Adam step's constants.
    constants: Option<StepConstants>,
    /// The run is over: the threads return.
    stop: bool,
}

impl StepInput {
    /// The batch and its negatives, drawn and gathered.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        state: &DnnState,
        batch: &[Example],
        threads: usize,
        draws: usize,
        sampler: &NegativeSampler,
        log_q: &[f32],
        d: usize,
        rng: &mut Rng,
    ) {
        self.examples.clear();
        self.examples.extend_from_slice(batch);
        self.per = batch.len().div_ceil(threads).max(1);
        self.items.clear();
        self.items.extend((0..draws).map(|_| sampler.draw(rng)));
        self.vectors.clear();
        self.bias.clear();
        self.log_q.clear();
        for &j in &self.items {
            self.vectors
                .extend_from_slice(&state.params.item_out[j as usize * d..][..d]);
            self.bias.push(state.params.item_bias[j as usize]);
            self.log_q.push(log_q[j as usize]);
        }
        drawn_at(&self.items, &mut self.by_item);
    }
}

/// What the threads of a run share.
struct Shared<'a, 's> {
    model: &'a SharedModel<'s>,
    input: &'a RwLock<StepInput>,
    parts: &'a [RwLock<Part>],
    barrier: &'a SpinBarrier,
    data: &'a TrainingData,
    watch_len: usize,
    log_q: &'a [f32],
    threads: usize,
    /// Each thread's, for the update phase.
    scratch: &'a [Mutex<Vec<f32>>],
}

impl Shared<'_, '_> {
    /// Thread `t`'s share of one step, from the barrier that ends the
    /// exclusive phase to the one that ends the update phase; false when
    /// the run is over.
    fn step(&self, t: usize) -> bool {
        self.barrier.wait();
        {
            let input = self.input.read();
            if input.stop {
                return false;
            }
            {
                // SAFETY: the read phase; the reference is dropped at the
                // end of this block, before the barrier that ends it.
                let state = unsafe { self.model.read() };
                let mut part = self.parts[t].write();
                let lo = (t * input.per).min(input.examples.len());
                let hi = ((t + 1) * input.per).min(input.examples.len());
                let negatives = Negatives {
                    items: &input.items,
                    vectors: &input.vectors,
                    bias: &input.bias,
                    log_q: &input.log_q,
                    by_item: &input.by_item,
                };
                run_part(
                    state,
                    self.data,
                    &input.examples[lo..hi],
                    self.watch_len,
                    self.log_q,
                    &negatives,
                    &mut part,
                );
            }
            self.barrier.wait();
            // Every step's exclusive phase sets the constants.
            if let Some(constants) = &input.constants {
                let guards: Vec<_> = self.parts.iter().map(|p| p.read()).collect();
                let parts: Vec<&Part> = guards.iter().map(|g| &**g).collect();
                let mut scratch = self.scratch[t].lock();
                // SAFETY: the update phase (after the barrier that ended the
                // read phase, before the one that ends this one); every
                // thread of the run calls it with its own `t`.
                unsafe { update_share(self.model, &parts, t, self.threads, constants, &mut scratch) };
            }
        }
        self.barrier.wait();
        true
    }
}
