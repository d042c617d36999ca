//! Adam (Kingma and Ba, 2015) for the DNN: every tensor of the tower at
//! each step, and, lazily, only the rows of the embedding tables a batch
//! touched (the cost of a step does not grow with the catalogue; the rows
//! are shared out between the run's threads by `update.rs`).

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// One step's constants.
pub(crate) struct AdamStep {
    lr: f32,
    /// The gradients are sums over the batch: this makes them means.
    scale: f32,
    correction1: f32,
    correction2: f32,
    l2: f32,
}

impl AdamStep {
    /// Step `t` (from 1) of size `lr` on gradients summed over `batch`
    /// examples, with an L2 penalty `l2` on the parameters.
    pub fn new(t: u64, lr: f32, batch: usize, l2: f32) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        AdamStep {
            lr,
            scale: 1.0 / batch.max(1) as f32,
            correction1: 1.0 - BETA1.powi(t),
            correction2: 1.0 - BETA2.powi(t),
            l2,
        }
    }

    pub fn with_l2(&self, l2: f32) -> Self {
        AdamStep { l2, ..*self }
    }

    /// `param -= lr * m_hat / (sqrt(v_hat) + eps)` after folding `grad` in,
    /// on the detected instruction set.
    #[cfg(test)]
    pub fn apply(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        use crate::kernels::{dispatch, Isa, WithIsa};
        struct Update<'a> {
            step: &'a AdamStep,
            param: &'a mut [f32],
            m: &'a mut [f32],
            v: &'a mut [f32],
            grad: &'a [f32],
        }
        impl WithIsa for Update<'_> {
            type Output = ();
            #[inline(always)]
            fn run<I: Isa>(self) {
                self.step.update(self.param, self.m, self.v, self.grad)
            }
        }
        dispatch(Update {
            step: self,
            param,
            m,
            v,
            grad,
        })
    }

    /// The update itself, inlined into a dispatched caller (the compiler
    /// vectorises it for that caller's instruction set).
    #[inline(always)]
    pub(crate) fn update(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        for (((p, m), v), g) in param.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
            let g = g * self.scale + self.l2 * *p;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= self.lr * (*m / self.correction1) / ((*v / self.correction2).sqrt() + EPS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step from zero moments moves each parameter by about `lr`
    /// against its gradient's sign (Adam's first step is sign descent).
    #[test]
    fn the_first_step_moves_by_the_learning_rate_against_the_gradient() {
        let step = AdamStep::new(1, 0.1, 1, 0.0);
        let mut p = vec![1.0f32, 1.0, 1.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        step.apply(&mut p, &mut m, &mut v, &[2.0, -0.5, 0.0]);
        assert!((p[0] - 0.9).abs() < 1e-5, "{p:?}");
        assert!((p[1] - 1.1).abs() < 1e-5, "{p:?}");
        assert_eq!(p[2], 1.0);
    }
}
