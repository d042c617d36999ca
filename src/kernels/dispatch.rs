//! Which instruction set the kernels run on: detected once per process from
//! the CPU (`is_x86_feature_detected!`), so a binary built with no special
//! flags (a host crate's default build) still runs the AVX2/FMA
//! code on a CPU that has it, and the portable code on one that does not.
//!
//! `EMBER_SIMD` (read once, at the first kernel call) forces a level for
//! tests and measurements: `portable` or `avx2`. A level the CPU
//! lacks is never chosen, whatever the variable says (running it would be
//! an illegal instruction), and an unknown value is ignored with a warning.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// Plain Rust, no fused multiply-add: runs on any CPU (on aarch64 the
    /// compiler's baseline NEON vectorises it).
    Portable,
    /// x86-64 AVX2 with FMA, eight lanes.
    Avx2Fma,
}

impl SimdLevel {
    /// A short name for reports: `portable`, `avx2+fma`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2Fma => "avx2+fma",
        }
    }

    fn code(self) -> u8 {
        match self {
            SimdLevel::Portable => 1,
            SimdLevel::Avx2Fma => 2,
        }
    }

    fn from_code(code: u8) -> Option<SimdLevel> {
        match code {
            1 => Some(SimdLevel::Portable),
            2 => Some(SimdLevel::Avx2Fma),
            _ => None,
        }
    }
}

/// 0 until detected, then a `SimdLevel::code`.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The level the kernels use in this process.
#[inline]
pub fn simd_level() -> SimdLevel {
    match SimdLevel::from_code(LEVEL.load(Ordering::Relaxed)) {
        Some(level) => level,
        None => detect_and_store(),
    }
}

#[cold]
fn detect_and_store() -> SimdLevel {
    let supported = supported_levels();
    let best = *supported.last().unwrap_or(&SimdLevel::Portable);
    let chosen = match std::env::var("EMBER_SIMD") {
        Ok(asked) => match parse(&asked) {
            Some(level) if supported.contains(&level) => level,
            Some(level) => {
                log::warn!(
                    "EMBER_SIMD={asked}: this CPU lacks {}; using {}",
                    level.name(),
                    best.name()
                );
                best
            }
            None => {
                log::warn!("EMBER_SIMD={asked}: expected portable or avx2; using {}", best.name());
                best
            }
        },
        Err(_) => best,
    };
    // Several threads may race here; they all store the same answer.
    LEVEL.store(chosen.code(), Ordering::Relaxed);
    chosen
}

fn parse(asked: &str) -> Option<SimdLevel> {
    match asked.trim().to_ascii_lowercase().as_str() {
        "portable" | "scalar" | "none" => Some(SimdLevel::Portable),
        "avx2" | "avx2+fma" => Some(SimdLevel::Avx2Fma),
        _ => None,
    }
}

/// The levels this CPU runs, lowest first.
fn supported_levels() -> Vec<SimdLevel> {
    let mut levels = vec![SimdLevel::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            levels.push(SimdLevel::Avx2Fma);
        }
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_codes_round_trip() {
        for level in [SimdLevel::Portable, SimdLevel::Avx2Fma] {
            assert_eq!(parse(level.name()), Some(level));
            assert_eq!(SimdLevel::from_code(level.code()), Some(level));
        }
        assert_eq!(parse("sse9"), None);
        assert_eq!(SimdLevel::from_code(0), None);
    }

    #[test]
    fn the_detected_level_is_one_the_cpu_supports() {
        assert!(supported_levels().contains(&simd_level()));
    }
}
