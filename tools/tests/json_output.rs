//! `--json` of `ember stats` and `ember eval`, and `ember export --similar`
//! in the form its extension names (`.json`, `.jsonl`, else CSV), through
//! the real binary.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

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

/// One JSON object on one line.
fn object(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: Value = serde_json::from_str(stdout).unwrap();
    assert!(v.is_object(), "{stdout}");
    v
}

/// Users of 4 tastes, 6 of their taste's 10 items each.
fn ratings(users: u64) -> String {
    let mut csv = String::from("user_id,item_id,rating,timestamp\n");
    for user in 0..users {
        let taste = user % 4;
        for t in 0..6u64 {
            writeln!(csv, "{user},{},4,{}", taste * 10 + (user + t * 3) % 10, 100 + t).unwrap();
        }
    }
    csv
}

#[test]
fn stats_json_is_one_object_with_every_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (events, vectors) = (dir.path().join("events.csv"), dir.path().join("text.csv"));
    std::fs::write(&events, ratings(40)).unwrap();
    std::fs::write(&vectors, "1,1,0\n2,0,1\n").unwrap();
    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "8"]));
    ok(&ember(&[
        "ingest",
        path(&store),
        path(&vectors),
        "--vectors",
        "--space",
        "text",
        "--dim",
        "2",
    ]));
    let before = object(&ok(&ember(&["stats", path(&store), "--json"])));
    let default = &before["spaces"][0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["kind"], "item2vec");
    assert_eq!(default["trainer"]["generation"], 0);
    // After a reopen an upper bound: every operation logged since the
    // last round (the 2 text vectors too).
    assert!(
        default["trainer"]["untrained_events"].as_u64().unwrap() >= 240,
        "{default}"
    );
    assert!(default["trainer"]["last_round"].is_null());
    ok(&ember(&["train", path(&store)]));

    let s = object(&ok(&ember(&["stats", path(&store), "--json"])));
    assert_eq!(s["store"], path(&store));
    for field in ["wal_bytes", "meta_bytes", "disk_bytes"] {
        assert!(s[field].is_u64(), "{field}: {s}");
    }
    assert!(s["kernels"].is_string() && s["faiss_build"].is_string(), "{s}");
    let spaces = s["spaces"].as_array().unwrap();
    assert_eq!(spaces.len(), 2);
    let (default, text) = (&spaces[0], &spaces[1]);
    assert_eq!(default["dim"], 8);
    assert_eq!(default["metric"], "cosine");
    assert_eq!(default["index"]["type"], "hnsw");
    assert_eq!(default["rows"], 40);
    assert_eq!(default["tombstones"], 0);
    let trainer = &default["trainer"];
    assert_eq!(trainer["generation"], 1);
    assert_eq!(trainer["items"], 40);
    assert_eq!(trainer["rounds"], 1);
    // Only a round run since the store was opened (by this process).
    assert!(trainer["last_round"].is_null(), "{trainer}");
    for field in [
        "live_rows",
        "sealed_segments",
        "indexed_segments",
        "growing_rows",
        "segment_bytes",
    ] {
        assert!(default[field].is_u64(), "{field}: {default}");
    }
    assert!(default["segment_search"].is_array(), "{default}");
    assert_eq!(text["name"], "text");
    assert_eq!(text["kind"], "host");
    assert_eq!(text["live_rows"], 2);
    assert!(text["trainer"].is_null(), "{text}");

    let only = object(&ok(&ember(&["stats", path(&store), "--json", "--space", "text"])));
    assert_eq!(only["spaces"].as_array().unwrap().len(), 1);
    assert_eq!(only["spaces"][0]["name"], "text");
    let help = ok(&ember(&["stats", "--help"]));
    assert!(
        help.contains("untrained_events") && help.contains("faiss_build"),
        "{help}"
    );
}

