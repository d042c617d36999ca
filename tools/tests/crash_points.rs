//! The crash-point harness, run whole: every operation killed with SIGKILL
//! at each of its writes, fsyncs, renames, creations and removals in turn
//! (counted by the preloaded shim, sled's and Faiss's calls included), and
//! every answer of the reopened store compared with what it must be. All
//! points must hold. `ember crash-points DIR` is the same run by hand.

mod common;

use common::{ember, path};

#[test]
fn every_crash_point_of_every_operation_holds() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let out = ember(&["crash-points", path(&runs), "--fixtures", path(&fixtures)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", common::stderr(&out));
    // Every operation ran, and was killed at every point.
    for op in [
        "open",
        "replay",
        "fixture-v1-host",
        "fixture-v3-trained",
        "fixture-v5-host",
        "fixture-v5-trained",
        "compact",
        "compact-rebuild",
        "merge-runs",
        "round-item2vec",
        "round-dnn",
        "snapshot",
        "parquet-import",
        "repair-lost",
        "repair-damaged",
        "ingest",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(op))
            .unwrap_or_else(|| panic!("no line for {op}: {stdout}"));
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(5)
            .map(|x| x.parse().unwrap())
            .collect();
        let [points, tried, killed, _completed, held] = n[..] else {
            panic!("{line}")
        };
        assert!(points >= 20, "{op}: only {points} points: {line}");
        assert_eq!(tried, points, "{op}: {line}");
        assert_eq!(held, tried, "{op}: {line}");
        assert!(killed * 10 >= tried * 9, "{op}: most points must kill: {line}");
    }
}
