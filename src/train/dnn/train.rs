//! The DNN's training loop: epochs of shuffled examples in batches; each
//! batch shares its negatives; threads split the batch (each runs
//! `step::run_part` on its slice, reading the parameters), then their
//! gradients are added up in thread order and Adam applies them (lazily to
//! the embedding rows the batch touched). The sum is in a fixed order, so a
//! seed and a thread count give the same bits every time; one thread is the
//! deterministic mode.

use std::time::Instant;

use super::examples::TrainingData;
use super::options::DnnOptions;
use super::softmax::Negatives;
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

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// Adam's per-step constants.
struct AdamStep {
    lr: f32,
    /// The gradients are sums over the batch: this makes them means.
    scale: f32,
    correction1: f32,
    correction2: f32,
    l2: f32,
}

impl AdamStep {
    /// `param -= lr * m_hat / (sqrt(v_hat) + eps)` after folding `grad` in.
    fn apply(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        for (((p, m), v), g) in param.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
            let g = g * self.scale + self.l2 * *p;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= self.lr * (*m / self.correction1) / ((*v / self.correction2).sqrt() + EPS);
        }
    }

    /// [`AdamStep::apply`] to the touched rows of a table.
    fn apply_rows(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grads: &RowGrads) {
        let cols = grads.cols;
        for i in 0..grads.rows.len() {
            let (row, g) = grads.get(i);
            let at = row as usize * cols..(row as usize + 1) * cols;
            self.apply(&mut param[at.clone()], &mut m[at.clone()], &mut v[at], g);
        }
    }
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
    let mut parts: Vec<Part> = (0..threads).map(|_| Part::new(state)).collect();
    let mut merged = Part::new(state);
    let per_epoch = data.examples_per_epoch(opts.positions_per_user);
    let total_steps = (per_epoch.div_ceil(opts.batch) * schedule.epochs).max(1) as u64;
    let mut stats = DnnRunStats {
        threads,
        ..DnnRunStats::default()
    };
    let d = state.dim;
    let (mut neg_items, mut neg_vectors, mut neg_bias, mut neg_log_q) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for epoch in 0..schedule.epochs {
        let examples = data.epoch(opts.positions_per_user, schedule.seed, epoch as u64);
        let (mut epoch_loss, mut epoch_examples) = (0.0, 0usize);
        for batch in examples.chunks(opts.batch) {
            if !(control.keep_going)() {
                return None;
            }
            let mut rng = Rng::new(schedule.seed ^ 0x4E45_4753, stats.steps);
            neg_items.clear();
            neg_items.extend((0..draws).map(|_| sampler.draw(&mut rng)));
            neg_vectors.clear();
            neg_bias.clear();
            neg_log_q.clear();
            for &j in &neg_items {
                neg_vectors.extend_from_slice(&state.params.item_out[j as usize * d..][..d]);
                neg_bias.push(state.params.item_bias[j as usize]);
                neg_log_q.push(log_q[j as usize]);
            }
            let negatives = Negatives {
                items: &neg_items,
                vectors: &neg_vectors,
                bias: &neg_bias,
                log_q: &neg_log_q,
            };
            let per = batch.len().div_ceil(threads);
            let shared: &DnnState = state;
            std::thread::scope(|scope| {
                let mut slices = batch.chunks(per);
                let mut rest = parts.iter_mut();
                let first = (slices.next(), rest.next());
                for (slice, part) in slices.zip(rest) {
                    let negatives = &negatives;
                    let log_q = &log_q;
                    scope.spawn(move || run_part(shared, data, slice, opts.watch_len, log_q, negatives, part));
                }
                if let (Some(slice), Some(part)) = first {
                    run_part(shared, data, slice, opts.watch_len, &log_q, &negatives, part);
                }
            });
            let used = batch.len().div_ceil(per);
            apply(
                state,
                &parts[..used],
                &mut merged,
                opts,
                schedule.learning_rate,
                batch.len(),
            );
            let loss: f64 = parts[..used].iter().map(|p| p.loss).sum();
            epoch_loss += loss;
            epoch_examples += batch.len();
            stats.examples += batch.len() as u64;
            stats.steps += 1;
            stats.flops += step_flops(state, batch.len(), draws);
            if stats.steps.is_multiple_of(16) {
                (control.progress)(stats.steps as f64 / total_steps as f64);
            }
        }
        stats.loss = epoch_loss / epoch_examples.max(1) as f64;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Some(stats)
}

/// Adds the parts' gradients up (in order) and applies one Adam step.
fn apply(state: &mut DnnState, parts: &[Part], merged: &mut Part, opts: &DnnOptions, lr: f32, batch: usize) {
    state.adam.step += 1;
    let t = state.adam.step as i32;
    let step = AdamStep {
        lr,
        scale: 1.0 / batch.max(1) as f32,
        correction1: 1.0 - BETA1.powi(t),
        correction2: 1.0 - BETA2.powi(t),
        l2: 0.0,
    };
    let sparse = AdamStep { l2: opts.l2, ..step };
    let Params {
        item_in,
        features,
        layers,
        item_out,
        item_bias,
    } = &mut state.params;
    let (m, v) = (&mut state.adam.m, &mut state.adam.v);
    for (l, layer) in layers.iter_mut().enumerate() {
        let (gw, gb) = match parts {
            [one] => (one.layers[l].w.clone(), one.layers[l].b.clone()),
            _ => {
                let mut gw = parts[0].layers[l].w.clone();
                let mut gb = parts[0].layers[l].b.clone();
                for p in &parts[1..] {
                    gw.iter_mut().zip(&p.layers[l].w).for_each(|(a, b)| *a += b);
                    gb.iter_mut().zip(&p.layers[l].b).for_each(|(a, b)| *a += b);
                }
                (gw, gb)
            }
        };
        step.apply(&mut layer.w, &mut m.layers[l].w, &mut v.layers[l].w, &gw);
        step.apply(&mut layer.b, &mut m.layers[l].b, &mut v.layers[l].b, &gb);
    }
    let merge = |pick: &dyn Fn(&Part) -> &RowGrads, into: &mut RowGrads| {
        into.clear();
        for p in parts {
            into.merge(pick(p));
        }
    };
    merge(&|p| &p.item_in, &mut merged.item_in);
    sparse.apply_rows(item_in, &mut m.item_in, &mut v.item_in, &merged.item_in);
    for (k, table) in features.iter_mut().enumerate() {
        merge(&|p| &p.features[k], &mut merged.features[k]);
        sparse.apply_rows(table, &mut m.features[k], &mut v.features[k], &merged.features[k]);
    }
    merge(&|p| &p.item_out, &mut merged.item_out);
    sparse.apply_rows(item_out, &mut m.item_out, &mut v.item_out, &merged.item_out);
    merge(&|p| &p.item_bias, &mut merged.item_bias);
    step.apply_rows(item_bias, &mut m.item_bias, &mut v.item_bias, &merged.item_bias);
}
