//! `ember`: drive an emberdb store from the shell.

mod bench;
mod cmd;
mod demo;
mod eval;
mod export;
mod ingest;
mod maintain;
mod memory_bench;
mod stats;
mod texmex;
mod train_bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ember", version, about = "Tools for emberdb stores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a trained store, ingest a synthetic event stream, train item
    /// vectors, query similar items and personalised recall, take in a new
    /// item, train incrementally, reopen, and print what happened.
    Demo {
        /// Where to create the store (a temporary directory by default).
        dir: Option<PathBuf>,
        /// Items in the synthetic catalogue.
        #[arg(long, default_value_t = 4_000)]
        items: u64,
        /// Behaviour events to ingest.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
    },
    /// Benchmark the store against the identical Faiss index on a TEXMEX
    /// data set (base.fvecs, query.fvecs, groundtruth.ivecs in DATA).
    Bench(bench::BenchArgs),
    /// Append events from a CSV file.
    Ingest(ingest::IngestArgs),
    /// Run one training round (or --full) and print its figures.
    Train(cmd::TrainArgs),
    /// Nearest neighbours: --item, --user, --seeds or --vector.
    Knn(cmd::KnnArgs),
    /// Write a consistent point-in-time copy of a store.
    Snapshot(maintain::SnapshotArgs),
    /// Make a store from a snapshot.
    Restore(maintain::RestoreArgs),
    /// Check every checksum and cross-reference; exit 0 when healthy.
    Verify(maintain::VerifyArgs),
    /// Rewrite segments with many dead rows; --dry-run reports only.
    Compact(maintain::CompactArgs),
    /// Item vectors to .fvecs, and every item's top-N similar items to CSV
    /// or JSON lines.
    Export(export::ExportArgs),
    /// Evaluate item2vec recall on ratings (leave the last event of each
    /// user out; HR@10 and NDCG@10).
    Eval(eval::EvalArgs),
    /// The trainer at scale on a synthetic event stream: ingest rate,
    /// training throughput, peak memory, publish time.
    BenchTrain(train_bench::TrainBenchArgs),
    /// Resident memory over a long stream of events and updates: it must level off.
    BenchMemory(memory_bench::MemoryBenchArgs),
    /// Print the counts and sizes of a store.
    Stats {
        /// The store directory.
        store: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo { dir, items, events } => demo::run(dir, items, events),
        Command::Stats { store } => stats::run(&store),
        Command::Ingest(args) => return finish("ingest", ingest::ingest(args)),
        Command::Train(args) => return finish("train", cmd::train(args)),
        Command::Knn(args) => return finish("knn", cmd::knn(args)),
        Command::Snapshot(args) => return finish("snapshot", maintain::snapshot(args)),
        Command::Restore(args) => return finish("restore", maintain::restore(args)),
        Command::Verify(args) => return finish("verify", maintain::verify(args)),
        Command::Compact(args) => return finish("compact", maintain::compact(args)),
        Command::Export(args) => return finish("export", export::export(args)),
        Command::Eval(args) => return finish("eval", eval::run(args)),
        Command::BenchTrain(args) => return finish("bench-train", train_bench::run(args)),
        Command::BenchMemory(args) => return finish("bench-memory", memory_bench::run(args)),
        Command::Bench(args) => return finish("bench", bench::run(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember: {e}");
            if matches!(e, emberdb::Error::Locked { .. }) {
                eprintln!("ember: the store is held by another process; call Store::snapshot or Store::compact from that process instead");
            }
            ExitCode::FAILURE
        }
    }
}

/// One clear line and a non-zero exit on error.
fn finish(command: &str, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember {command}: {e}");
            if e.contains("locked by another open Store") {
                eprintln!("ember: the store is held by another process; call Store::snapshot or Store::compact from that process instead");
            }
            ExitCode::FAILURE
        }
    }
}
