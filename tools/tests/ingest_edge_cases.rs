//! `ember ingest` edge cases through the real binary: headers known by
//! their names, a leading BOM, `.ids` files that are unreadable or
//! miscounted, a `--dim` that differs from the store's, and error messages
//! that echo huge input.

mod common;

use std::process::Command;

use common::{ember, failed, fvecs, ok, path, vector};

#[test]
fn a_first_line_with_a_bad_field_is_a_bad_line_not_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("events.csv");

    std::fs::write(&csv, "1,abc,3\n1,2,3\n").unwrap();
    let err = failed(&ember(&["ingest", path(&store), path(&csv), "--dim", "8", "--strict"]));
    assert!(
        err.contains("line 1: item_id \"abc\" is not a non-negative integer"),
        "{err}"
    );
    assert!(err.contains("1 bad line; nothing ingested (--strict)"), "{err}");
    assert!(!store.exists(), "strict mode wrote nothing");
    let out = ok(&ember(&["ingest", path(&store), path(&csv), "--dim", "8"]));
    assert!(out.contains("ingested 1 event (1 bad line skipped)"), "{out}");

    // Identifier-like, but no known column: data, not a header.
    std::fs::write(&csv, "abc,def,ghi\n1,2,3\n").unwrap();
    let err = failed(&ember(&["ingest", path(&store), path(&csv), "--strict"]));
    assert!(err.contains("line 1: user_id \"abc\""), "{err}");

    // Headers of known column names are still skipped, in their spellings.
    for header in [
        "user_id,item_id,timestamp",
        "userId,movieId,rating,timestamp",
        "user,item,ts",
        "\"user_id\",\"item_id\",\"time\",\"weight\"",
    ] {
        std::fs::write(&csv, format!("{header}\n1,2,3,4\n")).unwrap();
        let out = ok(&ember(&["ingest", path(&store), path(&csv), "--strict"]));
        assert!(
            out.contains("ingested 1 event (0 bad lines skipped)"),
            "{header}: {out}"
        );
    }
}

#[test]
fn a_vectors_csv_header_is_known_by_its_id_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("vectors.csv");

    std::fs::write(&csv, "abc,1,0,0\n2,0,1,0\n").unwrap();
    let err = failed(&ember(&[
        "ingest",
        path(&store),
        path(&csv),
        "--vectors",
        "--dim",
        "3",
        "--strict",
    ]));
    assert!(
        err.contains("line 1: id \"abc\" is not a non-negative integer"),
        "{err}"
    );
    assert!(err.contains("nothing ingested"), "{err}");
    assert!(!store.exists(), "strict mode wrote nothing");

    for header in ["id,v1,v2,v3", "item_id,x,y,z", "movieId,a,b,c"] {
        std::fs::write(&csv, format!("{header}\n1,1,0,0\n")).unwrap();
        let out = ok(&ember(&[
            "ingest",
            path(&store),
            path(&csv),
            "--vectors",
            "--dim",
            "3",
            "--strict",
        ]));
        assert!(
            out.contains("ingested 1 vector (0 bad entries skipped, 0 refused)"),
            "{header}: {out}"
        );
    }
}

#[test]
fn a_leading_bom_is_ignored_in_every_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let trained = dir.path().join("trained");
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "\u{feff}1,2,3\n1,3,4\n").unwrap();
    let out = ok(&ember(&[
        "ingest",
        path(&trained),
        path(&csv),
        "--dim",
        "8",
        "--strict",
    ]));
    assert!(out.contains("ingested 2 events (0 bad lines skipped)"), "{out}");
    std::fs::write(&csv, "\u{feff}user_id,item_id,timestamp\n1,2,3\n").unwrap();
    let out = ok(&ember(&["ingest", path(&trained), path(&csv), "--strict"]));
    assert!(out.contains("ingested 1 event (0 bad lines skipped)"), "{out}");
    let jsonl = dir.path().join("events.jsonl");
    std::fs::write(
        &jsonl,
        "\u{feff}{\"user_id\":1,\"item_id\":2,\"timestamp\":3}\n{\"user_id\":1,\"item_id\":3,\"timestamp\":4}\n",
    )
    .unwrap();
    let out = ok(&ember(&["ingest", path(&trained), path(&jsonl), "--strict"]));
    assert!(out.contains("ingested 2 events (0 bad lines skipped)"), "{out}");

    let host = dir.path().join("host");
    let vcsv = dir.path().join("vectors.csv");
    std::fs::write(&vcsv, "\u{feff}1,1,0,0\n2,0,1,0\n").unwrap();
    let out = ok(&ember(&[
        "ingest",
        path(&host),
        path(&vcsv),
        "--vectors",
        "--dim",
        "3",
        "--strict",
    ]));
    assert!(
        out.contains("ingested 2 vectors (0 bad entries skipped, 0 refused)"),
        "{out}"
    );
    let fv = dir.path().join("more.fvecs");
    std::fs::write(&fv, fvecs(&[[0.0, 0.0, 1.0]])).unwrap();
    std::fs::write(dir.path().join("more.fvecs.ids"), "\u{feff}20\n").unwrap();
    let out = ok(&ember(&["ingest", path(&host), path(&fv), "--vectors", "--strict"]));
    assert!(out.contains("ingested 1 vector "), "{out}");
    assert_eq!(vector(&host, 1), Some(vec![1.0, 0.0, 0.0]));
    assert_eq!(vector(&host, 20), Some(vec![0.0, 0.0, 1.0]));
}

