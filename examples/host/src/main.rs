//! A host application of emberdb, built as users build theirs: a path
//! dependency and no flags.
//!
//! `emberdb-host-example smoke` opens a trained store in a temporary
//! directory, ingests clustered behaviour, trains, queries, reopens and
//! checks the answers (CI runs it). `emberdb-host-example bench` prints the
//! trainer's throughput and knn latency for `scripts/host_crate.sh bench`,
//! which runs the same program built with and without flags side by side.

use std::process::ExitCode;
use std::time::Instant;

use emberdb::{Durability, Event, IndexSpec, Metric, Options, Query, Store, TrainOptions, TrainRequest};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("smoke") => smoke(),
        Some("bench") => bench(&args[1..]),
        _ => Err(
            "usage: emberdb-host-example smoke | bench [--threads N,M] [--events N] [--data DIR] [--ratings FILE]"
                .into(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emberdb-host-example: {e}");
            ExitCode::FAILURE
        }
    }
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

/// SplitMix64: enough randomness for synthetic data, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Users each keep to one of `clusters` groups of `per_cluster` items (user
/// `u`'s group is `u % clusters`), with one event in ten anywhere.
fn clustered_events(events: u64, users: u64, clusters: u64, per_cluster: u64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    (0..events)
        .map(|n| {
            let user = rng.below(users);
            let item = if rng.below(10) == 0 {
                rng.below(clusters * per_cluster)
            } else {
                (user % clusters) * per_cluster + rng.below(per_cluster)
            };
            Event::new(user, item, n)
        })
        .collect()
}

