//! `ember bench`: our store against the identical Faiss index driven
//! directly through the `faiss` crate, on a TEXMEX data set (`base.fvecs`,
//! `query.fvecs`, `groundtruth.ivecs`), side by side in one run.
//!
//! For each index kind: build time, open time, index load time, disk size,
//! and for a ladder of ef_search / nprobe values, recall@10 against the
//! ground truth, p50 and p99 latency and queries per second, one query
//! thread, queries interleaved (ours, then Faiss's) so that noise on the
//! machine hits both alike.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use std::time::{Duration, Instant};

use emberdb::{Durability, IndexSpec, Metric, Options, Query, Store};
use faiss::index::autotune::ParameterSpace;
use faiss::{index_factory, Index, MetricType};

use crate::bench::open::OpenFigures;
use crate::input::count;
use crate::input::fvecs;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Directory holding base.fvecs, query.fvecs and groundtruth.ivecs.
    pub data: PathBuf,
    /// Index kinds to run, comma separated: flat, hnsw, ivf.
    #[arg(long, value_delimiter = ',', default_value = "flat,hnsw,ivf")]
    pub kinds: Vec<String>,
    /// HNSW ef_search ladder (the first is used for the thread test).
    #[arg(long, value_delimiter = ',', default_value = "96,16,32,64,128,256")]
    pub ef: Vec<usize>,
    /// IVF nprobe ladder (the first is used for the thread test).
    #[arg(long, value_delimiter = ',', default_value = "16,1,4,8,32,64")]
    pub nprobe: Vec<usize>,
    /// HNSW m.
    #[arg(long, default_value_t = 32)]
    pub m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// IVF lists (default: about 4 * sqrt(rows)).
    #[arg(long)]
    pub nlist: Option<usize>,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Rows per segment (default: every row in one segment). Each sealed
    /// segment gets its own index; a store larger than memory needs several.
    #[arg(long)]
    pub segment_rows: Option<usize>,
    /// IVF quantiser training: points per list (ours and raw Faiss alike).
    #[arg(long, default_value_t = emberdb::bench_support::IVF_DEFAULT_POINTS_PER_LIST)]
    pub train_points: usize,
    /// Train each segment's IVF quantiser anew instead of sharing the first.
    #[arg(long)]
    pub no_share: bool,
    /// Build our store here and keep it (default: a temporary directory,
    /// removed at the end). Must not exist yet.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

struct Data {
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Vec<Vec<u64>>,
}

fn load(dir: &Path, limit: Option<usize>) -> anyhow::Result<Data> {
    let (dim, base) = fvecs::read_fvecs(&dir.join("base.fvecs"))?;
    let (qdim, mut queries) = fvecs::read_fvecs(&dir.join("query.fvecs"))?;
    let (gdim, gt) = fvecs::read_ivecs(&dir.join("groundtruth.ivecs"))?;
    if qdim != dim {
        bail!("query dimension {qdim} differs from base dimension {dim}");
    }
    if gdim < 10 {
        bail!("ground truth holds {gdim} ids per query; recall@10 needs 10");
    }
    let mut truth: Vec<Vec<u64>> = gt
        .chunks_exact(gdim)
        .map(|r| r[..10].iter().map(|&i| i as u64).collect())
        .collect();
    if truth.len() != queries.len() / dim {
        bail!(
            "{} for {}",
            count(truth.len() as u64, "ground-truth row", "ground-truth rows"),
            count((queries.len() / dim) as u64, "query", "queries")
        );
    }
    if let Some(n) = limit {
        queries.truncate(n * dim);
        truth.truncate(n);
    }
    Ok(Data {
        dim,
        base,
        queries,
        truth,
    })
}

/// Latencies and hits of one pass over the queries.
#[derive(Default)]
struct Pass {
    latencies: Vec<Duration>,
    found: usize,
}

impl Pass {
    fn record(&mut self, elapsed: Duration, ids: &[u64], truth: &[u64]) {
        self.latencies.push(elapsed);
        self.found += ids.iter().filter(|id| truth.contains(id)).count();
    }

    fn summary(&mut self) -> (f64, f64, f64, f64) {
        let n = self.latencies.len();
        let pct = |p: f64| crate::bench::measure::quantile_of_durations_us(&self.latencies, p);
        let total: f64 = self.latencies.iter().map(Duration::as_secs_f64).sum();
        (
            self.found as f64 / (10 * n) as f64,
            pct(0.5),
            pct(0.99),
            n as f64 / total,
        )
    }
}

