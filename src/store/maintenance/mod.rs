//! Operations on a whole store that a host runs now and then, online:
//! compaction, point-in-time snapshots and restore, the verifier, and repair
//! of lost metadata.

pub(crate) mod compact;
pub(crate) mod repair;
pub(crate) mod snapshot;
pub(crate) mod verify;
