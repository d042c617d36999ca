//! `ember bench-open` (hidden): opens a store in a process of its own,
//! waits for its indexes, runs queries and lookups by id, and prints what
//! that cost. `ember
//! bench` runs it as a child so that open time and memory are a restart's:
//! nothing of the process that wrote the store (its allocator, its
//! page-cache of the metadata, its benchmark data) counts.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use emberdb::{Options, Query, Store};

use crate::bench::measure::quantile_us;
use crate::bench::proc_status::status_mib;
use crate::input::fvecs;

#[derive(clap::Args)]
pub struct OpenBenchArgs {
    /// The store to open (with its stored settings).
    pub store: PathBuf,
    /// Queries to run after opening (.fvecs), k = 10.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Run only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The figures, one per field, in the order `ember bench` reads them.
pub struct OpenFigures {
    pub open_ms: f64,
    pub index_load_ms: f64,
    pub heap_after_load: f64,
    pub mapped_after_load: f64,
    pub heap_after_queries: f64,
    pub mapped_after_queries: f64,
    pub peak: f64,
    /// Median `get` of a stored item (ids `0..rows`, as `ember bench`
    /// writes them), and of an absent one, in microseconds.
    pub get_hit_us: f64,
    pub get_miss_us: f64,
}

impl OpenFigures {
    pub fn parse(line: &str) -> Option<Self> {
        let v: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        (v.len() == 9).then(|| OpenFigures {
            open_ms: v[0],
            index_load_ms: v[1],
            heap_after_load: v[2],
            mapped_after_load: v[3],
            heap_after_queries: v[4],
            mapped_after_queries: v[5],
            peak: v[6],
            get_hit_us: v[7],
            get_miss_us: v[8],
        })
    }
}

pub fn run(args: OpenBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let resident = || {
        (
            status_mib("RssAnon:").unwrap_or(f64::NAN),
            status_mib("RssFile:").unwrap_or(f64::NAN),
        )
    };
    let queries = match &args.queries {
        Some(path) => fvecs::read_fvecs(path)?,
        None => (1, Vec::new()),
    };
    let base = resident();
    let t = Instant::now();
    // Every sealed segment searched through its index, as `ember bench`
    // builds them (`flat_below(0)`).
    let store = Store::open(&args.store, Options::existing().flat_below(0))?;
    let open = t.elapsed();
    let t = Instant::now();
    store.wait_for_indexes();
    let load = t.elapsed();
    let loaded = resident();
    let (dim, queries) = queries;
    for q in queries.chunks_exact(dim).take(args.limit.unwrap_or(usize::MAX)) {
        std::hint::black_box(store.knn(&Query::vector(q).k(10))?);
    }
    let queried = resident();
    let rows = store.stats()?.rows as u64;
    let get_hit = median_get_us(&store, (0..LOOKUPS).map(|i| i.wrapping_mul(7_919) % rows.max(1)))?;
    let get_miss = median_get_us(&store, (0..LOOKUPS).map(|i| rows + i))?;
    writeln!(
        out,
        "{:.1} {:.1} {:.1} {:.1} {:.1} {:.1} {:.1} {:.2} {:.2}",
        open.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        loaded.0 - base.0,
        loaded.1 - base.1,
        queried.0 - base.0,
        queried.1 - base.1,
        status_mib("VmHWM:").unwrap_or(f64::NAN),
        get_hit,
        get_miss
    )?;
    Ok(())
}

/// Lookups by id timed per kind (found, absent).
const LOOKUPS: u64 = 2_000;

/// The median time of `store.get(id)` over `ids`, in microseconds.
fn median_get_us(store: &Store, ids: impl Iterator<Item = u64>) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for id in ids {
        let t = Instant::now();
        std::hint::black_box(store.get(id)?);
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(quantile_us(&mut times, 0.5))
}
