//! The training loop: epochs over a corpus, subsampling, context windows,
//! negative draws, a learning rate decaying linearly over the run, and
//! Hogwild! threads.
//!
//! Threads take contiguous ranges of sequences balanced by their pair
//! counts (pairs grow with the square of a history's length, so an even
//! split by sequences would leave one thread with the heavy users). With one
//! thread the run is deterministic: the same seed gives the same bits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::corpus::Corpus;
use super::hogwild::{add_to_row_dispatched, load_row_dispatched, HogwildMatrix};
use super::kernel::{sgns_batch, Scratch, MAX_BATCH};
use super::rng::Rng;
use super::sampler::NegativeSampler;
use super::sigmoid::{Sigmoid, SigmoidFn};
use super::subsample::keep_thresholds;

/// The hyperparameters of one run.
#[derive(Debug, Clone)]
pub(crate) struct Hyper {
    pub epochs: usize,
    pub negative: usize,
    pub alpha: f32,
    pub min_alpha: f32,
    /// Items on each side of the target; 0 = the whole sequence.
    pub window: usize,
    pub sample: f64,
    pub ns_exponent: f64,
    pub threads: usize,
    pub seed: u64,
    pub sigmoid: Sigmoid,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct RunStats {
    /// Positive pairs trained (after subsampling), over all epochs.
    pub pairs: u64,
    /// Items read (before subsampling), over all epochs.
    pub tokens: u64,
    /// Wall-clock seconds of the training itself.
    pub seconds: f64,
    /// Threads the run used: the options' `threads`, at most one per
    /// history trained.
    pub threads: usize,
}

/// Tokens a thread processes between updates of the shared progress.
const PROGRESS_EVERY: u64 = 4096;

/// How a caller steers a run: `keep_going` is asked between sequences; when
/// it says no, the run stops and returns None (the matrices are then
/// half-trained and must be thrown away). `progress` gets the fraction
/// done, from one thread.
pub(crate) struct Control<'a> {
    pub keep_going: &'a (dyn Fn() -> bool + Sync),
    pub progress: &'a (dyn Fn(f64) + Sync),
}

/// Trains `input` and `output` (`counts.len() x dim` each, row-major) on
/// `corpus`.
pub(crate) fn train(
    corpus: &Corpus,
    counts: &[u64],
    input: &mut [f32],
    output: &mut [f32],
    dim: usize,
    hyper: &Hyper,
    control: &Control<'_>,
) -> Option<RunStats> {
    let (keep_going, progress) = (control.keep_going, control.progress);
    let started = Instant::now();
    let Some(sampler) = NegativeSampler::new(counts, hyper.ns_exponent) else {
        return Some(RunStats::default());
    };
    let keep = keep_thresholds(counts, hyper.sample);
    let sigmoid = SigmoidFn::new(hyper.sigmoid);
    let threads = hyper.threads.max(1).min(corpus.len().max(1));
    let ranges = balanced_ranges(corpus, hyper.window, threads);
    let total_tokens = (corpus.tokens() as u64 * hyper.epochs as u64).max(1);
    let done = AtomicU64::new(0);
    let input = HogwildMatrix::new(input, dim);
    let output = HogwildMatrix::new(output, dim);
    let ctx = Context {
        corpus,
        hyper,
        sampler: &sampler,
        keep: &keep,
        sigmoid: &sigmoid,
        input: &input,
        output: &output,
        done: &done,
        total_tokens,
        keep_going,
        progress,
    };
    let results: Vec<Option<(u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .enumerate()
            .skip(1)
            .map(|(t, range)| {
                let ctx = &ctx;
                scope.spawn(move || ctx.run_thread(t, range.clone()))
            })
            .collect();
        let mut results = vec![ranges.first().and_then(|r| ctx.run_thread(0, r.clone()))];
        // A training thread only panics on a broken invariant (see
        // `HogwildMatrix::row`); treat it like a stop.
        results.extend(handles.into_iter().map(|h| h.join().ok().flatten()));
        results
    });
    let mut stats = RunStats {
        threads,
        ..RunStats::default()
    };
    for r in results {
        let (pairs, tokens) = r?;
        stats.pairs += pairs;
        stats.tokens += tokens;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Some(stats)
}

struct Context<'a, 'm> {
    corpus: &'a Corpus,
    hyper: &'a Hyper,
    sampler: &'a NegativeSampler,
    keep: &'a [u32],
    sigmoid: &'a SigmoidFn,
    input: &'a HogwildMatrix<'m>,
    output: &'a HogwildMatrix<'m>,
    done: &'a AtomicU64,
    total_tokens: u64,
    keep_going: &'a (dyn Fn() -> bool + Sync),
    progress: &'a (dyn Fn(f64) + Sync),
}

