//! The quick start's demo runs end to end through the real binary.

use std::process::Command;

#[test]
fn demo_runs_and_reports_identical_results_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["demo", store.to_str().unwrap(), "--items", "12000", "--events", "50000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the same query gives identical results"), "{stdout}");
    assert!(stdout.contains("10/10 share its genre"), "{stdout}");
    assert!(store.join("meta").is_dir(), "the store was kept in the given directory");

    let stats = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["stats", store.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{text}");
    assert!(text.contains("rows             12000 (12000 live)"), "{text}");
}

#[test]
fn stats_on_a_directory_without_a_store_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["stats", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not an emberdb store"), "{stderr}");
}
