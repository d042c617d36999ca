//! A space's segments at run time: the one way a new set of sealed segments
//! is installed (write, index, commit with a checkpoint, swap, clean up), the
//! background indexer, and items looked up by id.

pub(crate) mod indexer;
pub(crate) mod install;
pub(crate) mod lookup;
