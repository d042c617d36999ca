//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` random vectors of `dim` components in [-1, 1), from a fixed seed.
pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect()
}

/// A vector that depends only on `id` (so a reader can tell a whole row
/// from a torn or foreign one), never zero.
pub fn vector_for(id: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((id.wrapping_mul(31).wrapping_add(j as u64 * 17)) % 997) as f32 / 997.0 + 0.001)
        .collect()
}

pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    v.iter().map(|&x| (x as f64 / norm) as f32).collect()
}

/// Copies a directory tree (a closed store) to `dst`.
pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// The files in `dir` whose names start with `prefix`, sorted.
/// Every file under `dir` (by its path relative to `dir`) with its bytes:
/// what "the store's files are unchanged" compares.
pub fn contents(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

pub fn files_with_prefix(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// Flips one bit of the byte at `offset` of `path`.
/// Where a segment file's rows end (and its id order begins), from its
/// header: `vectors_offset + 4 * count * dim`.
pub fn rows_end(segment: &std::path::Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let dim = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as u64;
    u64_at(40) + 4 * u64_at(16) * dim
}

pub fn flip_bit(path: &std::path::Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `n` vectors drawn like `../shared/bench/make_dataset.py` draws them: a
/// mixture of 256 Gaussian clusters with centres on the unit sphere,
/// log-uniform spreads in [0.15, 0.9] and unequal weights, plus 10% uniform
/// noise in [-1, 1]^dim, each normalised; then each is scaled by a factor in
/// [0.5, 1.5], so inner product and L2 see unequal norms (as two-tower
/// embeddings have). A fixed seed gives the same set every time.
pub fn clustered_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let clusters = 256;
    let unit = |v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| unit((0..dim).map(|_| gaussian(&mut rng)).collect()))
        .collect();
    let spreads: Vec<f32> = (0..clusters)
        .map(|_| rng.gen_range(0.15f32.ln()..0.9f32.ln()).exp())
        .collect();
    let weights: Vec<f64> = (0..clusters).map(|_| rng.gen_range(0.25..1.75)).collect();
    let total: f64 = weights.iter().sum();
    (0..n)
        .map(|_| {
            let v = if rng.gen_bool(0.1) {
                (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
            } else {
                let mut pick = rng.gen_range(0.0..total);
                let c = weights.iter().position(|w| {
                    pick -= w;
                    pick < 0.0
                });
                let c = c.unwrap_or(clusters - 1);
                let sigma = spreads[c] / (dim as f32).sqrt();
                centres[c].iter().map(|x| x + sigma * gaussian(&mut rng)).collect()
            };
            let scale = rng.gen_range(0.5f32..1.5);
            unit(v).into_iter().map(|x| x * scale).collect()
        })
        .collect()
}

/// A planted data set for training tests: `clusters` hidden clusters of
/// `per_cluster` items (item `c * per_cluster + j` is in cluster `c`);
/// each user belongs to one cluster (user % clusters) and draws `len`
/// distinct items from it, in time order. Returns the events.
#[allow(dead_code)]
pub fn planted_events(users: u64, clusters: u64, per_cluster: u64, len: usize, seed: u64) -> Vec<emberdb::Event> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    for user in 0..users {
        let c = user % clusters;
        let mut items: Vec<u64> = (0..per_cluster).map(|j| c * per_cluster + j).collect();
        items.shuffle(&mut rng);
        for (t, item) in items.into_iter().take(len).enumerate() {
            events.push(emberdb::Event::new(user, item, 1_000 + t as u64));
        }
    }
    events
}