#[test]
fn an_ids_file_that_is_unreadable_or_miscounted_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let csv = dir.path().join("vectors.csv");
    std::fs::write(&csv, "0,1,0,0\n1,0,1,0\n").unwrap();
    ok(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "3"]));

    let fv = dir.path().join("new.fvecs");
    std::fs::write(&fv, fvecs(&[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])).unwrap();
    let ids = dir.path().join("new.fvecs.ids");
    let cases: [(&[u8], &str); 3] = [
        (b"\xff\xfe2\n3\n", "valid UTF-8"),
        (b"20\n", "1 id for the 2 vectors"),
        (b"20\n21\n22\n", "3 ids for the 2 vectors"),
    ];
    for (contents, reason) in cases {
        std::fs::write(&ids, contents).unwrap();
        for strict in [false, true] {
            let mut args = vec!["ingest", path(&host), path(&fv), "--vectors"];
            if strict {
                args.push("--strict");
            }
            let err = failed(&ember(&args));
            assert!(err.contains("new.fvecs.ids") && err.contains(reason), "{reason}: {err}");
            assert!(err.contains("nothing ingested"), "{err}");
        }
        // Items 0 and 1 were not overwritten by rows 0 and 1.
        assert_eq!(vector(&host, 0), Some(vec![1.0, 0.0, 0.0]), "{reason}");
        assert_eq!(vector(&host, 1), Some(vec![0.0, 1.0, 0.0]), "{reason}");
        assert_eq!(vector(&host, 20), None, "{reason}");
    }
    // An .ids that cannot be read at all (a directory) is an error too.
    std::fs::remove_file(&ids).unwrap();
    std::fs::create_dir(&ids).unwrap();
    let err = failed(&ember(&["ingest", path(&host), path(&fv), "--vectors"]));
    assert!(err.contains("new.fvecs.ids"), "{err}");
    assert_eq!(vector(&host, 0), Some(vec![1.0, 0.0, 0.0]));

    // Only a missing .ids means the ids are the row numbers.
    std::fs::remove_dir(&ids).unwrap();
    let out = ok(&ember(&["ingest", path(&host), path(&fv), "--vectors", "--strict"]));
    assert!(out.contains("ingested 2 vectors"), "{out}");
    assert_eq!(vector(&host, 0), Some(vec![0.0, 0.0, 1.0]));
}

#[test]
fn a_dim_that_differs_from_the_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let csv = dir.path().join("vectors.csv");
    std::fs::write(&csv, "1,1,0,0\n").unwrap();
    ok(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "3"]));
    std::fs::write(&csv, "5,0,1,0\n").unwrap();
    let err = failed(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "4"]));
    assert!(err.contains("--dim 4 differs from the dimension 3"), "{err}");
    assert_eq!(vector(&host, 5), None, "nothing written");
    ok(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--dim", "3"]));
    assert_eq!(vector(&host, 5), Some(vec![0.0, 1.0, 0.0]));

    let trained = dir.path().join("trained");
    let events = dir.path().join("events.csv");
    std::fs::write(&events, "1,2,3\n1,3,4\n").unwrap();
    ok(&ember(&["ingest", path(&trained), path(&events), "--dim", "8"]));
    let err = failed(&ember(&[
        "ingest",
        path(&trained),
        path(&events),
        "--dim",
        "16",
        "--strict",
    ]));
    assert!(err.contains("--dim 16 differs from the dimension 8"), "{err}");
    let stats = ok(&ember(&["stats", path(&trained)]));
    assert!(stats.contains("2 events not trained yet"), "nothing written: {stats}");
}

