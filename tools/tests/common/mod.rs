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
