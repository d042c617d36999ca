//! `ember bench-filter`: filtered queries at 50%, 10%, 1% and 0.1%
//! selectivity on a host-fed store of synthetic clustered vectors under
//! the default index (HNSW), against two references measured in the same
//! run: the unfiltered query, and an exact scan of just the matching rows
//! (gathered beforehand into one contiguous block, the cheapest exact plan
//! there is). For each selectivity it reports recall@10 against the exact
//! filtered answer, p50 and p99 latency, and whether p50 stays within
//! 1.5 times the larger reference (the target of issue 12).

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use emberdb::{Durability, Filter, IndexSpec, Options, Query, Store};
use rand::{Rng, SeedableRng};

use crate::input::count;

#[derive(clap::Args)]
pub struct FilterBenchArgs {
    /// Items in the store.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Queries per selectivity.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Selectivities measured: the attribute value and its share in 1/1000.
const SHARES: [(&str, u64); 4] = [("50%", 500), ("10%", 100), ("1%", 10), ("0.1%", 1)];

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Vectors drawn as `../shared/bench/make_dataset.py` draws them: a mixture
/// of 256 Gaussian clusters with centres on the unit sphere, log-uniform
/// spreads in [0.15, 0.9] and unequal weights, plus 10% uniform noise.
fn clustered(n: usize, dim: usize, rng: &mut impl Rng) -> Vec<Vec<f32>> {
    let unit = |v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let clusters = 256;
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| unit((0..dim).map(|_| gaussian(rng)).collect()))
        .collect();
    let spreads: Vec<f32> = (0..clusters)
        .map(|_| rng.gen_range(0.15f32.ln()..0.9f32.ln()).exp())
        .collect();
    let weights: Vec<f64> = (0..clusters).map(|_| rng.gen_range(0.25..1.75)).collect();
    let total: f64 = weights.iter().sum();
    (0..n)
        .map(|_| {
            if rng.gen_bool(0.1) {
                return unit((0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect());
            }
            let mut pick = rng.gen_range(0.0..total);
            let c = weights
                .iter()
                .position(|w| {
                    pick -= w;
                    pick < 0.0
                })
                .unwrap_or(clusters - 1);
            let sigma = spreads[c] / (dim as f32).sqrt();
            unit(centres[c].iter().map(|x| x + sigma * gaussian(rng)).collect())
        })
        .collect()
}

/// Item `id`'s bucket in 0..1000, independent of its vector.
fn bucket(id: u64) -> u64 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 1000
}

/// The top 10 of `rows` (ids, contiguous unit rows) by dot product with `q`.
fn scan(ids: &[u64], rows: &[f32], dim: usize, q: &[f32]) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = ids
        .iter()
        .zip(rows.chunks_exact(dim))
        .map(|(id, r)| (r.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *id))
        .collect();
    let k = 10.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, id)| id).collect()
}

fn pct(v: Vec<Duration>, p: f64) -> f64 {
    crate::bench::measure::quantile_of_durations_us(&v, p)
}

pub fn run(a: FilterBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let (n, dim) = (a.rows, a.dim);
    // Queries from the same distribution (drawn with the base, then split).
    let mut vectors = clustered(n + a.queries, dim, &mut rng);
    let queries = vectors.split_off(n);
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        dir.path(),
        Options::new(dim)
            .durability(Durability::None)
            .segment_rows(n.div_ceil(2).max(1))
            .index(IndexSpec::hnsw()),
    )?;
    let started = Instant::now();
    let bar = crate::commands::store::progress(n as u64, "loading");
    for (id, v) in vectors.iter().enumerate() {
        let id = id as u64;
        store.upsert(id, v)?;
        let b = bucket(id);
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (name, share) in SHARES {
            if b < share {
                pairs.push(("share", name));
            }
        }
        if !pairs.is_empty() {
            store.set_attributes(id, &pairs)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    store.seal()?;
    store.wait_for_indexes();
    writeln!(
        out,
        "{} x {dim}, cosine, HNSW (m 32, ef_search 96), {} sealed in {:.1} s; {}, k = 10, one thread",
        n,
        count(store.stats()?.sealed_segments as u64, "segment", "segments"),
        started.elapsed().as_secs_f64(),
        count(a.queries as u64, "query", "queries")
    )?;

    // Unfiltered reference.
    let all_ids: Vec<u64> = (0..n as u64).collect();
    let all_rows: Vec<f32> = vectors.iter().flatten().copied().collect();
    let (mut lat, mut found) = (Vec::new(), 0);
    for q in &queries {
        let truth = scan(&all_ids, &all_rows, dim, q);
        let t = Instant::now();
        let hits = store.knn(&Query::vector(q).k(10))?;
        lat.push(t.elapsed());
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    let unfiltered_p50 = pct(lat.clone(), 0.5);
    writeln!(
        out,
        "unfiltered: recall@10 {:.3}, p50 {:.0} us, p99 {:.0} us",
        found as f64 / (10 * queries.len()) as f64,
        unfiltered_p50,
        pct(lat, 0.99)
    )?;
    writeln!(
        out,
        "{:>6} {:>8} {:>9} {:>9} {:>9} {:>11} {:>8}",
        "filter", "matching", "recall", "p50 us", "p99 us", "scan p50", "bound"
    )?;
    for (name, share) in SHARES {
        let matching: Vec<u64> = all_ids.iter().copied().filter(|id| bucket(*id) < share).collect();
        let rows: Vec<f32> = matching
            .iter()
            .flat_map(|id| vectors[*id as usize].iter().copied())
            .collect();
        let (mut ours, mut reference, mut found, mut wanted) = (Vec::new(), Vec::new(), 0, 0);
        for q in &queries {
            let t = Instant::now();
            let truth = scan(&matching, &rows, dim, q);
            reference.push(t.elapsed());
            let t = Instant::now();
            let hits = store.knn(&Query::vector(q).k(10).filter(Filter::eq("share", name)))?;
            ours.push(t.elapsed());
            let truth: HashSet<u64> = truth.into_iter().collect();
            found += hits.iter().filter(|h| truth.contains(&h.id)).count();
            wanted += truth.len();
        }
        let (p50, scan_p50) = (pct(ours.clone(), 0.5), pct(reference, 0.5));
        let bound = 1.5 * unfiltered_p50.max(scan_p50);
        writeln!(
            out,
            "{:>6} {:>8} {:>9.3} {:>9.0} {:>9.0} {:>11.0} {:>8}",
            name,
            matching.len(),
            found as f64 / wanted.max(1) as f64,
            p50,
            pct(ours, 0.99),
            scan_p50,
            if p50 <= bound { "within" } else { "OVER" }
        )?;
    }
    Ok(())
}