fn smoke() -> Outcome {
    let dir = std::env::temp_dir().join(format!("emberdb-host-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (clusters, per_cluster) = (20u64, 25u64);
    let result = (|| -> Outcome {
        let opts = || {
            Options::trained(32)
                .train_options(TrainOptions::default().epochs(10).threads(2).seed(7))
                .durability(Durability::Sync)
        };
        let store = Store::open(&dir, opts())?;
        for chunk in clustered_events(60_000, 2_000, clusters, per_cluster, 1).chunks(5_000) {
            store.append_events(chunk)?;
        }
        let reports = store.train_with(&TrainRequest::new())?;
        let Some(report) = reports.first() else {
            return Err("train_with returned no report".into());
        };
        if report.space != emberdb::DEFAULT_SPACE {
            return Err(format!("the report names space {:?}", report.space).into());
        }
        let stats = store.stats()?;
        println!(
            "trained {} items, {} pairs, {:.2} M pairs/s/thread; kernels {}, faiss {}",
            report.items,
            report.run.pairs,
            report.pairs_per_second_per_thread() / 1e6,
            stats.kernels,
            stats.faiss_build
        );
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && std::env::var_os("EMBER_SIMD").is_none()
        {
            if stats.kernels != "avx2+fma" {
                return Err(format!("this CPU has AVX2 and FMA but the kernels run {}", stats.kernels).into());
            }
        }
        // Similar items stay within their cluster: a batch of queries from
        // a clone of the handle on another thread, as a service would.
        let items: Vec<u64> = (0..clusters * per_cluster).step_by(7).collect();
        let queries: Vec<Query> = items.iter().map(|i| Query::item(*i).k(10)).collect();
        let shared = store.clone();
        let answers = std::thread::spawn(move || shared.knn_batch(&queries))
            .join()
            .map_err(|_| "the query thread panicked")??;
        let (mut same, mut total) = (0, 0);
        for (item, hits) in items.iter().zip(&answers) {
            for hit in hits {
                total += 1;
                same += usize::from(hit.id / per_cluster == item / per_cluster);
            }
        }
        let share = same as f64 / total.max(1) as f64;
        println!(
            "similar items in the same cluster: {same} of {total} ({:.0}%)",
            share * 100.0
        );
        if share < 0.8 {
            return Err(format!("only {:.0}% of similar items share the cluster", share * 100.0).into());
        }
        // Personalised recall: k unseen items, mostly from the user's cluster.
        let user = 3u64;
        let seen = store.history(user)?;
        let hits = store.knn(&Query::user(user).k(10))?;
        if hits.len() != 10 || hits.iter().any(|h| seen.contains(&h.id)) {
            return Err(format!("user recall gave {hits:?} for a history of {} items", seen.len()).into());
        }
        let before = store.knn(&Query::item(5).k(10))?;
        drop(store);
        let store = Store::open(&dir, opts())?;
        if store.knn(&Query::item(5).k(10))? != before {
            return Err("answers changed across a reopen".into());
        }
        println!("host smoke test passed");
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

struct BenchArgs {
    threads: Vec<usize>,
    events: u64,
    data: Option<std::path::PathBuf>,
    ratings: Option<std::path::PathBuf>,
}

fn parse_bench(args: &[String]) -> Result<BenchArgs, Box<dyn std::error::Error>> {
    let mut out = BenchArgs {
        threads: vec![1, 2],
        events: 2_000_000,
        data: None,
        ratings: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => out.threads = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--events" => out.events = value.parse()?,
            "--data" => out.data = Some(value.into()),
            "--ratings" => out.ratings = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(out)
}

/// Prints `name value` lines, one figure each, for the script to tabulate.
fn bench(args: &[String]) -> Outcome {
    let a = parse_bench(args)?;
    let tmp = std::env::temp_dir().join(format!("emberdb-host-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = (|| -> Outcome {
        let events = clustered_events(a.events, a.events / 50, 1_000, 50, 42);
        for &threads in &a.threads {
            let dir = tmp.join(format!("train-{threads}"));
            let store = Store::open(
                &dir,
                Options::trained(64)
                    .train_options(TrainOptions::default().epochs(1).threads(threads).seed(1))
                    .durability(Durability::Buffered),
            )?;
            for chunk in events.chunks(10_000) {
                store.append_events(chunk)?;
            }
            let r = store.train()?;
            println!(
                "train_pairs_per_s_per_thread_{threads}t {:.0}",
                r.pairs_per_second_per_thread()
            );
            if threads == a.threads[0] {
                println!("kernels {}", store.stats()?.kernels);
                println!("faiss {}", store.stats()?.faiss_build.replace(' ', "_"));
            }
        }
        if let Some(ratings) = &a.ratings {
            ratings_bench(ratings, &a.threads, &tmp)?;
        }
        if let Some(data) = &a.data {
            knn_bench(data, &tmp)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The trainer on MovieLens ratings (`user,item,rating,timestamp`), as
/// `ember eval --train-only` runs it: each user's events in time order with
/// the last one held out, a full round with the default hyperparameters.
fn ratings_bench(path: &std::path::Path, threads: &[usize], tmp: &std::path::Path) -> Outcome {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut per_user: std::collections::HashMap<u64, Vec<(u64, u64)>> = std::collections::HashMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 4 {
            continue;
        }
        let (Ok(user), Ok(item), Ok(ts)) = (fields[0].parse(), fields[1].parse(), fields[3].trim().parse()) else {
            continue;
        };
        per_user.entry(user).or_default().push((ts, item));
    }
    let mut events = Vec::new();
    for (user, mut list) in per_user {
        list.sort_unstable();
        list.pop();
        events.extend(list.into_iter().map(|(ts, item)| Event::new(user, item, ts)));
    }
    events.sort_unstable_by_key(|e| (e.ts, e.user, e.item));
    for &t in threads {
        let store = Store::open(
            tmp.join(format!("ratings-{t}")),
            Options::trained(64)
                .train_options(TrainOptions::default().threads(t))
                .durability(Durability::None),
        )?;
        for chunk in events.chunks(10_000) {
            store.append_events(chunk)?;
        }
        let r = store.train_full()?;
        println!(
            "ml100k_pairs_per_s_per_thread_{t}t {:.0}",
            r.pairs_per_second_per_thread()
        );
    }
    Ok(())
}

/// Reads a TEXMEX `.fvecs` file: each record an i32 dimension and its floats.
fn read_fvecs(path: &std::path::Path) -> Result<(usize, Vec<f32>), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dim = i32::from_le_bytes(bytes.get(..4).ok_or("empty fvecs")?.try_into()?) as usize;
    let record = 4 + 4 * dim;
    if dim == 0 || bytes.len() % record != 0 {
        return Err(format!("{}: not an fvecs file", path.display()).into());
    }
    let mut values = Vec::with_capacity(bytes.len() / record * dim);
    for rec in bytes.chunks_exact(record) {
        values.extend(
            rec[4..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    Ok((dim, values))
}

fn p50_micros(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2] * 1e6
}

/// Exact search and an HNSW build over `base.fvecs`, queried with
/// `query.fvecs` (as written by ../shared/bench/make_dataset.py).
fn knn_bench(data: &std::path::Path, tmp: &std::path::Path) -> Outcome {
    let (dim, base) = read_fvecs(&data.join("base.fvecs"))?;
    let (_, queries) = read_fvecs(&data.join("query.fvecs"))?;
    let queries: Vec<&[f32]> = queries.chunks_exact(dim).take(300).collect();
    let rows = base.len() / dim;
    for (name, spec) in [("exact", IndexSpec::Flat), ("hnsw", IndexSpec::hnsw())] {
        let store = Store::open(
            tmp.join(name),
            Options::new(dim)
                .metric(Metric::InnerProduct)
                .index(spec)
                .segment_rows(rows)
                .durability(Durability::None),
        )?;
        for (id, v) in base.chunks_exact(dim).enumerate() {
            store.upsert(id as u64, v)?;
        }
        let started = Instant::now();
        store.seal()?;
        store.wait_for_indexes();
        if name == "hnsw" {
            println!("hnsw_build_s {:.2}", started.elapsed().as_secs_f64());
        }
        let mut times = Vec::with_capacity(queries.len());
        for q in &queries {
            let t = Instant::now();
            let hits = store.knn(&Query::vector(q).k(10))?;
            times.push(t.elapsed().as_secs_f64());
            if hits.len() != 10 {
                return Err(format!("{name}: {} hits", hits.len()).into());
            }
        }
        println!("{name}_knn_p50_us {:.1}", p50_micros(times));
    }
    Ok(())
}
