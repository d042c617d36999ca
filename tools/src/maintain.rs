//! The maintenance commands: `snapshot`, `restore`, `verify`, `compact`.

use std::path::PathBuf;

use clap::Args;
use emberdb::{Durability, Options, Store};

use crate::cmd::open_existing;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    store: PathBuf,
    /// Where to write the snapshot (must not exist).
    dest: PathBuf,
}

pub fn snapshot(a: SnapshotArgs) -> Result<(), String> {
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    let info = store.snapshot(&a.dest).map_err(|e| e.to_string())?;
    println!(
        "snapshot of {} at {}: operations before #{}; {} files hard-linked, {} copied ({} bytes)",
        a.store.display(),
        info.path.display(),
        info.next_seq,
        info.linked,
        info.copied,
        info.copied_bytes
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    snapshot: PathBuf,
    /// The new store's directory (must not exist).
    dest: PathBuf,
}

pub fn restore(a: RestoreArgs) -> Result<(), String> {
    let info = emberdb::restore(&a.snapshot, &a.dest).map_err(|e| e.to_string())?;
    println!(
        "restored {} to {}: {} files hard-linked, {} copied ({} bytes)",
        a.snapshot.display(),
        info.path.display(),
        info.linked,
        info.copied,
        info.copied_bytes
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    store: PathBuf,
}

/// Exit 0 when healthy; otherwise every problem, one per line, and exit 1.
pub fn verify(a: VerifyArgs) -> Result<(), String> {
    // Flat: the background indexer must not rebuild (heal) a damaged index
    // file before it is checked.
    let opts = Options::existing()
        .durability(Durability::Buffered)
        .index(emberdb::IndexSpec::Flat);
    let store = Store::open(&a.store, opts).map_err(|e| format!("cannot open the store: {e}"))?;
    let report = store.verify().map_err(|e| e.to_string())?;
    if report.problems.is_empty() {
        println!(
            "healthy: {} files and {} metadata records checked",
            report.files_checked, report.entries_checked
        );
        return Ok(());
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    Err(format!("{} problem(s) found", report.problems.len()))
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    store: PathBuf,
    /// Only report what would be reclaimed.
    #[arg(long)]
    dry_run: bool,
}

pub fn compact(a: CompactArgs) -> Result<(), String> {
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    let r = if a.dry_run {
        store.compact_dry_run()
    } else {
        store.compact()
    }
    .map_err(|e| e.to_string())?;
    if r.segments_in == 0 {
        println!("nothing to compact ({} bytes)", r.bytes_before);
        return Ok(());
    }
    println!(
        "{}{} segments ({} rows, {} live) -> {} segments; {} bytes before, {} after",
        if a.dry_run { "would rewrite " } else { "rewrote " },
        r.segments_in,
        r.rows_in,
        r.rows_kept,
        if a.dry_run {
            r.rows_kept.div_ceil(store.options().segment_rows_value())
        } else {
            r.segments_out
        },
        r.bytes_before,
        r.bytes_after
    );
    Ok(())
}
