//! One gradient step's work on a slice of a batch: the tower's inputs (the
//! watch vector, the feature embeddings, the example age), the forward
//! pass, the sampled softmax, and the backward pass down to the embedding
//! rows the slice touched. Threads run this on their slices of a batch in
//! parallel, reading the parameters; `train` then adds their gradients up
//! and applies them.

use super::examples::{Example, TrainingData};
use super::softmax::{sampled_softmax, Negatives, Positives, SoftmaxGrads};
use super::state::{DnnState, Params};
use super::tower::{self, Activations, LayerGrads};
use crate::kernels::{dispatch, Isa, Portable, WithIsa};

/// Gradients of some rows of an embedding table (the rows a step touched).
#[derive(Debug, Default)]
pub(crate) struct RowGrads {
    pub cols: usize,
    /// Per row of the table: its place in `rows`, or `UNTOUCHED` (a dense
    /// index: a hash map cost 8% of a step).
    slot: Vec<u32>,
    /// Touched rows in the order first touched, and their gradients.
    pub rows: Vec<u32>,
    pub data: Vec<f32>,
}

const UNTOUCHED: u32 = u32::MAX;

impl RowGrads {
    /// Gradients for a table of `table_rows` rows of `cols` values.
    pub fn new(cols: usize, table_rows: usize) -> Self {
        RowGrads {
            cols,
            slot: vec![UNTOUCHED; table_rows],
            rows: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn clear(&mut self) {
        for &r in &self.rows {
            self.slot[r as usize] = UNTOUCHED;
        }
        self.rows.clear();
        self.data.clear();
    }

    /// Adds `scale * values` to row `row`'s gradient (a row beyond the
    /// table grows the index: tables only grow between runs).
    pub fn add(&mut self, row: u32, scale: f32, values: &[f32]) {
        self.add_with::<Portable>(row, scale, values)
    }

    /// [`RowGrads::add`] inside a body dispatched for `I`.
    #[inline(always)]
    pub fn add_with<I: Isa>(&mut self, row: u32, scale: f32, values: &[f32]) {
        let cols = self.cols;
        let r = row as usize;
        if r >= self.slot.len() {
            self.slot.resize(r + 1, UNTOUCHED);
        }
        if self.slot[r] == UNTOUCHED {
            self.slot[r] = self.rows.len() as u32;
            self.rows.push(row);
            self.data.resize(self.data.len() + cols, 0.0);
        }
        let at = self.slot[r] as usize;
        I::axpy(scale, values, &mut self.data[at * cols..][..cols]);
    }

    /// Row `row`'s gradient, if the step touched it.
    pub fn row(&self, row: u32) -> Option<&[f32]> {
        let at = *self.slot.get(row as usize)?;
        (at != UNTOUCHED).then(|| &self.data[at as usize * self.cols..][..self.cols])
    }
}

/// What one thread's slice of a batch contributes.
pub(crate) struct Part {
    pub loss: f64,
    pub layers: Vec<LayerGrads>,
    pub item_in: RowGrads,
    pub features: Vec<RowGrads>,
    pub item_out: RowGrads,
    pub item_bias: RowGrads,
    /// Scratch kept between steps.
    x: Vec<f32>,
    acts: Activations,
    soft: SoftmaxGrads,
    pos_vectors: Vec<f32>,
    pos_bias: Vec<f32>,
    pos_log_q: Vec<f32>,
    pos_items: Vec<u32>,
    dx: Vec<f32>,
}

impl Part {
    pub fn new(state: &DnnState) -> Self {
        Part {
            loss: 0.0,
            layers: LayerGrads::zeros(&state.params.layers),
            item_in: RowGrads::new(state.embed_dim, state.len()),
            features: state
                .features
                .keys
                .iter()
                .map(|k| RowGrads::new(state.feature_dim, k.rows()))
                .collect(),
            item_out: RowGrads::new(state.dim, state.len()),
            item_bias: RowGrads::new(1, state.len()),
            x: Vec::new(),
            acts: Activations::default(),
            soft: SoftmaxGrads::default(),
            pos_vectors: Vec::new(),
            pos_bias: Vec::new(),
            pos_log_q: Vec::new(),
            pos_items: Vec::new(),
            dx: Vec::new(),
        }
    }

    fn reset(&mut self) {
        self.loss = 0.0;
        for g in &mut self.layers {
            g.w.fill(0.0);
            g.b.fill(0.0);
        }
        self.item_in.clear();
        self.features.iter_mut().for_each(RowGrads::clear);
        self.item_out.clear();
        self.item_bias.clear();
    }
}

/// The tower's input row of `example` (at serving, `age` is 0 and `items`
/// the user's history).
pub(crate) fn input_row(state: &DnnState, context: &[u32], features: &[Vec<u32>], age: f32, out: &mut Vec<f32>) {
    input_row_with::<Portable>(state, context, features, age, out)
}

/// Appends the mean of rows `items` of `table` (rows of `cols`) to `out`
/// (zeros for no item). A function, not a closure, so that it is inlined
/// into the dispatched caller and vectorised for its instruction set.
#[inline(always)]
fn mean_rows<I: Isa>(table: &[f32], cols: usize, items: &[u32], out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + cols, 0.0);
    if items.is_empty() {
        return;
    }
    let inv = 1.0 / items.len() as f32;
    let mean = &mut out[start..];
    for &i in items {
        I::axpy(inv, &table[i as usize * cols..][..cols], mean);
    }
}

/// [`input_row`] inside a body dispatched for `I`.
#[inline(always)]
fn input_row_with<I: Isa>(state: &DnnState, context: &[u32], features: &[Vec<u32>], age: f32, out: &mut Vec<f32>) {
    let p = &state.params;
    let e = state.embed_dim;
    mean_rows::<I>(&p.item_in, e, context, out);
    if state.recent_len > 0 {
        mean_rows::<I>(&p.item_in, e, recent(context, state.recent_len), out);
    }
    if state.use_features {
        let f = state.feature_dim;
        for (k, rows) in features.iter().enumerate() {
            let at = out.len();
            out.resize(at + f, 0.0);
            let inv = 1.0 / rows.len().max(1) as f32;
            for &r in rows {
                for (o, x) in out[at..].iter_mut().zip(&p.features[k][r as usize * f..][..f]) {
                    *o += x * inv;
                }
            }
        }
    }
    if state.example_age {
        out.push(age);
        out.push(age * age);
    }
}

/// The last `n` items of a context.
pub(crate) fn recent(context: &[u32], n: usize) -> &[u32] {
    &context[context.len().saturating_sub(n)..]
}

/// The context of position `t` of `items`: up to `watch_len` items before it.
pub(crate) fn context(items: &[u32], t: usize, watch_len: usize) -> &[u32] {
    &items[t.saturating_sub(watch_len)..t]
}

/// Runs `examples` (a slice of a batch) against `negatives`, leaving the
/// summed loss and gradients in `part`; on the detected instruction set.
pub(crate) fn run_part(
    state: &DnnState,
    data: &TrainingData,
    examples: &[Example],
    watch_len: usize,
    log_q: &[f32],
    negatives: &Negatives<'_>,
    part: &mut Part,
) {
    struct Work<'a> {
        state: &'a DnnState,
        data: &'a TrainingData,
        examples: &'a [Example],
        watch_len: usize,
        log_q: &'a [f32],
        negatives: &'a Negatives<'a>,
        part: &'a mut Part,
    }
    impl WithIsa for Work<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            run_part_with::<I>(
                self.state,
                self.data,
                self.examples,
                self.watch_len,
                self.log_q,
                self.negatives,
                self.part,
            )
        }
    }
    dispatch(Work {
        state,
        data,
        examples,
        watch_len,
        log_q,
        negatives,
        part,
    })
}

