//! The write path's pieces under the facade's [`crate::store::Store::mutate`]:
//! applying a logged record to the in-memory state (shared by live writes and
//! replay), deletes (store-wide and per space) and the set of deleted items,
//! and sealing the growing segment with the checkpoints that go with it.

pub(crate) mod apply;
pub(crate) mod blocked;
pub(crate) mod delete;
pub(crate) mod path;
pub(crate) mod seal;
