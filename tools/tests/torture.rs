//! `ember torture`: the SIGKILL loop against the real binary finds no lost
//! acknowledged write, and refuses a directory that already holds files.

mod common;

use std::process::Output;

use common::ember;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_short_torture_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t");
    let out = ember(&["torture", store.to_str().unwrap(), "--kills", "8", "--seed", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("8 kills survived"), "{t}");
    assert!(
        t.contains(", 0 lost;") && t.contains("verify clean after every kill"),
        "{t}"
    );
    // The store it leaves is a healthy store.
    let verify = ember(&["verify", store.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn torture_refuses_a_directory_with_files_in_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious"), b"x").unwrap();
    let out = ember(&["torture", dir.path().to_str().unwrap(), "--kills", "1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert!(dir.path().join("precious").exists());
}
