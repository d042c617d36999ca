//! The user tower: fully connected ReLU layers over a batch of inputs. The
//! last layer's ReLU output is the user vector `u`.
//!
//! For a layer with weights `W` (`inputs x outputs`, row-major) and bias
//! `b`, on a batch `X` (`rows x inputs`): `Z = X W + b`, `A = relu(Z)`.
//! Backward, from `dA`: `dZ = dA * [Z > 0]`, `dW = X^T dZ`,
//! `db = sum over rows of dZ`, `dX = dZ W^T`. Products go through
//! `kernels::gemm`.

use serde::{Deserialize, Serialize};

use crate::kernels::gemm::{gemm, Operand};

/// One fully connected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    /// `inputs x outputs`, row-major.
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl Layer {
    /// He initialisation (uniform with the variance of `N(0, 2/inputs)`),
    /// zero bias, from `draw` (uniform in [0, 1)).
    pub fn new(inputs: usize, outputs: usize, draw: &mut dyn FnMut() -> f32) -> Self {
        let limit = (6.0 / inputs.max(1) as f32).sqrt();
        Layer {
            inputs,
            outputs,
            w: (0..inputs * outputs).map(|_| (draw() * 2.0 - 1.0) * limit).collect(),
            b: vec![0.0; outputs],
        }
    }
}

/// What a forward pass keeps for the backward one: each layer's input and
/// pre-activation.
#[derive(Debug, Default)]
pub(crate) struct Activations {
    /// `inputs[l]` is layer `l`'s input (`inputs[0]` the batch itself);
    /// `inputs[layers]` is the output.
    inputs: Vec<Vec<f32>>,
    pre: Vec<Vec<f32>>,
    rows: usize,
    /// Scratch of the backward pass: a layer's output and input gradients.
    grad: Vec<f32>,
    below: Vec<f32>,
}

impl Activations {
    /// The tower's output (`rows x outputs of the last layer`).
    pub fn output(&self) -> &[f32] {
        self.inputs.last().map_or(&[], Vec::as_slice)
    }
}

/// Runs `x` (`rows x layers[0].inputs`) through `layers`, keeping what
/// [`backward`] needs in `acts`.
pub(crate) fn forward(layers: &[Layer], x: &[f32], rows: usize, acts: &mut Activations) {
    acts.rows = rows;
    acts.inputs.resize_with(layers.len() + 1, Vec::new);
    acts.pre.resize_with(layers.len(), Vec::new);
    acts.inputs[0].clear();
    acts.inputs[0].extend_from_slice(&x[..rows * layers.first().map_or(0, |l| l.inputs)]);
    for (l, layer) in layers.iter().enumerate() {
        let z = &mut acts.pre[l];
        z.clear();
        for _ in 0..rows {
            z.extend_from_slice(&layer.b);
        }
        gemm(
            Operand::new(&acts.inputs[l], rows, layer.inputs),
            Operand::new(&layer.w, layer.inputs, layer.outputs),
            1.0,
            z,
        );
        let a = &mut acts.inputs[l + 1];
        a.clear();
        a.extend(z.iter().map(|&v| v.max(0.0)));
    }
}

/// Gradients of the layers, summed over a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerGrads {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl LayerGrads {
    pub fn zeros(layers: &[Layer]) -> Vec<LayerGrads> {
        layers
            .iter()
            .map(|l| LayerGrads {
                w: vec![0.0; l.w.len()],
                b: vec![0.0; l.b.len()],
            })
            .collect()
    }
}

/// Back-propagates `d_out` (the loss's gradient with respect to the output,
/// `rows x outputs`) through `layers`: adds the weight and bias gradients to
/// `grads` and leaves the input's gradient in `d_in` (`rows x inputs`).
pub(crate) fn backward(
    layers: &[Layer],
    acts: &mut Activations,
    d_out: &[f32],
    grads: &mut [LayerGrads],
    d_in: &mut Vec<f32>,
) {
    let rows = acts.rows;
    let mut d = std::mem::take(&mut acts.grad);
    let mut below = std::mem::take(&mut acts.below);
    d.clear();
    d.extend_from_slice(&d_out[..rows * layers.last().map_or(0, |l| l.outputs)]);
    for (l, layer) in layers.iter().enumerate().rev() {
        // dZ = dA * [Z > 0]
        for (dz, z) in d.iter_mut().zip(&acts.pre[l]) {
            if *z <= 0.0 {
                *dz = 0.0;
            }
        }
        gemm(
            Operand::new(&acts.inputs[l], rows, layer.inputs).t(),
            Operand::new(&d, rows, layer.outputs),
            1.0,
            &mut grads[l].w,
        );
        for row in d.chunks_exact(layer.outputs) {
            for (g, x) in grads[l].b.iter_mut().zip(row) {
                *g += x;
            }
        }
        below.clear();
        below.resize(rows * layer.inputs, 0.0);
        gemm(
            Operand::new(&d, rows, layer.outputs),
            Operand::new(&layer.w, layer.inputs, layer.outputs).t(),
            0.0,
            &mut below,
        );
        std::mem::swap(&mut d, &mut below);
    }
    d_in.clear();
    d_in.extend_from_slice(&d);
    acts.grad = d;
    acts.below = below;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::Rng;

    fn layers(seed: u64) -> Vec<Layer> {
        let mut rng = Rng::new(seed, 0);
        let mut draw = || rng.next_f32();
        vec![Layer::new(5, 7, &mut draw), Layer::new(7, 3, &mut draw)]
    }

    /// A loss that weighs each output differently: sum of c_i * u_i.
    fn loss(layers: &[Layer], x: &[f32], rows: usize, c: &[f32]) -> f64 {
        let mut acts = Activations::default();
        forward(layers, x, rows, &mut acts);
        acts.output().iter().zip(c).map(|(u, c)| *u as f64 * *c as f64).sum()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let layers = layers(3);
        let rows = 4;
        let mut rng = Rng::new(9, 1);
        let x: Vec<f32> = (0..rows * 5).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        let c: Vec<f32> = (0..rows * 3).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        let mut acts = Activations::default();
        forward(&layers, &x, rows, &mut acts);
        let mut grads = LayerGrads::zeros(&layers);
        let mut dx = Vec::new();
        backward(&layers, &mut acts, &c, &mut grads, &mut dx);
        let h = 1e-3;
        let check = |analytic: f32, plus: f64, minus: f64, what: &str| {
            let numeric = (plus - minus) / (2.0 * h as f64);
            assert!(
                (numeric - analytic as f64).abs() < 2e-3,
                "{what}: {numeric} vs {analytic}"
            );
        };
        for l in 0..layers.len() {
            for i in 0..layers[l].w.len() {
                let (mut p, mut m) = (layers.clone(), layers.clone());
                p[l].w[i] += h;
                m[l].w[i] -= h;
                check(grads[l].w[i], loss(&p, &x, rows, &c), loss(&m, &x, rows, &c), "dW");
            }
            for i in 0..layers[l].b.len() {
                let (mut p, mut m) = (layers.clone(), layers.clone());
                p[l].b[i] += h;
                m[l].b[i] -= h;
                check(grads[l].b[i], loss(&p, &x, rows, &c), loss(&m, &x, rows, &c), "db");
            }
        }
        for i in 0..x.len() {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += h;
            m[i] -= h;
            check(dx[i], loss(&layers, &p, rows, &c), loss(&layers, &m, rows, &c), "dx");
        }
    }
}
