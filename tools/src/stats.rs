//! `ember stats`: what a store holds and occupies, space by space.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use emberdb::{SpaceStats, Store};
use indicatif::HumanBytes;

use crate::cmd::open_existing;
use crate::input::count;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The store directory.
    store: PathBuf,
    /// Show only this space (all of them by default).
    #[arg(long)]
    space: Option<String>,
}

pub fn run(a: StatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    print_stats(&store, a.space.as_deref(), out)
}

pub fn print_stats(store: &Store, only: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    let s = store.stats()?;
    if let Some(name) = only {
        store.space(name)?;
    }
    writeln!(out, "store            {}", store.path().display())?;
    writeln!(
        out,
        "spaces           {}",
        s.spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    )?;
    for space in s.spaces.iter().filter(|sp| only.is_none_or(|n| n == sp.name)) {
        print_space(space, out)?;
    }
    writeln!(out, "wal files        {}", HumanBytes(s.wal_bytes))?;
    writeln!(out, "metadata         {}", HumanBytes(s.meta_bytes))?;
    writeln!(out, "on disk          {}", HumanBytes(s.disk_bytes))?;
    writeln!(out, "kernels, faiss   {}; {}", s.kernels, s.faiss_build)?;
    Ok(())
}

fn print_space(s: &SpaceStats, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "space {:?}", s.name)?;
    writeln!(out, "  kind           {}", s.kind.name())?;
    writeln!(out, "  dim, metric    {}, {:?}", s.dim, s.metric)?;
    writeln!(out, "  rows           {} ({} live)", s.rows, s.live_rows)?;
    let dead = s.rows - s.live_rows;
    writeln!(
        out,
        "  tombstones     {dead} ({:.1}% of rows; `ember compact` rewrites segments above 20%)",
        100.0 * dead as f64 / s.rows.max(1) as f64
    )?;
    writeln!(
        out,
        "  sealed         {} ({} indexed; index {:?})",
        count(s.sealed_segments as u64, "segment", "segments"),
        s.indexed_segments,
        s.index
    )?;
    if !s.segment_kinds.is_empty() {
        writeln!(out, "  segment search {}", s.segment_kinds.join(", "))?;
    }
    writeln!(out, "  growing rows   {}", s.growing_rows)?;
    writeln!(out, "  segment files  {}", HumanBytes(s.segment_bytes))?;
    if let Some(t) = &s.trainer {
        writeln!(
            out,
            "  trained        generation {}, {}, {}, {} not trained yet",
            t.generation,
            count(t.items as u64, "item", "items"),
            count(t.rounds, "round", "rounds"),
            count(t.untrained_events, "event", "events"),
        )?;
        if let Some(r) = &t.last_round {
            writeln!(
                out,
                "  last round     {}, {}, {:.2} s training + {:.2} s publishing",
                if r.full { "full" } else { "incremental" },
                count(r.new_events, "new event", "new events"),
                r.run.seconds,
                r.publish_seconds
            )?;
        }
    }
    Ok(())
}
