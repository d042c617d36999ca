//! `ember ingest` refusing what it cannot use, through the real binary: a
//! file with no valid row creates no store, a skipped header is said, and
//! `--strict` lists every bad line and ingests nothing.

mod common;

use common::{ember, failed, ok, path, stderr, vector};

/// A file with no valid row (MovieLens's items.csv given by mistake, an
/// empty file, vectors none of which fits) fails and writes nothing: no
/// store is created, and an existing one is left as it was.
#[test]
fn a_file_with_no_valid_row_fails_and_creates_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let items = file(
        "items.csv",
        "item_id,title,year,genres\n1,Toy Story,1995,Animation|Children's|Comedy\n2,\"City of Lost Children, The\",1995,Adventure|Sci-Fi\n",
    );
    let cases = [
        (items.clone(), "no event in the file (2 bad lines"),
        (file("empty.csv", ""), "no event in the file (0 bad lines"),
        (
            file("header.tsv", "user_id\titem_id\ttimestamp\n"),
            "no event in the file (0 bad lines",
        ),
        (
            file("bad.jsonl", "{\"user_id\":1}\n"),
            "no event in the file (1 bad line;",
        ),
    ];
    for (input, expected) in &cases {
        let err = failed(&ember(&["ingest", path(&store), path(input), "--dim", "8"]));
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains("nothing ingested, no store created"), "{err}");
        assert!(!store.exists(), "{}: no directory left behind", input.display());
    }
    // Vectors: none in the file, or none of the dimension asked.
    let vectors = file("vectors.csv", "1,1,0\n2,0,1\n");
    let err = failed(&ember(&[
        "ingest",
        path(&store),
        path(&items),
        "--vectors",
        "--dim",
        "3",
    ]));
    assert!(err.contains("no vector in the file"), "{err}");
    let err = failed(&ember(&[
        "ingest",
        path(&store),
        path(&vectors),
        "--vectors",
        "--dim",
        "3",
    ]));
    assert!(
        err.contains("none of its 2 vectors fits space \"default\" (3 finite components"),
        "{err}"
    );
    assert!(!store.exists(), "no directory left behind");

    // An existing store is left unchanged.
    let events = file("events.csv", "1,2,3\n1,3,4\n");
    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "8"]));
    let before = ok(&ember(&["stats", path(&store)]));
    let err = failed(&ember(&["ingest", path(&store), path(&items)]));
    assert!(err.contains("nothing ingested, the store is unchanged"), "{err}");
    assert_eq!(ok(&ember(&["stats", path(&store)])), before);
    assert!(before.contains("2 events not trained yet"), "{before}");

    let host = dir.path().join("host");
    ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "2",
    ]));
    let wide = file("wide.csv", "5,1,0,0\n");
    let err = failed(&ember(&["ingest", path(&host), path(&wide), "--vectors"]));
    assert!(err.contains("the store is unchanged"), "{err}");
    // A new space is not created for vectors that do not fit it.
    let err = failed(&ember(&[
        "ingest",
        path(&host),
        path(&wide),
        "--vectors",
        "--space",
        "text",
        "--dim",
        "2",
    ]));
    assert!(err.contains("fits space \"text\""), "{err}");
    let stats = ok(&ember(&["stats", path(&host)]));
    assert!(stats.contains("spaces           default\n"), "{stats}");
    assert_eq!(vector(&host, 5), None);
}

/// A first line is a header only when it names the columns (so never a
/// line that parses as data), in a TSV as in a CSV; stderr says when one
/// is skipped, and a headerless file ingests every line.
#[test]
fn a_skipped_header_is_said_on_stderr_and_a_data_first_line_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("events.tsv");
    std::fs::write(&input, "user_id\titem_id\ttimestamp\n1\t2\t3\n").unwrap();
    let out = ember(&["ingest", path(&store), path(&input), "--dim", "8", "--strict"]);
    assert!(ok(&out).contains("ingested 1 event (0 bad lines skipped)"));
    assert!(
        stderr(&out).contains("events.tsv: line 1: skipped as a header (column names)"),
        "{}",
        stderr(&out)
    );
    for (name, text) in [("plain.tsv", "7\t8\t9\n7\t9\t10\n"), ("plain.csv", "7,8,9\n7,9,10\n")] {
        let input = dir.path().join(name);
        std::fs::write(&input, text).unwrap();
        let out = ember(&["ingest", path(&store), path(&input), "--strict"]);
        assert!(ok(&out).contains("ingested 2 events (0 bad lines skipped)"), "{name}");
        assert!(!stderr(&out).contains("header"), "{name}: {}", stderr(&out));
    }
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "userId,movieId,rating,timestamp\n1,2,4.5,3\n").unwrap();
    let out = ember(&["ingest", path(&store), path(&csv), "--strict"]);
    assert!(ok(&out).contains("ingested 1 event"));
    assert!(
        stderr(&out).contains("events.csv: line 1: skipped as a header"),
        "{}",
        stderr(&out)
    );
    // Vectors too.
    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.csv");
    std::fs::write(&vectors, "id,x,y\n1,1,0\n").unwrap();
    let out = ember(&["ingest", path(&host), path(&vectors), "--vectors", "--dim", "2"]);
    assert!(ok(&out).contains("ingested 1 vector "));
    assert!(
        stderr(&out).contains("vectors.csv: line 1: skipped as a header"),
        "{}",
        stderr(&out)
    );
}

/// `--strict` does what its help says: nothing is ingested unless every
/// line is good, and every bad one is listed with its line number, a
/// vector of the wrong dimension included (by its line, not its index).
#[test]
fn strict_lists_every_bad_line_by_its_number_and_ingests_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let csv = dir.path().join("vectors.csv");
    std::fs::write(&csv, "1,1,0,0\n").unwrap();
    ok(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "3"]));
    std::fs::write(&csv, "id,x,y,z\n2,0,1,0\n3,1,0\n\n4,0,0,1,1\n").unwrap();
    let err = failed(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--strict"]));
    assert!(
        err.contains("line 3: item 3 has 2 components (the dimension of space \"default\" is 3)"),
        "{err}"
    );
    assert!(err.contains("line 5: item 4 has 4 components"), "{err}");
    assert!(err.contains("2 bad entries; nothing ingested (--strict)"), "{err}");
    assert_eq!(vector(&host, 2), None, "nothing written");
    let help = ok(&ember(&["ingest", "--help"]));
    assert!(help.contains("--strict"), "{help}");
}
