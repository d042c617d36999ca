//! A loaded index reads its arrays as views into the mapped file: it must
//! answer exactly as the index that was built and as a copied read of the
//! same bytes, and a damaged file must be refused before Faiss sees it.

use rand::{Rng, SeedableRng};

use super::*;

const DIM: usize = 16;
const ROWS: usize = 4_000;

fn rows(seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..ROWS * DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// An index of `spec` over `data` (L2), as segment `id`.
fn build(spec: IndexSpec, id: u64, data: &[f32], training: &IvfTraining) -> SegmentIndex {
    SegmentIndex::build(spec, Metric::L2, DIM, id, data, training, &|| false)
        .expect("build")
        .expect("an index")
}

/// `index` (segment `id`) saved to a file in a new directory and loaded
/// back from it; the directory is returned to keep the file's path.
fn reload(index: &SegmentIndex, spec: IndexSpec, id: u64, training: &IvfTraining) -> (tempfile::TempDir, SegmentIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file::file_name(id));
    index.save(&path).expect("save");
    let loaded = SegmentIndex::load(&path, spec, Metric::L2, DIM, id, ROWS, training)
        .expect("load")
        .expect("same settings");
    (dir, loaded)
}

fn answers(index: &SegmentIndex, queries: &[f32]) -> Vec<Vec<(u32, f32)>> {
    queries
        .chunks_exact(DIM)
        .map(|q| {
            index
                .search(q, 10, SearchKnobs::default(), &[], &mut CoarseMemo::default())
                .expect("search")
        })
        .collect()
}

fn copied_answers(body: &[u8], queries: &[f32]) -> Vec<Vec<(i64, f32)>> {
    let index = ffi::read_from_slice(body).expect("copied read");
    queries
        .chunks_exact(DIM)
        .map(|q| ffi::search_plain(&index, q, 10).expect("search"))
        .collect()
}

fn round_trip(spec: IndexSpec) {
    let data = rows(1);
    let queries = rows(2);
    let queries = &queries[..50 * DIM];
    let built = build(spec, 7, &data, &IvfTraining::default());
    let (dir, loaded) = reload(&built, spec, 7, &IvfTraining::default());
    let path = dir.path().join(file::file_name(7));
    let viewed = answers(&loaded, queries);
    assert_eq!(viewed, answers(&built, queries), "{spec:?}: viewed differs from built");
    assert!(viewed.iter().all(|hits| hits.len() == 10));

    let mapped = file::map(&path).expect("map");
    let copied: Vec<Vec<(u32, f32)>> = copied_answers(mapped.body(), queries)
        .into_iter()
        .map(|hits| hits.into_iter().map(|(l, d)| (l as u32, d)).collect())
        .collect();
    assert_eq!(viewed, copied, "{spec:?}: viewed differs from a copied read");

    // The index outlives nothing it reads: dropping it after its map's
    // owner is impossible by construction; dropping the loaded index and
    // searching the built one again still works.
    drop(loaded);
    assert_eq!(answers(&built, &queries[..DIM]).len(), 1);
}

#[test]
fn ivf_loaded_as_views_answers_as_built() {
    round_trip(IndexSpec::Ivf {
        nlist: Some(32),
        nprobe: 4,
    });
}

#[test]
fn hnsw_loaded_as_views_answers_as_built() {
    round_trip(IndexSpec::Hnsw {
        m: 16,
        ef_construction: 40,
        ef_search: 32,
    });
}

#[test]
fn damaged_index_body_is_refused_before_faiss_reads_it() {
    let spec = IndexSpec::Ivf {
        nlist: Some(16),
        nprobe: 4,
    };
    let built = build(spec, 3, &rows(3), &IvfTraining::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file::file_name(3));
    built.save(&path).expect("save");
    let mut bytes = std::fs::read(&path).expect("read");
    // A byte in the middle of the inverted lists, then one in Faiss's own
    // header of the body: both must be caught by our checksum.
    for offset in [bytes.len() / 2, file_header_len() + 2] {
        let original = bytes[offset];
        bytes[offset] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        match SegmentIndex::load(&path, spec, Metric::L2, DIM, 3, ROWS, &IvfTraining::default()) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
            Err(other) => panic!("offset {offset}: expected Corruption, got {other}"),
            Ok(_) => panic!("offset {offset}: a damaged index was loaded"),
        }
        bytes[offset] = original;
    }
    std::fs::write(&path, &bytes).expect("write");
    assert!(
        SegmentIndex::load(&path, spec, Metric::L2, DIM, 3, ROWS, &IvfTraining::default())
            .expect("load")
            .is_some()
    );
    // A truncated file is refused by its length.
    std::fs::write(&path, &bytes[..bytes.len() - 9]).expect("write");
    assert!(matches!(
        SegmentIndex::load(&path, spec, Metric::L2, DIM, 3, ROWS, &IvfTraining::default()),
        Err(Error::Corruption { .. })
    ));
}