#[test]
fn echoed_input_is_cut_to_80_characters_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Each bad line follows a good one, so no header rule is involved.
    let huge = "a".repeat(10 << 20);
    let a80 = format!("\"{}…\" (10485760 bytes)", "a".repeat(80));
    let cases = [
        (
            file("field.csv", &format!("1,2,3\n1,{huge},3\n")),
            false,
            format!("item_id {a80}"),
        ),
        (
            file("weight.csv", &format!("1,2,3\n1,2,3,{huge}\n")),
            false,
            format!("weight {a80}"),
        ),
        (
            file("pair.jsonl", &format!("{{\"user_id\":1,{huge}}}\n")),
            false,
            a80.clone(),
        ),
        (
            file(
                "jweight.jsonl",
                &format!("{{\"user_id\":1,\"item_id\":2,\"ts\":3,\"weight\":\"{huge}\"}}\n"),
            ),
            false,
            format!("weight {a80}"),
        ),
        (
            file("id.csv", &format!("9,1,0,0\n{huge},1,0,0\n")),
            true,
            format!("id {a80}"),
        ),
        (
            file("component.csv", &format!("9,1,0,0\n1,{huge},0,0\n")),
            true,
            format!("component {a80}"),
        ),
    ];
    for (input, vectors, expected) in &cases {
        let mut args = vec!["ingest", path(&store), path(input), "--dim", "3", "--strict"];
        if *vectors {
            args.push("--vectors");
        }
        let err = failed(&ember(&args));
        assert!(err.len() < 1_000, "{} bytes of stderr", err.len());
        assert!(err.contains(expected.as_str()), "{expected}: {err}");
    }
    // An id in FILE.ids.
    let fv = dir.path().join("v.fvecs");
    std::fs::write(&fv, fvecs(&[[1.0, 0.0, 0.0]])).unwrap();
    std::fs::write(dir.path().join("v.fvecs.ids"), format!("{huge}\n")).unwrap();
    let err = failed(&ember(&["ingest", path(&store), path(&fv), "--vectors", "--dim", "3"]));
    assert!(err.len() < 1_000, "{} bytes of stderr", err.len());
    assert!(err.contains(&format!("line 1: id {a80}")), "{err}");

    // Cut on a char boundary: 100 two-byte characters show as 80.
    let e = file("multibyte.csv", &format!("1,2,3\n1,{},3\n", "é".repeat(100)));
    let err = failed(&ember(&["ingest", path(&store), path(&e), "--dim", "3", "--strict"]));
    assert!(
        err.contains(&format!("item_id \"{}…\" (200 bytes)", "é".repeat(80))),
        "{err}"
    );
    // 80 characters are shown whole.
    let e = file("eighty.csv", &format!("1,2,3\n1,{},3\n", "b".repeat(80)));
    let err = failed(&ember(&["ingest", path(&store), path(&e), "--dim", "3", "--strict"]));
    assert!(err.contains(&format!("item_id \"{}\" is not", "b".repeat(80))), "{err}");
    assert!(!err.contains('…'), "{err}");
    assert!(!store.exists(), "strict mode wrote nothing");
}

#[test]
fn the_strict_help_says_what_strict_does() {
    let help = ok(&ember(&["ingest", "--help"]));
    assert!(
        help.contains("Ingest nothing unless every line is good; the bad lines are listed"),
        "{help}"
    );
    assert!(!help.contains("Stop at the first bad line"), "{help}");
}

