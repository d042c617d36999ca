//! `ember stats`: what a store holds and occupies.

use std::io::Write;
use std::path::Path;

use emberdb::Store;
use indicatif::HumanBytes;

use crate::cmd::open_existing;
use crate::input::count;

pub fn run(path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(path)?;
    print_stats(&store, out)
}

pub fn print_stats(store: &Store, out: &mut impl Write) -> anyhow::Result<()> {
    let s = store.stats()?;
    let o = store.options();
    writeln!(out, "store            {}", store.path().display())?;
    writeln!(out, "dim, metric      {}, {:?}", o.dim(), o.metric_kind())?;
    writeln!(out, "rows             {} ({} live)", s.rows, s.live_rows)?;
    let dead = s.rows - s.live_rows;
    writeln!(
        out,
        "tombstones       {dead} ({:.1}% of rows; `ember compact` rewrites segments above 20%)",
        100.0 * dead as f64 / s.rows.max(1) as f64
    )?;
    writeln!(
        out,
        "sealed segments  {} ({} indexed)",
        s.sealed_segments, s.indexed_segments
    )?;
    if !s.segment_kinds.is_empty() {
        writeln!(out, "segment search   {}", s.segment_kinds.join(", "))?;
    }
    writeln!(out, "growing rows     {}", s.growing_rows)?;
    writeln!(out, "segment files    {}", HumanBytes(s.segment_bytes))?;
    writeln!(out, "wal files        {}", HumanBytes(s.wal_bytes))?;
    writeln!(out, "metadata         {}", HumanBytes(s.meta_bytes))?;
    writeln!(out, "on disk          {}", HumanBytes(s.disk_bytes))?;
    writeln!(out, "kernels, faiss   {}; {}", s.kernels, s.faiss_build)?;
    match &s.trainer {
        None => writeln!(out, "vectors          host-fed")?,
        Some(t) => {
            writeln!(
                out,
                "vectors          trained: generation {}, {}, {}, {} not trained yet",
                t.generation,
                count(t.items as u64, "item", "items"),
                count(t.rounds, "round", "rounds"),
                count(t.untrained_events, "event", "events"),
            )?;
            if let Some(r) = &t.last_round {
                writeln!(
                    out,
                    "last round       {}, {}, {:.2} s training + {:.2} s publishing",
                    if r.full { "full" } else { "incremental" },
                    count(r.new_events, "new event", "new events"),
                    r.run.seconds,
                    r.publish_seconds
                )?;
            }
        }
    }
    Ok(())
}
