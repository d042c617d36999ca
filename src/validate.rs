//! Checks on what callers hand in, done before anything is logged, so bad
//! input changes nothing.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::metric::Metric;

/// The largest squared norm of a vector under inner product or L2.
pub(crate) const MAX_NORM_SQUARED: f64 = f32::MAX as f64 / 4.0;

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
    let norm_squared = vector.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
    if metric != Metric::Cosine {
        // Past this, an inner product or squared L2 distance (at most four
        // times the larger squared norm) can overflow to an infinite score,
        // and infinite scores do not order.
        if norm_squared > MAX_NORM_SQUARED {
            return Err(Error::VectorTooLong {
                context: context(),
                norm_squared,
            });
        }
        return Ok(Cow::Borrowed(vector));
    }
    let norm = norm_squared.sqrt();
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

/// Whether a space of `dim` components under `metric` takes `vector`
/// (`Space::upsert` refuses it with this error otherwise): for readers
/// that check a whole input before writing any of it. `context` names the
/// vector in the error ("item 7").
pub fn check_vector(metric: Metric, dim: usize, vector: &[f32], context: &str) -> Result<()> {
    prepare_vector(metric, dim, vector, || context.to_string()).map(|_| ())
}

/// How far past this machine's clock an event's timestamp may be, in
/// milliseconds: a day. Timestamps are milliseconds since the Unix epoch or
/// any slower clock (seconds, a counter); one far ahead of the stream (a
/// nanosecond stamp among milliseconds, `u64::MAX`) would move the trending
/// window's "now" past every later event, so it is refused.
pub const MAX_FUTURE_MS: u64 = 24 * 60 * 60 * 1000;

/// The latest timestamp an event may carry now (see [`MAX_FUTURE_MS`]).
pub(crate) fn latest_timestamp() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64);
    now.saturating_add(MAX_FUTURE_MS)
}

/// Checks one event as `Store::append_event` does: a finite weight of at
/// least 0, and a timestamp at most [`MAX_FUTURE_MS`] past this machine's
/// clock. Every reader of events (CSV, JSON lines, Parquet) checks with it
/// before writing, so all refuse the same events.
pub fn check_event(event: &Event) -> Result<()> {
    check_event_before(event, latest_timestamp())
}

pub(crate) fn check_event_before(e: &Event, latest: u64) -> Result<()> {
    let refuse = |reason: String| Error::InvalidEvent {
        user: e.user,
        item: e.item,
        reason,
    };
    if !e.weight.is_finite() || e.weight < 0.0 {
        let what = if e.weight.is_finite() { "negative" } else { "not finite" };
        return Err(refuse(format!(
            "weight {} is {what} (weights are finite and at least 0)",
            e.weight
        )));
    }
    if e.ts > latest {
        return Err(refuse(format!(
            "timestamp {} is more than a day past this machine's clock ({} ms since the Unix epoch): timestamps are milliseconds since the epoch, or a slower clock",
            e.ts,
            latest - MAX_FUTURE_MS
        )));
    }
    Ok(())
}

pub(crate) fn check_events(events: &[Event]) -> Result<()> {
    let latest = latest_timestamp();
    events.iter().try_for_each(|e| check_event_before(e, latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_refused_for_their_weight_or_a_far_future_time() {
        let now = latest_timestamp() - MAX_FUTURE_MS;
        assert!(check_event(&Event::new(1, 2, now)).is_ok());
        assert!(check_event(&Event::new(1, 2, now + MAX_FUTURE_MS / 2)).is_ok());
        for bad in [
            Event::new(1, 2, 3).with_weight(-1.0),
            Event::new(1, 2, 3).with_weight(f32::NAN),
            Event::new(1, 2, u64::MAX),
            Event::new(1, 2, now * 1_000_000),
        ] {
            let err = check_event(&bad).unwrap_err();
            assert!(matches!(err, Error::InvalidEvent { user: 1, item: 2, .. }), "{err}");
        }
        assert!(check_events(&[Event::new(1, 2, 3), Event::new(1, 2, u64::MAX)]).is_err());
    }

    #[test]
    fn long_vectors_are_refused_where_scores_could_overflow() {
        let long = [3e38f32, 0.0];
        for metric in [Metric::L2, Metric::InnerProduct] {
            let err = check_vector(metric, 2, &long, "item 1").unwrap_err();
            assert!(matches!(err, Error::VectorTooLong { .. }), "{err}");
        }
        // Cosine normalises: only the direction is kept.
        assert!(check_vector(Metric::Cosine, 2, &long, "item 1").is_ok());
        assert!(check_vector(Metric::L2, 2, &[1e18, 1e18], "item 1").is_ok());
    }
}
