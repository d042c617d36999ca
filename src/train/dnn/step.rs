//! One gradient step's work on a slice of a batch: the tower's inputs (the
//! watch vector, the feature embeddings, the example age), the forward
//! pass, the sampled softmax, and the backward pass down to the embedding
//! rows the slice touched. Threads run this on their slices of a batch in
//! parallel, reading the parameters; `train` then adds their gradients up
//! and applies them.

use std::collections::HashMap;

use super::examples::{Example, TrainingData};
use super::softmax::{sampled_softmax, Negatives, Positives, SoftmaxGrads};
use super::state::{DnnState, Params};
use super::tower::{self, Activations, LayerGrads};

/// Gradients of some rows of an embedding table (the rows a step touched).
#[derive(Debug, Default)]
pub(crate) struct RowGrads {
    pub cols: usize,
    slot: HashMap<u32, usize>,
    /// Touched rows in the order first touched, and their gradients.
    pub rows: Vec<u32>,
    pub data: Vec<f32>,
}

impl RowGrads {
    pub fn new(cols: usize) -> Self {
        RowGrads {
            cols,
            ..RowGrads::default()
        }
    }

    pub fn clear(&mut self) {
        self.slot.clear();
        self.rows.clear();
        self.data.clear();
    }

    /// Adds `scale * values` to row `row`'s gradient.
    pub fn add(&mut self, row: u32, scale: f32, values: &[f32]) {
        let cols = self.cols;
        let at = *self.slot.entry(row).or_insert_with(|| {
            self.rows.push(row);
            self.data.resize(self.data.len() + cols, 0.0);
            self.rows.len() - 1
        });
        for (g, v) in self.data[at * cols..][..cols].iter_mut().zip(values) {
            *g += scale * v;
        }
    }

    /// Row `i` (in touch order) and its gradient.
    pub fn get(&self, i: usize) -> (u32, &[f32]) {
        (self.rows[i], &self.data[i * self.cols..][..self.cols])
    }

    /// Adds every row of `other` to this one.
    pub fn merge(&mut self, other: &RowGrads) {
        for i in 0..other.rows.len() {
            let (row, g) = other.get(i);
            self.add(row, 1.0, g);
        }
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
            item_in: RowGrads::new(state.embed_dim),
            features: state
                .features
                .keys
                .iter()
                .map(|_| RowGrads::new(state.feature_dim))
                .collect(),
            item_out: RowGrads::new(state.dim),
            item_bias: RowGrads::new(1),
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
    let p = &state.params;
    let e = state.embed_dim;
    let start = out.len();
    out.resize(start + e, 0.0);
    if !context.is_empty() {
        let inv = 1.0 / context.len() as f32;
        let watch = &mut out[start..];
        for &i in context {
            for (w, x) in watch.iter_mut().zip(&p.item_in[i as usize * e..][..e]) {
                *w += x * inv;
            }
        }
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

/// The context of position `t` of `items`: up to `watch_len` items before it.
pub(crate) fn context(items: &[u32], t: usize, watch_len: usize) -> &[u32] {
    &items[t.saturating_sub(watch_len)..t]
}

/// Runs `examples` (a slice of a batch) against `negatives`, leaving the
/// summed loss and gradients in `part`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_part(
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
    tower::backward(&p.layers, &part.acts, &part.soft.du, &mut part.layers, &mut part.dx);

    // Back into the embeddings the inputs averaged.
    let width = state.input_width();
    for (r, ex) in examples.iter().enumerate() {
        let user = &data.users[ex.user as usize];
        let dx = &part.dx[r * width..][..width];
        let ctx = context(&user.items, ex.position as usize, watch_len);
        if !ctx.is_empty() {
            let inv = 1.0 / ctx.len() as f32;
            for &i in ctx {
                part.item_in.add(i, inv, &dx[..e]);
            }
        }
        if state.use_features {
            for (k, rows) in user.features.iter().enumerate() {
                let inv = 1.0 / rows.len().max(1) as f32;
                for &row in rows {
                    part.features[k].add(row, inv, &dx[e + k * f..][..f]);
                }
            }
        }
        part.item_out
            .add(part.pos_items[r], 1.0, &part.soft.d_pos[r * d..][..d]);
        part.item_bias.add(part.pos_items[r], part.soft.d_pos_bias[r], &[1.0]);
    }
    for (j, &item) in negatives.items.iter().enumerate() {
        part.item_out.add(item, 1.0, &part.soft.d_neg[j * d..][..d]);
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