#[test]
fn eval_json_is_one_object_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.csv");
    std::fs::write(&file, ratings(40)).unwrap();
    let out = ember(&[
        "eval",
        path(&file),
        "--dim",
        "8",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--k",
        "5",
        "--incremental",
        "--sweep-queries",
        "--json",
    ]);
    let e = object(&ok(&out));
    assert_eq!(e["ratings"], path(&file));
    assert_eq!(e["users"], 40);
    assert_eq!(e["training_events"], 200);
    assert_eq!(e["options"]["dim"], 8);
    assert_eq!(e["options"]["epochs"], 2);
    assert_eq!(e["options"]["threads"], 1);
    assert_eq!(e["options"]["k"], 5);
    assert_eq!(e["options"]["space_kind"], "item2vec");
    assert!(e["ingest_seconds"].is_f64(), "{e}");
    let full = &e["full_training"];
    assert_eq!(full["epochs"], 2);
    assert_eq!(full["items"], 40);
    assert_eq!(full["threads"], 1);
    for field in [
        "wall_seconds",
        "training_seconds",
        "publish_seconds",
        "pairs_per_second_per_thread",
    ] {
        assert!(full[field].is_number(), "{field}: {full}");
    }
    assert!(full["pairs"].as_u64().unwrap() > 0, "{full}");
    assert!(e["dnn"].is_null(), "{e}");
    let methods: Vec<&str> = e["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["popularity", "user_mean", "user_max", "seeds"]);
    for m in e["methods"].as_array().unwrap() {
        let (hr, ndcg) = (m["hr"].as_f64().unwrap(), m["ndcg"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&hr) && (0.0..=hr).contains(&ndcg), "{m}");
    }
    assert_eq!(e["ranked_users"], 40);
    let sweep = e["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 6);
    assert_eq!(sweep[0]["recent"], 1);
    assert!(sweep[0]["seeds"]["hr"].is_number(), "{}", sweep[0]);
    let inc = &e["incremental"];
    assert!(
        inc["events_before"].as_u64().unwrap() + inc["events_after"].as_u64().unwrap() == 200,
        "{inc}"
    );
    assert!(
        inc["initial_round"]["pairs"].is_u64() && inc["incremental_round"]["epochs"].is_u64(),
        "{inc}"
    );
    for field in ["cut", "hr", "full_hr", "seconds", "full_seconds"] {
        assert!(inc[field].is_number(), "{field}: {inc}");
    }

    let only = object(&ok(&ember(&[
        "eval",
        path(&file),
        "--dim",
        "8",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--train-only",
        "--json",
    ])));
    assert!(only["methods"].is_null() && only["sweep"].is_null() && only["incremental"].is_null());
    let help = ok(&ember(&["eval", "--help"]));
    assert!(
        help.contains("ranked_users") && help.contains("full_training"),
        "{help}"
    );
}

#[test]
fn export_similar_writes_the_form_its_extension_names() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "1,1,0,0\n2,0.9,0.1,0\n3,0,1,0\n4,0,0.9,0.1\n").unwrap();
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "3",
    ]));
    let export = |file: &str, extra: &[&str]| -> String {
        let target = dir.path().join(file);
        let mut args = vec!["export", path(&host), "--similar", path(&target), "--top", "2"];
        args.extend_from_slice(extra);
        ok(&ember(&args));
        std::fs::read_to_string(&target).unwrap()
    };

    let json = export("similar.json", &[]);
    let all: Value = serde_json::from_str(&json).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4, "{json}");
    assert_eq!(all[0]["item_id"], 1);
    assert_eq!(all[0]["similar"][0]["id"], 2);
    assert!(all[0]["similar"][0]["score"].is_f64(), "{json}");
    assert_eq!(all[0]["similar"].as_array().unwrap().len(), 2);
    // Upper case extension too.
    let upper: Value = serde_json::from_str(&export("SIMILAR.JSON", &[])).unwrap();
    assert_eq!(upper.as_array().unwrap(), all);

    let jsonl = export("similar.jsonl", &[]);
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(&lines, all);
    // --jsonl makes JSON lines whatever the extension.
    assert_eq!(export("similar.txt", &["--jsonl"]), jsonl);

    let csv = export("similar.csv", &[]);
    assert!(csv.starts_with("item_id,rank,similar_id,score\n1,1,2,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4 * 2);
    assert!(export("similar", &[]).starts_with("item_id,rank,"));

    // An empty store gets an empty array.
    let empty = dir.path().join("empty");
    drop(emberdb::Store::open(&empty, emberdb::Options::new(3)).unwrap());
    let target = dir.path().join("none.json");
    ok(&ember(&["export", path(&empty), "--similar", path(&target)]));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!([]));
}
