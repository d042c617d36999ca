//! `ember stats`: what a store holds and occupies.

use std::path::Path;

use emberdb::{Durability, Options, Store};

pub fn run(path: &Path) -> emberdb::Result<()> {
    let store = Store::open(path, Options::existing().durability(Durability::Buffered))?;
    print_stats(&store)
}

pub fn print_stats(store: &Store) -> emberdb::Result<()> {
    let s = store.stats()?;
    let o = store.options();
    println!("store            {}", store.path().display());
    println!("dim, metric      {}, {:?}", o.dim(), o.metric_kind());
    println!("rows             {} ({} live)", s.rows, s.live_rows);
    let dead = s.rows - s.live_rows;
    println!(
        "tombstones       {dead} ({:.1}% of rows; `ember compact` rewrites segments above 20%)",
        100.0 * dead as f64 / s.rows.max(1) as f64
    );
    println!(
        "sealed segments  {} ({} indexed)",
        s.sealed_segments, s.indexed_segments
    );
    if !s.segment_kinds.is_empty() {
        println!("segment search   {}", s.segment_kinds.join(", "));
    }
    println!("growing rows     {}", s.growing_rows);
    println!("segment bytes    {}", s.segment_bytes);
    println!("wal bytes        {}", s.wal_bytes);
    println!("meta bytes       {}", s.meta_bytes);
    println!("disk bytes       {}", s.disk_bytes);
    match &s.trainer {
        None => println!("vectors          host-fed"),
        Some(t) => {
            println!(
                "vectors          trained: generation {}, {} items, {} rounds, {} events not trained yet",
                t.generation, t.items, t.rounds, t.untrained_events
            );
            if let Some(r) = &t.last_round {
                println!(
                    "last round       {}, {} new events, {:.2} s training + {:.2} s publishing",
                    if r.full { "full" } else { "incremental" },
                    r.new_events,
                    r.run.seconds,
                    r.publish_seconds
                );
            }
        }
    }
    Ok(())
}
