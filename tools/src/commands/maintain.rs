//! The maintenance commands: `snapshot`, `restore`, `verify`, `compact`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{CompactOptions, VerifyOptions};
use indicatif::HumanBytes;

use crate::commands::store::{open_existing, open_read_only};
use crate::input::count;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    store: PathBuf,
    /// Where to write the snapshot (must not exist).
    dest: PathBuf,
}

pub fn snapshot(a: SnapshotArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    let info = store.snapshot(&a.dest)?;
    writeln!(
        out,
        "snapshot of {} at {}: operations before #{}; {}",
        a.store.display(),
        info.path.display(),
        info.next_seq,
        copied(&info)
    )?;
    for left in &info.removed_leftovers {
        writeln!(
            out,
            "removed {}: the unfinished copy of an earlier snapshot to the same destination, whose process died",
            left.display()
        )?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    snapshot: PathBuf,
    /// The new store's directory (must not exist).
    dest: PathBuf,
}

pub fn restore(a: RestoreArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let info = emberdb::restore(&a.snapshot, &a.dest)?;
    writeln!(
        out,
        "restored {} to {}: {}",
        a.snapshot.display(),
        info.path.display(),
        copied(&info)
    )?;
    Ok(())
}

/// "12 files hard-linked, 3 copied (1.2 MiB)".
fn copied(info: &emberdb::SnapshotInfo) -> String {
    format!(
        "{} hard-linked, {} copied ({})",
        count(info.linked as u64, "file", "files"),
        info.copied,
        HumanBytes(info.copied_bytes)
    )
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    store: PathBuf,
    /// Check only this space's files and registry (every space, the log
    /// and the metadata by default).
    #[arg(long)]
    space: Option<String>,
}

/// Exit 0 when healthy; otherwise every problem, one per line, and exit 1.
pub fn verify(a: VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // Read-only: nothing is changed before it is checked (no torn tail
    // cut, no leftover removed, no index rebuilt), nor after.
    let store = open_read_only(&a.store).context("cannot open the store")?;
    let report = match &a.space {
        Some(name) => store.verify_with(&VerifyOptions::new().space(name))?,
        None => store.verify()?,
    };
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    if report.problems.is_empty() {
        writeln!(
            out,
            "healthy: {} and {} checked",
            count(report.files_checked as u64, "file", "files"),
            count(report.entries_checked as u64, "metadata record", "metadata records")
        )?;
        return Ok(());
    }
    for p in &report.problems {
        writeln!(out, "problem: {p}")?;
    }
    bail!("{} found", count(report.problems.len() as u64, "problem", "problems"))
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    store: PathBuf,
    /// Only report what would be reclaimed.
    #[arg(long)]
    dry_run: bool,
    /// Compact only this space (every space by default).
    #[arg(long)]
    space: Option<String>,
}

pub fn compact(a: CompactArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    let mut options = CompactOptions::new();
    if let Some(name) = &a.space {
        options = options.space(name);
    }
    if a.dry_run {
        options = options.dry_run();
    }
    let r = store.compact_with(&options)?;
    if r.runs_before > r.runs_after {
        writeln!(
            out,
            "merged {} of histories, features and attributes into {} ({} written)",
            count(r.runs_before as u64, "run", "runs"),
            r.runs_after,
            HumanBytes(r.run_bytes_written)
        )?;
    }
    if r.segments_in == 0 {
        writeln!(out, "nothing to compact ({})", HumanBytes(r.bytes_before))?;
        return Ok(());
    }
    let segments_out = if a.dry_run {
        r.rows_kept.div_ceil(store.options().get_segment_rows())
    } else {
        r.segments_out
    };
    writeln!(
        out,
        "{}{} ({}, {} live) -> {}; {} before, {} after",
        if a.dry_run { "would rewrite " } else { "rewrote " },
        count(r.segments_in as u64, "segment", "segments"),
        count(r.rows_in as u64, "row", "rows"),
        r.rows_kept,
        count(segments_out as u64, "segment", "segments"),
        HumanBytes(r.bytes_before),
        HumanBytes(r.bytes_after)
    )?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    store: PathBuf,
    /// Check everything and print what a repair would do; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// New metadata for a store whose metadata database is lost or damaged
/// (`Store::repair`): what was rebuilt, and what could not be.
pub fn repair(a: RepairArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let opts = if a.dry_run {
        emberdb::RepairOptions::dry_run()
    } else {
        emberdb::RepairOptions::default()
    };
    let r = emberdb::Store::repair_with(&a.store, &opts)?;
    writeln!(out, "the metadata is damaged: {}", r.damage)?;
    if r.dry_run {
        writeln!(
            out,
            "dry run, nothing changed; every input checked ({} files, {} of log to replay). A repair would:",
            count(r.files_checked as u64, "file", "files"),
            count(r.replayed_bytes, "byte", "bytes")
        )?;
        for (i, step) in r.plan.iter().enumerate() {
            writeln!(out, "  {}. {step}", i + 1)?;
        }
        return Ok(());
    }
    for left in &r.removed_leftovers {
        writeln!(
            out,
            "removed {}: an unfinished repair whose process died",
            left.display()
        )?;
    }
    if let Some(aside) = &r.moved_aside {
        writeln!(out, "the damaged metadata is kept in {}", aside.display())?;
    }
    writeln!(
        out,
        "repaired: {}, {} checked, {} registered again, {} and {} restored, {} of log replayed",
        count(r.spaces as u64, "space", "spaces"),
        count(r.files_checked as u64, "segment file", "segment files"),
        count(r.rows_registered as u64, "item", "items"),
        count(r.dead_rows as u64, "dead row", "dead rows"),
        count(r.deleted_items as u64, "deleted item", "deleted items"),
        count(r.replayed_bytes, "byte", "bytes"),
    )?;
    writeln!(
        out,
        "behaviour: {} read whole; {} with {}, {} with features, {} with attributes",
        count(r.runs_checked as u64, "run", "runs"),
        count(r.users_with_history as u64, "user", "users"),
        count(r.history_entries, "history entry", "history entries"),
        count(r.users_with_features as u64, "user", "users"),
        count(r.items_with_attributes as u64, "item", "items"),
    )?;
    if r.lost.is_empty() {
        writeln!(out, "nothing acknowledged was lost")?;
    } else {
        writeln!(out, "could not be recovered:")?;
        for line in &r.lost {
            writeln!(out, "  - {line}")?;
        }
    }
    Ok(())
}
