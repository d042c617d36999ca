//! A CPU without AVX2 still runs, on the portable kernels, with correct
//! results: the test runs itself again as a child with `EMBER_SIMD=portable`
//! (which the dispatcher honours), and the child checks that the portable
//! level is the one running, that exact search equals a reference
//! computation under every metric, and that training recovers planted
//! clusters as well as it does on the fast path.

mod common;

use std::process::Command;

use common::{planted_events, random_vectors};
use emberdb::{Durability, Metric, Options, Query, SimdLevel, Store, TrainOptions};

const CHILD: &str = "EMBER_PORTABLE_CHILD";

#[test]
fn the_portable_path_gives_correct_results() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["portable_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("EMBER_SIMD", "portable")
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child really ran its checks (it is not filtered out or skipped).
    assert!(stdout.contains("portable checks passed"), "{stdout}");
}

/// Runs only as the child of the test above.
#[test]
fn portable_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    assert_eq!(emberdb::simd_level(), SimdLevel::Portable);

    // Exact search against a reference, every metric, 67 components (a tail
    // that is not a multiple of the lane count).
    let dim = 67;
    let vectors = random_vectors(500, dim, 5);
    let queries = random_vectors(20, dim, 6);
    for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Options::new(dim)
                .metric(metric)
                .durability(Durability::None)
                .segment_rows(200),
        )
        .unwrap();
        for (i, v) in vectors.iter().enumerate() {
            store.upsert(i as u64, v).unwrap();
        }
        let stored: Vec<Vec<f32>> = (0..vectors.len() as u64)
            .map(|i| store.get(i).unwrap().unwrap())
            .collect();
        for q in &queries {
            let q_used = if metric == Metric::Cosine {
                common::normalized(q)
            } else {
                q.clone()
            };
            let mut want: Vec<(u64, f64)> = stored
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let s = match metric {
                        Metric::L2 => v
                            .iter()
                            .zip(&q_used)
                            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                            .sum(),
                        _ => v.iter().zip(&q_used).map(|(a, b)| *a as f64 * *b as f64).sum(),
                    };
                    (i as u64, s)
                })
                .collect();
            want.sort_by(|a, b| {
                if metric == Metric::L2 {
                    a.1.total_cmp(&b.1)
                } else {
                    b.1.total_cmp(&a.1)
                }
            });
            let hits = store.knn(&Query::vector(q).k(10).exact()).unwrap();
            assert_eq!(hits.len(), 10);
            for (h, (id, score)) in hits.iter().zip(&want) {
                assert!(
                    (h.score as f64 - score).abs() < 1e-3,
                    "{metric:?}: {h:?} vs {id} {score}"
                );
            }
            let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let expected: Vec<u64> = want.iter().take(10).map(|w| w.0).collect();
            assert_eq!(got, expected, "{metric:?}");
        }
    }

    // Training on the portable kernels recovers planted clusters (the same
    // threshold as tests/training.rs on the fast path).
    let (clusters, per_cluster) = (8u64, 25u64);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(32)
            .train_options(TrainOptions::default().epochs(10).threads(2).seed(7))
            .durability(Durability::None),
    )
    .unwrap();
    store
        .append_events(&planted_events(400, clusters, per_cluster, 12, 2))
        .unwrap();
    store.train().unwrap();
    let (mut same, mut total) = (0, 0);
    for item in 0..clusters * per_cluster {
        let hits = store.knn(&Query::item(item).k(10)).unwrap();
        same += hits.iter().filter(|h| h.id / per_cluster == item / per_cluster).count();
        total += hits.len();
    }
    let purity = same as f64 / total as f64;
    assert!(purity >= 0.8, "neighbour purity on the portable path: {purity}");
    assert_eq!(store.stats().unwrap().kernels, "portable");
    println!("portable checks passed (purity {purity:.3})");
}
