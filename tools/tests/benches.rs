//! `ember bench` and `ember bench-train` end to end on tiny inputs (the
//! real measurements use `make_dataset.py` data and the defaults).

use std::io::Write;
use std::process::Command;

fn write_vecs(path: &std::path::Path, rows: &[Vec<f32>]) {
    let mut f = std::fs::File::create(path).unwrap();
    for r in rows {
        f.write_all(&(r.len() as i32).to_le_bytes()).unwrap();
        r.iter().for_each(|x| f.write_all(&x.to_le_bytes()).unwrap());
    }
}

#[test]
fn bench_compares_with_faiss_on_a_small_texmex_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let dim = 8;
    let base: Vec<Vec<f32>> = (0..2_000).map(|_| (0..dim).map(|_| next()).collect()).collect();
    let queries: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| next()).collect()).collect();
    // Exact inner-product ground truth, 10 per query.
    let mut truth = std::fs::File::create(dir.path().join("groundtruth.ivecs")).unwrap();
    for q in &queries {
        let mut scored: Vec<(f32, usize)> = base
            .iter()
            .enumerate()
            .map(|(i, b)| (b.iter().zip(q).map(|(x, y)| x * y).sum(), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        truth.write_all(&10i32.to_le_bytes()).unwrap();
        scored[..10]
            .iter()
            .for_each(|(_, i)| truth.write_all(&(*i as i32).to_le_bytes()).unwrap());
    }
    write_vecs(&dir.path().join("base.fvecs"), &base);
    write_vecs(&dir.path().join("query.fvecs"), &queries);
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "bench",
            dir.path().to_str().unwrap(),
            "--kinds",
            "flat",
            "--queries",
            "20",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.to_lowercase().contains("recall"), "{text}");
}

#[test]
fn bench_train_reports_ingest_training_publish_and_memory() {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "bench-train",
            "--events",
            "20000",
            "--items",
            "1000",
            "--users",
            "500",
            "--dim",
            "16",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "ingest:",
        "M events/s",
        "training round:",
        "pairs/s/thread",
        "publishing",
        "peak memory",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}
