//! The quick start's demo runs end to end through the real binary.

use std::process::Command;

#[test]
fn demo_runs_and_reports_identical_results_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["demo", store.to_str().unwrap(), "--items", "2000", "--events", "60000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the same query gives identical results"), "{stdout}");
    // Both trained channels in one call, each named.
    for space in ["default", "dnn"] {
        assert!(
            stdout.contains(&format!("trained {space}: full round, generation 1")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("  trained {space}: incremental round, generation 2")),
            "{stdout}"
        );
    }
    // Users mostly watch one genre, so trained neighbours and recall are
    // mostly in it (chance: 1 in 40).
    let share = |marker: &str| -> usize {
        let line = stdout
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("{marker}: {stdout}"));
        let at = line.rfind("/10").unwrap();
        line[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(share("share its genre") >= 8, "{stdout}");
    assert!(share("Query::user .recent(30)") >= 7, "{stdout}");
    assert!(share("queryable at once") >= 7, "{stdout}");
    // Every channel and both blends find the user's genre far above chance.
    assert!(share("Query::blend of item2vec, the DNN") >= 6, "{stdout}");
    // Averaged over 1000 users, each trained channel and the blend are far
    // above chance (0.25/10).
    let average = |marker: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("{marker}: {stdout}"));
        let at = line.find("/10").unwrap();
        line[..at].rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(stdout.contains("recall for 1000 users per channel"), "{stdout}");
    assert!(average("Query::user(u).recent(30)") >= 6.0, "{stdout}");
    assert!(average("Query::user(u).space(\"dnn\")") >= 3.0, "{stdout}");
    assert!(average("blend of the three channels") >= 6.0, "{stdout}");
    assert!(store.join("meta").is_dir(), "the store was kept in the given directory");

    let stats = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["stats", store.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{text}");
    assert!(text.contains("  trained        generation 2"), "{text}");
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
