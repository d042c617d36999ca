//! This process's memory as the kernel counts it (`/proc/self/status`).

/// A `/proc/self/status` field given in kB (`VmRSS:`, `VmHWM:`, `RssAnon:`,
/// `RssFile:`), in MiB; None where the file or the field is missing.
pub fn status_mib(name: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// The highest anonymous (heap) and file-backed (mapped pages) resident
/// memory seen by a thread that samples `/proc/self/status` every 50 ms
/// until dropped: the kernel keeps no peak of each alone (VmHWM is their
/// sum), and the page cache of mapped files is not heap.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(f64, f64)>>,
}

impl PeakSampler {
    pub fn start() -> PeakSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut anon, mut file) = (0f64, 0f64);
            loop {
                anon = anon.max(status_mib("RssAnon:").unwrap_or(0.0));
                file = file.max(status_mib("RssFile:").unwrap_or(0.0));
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return (anon, file);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        PeakSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// (peak RssAnon, peak RssFile) so far, MiB; the sampler stops.
    pub fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or((f64::NAN, f64::NAN))
    }
}