fn file_header_len() -> usize {
    crate::stamp::HEADER_LEN
}

/// Exact top 10 by L2 over `data`.
fn brute_force(data: &[f32], query: &[f32]) -> Vec<u32> {
    let mut scored: Vec<(f32, u32)> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, row)| (row.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum(), i as u32))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().take(10).map(|(_, i)| i).collect()
}

fn recall(index: &SegmentIndex, data: &[f32], queries: &[f32], nprobe: usize) -> f64 {
    let knobs = SearchKnobs {
        nprobe: Some(nprobe),
        ..SearchKnobs::default()
    };
    let mut found = 0;
    for q in queries.chunks_exact(DIM) {
        let truth = brute_force(data, q);
        let hits = index
            .search(q, 10, knobs, &[], &mut CoarseMemo::default())
            .expect("search");
        found += hits.iter().filter(|(row, _)| truth.contains(row)).count();
    }
    found as f64 / (10 * queries.len() / DIM) as f64
}

#[test]
fn segments_share_the_first_segments_centroids_and_keep_their_recall() {
    let spec = IndexSpec::Ivf {
        nlist: Some(16),
        nprobe: 4,
    };
    let training = IvfTraining::new(40, true);
    let (first_rows, second_rows) = (rows(11), rows(12));
    let first = build(spec, 1, &first_rows, &training);
    let shared = training.shared(16, DIM).expect("the first build shares its centroids");
    let first_centroids = ffi::ivf_centroids(&first.index.read(), DIM).expect("centroids");
    assert_eq!(first_centroids, (16, shared.values.clone()));
    let second = build(spec, 2, &second_rows, &training);
    let second_centroids = ffi::ivf_centroids(&second.index.read(), DIM).expect("centroids");
    assert_eq!(
        second_centroids, first_centroids,
        "the second segment was built on them"
    );

    // All 16 lists probed, a shared quantiser finds the exact answers; at a
    // quarter of them it keeps the recall a private one has.
    let queries = rows(13);
    let queries = &queries[..40 * DIM];
    assert_eq!(recall(&second, &second_rows, queries, 16), 1.0);
    let private = build(spec, 2, &second_rows, &IvfTraining::new(40, false));
    let (shared_recall, private_recall) = (
        recall(&second, &second_rows, queries, 4),
        recall(&private, &second_rows, queries, 4),
    );
    assert!(
        shared_recall >= private_recall - 0.1,
        "shared {shared_recall} against private {private_recall}"
    );

    // A loaded IVF file offers its centroids to a space that has none yet.
    let fresh = IvfTraining::default();
    reload(&first, spec, 1, &fresh);
    assert_eq!(fresh.shared(16, DIM).map(|c| c.values.clone()), Some(first_centroids.1));
}

#[test]
fn one_coarse_assignment_serves_every_segment_on_the_same_centroids() {
    let spec = IndexSpec::Ivf {
        nlist: Some(16),
        nprobe: 4,
    };
    let training = IvfTraining::new(40, true);
    let mut segments: Vec<SegmentIndex> = (0..3u64).map(|i| build(spec, i, &rows(20 + i), &training)).collect();
    // The third served as after a restart: loaded from its file as views.
    let (_dir, loaded) = reload(&segments[2], spec, 2, &training);
    segments[2] = loaded;
    assert!(
        segments.iter().all(|s| s.shared.is_some()),
        "all three on the shared centroids"
    );
    let mut dead = vec![0u8; ROWS.div_ceil(8)];
    for row in (0..ROWS).step_by(3) {
        dead[row / 8] |= 1 << (row % 8);
    }
    let queries = rows(30);
    for (nprobe, dead) in [(4, &[][..]), (9, &dead[..]), (16, &[][..]), (40, &dead[..])] {
        let knobs = SearchKnobs {
            nprobe: Some(nprobe),
            ..SearchKnobs::default()
        };
        for q in queries[..30 * DIM].chunks_exact(DIM) {
            let mut memo = CoarseMemo::default();
            for segment in &segments {
                let ours = segment.search(q, 10, knobs, dead, &mut memo).expect("search");
                let faiss: Vec<(u32, f32)> = ffi::search(&segment.index.read(), q, 10, Some(nprobe), dead)
                    .expect("faiss search")
                    .into_iter()
                    .filter(|(label, _)| *label >= 0)
                    .map(|(label, score)| (label as u32, score))
                    .collect();
                assert_eq!(ours, faiss, "nprobe {nprobe}: preassigned differs from Faiss's search");
                assert!(
                    ours.iter().all(|(row, _)| dead.is_empty() || row % 3 != 0),
                    "dead rows skipped"
                );
            }
            let (_, n) = memo.key.as_ref().expect("the memo was filled");
            assert_eq!(*n, nprobe.min(16), "nprobe is capped at the list count");
        }
    }
}
