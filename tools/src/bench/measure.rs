//! The one percentile the benches report latencies with.

/// The `q` quantile (0 to 1) of `samples`, by the nearest rank; 0 when
/// there are none. Sorts `samples`.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return 0.0;
    }
    let at = ((samples.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    samples[at]
}

/// The `q` quantile of `times` in seconds, in microseconds.
pub fn quantile_us(times: &mut [f64], q: f64) -> f64 {
    quantile(times, q) * 1e6
}

/// The `q` quantile of `times`, in microseconds.
pub fn quantile_of_durations_us(times: &[std::time::Duration], q: f64) -> f64 {
    let mut seconds: Vec<f64> = times.iter().map(std::time::Duration::as_secs_f64).collect();
    quantile_us(&mut seconds, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_ranks() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 5.0);
        assert_eq!(quantile(&mut v, 0.99), 5.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
        assert_eq!(quantile_us(&mut [0.000_002], 0.5), 2.0);
    }
}
