//! `ember eval` end to end through the real binary, on a small ratings file
//! with planted tastes (the MovieLens numbers come from running it on
//! `../shared/data/ml-100k/ratings.csv`, see ARCHITECTURE.md).

use std::fmt::Write;
use std::process::Command;

/// Users of 6 tastes rate 14 of their taste's 30 movies, one per second in
/// a per-user random order; the last is held out.
fn planted_ratings() -> String {
    let mut csv = String::from("user_id,item_id,rating,timestamp\n");
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    for user in 0..300u64 {
        let taste = user % 6;
        let mut items: Vec<u64> = (0..30).map(|j| taste * 30 + j).collect();
        for i in (1..items.len()).rev() {
            items.swap(i, next() as usize % (i + 1));
        }
        for (t, item) in items.iter().take(14).enumerate() {
            writeln!(csv, "{user},{item},4,{}", 1_000 + t).unwrap();
        }
    }
    csv
}

fn hr(stdout: &str, method: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(method))
        .unwrap_or_else(|| panic!("{method}: {stdout}"));
    line[method.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn eval_reports_every_method_and_learns_the_tastes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ratings.csv");
    std::fs::write(&path, planted_ratings()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "eval",
            path.to_str().unwrap(),
            "--dim",
            "16",
            "--epochs",
            "5",
            "--threads",
            "1",
            "--incremental",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("300 users, 3900 training events"), "{stdout}");
    assert!(
        stdout.contains("ns_exponent -0.5"),
        "the hyperparameters are printed: {stdout}"
    );
    // Popularity is no better than chance among ~16 unseen taste mates of
    // 166 unseen items; the learned tastes put the held-out item among 16
    // candidates, so recall must beat it clearly.
    let popularity = hr(&stdout, "popularity");
    let user = hr(&stdout, "Query::user mean");
    let seeds = hr(&stdout, "Query::seeds");
    assert!(
        user > 0.4 && user > 2.0 * popularity,
        "user {user} vs popularity {popularity}"
    );
    assert!(seeds > 0.4, "seeds {seeds}");
    assert!(stdout.contains("incremental round (20%)"), "{stdout}");
}

#[test]
fn eval_refuses_a_malformed_file_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "user_id,item_id,rating,timestamp\n1,2,3,4\n1,x,3,5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["eval", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
}

/// `--space-kind youtube-dnn` trains a DNN space beside item2vec and ranks
/// it; with `--users`, tastes given as a feature are learned too.
#[test]
fn eval_ranks_the_youtube_dnn_beside_item2vec() {
    let dir = tempfile::tempdir().unwrap();
    let (ratings, users) = (dir.path().join("ratings.csv"), dir.path().join("users.csv"));
    std::fs::write(&ratings, planted_ratings()).unwrap();
    let mut csv = String::from("user_id,taste\n");
    for user in 0..300u64 {
        writeln!(csv, "{user},t{}", user % 6).unwrap();
    }
    std::fs::write(&users, csv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "eval",
            ratings.to_str().unwrap(),
            "--dim",
            "16",
            "--epochs",
            "3",
            "--threads",
            "1",
            "--space-kind",
            "youtube-dnn",
            "--users",
            users.to_str().unwrap(),
            "--dnn-epochs",
            "10",
            "--dnn-lr",
            "0.01",
            "--dnn-hidden",
            "32",
            "--dnn-negatives",
            "64",
            "--k",
            "20",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("DNN: features of 300 users"), "{stdout}");
    assert!(stdout.contains("HR@20"), "{stdout}");
    assert!(stdout.contains("GFLOP/s"), "{stdout}");
    let popularity = hr(&stdout, "popularity");
    let dnn = hr(&stdout, "YouTube DNN user");
    // 16 unseen taste mates among 166 unseen items: the DNN's top 20 holds
    // the held-out item far more often than popularity's.
    assert!(
        dnn > 0.5 && dnn > 2.0 * popularity,
        "dnn {dnn} vs popularity {popularity}"
    );
}
