//! The logistic function, exactly or from word2vec's table (1,000 slots over
//! [-6, 6], clamped outside); `ember eval --sigmoid` measures both.

use serde::{Deserialize, Serialize};

/// How the trainer computes the sigmoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sigmoid {
    /// `1 / (1 + exp(-x))`.
    Exact,
    /// word2vec's precomputed table.
    Table,
}

pub(crate) const MAX_EXP: f32 = 6.0;
const TABLE_SIZE: usize = 1000;

pub(crate) struct SigmoidFn {
    kind: Sigmoid,
    table: Vec<f32>,
}

impl SigmoidFn {
    pub fn new(kind: Sigmoid) -> Self {
        let table = (0..TABLE_SIZE)
            .map(|i| {
                let x = (i as f32 / TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP;
                exact(x)
            })
            .collect();
        SigmoidFn { kind, table }
    }

    #[inline]
    pub fn eval(&self, x: f32) -> f32 {
        match self.kind {
            Sigmoid::Exact => exact(x),
            Sigmoid::Table => {
                if x >= MAX_EXP {
                    1.0
                } else if x <= -MAX_EXP {
                    0.0
                } else {
                    let slot = ((x + MAX_EXP) * (TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
                    self.table[slot.min(TABLE_SIZE - 1)]
                }
            }
        }
    }
}

#[inline]
pub(crate) fn exact(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_close_to_exact_and_clamps() {
        let table = SigmoidFn::new(Sigmoid::Table);
        for i in -600..600 {
            let x = i as f32 / 100.0;
            assert!((table.eval(x) - exact(x)).abs() < 0.01, "x = {x}");
        }
        assert_eq!(table.eval(7.0), 1.0);
        assert_eq!(table.eval(-7.0), 0.0);
        assert!((exact(0.0) - 0.5).abs() < 1e-7);
    }
}
