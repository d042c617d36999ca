//! The store commands: each `ember` subcommand that opens a store and
//! works on it (create, ingest, train, knn, stats, get, history, delete,
//! verify, compact, snapshot, restore, repair, export, demo).

pub mod create;
pub mod demo;
pub mod export;
pub mod ingest;
pub mod maintain;
pub mod remove;
pub mod show;
pub mod stats;
pub mod store;
