//! Running the real `ember` binary from the tools' tests, and reading what
//! it printed.
#![allow(dead_code)] // each test binary uses some of these

use std::path::Path;
use std::process::{Command, Output};

pub fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", stderr(out));
    stdout
}

/// The command failed; its stderr.
pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    stderr(out)
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn fvecs(rows: &[[f32; 3]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in rows {
        bytes.extend_from_slice(&3i32.to_le_bytes());
        v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    bytes
}

/// Item `id`'s vector in the host-fed store at `dir`.
pub fn vector(dir: &Path, id: u64) -> Option<Vec<f32>> {
    let store = emberdb::Store::open(dir, emberdb::Options::existing()).unwrap();
    store.get(id).unwrap()
}

/// Every file under `dir` (by its path relative to `dir`) with its bytes:
/// what "the store's files are unchanged" compares.
pub fn contents(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
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
