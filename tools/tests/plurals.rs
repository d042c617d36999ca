//! Counts of one are singular in everything the tools print: "1 round",
//! "1 bad line", "1 item", never "1 rounds".

use std::path::Path;
use std::process::{Command, Output};

use emberdb::{Options, Store, TrainOptions};

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
}

/// Stdout and stderr of a command that succeeded.
fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The plural nouns the tools count.
const PLURALS: &[&str] = &[
    "rounds",
    "items",
    "lines",
    "bad lines",
    "events",
    "new events",
    "training events",
    "vectors",
    "bad entries",
    "users",
    "histories",
    "epochs",
    "pairs",
    "threads",
    "segments",
    "files",
    "metadata records",
    "rows",
    "components",
    "most similar items",
    "finite components",
    "examples",
    "steps",
];

/// Fails on "1 <plural>" where the 1 is a whole number (not "0.1", "21").
fn assert_singular(text: &str) {
    for (at, _) in text.match_indices("1 ") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let rest = &text[at + 2..];
        for p in PLURALS {
            let plural = rest.starts_with(p) && !rest[p.len()..].starts_with(|c: char| c.is_alphanumeric());
            assert!(!plural, "\"1 {p}\" in:\n{text}");
        }
    }
}

#[test]
fn counts_of_one_are_singular() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    drop(
        Store::open(
            &store,
            Options::trained(4).train_options(TrainOptions::default().epochs(1).threads(1)),
        )
        .unwrap(),
    );
    let events = dir.path().join("events.csv");
    std::fs::write(&events, "user_id,item_id,timestamp\n1,2,3\n1,x,4\n").unwrap();
    let mut outputs = vec![ok(&ember(&["ingest", path(&store), path(&events)]))];
    assert!(
        outputs[0].contains("ingested 1 event (1 bad line skipped)"),
        "{}",
        outputs[0]
    );
    outputs.push(ok(&ember(&["stats", path(&store)])));
    assert!(outputs[1].contains("1 event not trained yet"), "{}", outputs[1]);
    let train = ok(&ember(&["train", path(&store)]));
    assert!(train.contains("1 new event, 1 item (1 new), 1 history"), "{train}");
    assert!(train.contains("1 epoch,") && train.contains("on 1 thread)"), "{train}");
    outputs.push(train);
    let stats = ok(&ember(&["stats", path(&store)]));
    assert!(stats.contains("1 item, 1 round, 0 events not trained yet"), "{stats}");
    outputs.push(stats);
    let similar = dir.path().join("similar.csv");
    let export = ok(&ember(&[
        "export",
        path(&store),
        "--similar",
        path(&similar),
        "--top",
        "1",
    ]));
    assert!(export.contains("the 1 most similar item of 1 item"), "{export}");
    outputs.push(export);
    outputs.push(ok(&ember(&["verify", path(&store)])));
    outputs.push(ok(&ember(&["history", path(&store), "1"])));

    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "1,1,0\nx,0,1\n").unwrap();
    let ingest = ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "2",
    ]));
    assert!(
        ingest.contains("ingested 1 vector (1 bad entry skipped, 0 refused)"),
        "{ingest}"
    );
    outputs.push(ingest);
    outputs.push(ok(&ember(&["stats", path(&host)])));

    let ratings = dir.path().join("ratings.csv");
    std::fs::write(&ratings, "user_id,item_id,rating,timestamp\n1,2,5,1\n1,3,5,2\n").unwrap();
    let eval = ok(&ember(&[
        "eval",
        path(&ratings),
        "--dim",
        "4",
        "--epochs",
        "1",
        "--threads",
        "1",
    ]));
    assert!(eval.contains("1 user, 1 training event;"), "{eval}");
    assert!(eval.contains("ingest: 1 event in"), "{eval}");
    assert!(eval.contains("(1 user)"), "{eval}");
    outputs.push(eval);
    // Refusals too.
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "1,1,0\n").unwrap();
    let out = ember(&[
        "ingest",
        path(&dir.path().join("new")),
        path(&one),
        "--vectors",
        "--dim",
        "1",
    ]);
    assert!(!out.status.success());
    let refused = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(refused.contains("(1 finite component, not all zeros)"), "{refused}");
    outputs.push(refused);
    for text in &outputs {
        assert_singular(text);
    }
}
