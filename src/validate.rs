//! Checks on what callers hand in, done before anything is logged, so bad
//! input changes nothing.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::metric::Metric;

/// Checks `vector` and returns it as stored: normalised under cosine.
pub(crate) fn prepare_vector(
    metric: Metric,
    dim: usize,
    vector: &[f32],
    context: impl Fn() -> String,
) -> Result<Cow<'_, [f32]>> {
    if vector.len() != dim {
        return Err(Error::DimensionMismatch {
            context: context(),
            expected: dim,
            got: vector.len(),
        });
    }
    if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFiniteVector {
            context: context(),
            index,
        });
    }
    if metric != Metric::Cosine {
        return Ok(Cow::Borrowed(vector));
    }
    let norm = vector.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::ZeroVector { context: context() });
    }
    let out: Vec<f32> = vector.iter().map(|&x| (x as f64 / norm) as f32).collect();
    // A vector of subnormal components can still round to all zeros.
    if out.iter().all(|&x| x == 0.0) {
        return Err(Error::ZeroVector { context: context() });
    }
    Ok(Cow::Owned(out))
}

pub(crate) fn check_events(events: &[Event]) -> Result<()> {
    if let Some(e) = events.iter().find(|e| !e.weight.is_finite() || e.weight < 0.0) {
        let what = if e.weight.is_finite() { "negative" } else { "not finite" };
        return Err(Error::InvalidEvent {
            user: e.user,
            item: e.item,
            reason: format!("weight {} is {what} (weights are finite and at least 0)", e.weight),
        });
    }
    Ok(())
}
