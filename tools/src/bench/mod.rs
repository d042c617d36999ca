//! `ember bench*`: the store measured side by side with its references in
//! one run (raw Faiss, the background indexer, the trainer at scale, the
//! deep model's products, memory over a long stream, filters, trending),
//! and the measuring they share (percentiles, the process's memory).

pub mod ann;
pub mod dnn;
pub mod filter;
pub mod measure;
pub mod memory;
pub mod open;
pub mod proc_status;
pub mod train;
pub mod trending;