#[test]
fn json_lines_with_commas_in_strings_and_other_fields_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let jsonl = dir.path().join("events.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"user_id\":1,\"item_id\":2,\"timestamp\":3,\"note\":\"a,b\"}\n",
            "{\"user\":1,\"item\":3,\"ts\":4,\"note\":\"x:y,z\",\"tags\":[1,{\"k\":\"}\"}]}\n",
            "{\"userId\":\"2\",\"movieId\":2,\"time\":5,\"weight\":0.5}\n",
            "{\"user_id\":2,\"item_id\":3,\"timestamp\":6,\"note\":\"\\\"quoted, with comma\\\"\"}\n",
        ),
    )
    .unwrap();
    let out = ok(&ember(&[
        "ingest",
        path(&store),
        path(&jsonl),
        "--dim",
        "8",
        "--strict",
    ]));
    assert!(out.contains("ingested 4 events (0 bad lines skipped)"), "{out}");

    // Not JSON: the line number, the column and a bounded echo.
    std::fs::write(&jsonl, "{\"user_id\":1,\"item_id\":2,\"ts\":3}\n{\"user_id\":1,oops}\n").unwrap();
    let err = failed(&ember(&["ingest", path(&store), path(&jsonl), "--strict"]));
    assert!(
        err.contains("line 2: not JSON: key must be a string at column 14 (at \"oops\")"),
        "{err}"
    );
    let stats = ok(&ember(&["stats", path(&store)]));
    assert!(stats.contains("4 events not trained yet"), "nothing written: {stats}");
}

#[test]
fn a_tsv_is_known_by_its_tabs_and_its_header_by_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tsv = dir.path().join("events.tsv");
    // A header of known names is skipped; headerless data is all data (the
    // first line was once taken as a header, or every line was bad).
    std::fs::write(&tsv, "user_id\titem_id\ttimestamp\n1\t2\t3\n1\t3\t4\n").unwrap();
    let out = ok(&ember(&["ingest", path(&store), path(&tsv), "--dim", "8", "--strict"]));
    assert!(out.contains("ingested 2 events (0 bad lines skipped)"), "{out}");
    std::fs::write(&tsv, "\u{feff}5\t6\t7\n5\t7\t8\t0.5\n").unwrap();
    let out = ok(&ember(&["ingest", path(&store), path(&tsv), "--strict"]));
    assert!(out.contains("ingested 2 events (0 bad lines skipped)"), "{out}");
    // MovieLens's u.data layout with a header naming the rating column.
    std::fs::write(&tsv, "userId\tmovieId\trating\ttimestamp\n9\t10\t3.5\t100\n").unwrap();
    let out = ok(&ember(&["ingest", path(&store), path(&tsv), "--strict"]));
    assert!(out.contains("ingested 1 event (0 bad lines skipped)"), "{out}");
    // Bad lines of a TSV keep their numbers.
    std::fs::write(&tsv, "1\t2\t3\n\n1\tx\t4\n").unwrap();
    let err = failed(&ember(&["ingest", path(&store), path(&tsv), "--strict"]));
    assert!(err.contains("line 3: item_id \"x\""), "{err}");

    // Vectors too, and quoted CSV fields.
    let host = dir.path().join("host");
    let vectors = dir.path().join("vectors.tsv");
    std::fs::write(&vectors, "id\tx\ty\tz\n1\t1\t0\t0\n").unwrap();
    let out = ok(&ember(&[
        "ingest",
        path(&host),
        path(&vectors),
        "--vectors",
        "--dim",
        "3",
        "--strict",
    ]));
    assert!(out.contains("ingested 1 vector (0 bad entries skipped"), "{out}");
    let csv = dir.path().join("quoted.csv");
    std::fs::write(&csv, "\"id\",\"x\",\"y\",\"z\"\n\"2\",\"0\",\"1\",\"0\"\n").unwrap();
    let out = ok(&ember(&["ingest", path(&host), path(&csv), "--vectors", "--strict"]));
    assert!(out.contains("ingested 1 vector (0 bad entries skipped"), "{out}");
    assert_eq!(vector(&host, 2), Some(vec![0.0, 1.0, 0.0]));
}

/// `ingest --users` sets every user's features (MovieLens's users.csv as
/// it is, ages bucketed); a file of bad lines only is refused.
#[test]
fn users_features_are_ingested_and_a_bad_file_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        "user_id,age,gender,occupation,zip_code\n1,24,M,technician,85711\n2,53,F,other,94043\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "ingest",
            store.to_str().unwrap(),
            users.to_str().unwrap(),
            "--users",
            "--dim",
            "8",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("features of 2 users"));
    let s = emberdb::Store::open(&store, emberdb::Options::existing()).unwrap();
    assert!(s.user_features(1).contains(&("age".to_string(), "18-24".to_string())));
    assert!(s
        .user_features(2)
        .contains(&("zip_code".to_string(), "9xxxx".to_string())));
    drop(s);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "user_id,gender\nx,M\ny,F\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["ingest", store.to_str().unwrap(), bad.to_str().unwrap(), "--users"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
