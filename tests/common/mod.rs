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
pub fn flip_bit(path: &std::path::Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}