impl Context<'_, '_> {
    /// Trains sequences `range` for every epoch; returns (pairs, tokens),
    /// or None if stopped.
    fn run_thread(&self, thread: usize, range: std::ops::Range<usize>) -> Option<(u64, u64)> {
        let h = self.hyper;
        let dim = self.input.dim();
        let mut scratch = Scratch::new(dim, h.negative + 1);
        // The sequence's input rows, checked out for the whole sequence:
        // read once, updated locally by every batch, and written back once
        // as deltas (so concurrent updates by other threads are kept).
        let (mut local, mut original): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
        let mut kept: Vec<u32> = Vec::new();
        let mut targets: Vec<u32> = Vec::with_capacity(h.negative + 1);
        let (mut pairs, mut tokens, mut unreported) = (0u64, 0u64, 0u64);
        let mut alpha = h.alpha;
        for epoch in 0..h.epochs {
            let mut rng = Rng::new(h.seed, (thread as u64) << 32 | epoch as u64);
            for s in range.clone() {
                if !(self.keep_going)() {
                    return None;
                }
                let sequence = self.corpus.sequence(s);
                kept.clear();
                kept.extend(sequence.iter().copied().filter(|&item| {
                    let t = self.keep[item as usize];
                    t == u32::MAX || (rng.next_u64() as u32) < t
                }));
                let n = kept.len();
                local.resize(n * dim, 0.0);
                for (&item, buf) in kept.iter().zip(local.chunks_exact_mut(dim)) {
                    load_row_dispatched(self.input.row(item), buf);
                }
                original.clear();
                original.extend_from_slice(&local);
                for (i, &target) in kept.iter().enumerate() {
                    let (lo, hi) = if h.window == 0 {
                        (0, n)
                    } else {
                        (i.saturating_sub(h.window), (i + h.window + 1).min(n))
                    };
                    // The context, in batches that share their negatives.
                    let mut a = lo;
                    while a < hi {
                        let b = (a + MAX_BATCH).min(hi);
                        let skip = (a..b).contains(&i).then(|| i - a);
                        let batch = b - a - usize::from(skip.is_some());
                        if batch > 0 {
                            targets.clear();
                            targets.push(target);
                            for _ in 0..h.negative {
                                let negative = self.sampler.draw(&mut rng);
                                if negative != target {
                                    targets.push(negative);
                                }
                            }
                            let x = &mut local[a * dim..b * dim];
                            sgns_batch(x, skip, self.output, &targets, alpha, self.sigmoid, &mut scratch);
                            pairs += batch as u64;
                        }
                        a = b;
                    }
                }
                for ((&item, now), before) in kept
                    .iter()
                    .zip(local.chunks_exact_mut(dim))
                    .zip(original.chunks_exact(dim))
                {
                    now.iter_mut().zip(before).for_each(|(v, b)| *v -= b);
                    add_to_row_dispatched(self.input.row(item), now);
                }
                tokens += sequence.len() as u64;
                unreported += sequence.len() as u64;
                if unreported >= PROGRESS_EVERY {
                    let done = self.done.fetch_add(unreported, Ordering::Relaxed) + unreported;
                    unreported = 0;
                    let fraction = (done as f64 / self.total_tokens as f64).min(1.0);
                    alpha = (h.alpha - (h.alpha - h.min_alpha) * fraction as f32).max(h.min_alpha);
                    if thread == 0 {
                        (self.progress)(fraction);
                    }
                }
            }
        }
        self.done.fetch_add(unreported, Ordering::Relaxed);
        Some((pairs, tokens))
    }
}

/// Splits the corpus into `threads` contiguous ranges of about equal pairs.
fn balanced_ranges(corpus: &Corpus, window: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let costs: Vec<u64> = (0..corpus.len()).map(|i| corpus.pairs_of(i, window) + 1).collect();
    let total: u64 = costs.iter().sum();
    let mut ranges = Vec::with_capacity(threads);
    let (mut start, mut acc) = (0, 0u64);
    for (i, c) in costs.iter().enumerate() {
        acc += c;
        let share = total * (ranges.len() as u64 + 1) / threads as u64;
        if acc >= share && ranges.len() + 1 < threads {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    ranges.push(start..corpus.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_and_balance_pairs() {
        let mut corpus = Corpus::new();
        corpus.push(&[0; 100]);
        for _ in 0..300 {
            corpus.push(&[0; 10]);
        }
        let ranges = balanced_ranges(&corpus, 0, 2);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[0].end, ranges[1].start);
        assert_eq!(ranges[1].end, corpus.len());
        // 9,900 pairs in the first sequence, 27,000 in the rest: the first
        // thread takes the heavy user and some light ones.
        assert!(ranges[0].len() > 1 && ranges[0].len() < 200, "{ranges:?}");
    }
}
