//! `ember bench-train --space-kind youtube-dnn`: the DNN's round at scale
//! (examples per second per thread, achieved GFLOP/s against the matrix
//! product's own, peak memory), and the serving cost of its user queries
//! next to item2vec's on the same store.

use std::io::Write;
use std::time::Instant;

use emberdb::bench_support::{measure_gemm, GemmKernel};
use emberdb::{Query, Store, DEFAULT_SPACE};

use crate::bench::measure::quantile_us;
use crate::bench::proc_status::peak_rss_mib;
use crate::eval::dnn::SPACE;
use crate::input::count;

pub fn train_and_query(store: &Store, users: &[u64], out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let r = store.space(SPACE)?.train()?;
    let wall = started.elapsed().as_secs_f64();
    let run = r.dnn.unwrap_or_default();
    let rows_gemm = [GemmKernel::Packed, GemmKernel::Rows].map(|k| measure_gemm(k, 256, 256, 256, 0.5));
    writeln!(
        out,
        "DNN round: {wall:.1} s wall = {:.1} s gathering + {:.1} s training + {:.1} s publishing",
        r.gather_seconds, run.seconds, r.publish_seconds
    )?;
    writeln!(
        out,
        "  {}, {} in {}, loss {:.3}, {:.0} examples/s/thread on {}, {:.1} GFLOP/s in the products ({:.0}% of {} x {:.1} GFLOP/s, matrixmultiply alone on one thread; our rows kernel {:.1})",
        count(r.items as u64, "item", "items"),
        count(run.examples, "example", "examples"),
        count(run.steps, "step", "steps"),
        run.loss,
        run.examples_per_second_per_thread(),
        count(run.threads as u64, "thread", "threads"),
        run.gflops(),
        100.0 * run.gflops() / (rows_gemm[0] * run.threads.max(1) as f64),
        run.threads,
        rows_gemm[0],
        rows_gemm[1]
    )?;
    writeln!(out, "  peak memory {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN))?;
    // Serving: the same users' queries in both spaces, alternating.
    store.wait_for_indexes();
    let (mut item2vec, mut dnn) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        for &user in users {
            for (space, times) in [(DEFAULT_SPACE, &mut item2vec), (SPACE, &mut dnn)] {
                let t = Instant::now();
                let hits = store.knn(&Query::user(user).k(50).space(space))?;
                times.push(t.elapsed().as_secs_f64());
                anyhow::ensure!(
                    !hits.is_empty() || store.history(user)?.is_empty(),
                    "no hits for user {user}"
                );
            }
        }
    }
    let (mut item2vec, mut dnn) = (item2vec, dnn);
    let (a, b) = (quantile_us(&mut item2vec, 0.5), quantile_us(&mut dnn, 0.5));
    writeln!(
        out,
        "Query::user k=50 p50: item2vec {a:.1} us, YouTube DNN {b:.1} us ({:.2}x)",
        b / a.max(1e-9)
    )?;
    Ok(())
}

/// `ember bench-gemm`: the matrix product alone, on 1 to `threads` threads
/// at once (each its own product): the ceiling the DNN's step is measured
/// against, and how far it scales on this machine.
#[derive(clap::Args, Debug)]
pub struct GemmArgs {
    #[arg(long, default_value_t = 256)]
    size: usize,
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

pub fn gemm(a: GemmArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let n = a.size;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for kernel in [GemmKernel::Packed, GemmKernel::Rows] {
        for threads in 1..=cores {
            let rates: Vec<f64> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| s.spawn(move || measure_gemm(kernel, n, n, n, a.seconds)))
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            let total: f64 = rates.iter().sum();
            writeln!(
                out,
                "{:<16} {n}x{n}x{n} on {threads} thread(s): {total:.1} GFLOP/s ({:.1} per thread)",
                kernel.name(),
                total / threads as f64
            )?;
        }
    }
    Ok(())
}
