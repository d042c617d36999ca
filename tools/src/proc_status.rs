//! This process's memory as the kernel counts it (`/proc/self/status`).

/// A `/proc/self/status` field given in kB (`VmRSS:`, `VmHWM:`, `RssAnon:`,
/// `RssFile:`), in MiB; None where the file or the field is missing.
pub fn status_mib(name: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
