//! Every per-space `ember` command takes `--space NAME`: ingest vectors into
//! a new host-fed space beside a trained default space, query, train, stats,
//! verify, compact and export it, and refuse what makes no sense.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

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

fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_store_command_works_per_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (events, vectors) = (dir.path().join("events.csv"), dir.path().join("text.csv"));
    let mut csv = String::from("user_id,item_id,timestamp\n");
    for user in 0..100u64 {
        for t in 0..10u64 {
            writeln!(csv, "{user},{},{}", (user % 4) * 10 + (user + t) % 10, t).unwrap();
        }
    }
    std::fs::write(&events, csv).unwrap();
    // Item i's text vector points along axis i % 4.
    let mut text = String::new();
    for item in 0..40u64 {
        let mut v = [0.01f32; 4];
        v[(item % 4) as usize] = 1.0;
        writeln!(text, "{item},{},{},{},{}", v[0], v[1], v[2], v[3]).unwrap();
    }
    std::fs::write(&vectors, text).unwrap();

    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "16"]));
    let err = fails(&ember(&["ingest", path(&store), path(&events), "--space", "text"]));
    assert!(err.contains("events belong to every space"), "{err}");
    let err = fails(&ember(&[
        "ingest",
        path(&store),
        path(&vectors),
        "--vectors",
        "--space",
        "text",
    ]));
    assert!(err.contains("pass --dim"), "{err}");
    let out = ok(&ember(&[
        "ingest",
        path(&store),
        path(&vectors),
        "--vectors",
        "--space",
        "text",
        "--dim",
        "4",
    ]));
    assert!(out.contains("ingested 40 vectors"), "{out}");

    let out = ok(&ember(&["train", path(&store)]));
    assert!(out.contains("space \"default\": full round"), "{out}");
    assert!(!out.contains("\"text\""), "the host space is not trained: {out}");
    let err = fails(&ember(&["train", path(&store), "--space", "text"]));
    assert!(err.contains("\"text\""), "{err}");

    // Text neighbours of item 5 are the items on its axis (5 % 4 = 1).
    let out = ok(&ember(&[
        "knn",
        path(&store),
        "--item",
        "5",
        "--space",
        "text",
        "-k",
        "5",
        "--json",
    ]));
    let hits: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h["id"].as_u64().unwrap() % 4 == 1), "{out}");
    let err = fails(&ember(&["knn", path(&store), "--item", "5", "--space", "nope"]));
    assert!(err.contains("no space \"nope\""), "{err}");

    let stats = ok(&ember(&["stats", path(&store)]));
    assert!(stats.contains("spaces           default, text"), "{stats}");
    assert!(stats.contains("space \"text\"\n  kind           host"), "{stats}");
    let only = ok(&ember(&["stats", path(&store), "--space", "text"]));
    assert!(!only.contains("space \"default\""), "{only}");

    assert!(ok(&ember(&["verify", path(&store), "--space", "text"])).starts_with("healthy"));
    ok(&ember(&["compact", path(&store), "--space", "text"]));

    let out = ok(&ember(&[
        "export",
        path(&store),
        "--vectors",
        path(&dir.path().join("v.fvecs")),
    ]));
    assert!(out.contains("space \"default\": 40 vectors"), "{out}");
    assert!(out.contains("space \"text\": 40 vectors"), "{out}");
    let text_fvecs = std::fs::read(dir.path().join("v.text.fvecs")).unwrap();
    assert_eq!(text_fvecs.len(), 40 * (4 + 4 * 4));
    assert_eq!(
        std::fs::read(dir.path().join("v.fvecs")).unwrap().len(),
        40 * (4 + 4 * 16)
    );
    ok(&ember(&[
        "export",
        path(&store),
        "--space",
        "text",
        "--vectors",
        path(&dir.path().join("only.fvecs")),
    ]));
    assert_eq!(std::fs::read(dir.path().join("only.fvecs")).unwrap(), text_fvecs);
    assert!(ok(&ember(&["verify", path(&store)])).starts_with("healthy"));
}
