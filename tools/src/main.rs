//! `ember`: drive an emberdb store from the shell.

mod bench;
mod commands;
mod crash;
mod eval;
mod input;
mod output;

use std::io::Write;
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
    /// Create a store with named spaces (item2vec, YouTube DNN, host-fed),
    /// or add spaces to one: --space NAME=KIND:DIM[:METRIC], repeated.
    Create(commands::create::CreateArgs),
    /// Benchmark the store against the identical Faiss index on a TEXMEX
    /// data set (base.fvecs, query.fvecs, groundtruth.ivecs in DATA).
    Bench(bench::ann::BenchArgs),
    /// Append events (CSV, TSV or JSON lines) or, with --vectors, item
    /// vectors (.fvecs or CSV).
    Ingest(commands::ingest::IngestArgs),
    /// Run one training round (or --full) and print its figures.
    Train(commands::store::TrainArgs),
    /// Nearest neighbours: --item, --user, --seeds or --vector.
    Knn(commands::store::KnnArgs),
    /// Write a consistent point-in-time copy of a store.
    Snapshot(commands::maintain::SnapshotArgs),
    /// Make a store from a snapshot.
    Restore(commands::maintain::RestoreArgs),
    /// Check every checksum and cross-reference; exit 0 when healthy.
    Verify(commands::maintain::VerifyArgs),
    /// New metadata for a store whose metadata database is lost or damaged,
    /// from its recovery copy, segments and log; says what was lost.
    Repair(commands::maintain::RepairArgs),
    /// Rewrite segments with many dead rows; --dry-run reports only.
    Compact(commands::maintain::CompactArgs),
    /// Item vectors to .fvecs, and every item's top-N similar items to CSV,
    /// JSON or JSON lines (by the file's extension).
    Export(commands::export::ExportArgs),
    /// Evaluate item2vec recall on ratings (leave the last event of each
    /// user out; HR@10 and NDCG@10).
    Eval(Box<eval::EvalArgs>),
    /// The trainer at scale on a synthetic event stream: ingest rate,
    /// training throughput, peak memory, publish time.
    BenchTrain(bench::train::TrainBenchArgs),
    /// The matrix product the deep model uses, alone, on 1 and 2 threads.
    BenchGemm(bench::dnn::GemmArgs),
    /// Resident memory over a long stream of events and updates: it must level off.
    BenchMemory(bench::memory::MemoryBenchArgs),
    /// Filtered queries at 50%, 10%, 1% and 0.1% selectivity against the
    /// unfiltered query and an exact scan of the matching rows.
    BenchFilter(bench::filter::FilterBenchArgs),
    /// What the trending channel costs an event and a popular query with
    /// many items in its window (on against off, side by side).
    BenchTrending(bench::trending::TrendingBenchArgs),
    /// Print the counts and sizes of a store, space by space.
    Stats(commands::stats::StatsArgs),
    /// Print an item's stored vector.
    Get(commands::show::GetArgs),
    /// Print a user's stored item history, oldest first (the most recent
    /// items, up to the store's history length).
    History(commands::show::HistoryArgs),
    /// Take items out of every space of the store (trained ones too).
    Delete(commands::remove::DeleteArgs),
    /// Lift `ember delete`.
    Undelete(commands::remove::DeleteArgs),
    /// Kill a writing child process with SIGKILL again and again, reopen,
    /// and check every acknowledged write (the crash-safety claim, against
    /// this binary).
    Torture(crash::torture::TortureArgs),
    /// Kill an operation (open, replay, fixture upgrades, compaction,
    /// rounds, snapshot, Parquet import, repair, acknowledged writes) with
    /// SIGKILL at each of its writes, fsyncs and renames in turn, reopen,
    /// and compare every answer with what it must be.
    CrashPoints(crash::CrashPointsArgs),
    /// Open a store in a fresh process, run queries, print time and memory
    /// (for `ember bench`; not for direct use).
    #[command(hide = true)]
    BenchOpen(bench::open::OpenBenchArgs),
    /// The writing child of `torture` (not for direct use).
    #[command(hide = true)]
    TortureChild(crash::torture::ChildArgs),
    /// The operation that `crash-points` kills (not for direct use).
    #[command(hide = true)]
    CrashPointChild(crash::ChildArgs),
}

/// The library reports through `log` (an index rebuilt, a file it could
/// not remove); warnings and errors reach stderr unless RUST_LOG says
/// otherwise.
fn init_logger() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "ember: {level}: {}", record.args())
        })
        .init();
}

/// The commands that open the store read-only (`Store::open_read_only`):
/// they run side by side, but not beside a writer.
const READ_ONLY_COMMANDS: &[&str] = &["knn", "get", "history", "stats", "verify", "export"];

