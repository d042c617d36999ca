//! How long each step of a store's open took, logged at debug level
//! (`RUST_LOG=emberdb::store::open=debug`), so that a slow open can be told
//! apart without a profiler (ARCHITECTURE, "Limits of one machine").

use std::path::Path;
use std::time::{Duration, Instant};

/// The steps of one open and their times.
pub(super) struct Phases {
    last: Instant,
    took: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub fn start() -> Self {
        Phases {
            last: Instant::now(),
            took: Vec::new(),
        }
    }

    pub fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.took.push((phase, now - self.last));
        self.last = now;
    }

    pub fn log(&self, path: &Path) {
        if log::log_enabled!(log::Level::Debug) {
            let total: Duration = self.took.iter().map(|(_, d)| *d).sum();
            let parts: Vec<String> = self
                .took
                .iter()
                .map(|(phase, d)| format!("{phase} {:.1} ms", d.as_secs_f64() * 1e3))
                .collect();
            log::debug!(
                "opened {} in {:.1} ms: {}",
                path.display(),
                total.as_secs_f64() * 1e3,
                parts.join(", ")
            );
        }
    }
}
