//! `ember ingest`, `train`, `knn`, `snapshot` and `restore` end to end
//! through the real binary: a restored snapshot answers every query with
//! output identical to the original's at the snapshot point.

use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ember ARGS` whose reader has gone away before it writes, as in
/// `ember stats STORE | head -1`.
fn with_closed_stdout(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// MovieLens-style ratings: 200 users of 5 tastes, 12 of their taste's 20
/// items each.
fn ratings() -> String {
    let mut csv = String::from("user_id,item_id,rating,timestamp\n");
    for user in 0..200u64 {
        let taste = user % 5;
        for t in 0..12u64 {
            let item = taste * 20 + (user * 7 + t * 3) % 20;
            writeln!(csv, "{user},{item},5,{}", 1_000 + t).unwrap();
        }
    }
    csv
}

#[test]
fn ingest_train_knn_snapshot_restore_give_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, snap, restored) = (
        dir.path().join("store"),
        dir.path().join("snap"),
        dir.path().join("restored"),
    );
    let csv = dir.path().join("ratings.csv");
    std::fs::write(&csv, ratings()).unwrap();

    let out = ok(&ember(&["ingest", path(&store), path(&csv), "--dim", "16", "--strict"]));
    assert!(out.contains("ingested 2400 events (0 bad lines skipped)"), "{out}");
    let out = ok(&ember(&["train", path(&store)]));
    assert!(
        out.contains("full round: generation 1, 2400 new events, 100 items"),
        "{out}"
    );

    let queries: [&[&str]; 4] = [
        &["--item", "7"],
        &["--user", "3"],
        &["--seeds", "4", "-k", "5"],
        &["--vector", "1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", "--json"],
    ];
    let answer = |dir: &Path, q: &[&str]| -> String {
        let mut args = vec!["knn", path(dir)];
        args.extend_from_slice(q);
        ok(&ember(&args))
    };
    let before: Vec<String> = queries.iter().map(|q| answer(&store, q)).collect();
    assert!(before[0].contains("rank"), "a table: {}", before[0]);
    assert_eq!(before[0].lines().count(), 11);
    assert!(before[3].starts_with("[{\"id\":"), "{}", before[3]);
    // Item 7's neighbours share its taste (items 0..20).
    let same_taste = before[0].lines().skip(1).filter(|l| {
        let id: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
        id < 20
    });
    assert!(same_taste.count() >= 8, "{}", before[0]);

    let out = ok(&ember(&["snapshot", path(&store), path(&snap)]));
    assert!(out.contains("hard-linked"), "{out}");
    // The original moves on after the snapshot.
    let more = dir.path().join("more.csv");
    std::fs::write(&more, "user_id,item_id,timestamp\n3,99,5000\n3,98,5001\n").unwrap();
    ok(&ember(&["ingest", path(&store), path(&more)]));
    ok(&ember(&["train", path(&store), "--full"]));

    ok(&ember(&["restore", path(&snap), path(&restored)]));
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&answer(&restored, q), b, "{q:?}");
    }
    let refused = ember(&["restore", path(&snap), path(&restored)]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
}

#[test]
fn bad_csv_lines_are_reported_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "user_id,item_id,timestamp\n1,2,3\n1,x,4\n2,3\n2,4,5,nan\n3,5,6\n").unwrap();

    let strict = ember(&["ingest", path(&store), path(&csv), "--dim", "8", "--strict"]);
    assert!(!strict.status.success());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    for line in [
        "line 3: item_id \"x\"",
        "line 4: expected 3 or 4 fields",
        "line 5: weight \"nan\"",
    ] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    assert!(stderr.contains("nothing ingested"), "{stderr}");
    assert!(!store.exists(), "strict mode wrote nothing");

    let out = ok(&ember(&["ingest", path(&store), path(&csv), "--dim", "8"]));
    assert!(out.contains("ingested 2 events (3 bad lines skipped)"), "{out}");
    let missing = ember(&["knn", path(&dir.path().join("nowhere")), "--item", "1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not an emberdb store"));
}

#[test]
fn ingest_takes_json_lines_events_and_fvecs_or_csv_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"user_id\": 1, \"item_id\": 10, \"timestamp\": 5}\n{\"user_id\":1,\"item_id\":11,\"timestamp\":6,\"weight\":2.5}\n{\"user_id\":1}\n",
    )
    .unwrap();
    let trained = dir.path().join("trained");
    let out = ember(&["ingest", path(&trained), path(&events), "--dim", "8"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3: missing \"item_id\""));
    assert!(ok(&out).contains("ingested 2 events (1 bad line skipped)"));

    // Host-fed: vectors from CSV (with a header and one bad line) and fvecs.
    let host = dir.path().join("host");
    let csv = dir.path().join("vectors.csv");
    std::fs::write(&csv, "id,a,b,c\n1,1,0,0\n2,0.9,0.1,0\nthree,0,0,1\n4,0,0,1\n").unwrap();
    let out = ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 4: id \"three\""));
    assert!(ok(&out).contains("ingested 3 vectors (1 bad entry skipped, 0 refused)"));
    let mut fvecs = Vec::new();
    for v in [[0.0f32, 1.0, 0.0], [0.0, 0.9, 0.1]] {
        fvecs.extend_from_slice(&3i32.to_le_bytes());
        v.iter().for_each(|x| fvecs.extend_from_slice(&x.to_le_bytes()));
    }
    let fv = dir.path().join("more.fvecs");
    std::fs::write(&fv, &fvecs).unwrap();
    std::fs::write(dir.path().join("more.fvecs.ids"), "20\n21\n").unwrap();
    assert!(ok(&ember(&["ingest", path(&host), path(&fv), "--vectors"])).contains("ingested 2 vectors"));
    let hits = ok(&ember(&["knn", path(&host), "--vector", "0,1,0", "-k", "2", "--json"]));
    assert!(hits.starts_with("[{\"id\":20,"), "{hits}");
    assert!(hits.contains("{\"id\":21,"), "{hits}");
    // Strict: a wrong dimension stops everything before any write.
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "30,1,0,0\n31,1,0\n").unwrap();
    let out = ember(&["ingest", path(&host), path(&wrong), "--vectors", "--strict"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing ingested"));
    let none = ok(&ember(&["knn", path(&host), "--vector", "1,0,0", "-k", "10", "--json"]));
    assert!(!none.contains("\"id\":30,"), "{none}");
}

#[test]
fn a_store_held_by_another_process_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let held = emberdb::Store::open(dir.path(), emberdb::Options::new(4)).unwrap();
    let out = ember(&["compact", path(dir.path())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is open in another process"), "{stderr}");
    assert!(
        stderr.contains("run `ember compact` again once that process has closed it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Store::"),
        "no Rust calls in the tools' messages: {stderr}"
    );
    drop(held);
    assert!(ok(&ember(&["compact", path(dir.path())])).contains("nothing to compact"));
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_and_successfully() {
    let dir = tempfile::tempdir().unwrap();
    let (host, trained) = (dir.path().join("host"), dir.path().join("trained"));
    let vectors = dir.path().join("vectors.csv");
    let mut csv = String::new();
    for id in 0..50u64 {
        writeln!(csv, "{id},{},{},1", id % 7, id % 5).unwrap();
    }
    std::fs::write(&vectors, csv).unwrap();
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "3",
    ]));
    let events = dir.path().join("ratings.csv");
    std::fs::write(&events, ratings()).unwrap();
    ok(&ember(&["ingest", path(&trained), path(&events), "--dim", "8"]));
    ok(&ember(&["train", path(&trained)]));

    let commands: [&[&str]; 6] = [
        &["stats", path(&host)],
        &["stats", path(&trained)],
        &["knn", path(&host), "--vector", "1,1,1", "-k", "40"],
        &["knn", path(&host), "--vector", "1,1,1", "-k", "40", "--json"],
        &["knn", path(&trained), "--item", "7"],
        &["verify", path(&host)],
    ];
    for args in commands {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// The command failed; its stderr.
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Before the first training round a trained store has events but no
/// vectors: every query says so, names `ember train`, and fails.
#[test]
fn queries_before_the_first_round_say_to_train_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("ratings.csv");
    std::fs::write(&csv, ratings()).unwrap();
    ok(&ember(&["ingest", path(&store), path(&csv), "--dim", "8"]));
    let train = format!("run `ember train {}` first", path(&store));
    let queries: [&[&str]; 5] = [
        &["knn", path(&store), "--item", "1"],
        &["knn", path(&store), "--user", "1"],
        &["knn", path(&store), "--seeds", "1", "--json"],
        &["knn", path(&store), "--vector", "[1,0,0,0,0,0,0,0]"],
        &["get", path(&store), "1"],
    ];
    for args in queries {
        let err = failed(&ember(args));
        assert!(err.contains("has not been trained yet"), "{args:?}: {err}");
        assert!(err.contains(&train), "{args:?}: {err}");
        assert!(!err.contains("not in the store"), "{args:?}: {err}");
    }
    // The history is there before any round.
    assert!(!ok(&ember(&["history", path(&store), "1"])).is_empty());
    ok(&ember(&["train", path(&store)]));
    let out = ok(&ember(&["knn", path(&store), "--user", "1"]));
    assert_eq!(out.lines().count(), 11, "{out}");
    let out = ok(&ember(&["knn", path(&store), "--item", "1"]));
    assert_eq!(out.lines().count(), 11, "{out}");
}

/// `ember get` prints an item's stored vector (in the form `knn --vector`
/// takes, or JSON); `ember history` a user's items, oldest first. Unknown
/// ids fail with a clear message.
#[test]
fn get_prints_a_vector_and_history_a_users_items() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "1,3,4\n2,0,1\n").unwrap();
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "2",
    ]));
    // Stored normalised (cosine), one line of comma-separated numbers.
    let text = ok(&ember(&["get", path(&host), "1"]));
    let v: Vec<f32> = text.trim_end().split(',').map(|x| x.parse().unwrap()).collect();
    assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6, "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(&ember(&["get", path(&host), "2", "--json"]))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id": 2, "space": "default", "vector": [0.0, 1.0]})
    );
    let err = failed(&ember(&["get", path(&host), "3"]));
    assert!(err.contains("item 3 is not in space \"default\""), "{err}");
    let err = failed(&ember(&["get", path(&host), "1", "--space", "nope"]));
    assert!(err.contains("no space \"nope\""), "{err}");
    // What get prints, knn --vector takes.
    let v = ok(&ember(&["get", path(&host), "1"]));
    let hits = ok(&ember(&["knn", path(&host), "--vector", v.trim(), "-k", "1", "--json"]));
    assert!(hits.starts_with("[{\"id\":1,"), "{hits}");

    let store = dir.path().join("trained");
    let events = dir.path().join("events.csv");
    std::fs::write(&events, "user_id,item_id,timestamp\n5,30,3\n5,10,1\n6,11,1\n5,20,2\n").unwrap();
    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "4"]));
    assert_eq!(ok(&ember(&["history", path(&store), "5"])), "10\n20\n30\n");
    let json: serde_json::Value = serde_json::from_str(&ok(&ember(&["history", path(&store), "6", "--json"]))).unwrap();
    assert_eq!(json, serde_json::json!({"user": 6, "items": [11]}));
    let err = failed(&ember(&["history", path(&store), "7"]));
    assert!(err.contains("user 7 has no events"), "{err}");
    ok(&ember(&["train", path(&store)]));
    let v = ok(&ember(&["get", path(&store), "10", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(json["vector"].as_array().unwrap().len(), 4, "{v}");
}

/// `knn --vector` takes a JSON array as well as comma-separated numbers,
/// and refuses anything else with both forms named.
#[test]
fn knn_takes_a_json_array_vector() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "1,1,0,0\n2,0,1,0\n3,0,0,1\n").unwrap();
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "3",
    ]));
    let csv = ok(&ember(&["knn", path(&host), "--vector", "0, 1, 0.1", "--json"]));
    for v in ["[0, 1, 0.1]", " [0.0,1.0,1e-1] ", "[0,1,0.1]"] {
        assert_eq!(ok(&ember(&["knn", path(&host), "--vector", v, "--json"])), csv, "{v}");
    }
    assert!(csv.starts_with("[{\"id\":2,"), "{csv}");
    for bad in ["[0, \"x\", 1]", "[]", "[0, 1", "a,b", ""] {
        let err = failed(&ember(&["knn", path(&host), "--vector", bad]));
        assert!(
            err.contains("expected a JSON array of numbers ([0.1, 0.2]) or comma-separated numbers"),
            "{bad}: {err}"
        );
    }
}

/// The tools' messages name commands and flags, never the library's calls
/// (`Options::trained`, `upsert`, `Store::snapshot`).
#[test]
fn errors_name_commands_and_flags_not_rust_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (host, trained) = (dir.path().join("host"), dir.path().join("trained"));
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "1,1,0\n").unwrap();
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "2",
    ]));
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--space",
        "text",
        "--dim",
        "2",
    ]));
    let events = dir.path().join("events.csv");
    std::fs::write(&events, ratings()).unwrap();
    ok(&ember(&["ingest", path(&trained), path(&events), "--dim", "4"]));
    let cases: [(&[&str], &str); 5] = [
        (&["train", path(&host)], "ember ingest STORE EVENTS --dim N"),
        (&["train", path(&host), "--space", "text"], "space \"text\" of store"),
        (
            &["ingest", path(&trained), path(&vectors), "--vectors"],
            "--space NAME --dim N",
        ),
        (&["knn", path(&host), "--item", "1", "-k", "0"], "-k 0 is out of range"),
        (
            &["export", path(&host), "--similar", "/dev/null", "--top", "0"],
            "--top 0 is out of range",
        ),
    ];
    for (args, expected) in cases {
        let err = failed(&ember(args));
        assert!(err.contains(expected), "{args:?}: {err}");
        for rust in ["Options::", "Store::", "SpaceSpec::", "upsert", "k = 0"] {
            assert!(!err.contains(rust), "{args:?}: {err}");
        }
    }
}

#[test]
fn train_flags_override_one_round_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ratings.csv");
    std::fs::write(&csv, ratings()).unwrap();
    let store = dir.path().join("s");
    ok(&ember(&["ingest", path(&store), path(&csv), "--dim", "8"]));
    let out = ok(&ember(&[
        "train",
        path(&store),
        "--full",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--negatives",
        "3",
        "--window",
        "4",
        "--threads",
        "1",
        "--seed",
        "5",
    ]));
    assert!(out.contains("full round") && out.contains(", 2 epochs,"), "{out}");
    // Not saved: the next round uses the store's own options (20 epochs).
    let out = ok(&ember(&["train", path(&store), "--full"]));
    assert!(out.contains(", 20 epochs,"), "{out}");
    let bad = ember(&["train", path(&store), "--epochs", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("epochs"), "{:?}", bad);
}