fn main() -> ExitCode {
    init_logger();
    let cli = Cli::parse();
    // Locked once: every command's output goes through this handle, and a
    // write that fails comes back as an error (println! would panic).
    let out = &mut std::io::stdout().lock();
    let (name, outcome) = match cli.command {
        Command::Demo { dir, items, events } => ("demo", commands::demo::run(dir, items, events, out)),
        Command::Stats(args) => ("stats", commands::stats::run(args, out)),
        Command::Ingest(args) => ("ingest", commands::ingest::ingest(args, out)),
        Command::Train(args) => ("train", commands::store::train(args, out)),
        Command::Knn(args) => ("knn", commands::store::knn(args, out)),
        Command::Snapshot(args) => ("snapshot", commands::maintain::snapshot(args, out)),
        Command::Restore(args) => ("restore", commands::maintain::restore(args, out)),
        Command::Verify(args) => ("verify", commands::maintain::verify(args, out)),
        Command::Repair(args) => ("repair", commands::maintain::repair(args, out)),
        Command::Compact(args) => ("compact", commands::maintain::compact(args, out)),
        Command::Create(args) => ("create", commands::create::create(args, out)),
        Command::Export(args) => ("export", commands::export::export(args, out)),
        Command::Eval(args) => ("eval", eval::run(*args, out)),
        Command::BenchTrain(args) => ("bench-train", bench::train::run(args, out)),
        Command::BenchGemm(args) => ("bench-gemm", bench::dnn::gemm(args, out)),
        Command::BenchFilter(args) => ("bench-filter", bench::filter::run(args, out)),
        Command::BenchTrending(args) => ("bench-trending", bench::trending::run(args, out)),
        Command::BenchMemory(args) => ("bench-memory", bench::memory::run(args, out)),
        Command::Bench(args) => ("bench", bench::ann::run(args, out)),
        Command::Get(args) => ("get", commands::show::get(args, out)),
        Command::History(args) => ("history", commands::show::history(args, out)),
        Command::Torture(args) => ("torture", crash::torture::run(args, out)),
        Command::Delete(args) => ("delete", commands::remove::delete(args, out)),
        Command::Undelete(args) => ("undelete", commands::remove::undelete(args, out)),
        Command::BenchOpen(args) => ("bench-open", bench::open::run(args, out)),
        Command::TortureChild(args) => ("torture-child", crash::torture::child(args)),
        Command::CrashPoints(args) => ("crash-points", crash::run(args, out)),
        Command::CrashPointChild(args) => ("crash-point-child", crash::child(args)),
    };
    finish(name, outcome.and_then(|()| Ok(out.flush()?)))
}

/// One clear line and a non-zero exit on error. When the reader of our
/// output went away (`ember stats STORE | head -1`) it has what it wanted:
/// no message and success, where println! would have panicked.
fn finish(command: &str, outcome: anyhow::Result<()>) -> ExitCode {
    let Err(e) = outcome else {
        return ExitCode::SUCCESS;
    };
    if e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    eprintln!("ember {command}: {}", message(&e, command));
    ExitCode::FAILURE
}

/// The error's chain, outermost first, joined by ": " as `{:#}` joins it,
/// except that a library error whose own text names the library's calls
/// (`Options::trained`, `upsert`) is told in the tools' terms: the commands
/// and flags that do it.
fn message(e: &anyhow::Error, command: &str) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(told) = cause
            .downcast_ref::<emberdb::Error>()
            .and_then(|e| in_cli_terms(e, command))
        {
            parts.push(told);
            return parts.join(": ");
        }
        parts.push(cause.to_string());
    }
    format!("{e:#}")
}

/// The library errors that the tools tell in their own words.
fn in_cli_terms(e: &emberdb::Error, command: &str) -> Option<String> {
    use emberdb::Error;
    Some(match e {
        Error::NotTrained { path, space } if space.is_empty() => format!(
            "store {} has no trained space (its vectors are host-fed, from `ember ingest --vectors`); a store made by `ember ingest STORE EVENTS --dim N` trains its vectors from events",
            path.display()
        ),
        Error::NotTrained { path, space } => format!(
            "space {space:?} of store {} is host-fed: its vectors come from `ember ingest {} FILE --vectors --space {space}`, not from training; `ember train` trains the spaces that learn from events (the default space of a store made by `ember ingest STORE EVENTS --dim N`)",
            path.display(),
            path.display()
        ),
        Error::TrainedStore { path, space, .. } => format!(
            "space {space:?} of store {} trains its item vectors from events (`ember train`): vectors cannot be written into it; pass --space NAME --dim N to `ember ingest --vectors` for a host-fed space",
            path.display()
        ),
        Error::Locked { path } if READ_ONLY_COMMANDS.contains(&command) => format!(
            "store {} is open for writing in another process (an application, or an ember command that writes); `ember {command}` reads a store that no process writes: run it again once that process has closed it, or on a snapshot the writing process takes (`Store::snapshot`)",
            path.display()
        ),
        Error::Locked { path } => format!(
            "store {} is open in another process (an application, or another ember command); run `ember {command}` again once that process has closed it",
            path.display()
        ),
        Error::Corruption { file, .. }
            if command != "repair" && file.components().any(|c| c.as_os_str() == "meta") =>
        {
            format!(
                "{e}; `ember repair STORE` makes new metadata from the store's recovery copy, segments and log (the damaged metadata is kept beside it)"
            )
        }
        Error::InvalidK { k, max } => format!(
            "{} {k} is out of range: it must be between 1 and {max}",
            if command == "export" { "--top" } else { "-k" }
        ),
        _ => return None,
    })
}