fn spec_for(kind: &str, args: &BenchArgs, knob: usize) -> anyhow::Result<IndexSpec> {
    Ok(match kind {
        "flat" => IndexSpec::Flat,
        "hnsw" => IndexSpec::Hnsw {
            m: args.m,
            ef_construction: args.ef_construction,
            ef_search: knob,
        },
        "ivf" => IndexSpec::Ivf {
            nlist: args.nlist,
            nprobe: knob,
        },
        other => bail!("unknown index kind {other:?} (flat, hnsw, ivf)"),
    })
}

fn options(args: &BenchArgs, dim: usize, rows: usize, spec: IndexSpec) -> Options {
    Options::new(dim)
        .metric(Metric::InnerProduct)
        .durability(Durability::None)
        .segment_rows(segment_rows(args, rows))
        .flat_below(0)
        .index(spec)
        .ivf_training(args.train_points, !args.no_share)
}

fn segment_rows(args: &BenchArgs, rows: usize) -> usize {
    args.segment_rows.unwrap_or(rows).max(1)
}

/// Opens the store at `path` in a child `ember bench-open`, which runs the
/// first `limit` queries in `queries` and reports open time and memory.
fn open_in_child(path: &Path, queries: &Path, limit: usize) -> anyhow::Result<OpenFigures> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("bench-open")
        .arg(path)
        .arg("--queries")
        .arg(queries)
        .arg("--limit")
        .arg(limit.to_string())
        .output()?;
    if !output.status.success() {
        bail!(
            "ember bench-open failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let line = String::from_utf8_lossy(&output.stdout);
    OpenFigures::parse(&line).ok_or_else(|| anyhow::anyhow!("ember bench-open printed {line:?}"))
}

pub fn run(args: BenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let data = load(&args.data, args.queries)?;
    let (dim, rows) = (data.dim, data.base.len() / data.dim);
    writeln!(
        out,
        "data: {} ({rows} x {dim} base, {}), inner product, k = 10, one query thread",
        args.data.display(),
        count(data.truth.len() as u64, "query", "queries")
    )?;
    for kind in &args.kinds {
        bench_kind(kind, &args, &data, rows, out)?;
    }
    Ok(())
}

fn bench_kind(kind: &str, args: &BenchArgs, data: &Data, rows: usize, out: &mut impl Write) -> anyhow::Result<()> {
    let dim = data.dim;
    let ladder: Vec<usize> = match kind {
        "hnsw" => args.ef.clone(),
        "ivf" => args.nprobe.clone(),
        _ => vec![0],
    };
    let first = spec_for(kind, args, ladder[0])?;
    let dir = tempfile::tempdir()?;
    let path = match &args.keep {
        Some(keep) if args.kinds.len() > 1 => keep.join(kind),
        Some(keep) => keep.clone(),
        None => dir.path().join("store"),
    };
    if path.exists() {
        bail!("{} exists; --keep wants a new directory", path.display());
    }

    // Ours: ingest, seal, index (in the background worker), reopen.
    let store = Store::open(&path, options(args, dim, rows, first))?;
    let t = Instant::now();
    for (id, v) in data.base.chunks_exact(dim).enumerate() {
        store.upsert(id as u64, v)?;
    }
    let ingest = t.elapsed();
    let t = Instant::now();
    store.seal()?;
    store.wait_for_indexes();
    let build = t.elapsed();
    let stats = store.stats()?;
    let (segments, disk) = (stats.sealed_segments, stats.disk_bytes);
    drop(store);

    // The identical Faiss index, through the faiss crate.
    let description = match first {
        IndexSpec::Flat => "Flat".to_string(),
        IndexSpec::Hnsw { m, .. } => format!("HNSW{m},Flat"),
        IndexSpec::Ivf { nlist, .. } => format!(
            "IVF{},Flat",
            nlist.unwrap_or_else(|| default_nlist(segment_rows(args, rows)))
        ),
    };
    let t = Instant::now();
    let mut faiss_index = index_factory(dim as u32, &description, MetricType::InnerProduct)?;
    let space = ParameterSpace::new()?;
    if let IndexSpec::Hnsw { ef_construction, .. } = first {
        space.set_index_parameter(&faiss_index, "efConstruction", ef_construction as f64)?;
    }
    if let IndexSpec::Ivf { nlist, .. } = first {
        let nlist = nlist.unwrap_or_else(|| default_nlist(segment_rows(args, rows)));
        faiss_index.train(&emberdb::bench_support::ivf_training_sample(
            &data.base,
            dim,
            nlist,
            args.train_points,
        ))?;
    }
    faiss_index.add(&data.base)?;
    let faiss_build = t.elapsed();

    writeln!(
        out,
        "\n{kind} ({description}): ours ({segments} segments of up to {} rows): ingest {:.2} s, seal + build after it {:.2} s, disk {:.1} MiB; faiss crate build {:.2} s",
        segment_rows(args, rows),
        ingest.as_secs_f64(),
        build.as_secs_f64(),
        disk as f64 / (1 << 20) as f64,
        faiss_build.as_secs_f64()
    )?;
    writeln!(
        out,
        "  {:>8} | {:>7} {:>9} {:>9} {:>8} | {:>7} {:>9} {:>9} {:>8} | {:>8}",
        "param", "recall", "p50 us", "p99 us", "qps", "faiss", "p50 us", "p99 us", "qps", "p50 +%"
    )?;
    for &knob in &ladder {
        let spec = spec_for(kind, args, knob)?;
        let store = Store::open(&path, options(args, dim, rows, spec))?;
        store.wait_for_indexes();
        match kind {
            "hnsw" => space.set_index_parameter(&faiss_index, "efSearch", knob as f64)?,
            "ivf" => space.set_index_parameter(&faiss_index, "nprobe", knob as f64)?,
            _ => {}
        }
        let (mut ours, mut theirs) = (Pass::default(), Pass::default());
        for (q, truth) in data.queries.chunks_exact(dim).zip(&data.truth) {
            let t = Instant::now();
            let hits = store.knn(&Query::vector(q).k(10))?;
            let elapsed = t.elapsed();
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            ours.record(elapsed, &ids, truth);

            let t = Instant::now();
            let result = faiss_index.search(q, 10)?;
            let elapsed = t.elapsed();
            let ids: Vec<u64> = result.labels.iter().filter_map(|l| l.get()).collect();
            theirs.record(elapsed, &ids, truth);
        }
        let (r1, p50, p99, qps) = ours.summary();
        let (r2, f50, f99, fqps) = theirs.summary();
        let label = match kind {
            "hnsw" => format!("ef {knob}"),
            "ivf" => format!("nprobe {knob}"),
            _ => "exact".into(),
        };
        writeln!(
            out,
            "  {label:>8} | {r1:>7.3} {p50:>9.1} {p99:>9.1} {qps:>8.0} | {r2:>7.3} {f50:>9.1} {f99:>9.1} {fqps:>8.0} | {:>+7.1}%",
            (p50 / f50 - 1.0) * 100.0
        )?;
    }
    // The open is timed after the Faiss index is gone, so that this
    // process's memory does not push the store's files out of the page
    // cache. sled lets go of its lock file from a background thread a
    // moment after a store is dropped; the child's open must not wait.
    drop(faiss_index);
    std::thread::sleep(Duration::from_secs(3));
    let opened = open_in_child(&path, &args.data.join("query.fvecs"), data.truth.len())?;
    writeln!(
        out,
        "  reopened in a process of its own: open {:.1} ms, index load {:.1} ms; resident after load +{:.0} MiB heap, +{:.0} MiB mapped file pages; after {} queries +{:.0} MiB heap, +{:.0} MiB mapped; peak of that process {:.0} MiB; get p50 {:.1} us found, {:.1} us absent",
        opened.open_ms,
        opened.index_load_ms,
        opened.heap_after_load,
        opened.mapped_after_load,
        data.truth.len(),
        opened.heap_after_queries,
        opened.mapped_after_queries,
        opened.peak,
        opened.get_hit_us,
        opened.get_miss_us
    )?;
    concurrency(kind, args, data, &path, rows, ladder[0], out)
}

/// Queries per second from one and from two threads, same store.
fn concurrency(
    kind: &str,
    args: &BenchArgs,
    data: &Data,
    path: &Path,
    rows: usize,
    knob: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dim = data.dim;
    let spec = spec_for(kind, args, knob)?;
    let store = Store::open(path, options(args, dim, rows, spec))?;
    store.wait_for_indexes();
    let queries: Vec<&[f32]> = data.queries.chunks_exact(dim).collect();
    let run = |threads: usize| -> f64 {
        let per_thread = queries.len().max(2000) / threads;
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (store, queries) = (&store, &queries);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let q = queries[(th * per_thread + i) % queries.len()];
                        let _ = std::hint::black_box(store.knn(&Query::vector(q).k(10)));
                    }
                });
            }
        });
        (per_thread * threads) as f64 / t.elapsed().as_secs_f64()
    };
    let one = run(1);
    let two = run(2);
    writeln!(
        out,
        "  concurrent knn: 1 thread {one:.0} qps, 2 threads {two:.0} qps ({:.2}x)",
        two / one
    )?;
    Ok(())
}

/// The IVF list count the store derives (kept equal here for the comparison).
fn default_nlist(rows: usize) -> usize {
    let by_sqrt = (4.0 * (rows as f64).sqrt()) as usize;
    by_sqrt.min(rows / 39).max(1)
}
