//! [`Durability`]: when a write call may return. A leaf module, so the log
//! writer and the options can both name it.

/// When a write call may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written and fsynced before the call returns; survives power loss.
    /// Concurrent writers share one fsync (group commit).
    Sync,
    /// Handed to the operating system before the call returns; survives a
    /// crash of the process (`kill -9`), not of the machine.
    Buffered,
    /// Kept in a user-space buffer until it fills, `flush()` or close: a
    /// crash of the process may lose the last few writes.
    None,
}
