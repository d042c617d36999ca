//! The DNN's training loop: epochs of shuffled examples in batches; each
//! batch shares its negatives; threads split the batch (each runs
//! `step::run_part` on its slice, reading the parameters), then their
//! gradients are added up in thread order and Adam applies them (lazily to
//! the embedding rows the batch touched). The sum is in a fixed order, so a
//! seed and a thread count give the same bits every time; one thread is the
//! deterministic mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use super::adam::{AdamStep, RowScratch};
use super::examples::{Example, TrainingData};
use super::options::DnnOptions;
use super::softmax::{drawn_at, Negatives};
use super::state::{DnnState, Params};
use super::step::{run_part, step_flops, Part, RowGrads};
use crate::train::rng::Rng;
use crate::train::sampler::{probabilities, NegativeSampler};

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DnnRunStats {
    /// Training examples seen, over all epochs, and gradient steps.
    pub examples: u64,
    pub steps: u64,
    pub seconds: f64,
    pub threads: usize,
    /// The mean loss of the last epoch.
    pub loss: f64,
    /// Floating-point operations of the matrix products (forward and
    /// backward), for the achieved GFLOP/s.
    pub flops: f64,
}

impl DnnRunStats {
    pub fn examples_per_second_per_thread(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.examples as f64 / self.seconds / self.threads.max(1) as f64
    }

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
    let parts: Vec<Mutex<Part>> = (0..threads).map(|_| Mutex::new(Part::new(state))).collect();
    let mut scratch = RowScratch::default();
    let per_epoch = data.examples_per_epoch(opts.positions_per_user);
    let total_steps = (per_epoch.div_ceil(opts.batch) * schedule.epochs).max(1) as u64;
    let mut stats = DnnRunStats {
        threads,
        ..DnnRunStats::default()
    };
    let d = state.dim;
    // The threads live for the whole run and meet at a barrier twice a
    // step: spawning one per step cost 130 us each, a twentieth of a step.
    // Between the barriers every thread reads the parameters and the step's
    // input; after them the coordinator (this thread) writes both.
    let params = RwLock::new(state);
    let input = RwLock::new(StepInput::default());
    let barrier = SpinBarrier::new(threads);
    let share = Shared {
        params: &params,
        input: &input,
        parts: &parts,
        barrier: &barrier,
        data,
        watch_len: opts.watch_len,
        log_q: &log_q,
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
                {
                    let mut inp = input.write();
                    let state = params.read();
                    inp.fill(&state, batch, threads, draws, &sampler, &log_q, d, &mut rng);
                }
                share.step(0);
                let mut state = params.write();
                let done: Vec<_> = parts.iter().map(|p| p.lock()).collect();
                let done: Vec<&Part> = done.iter().map(|g| &**g).collect();
                apply(
                    &mut state,
                    &done,
                    &mut scratch,
                    opts,
                    schedule.learning_rate,
                    batch.len(),
                );
                epoch_loss += done.iter().map(|p| p.loss).sum::<f64>();
                epoch_examples += batch.len();
                stats.examples += batch.len() as u64;
                stats.steps += 1;
                stats.flops += step_flops(&state, batch.len(), draws);
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
/// machine took long enough, twice a step, to make two threads barely
/// faster than one (measured: 1.3x; parked threads varied from 22 to 38 k
/// examples per second per thread between runs).
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
    params: &'a RwLock<&'s mut DnnState>,
    input: &'a RwLock<StepInput>,
    parts: &'a [Mutex<Part>],
    barrier: &'a SpinBarrier,
    data: &'a TrainingData,
    watch_len: usize,
    log_q: &'a [f32],
}

impl Shared<'_, '_> {
    /// Thread `t`'s share of one step, between the two barriers; false
    /// when the run is over.
    fn step(&self, t: usize) -> bool {
        self.barrier.wait();
        {
            let input = self.input.read();
            if input.stop {
                return false;
            }
            let state = self.params.read();
            let mut part = self.parts[t].lock();
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
                &state,
                self.data,
                &input.examples[lo..hi],
                self.watch_len,
                self.log_q,
                &negatives,
                &mut part,
            );
        }
        self.barrier.wait();
        true
    }
}

/// Adds the parts' gradients up (in order) and applies one Adam step: the
/// tower's tensors whole, the embedding tables' touched rows split between
/// the threads.
fn apply(state: &mut DnnState, parts: &[&Part], scratch: &mut RowScratch, opts: &DnnOptions, lr: f32, batch: usize) {
    state.adam.step += 1;
    let step = AdamStep::new(state.adam.step, lr, batch, 0.0);
    let sparse = step.with_l2(opts.l2);
    // One thread: spawning threads for the rows of each table cost more
    // than the updates (measured: two threads went from 1.70x to 1.29x one).
    let threads = 1;
    let Params {
        item_in,
        features,
        layers,
        item_out,
        item_bias,
    } = &mut state.params;
    let (m, v) = (&mut state.adam.m, &mut state.adam.v);
    for (l, layer) in layers.iter_mut().enumerate() {
        let mut gw = parts[0].layers[l].w.clone();
        let mut gb = parts[0].layers[l].b.clone();
        for p in &parts[1..] {
            gw.iter_mut().zip(&p.layers[l].w).for_each(|(a, b)| *a += b);
            gb.iter_mut().zip(&p.layers[l].b).for_each(|(a, b)| *a += b);
        }
        step.apply(&mut layer.w, &mut m.layers[l].w, &mut v.layers[l].w, &gw);
        step.apply(&mut layer.b, &mut m.layers[l].b, &mut v.layers[l].b, &gb);
    }
    let of = |pick: &dyn Fn(&Part) -> &RowGrads| parts.iter().map(|p| pick(p)).collect::<Vec<_>>();
    sparse.apply_rows(
        item_in,
        &mut m.item_in,
        &mut v.item_in,
        &of(&|p| &p.item_in),
        threads,
        scratch,
    );
    for (k, table) in features.iter_mut().enumerate() {
        let grads = of(&|p| &p.features[k]);
        sparse.apply_rows(table, &mut m.features[k], &mut v.features[k], &grads, threads, scratch);
    }
    sparse.apply_rows(
        item_out,
        &mut m.item_out,
        &mut v.item_out,
        &of(&|p| &p.item_out),
        threads,
        scratch,
    );
    step.apply_rows(
        item_bias,
        &mut m.item_bias,
        &mut v.item_bias,
        &of(&|p| &p.item_bias),
        threads,
        scratch,
    );
}