#[inline(always)]
fn run_part_with<I: Isa>(
    state: &DnnState,
    data: &TrainingData,
    examples: &[Example],
    watch_len: usize,
    log_q: &[f32],
    negatives: &Negatives<'_>,
    part: &mut Part,
) {
    part.reset();
    let rows = examples.len();
    if rows == 0 {
        return;
    }
    let p: &Params = &state.params;
    let (d, e, f) = (state.dim, state.embed_dim, state.feature_dim);
    part.x.clear();
    part.pos_items.clear();
    for ex in examples {
        let user = &data.users[ex.user as usize];
        let t = ex.position as usize;
        let age = data.age(user.times[t]);
        input_row(
            state,
            context(&user.items, t, watch_len),
            &user.features,
            age,
            &mut part.x,
        );
        part.pos_items.push(user.items[t]);
    }
    tower::forward(&p.layers, &part.x, rows, &mut part.acts);
    part.pos_vectors.clear();
    part.pos_bias.clear();
    part.pos_log_q.clear();
    for &i in &part.pos_items {
        part.pos_vectors.extend_from_slice(&p.item_out[i as usize * d..][..d]);
        part.pos_bias.push(p.item_bias[i as usize]);
        part.pos_log_q.push(log_q[i as usize]);
    }
    let positives = Positives {
        items: &part.pos_items,
        vectors: &part.pos_vectors,
        bias: &part.pos_bias,
        log_q: &part.pos_log_q,
    };
    part.loss = sampled_softmax(part.acts.output(), rows, d, &positives, negatives, &mut part.soft);
    tower::backward(&p.layers, &mut part.acts, &part.soft.du, &mut part.layers, &mut part.dx);

    // Back into the embeddings the inputs averaged.
    let width = state.input_width();
    for (r, ex) in examples.iter().enumerate() {
        let user = &data.users[ex.user as usize];
        let dx = &part.dx[r * width..][..width];
        let ctx = context(&user.items, ex.position as usize, watch_len);
        if !ctx.is_empty() {
            let inv = 1.0 / ctx.len() as f32;
            for &i in ctx {
                part.item_in.add_with::<I>(i, inv, &dx[..e]);
            }
        }
        let mut at = e;
        if state.recent_len > 0 {
            let last = recent(ctx, state.recent_len);
            if !last.is_empty() {
                let inv = 1.0 / last.len() as f32;
                for &i in last {
                    part.item_in.add_with::<I>(i, inv, &dx[at..at + e]);
                }
            }
            at += e;
        }
        if state.use_features {
            for (k, rows) in user.features.iter().enumerate() {
                let inv = 1.0 / rows.len().max(1) as f32;
                for &row in rows {
                    part.features[k].add_with::<I>(row, inv, &dx[at + k * f..][..f]);
                }
            }
        }
        part.item_out
            .add(part.pos_items[r], 1.0, &part.soft.d_pos[r * d..][..d]);
        part.item_bias.add(part.pos_items[r], part.soft.d_pos_bias[r], &[1.0]);
    }
    for (j, &item) in negatives.items.iter().enumerate() {
        part.item_out.add_with::<I>(item, 1.0, &part.soft.d_neg[j * d..][..d]);
        part.item_bias.add(item, part.soft.d_neg_bias[j], &[1.0]);
    }
}

/// Floating-point operations of the products of one step on `rows`
/// examples against `negatives` draws (forward and backward).
pub(crate) fn step_flops(state: &DnnState, rows: usize, negatives: usize) -> f64 {
    let tower: f64 = state
        .params
        .layers
        .iter()
        .map(|l| 2.0 * rows as f64 * l.inputs as f64 * l.outputs as f64)
        .sum();
    // Forward, weight gradients, input gradients; then the softmax's three
    // products.
    3.0 * tower + 6.0 * rows as f64 * negatives as f64 * state.dim as f64
}
