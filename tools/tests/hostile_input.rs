//! Hostile input through the real `ember` binary: every refusal exits
//! non-zero with a message naming what was wrong, and leaves the store's
//! files byte for byte as they were (or no store at all where there was
//! none).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use common::{contents, ember, failed, ok, path, stderr};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// A trained store with a few events and attributes, flushed.
fn small_store(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let store = dir.join("store");
    let events = dir.join("seed.csv");
    std::fs::write(&events, "1,10,100\n1,11,200\n2,10,300\n").unwrap();
    ok(&ember(&["ingest", path(&store), path(&events), "--dim", "8"]));
    let items = dir.join("seed-items.csv");
    std::fs::write(&items, "item_id,title,year\n10,Ten,1995\n11,Eleven,1996\n").unwrap();
    ok(&ember(&["ingest", path(&store), path(&items), "--items"]));
    store
}

/// Runs `args` (with STORE replaced by the store's path) against a fresh
/// store and against no store: both must fail with `expected` in stderr,
/// the store's files unchanged and no store created where there was none.
fn refused_everywhere(dir: &Path, name: &str, args: &[&str], expected: &str) {
    let case = dir.join(format!("case-{name}"));
    std::fs::create_dir(&case).unwrap();
    let store = small_store(&case);
    let before = contents(&store);
    let run = |target: &Path| {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "STORE" { path(target) } else { a })
            .collect();
        failed(&ember(&args))
    };
    let err = run(&store);
    assert!(err.contains(expected), "{name}: expected {expected:?} in:\n{err}");
    assert!(err.contains("the store is unchanged"), "{name}: {err}");
    assert!(contents(&store) == before, "{name}: the store's files changed");
    let absent = case.join("absent");
    let err = run(&absent);
    assert!(
        err.contains(expected),
        "{name} (no store): expected {expected:?} in:\n{err}"
    );
    assert!(err.contains("no store created"), "{name}: {err}");
    assert!(!absent.exists(), "{name}: a directory was left behind");
}

fn events_batch(users: Vec<Option<i64>>, items: Vec<Option<i64>>, ts: Vec<Option<i64>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("item_id", DataType::Int64, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(Int64Array::from(items)),
        Arc::new(Int64Array::from(ts)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write_parquet(path: &Path, batches: &[RecordBatch], rows_per_group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_size(rows_per_group)
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// `n` good events from row `from`.
fn good_events(from: i64, n: i64) -> RecordBatch {
    let ids: Vec<Option<i64>> = (from..from + n).map(|i| Some(i % 97)).collect();
    let ts: Vec<Option<i64>> = (from..from + n).map(Some).collect();
    events_batch(ids.clone(), ids, ts)
}

#[test]
fn parquet_files_with_no_good_row_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    std::fs::write(file("empty.parquet"), b"").unwrap();
    std::fs::write(file("garbage.parquet"), vec![0x5a; 4096]).unwrap();
    let wrong = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(wrong, vec![Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef]).unwrap();
    write_parquet(&file("schema.parquet"), &[batch], 1024);
    write_parquet(
        &file("bad.parquet"),
        &[events_batch(
            vec![Some(-1), Some(-2)],
            vec![Some(1), Some(2)],
            vec![Some(1), Some(2)],
        )],
        1024,
    );
    write_parquet(
        &file("nulls.parquet"),
        &[events_batch(vec![None, None], vec![None, None], vec![None, None])],
        1024,
    );
    write_parquet(&file("zero-rows.parquet"), &[good_events(0, 0)], 1024);
    let cases = [
        ("empty.parquet", "parquet file"),
        ("garbage.parquet", "parquet file"),
        ("schema.parquet", "no column named user_id or user (its columns: a)"),
        ("bad.parquet", "no good event in the file (2 bad rows of 2 rows)"),
        ("nulls.parquet", "no good event in the file (2 bad rows of 2 rows)"),
        ("zero-rows.parquet", "no good event in the file (0 bad rows of 0 rows)"),
    ];
    for (name, expected) in cases {
        let input = file(name);
        refused_everywhere(
            dir.path(),
            name,
            &["ingest", "STORE", path(&input), "--dim", "8"],
            expected,
        );
    }
}

/// A corrupt row group in the middle: the file is read through before the
/// store is opened, so the failure names the row group and nothing is
/// written; --strict with one bad row writes nothing either.
#[test]
fn a_corrupt_row_group_or_a_strict_bad_row_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.parquet");
    write_parquet(&corrupt, &[good_events(0, 3000)], 1000);
    // Garble the second row group's first column chunk.
    let reader = parquet::file::reader::SerializedFileReader::new(File::open(&corrupt).unwrap()).unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader);
    let column = meta.row_group(1).column(0);
    let (start, len) = column.byte_range();
    let mut bytes = std::fs::read(&corrupt).unwrap();
    for b in &mut bytes[start as usize + 8..(start + len) as usize] {
        *b = 0xff;
    }
    std::fs::write(&corrupt, bytes).unwrap();
    refused_everywhere(
        dir.path(),
        "corrupt",
        &["ingest", "STORE", path(&corrupt), "--dim", "8"],
        "row group 2 of 3 (rows 1001 to 2000)",
    );

    let one_bad = dir.path().join("one-bad.parquet");
    let mut users: Vec<Option<i64>> = (0..100).map(Some).collect();
    users[57] = Some(-5);
    let ids: Vec<Option<i64>> = (0..100).map(Some).collect();
    write_parquet(&one_bad, &[events_batch(users, ids.clone(), ids)], 1024);
    refused_everywhere(
        dir.path(),
        "strict",
        &["ingest", "STORE", path(&one_bad), "--strict"],
        "1 bad row; nothing ingested (--strict)",
    );
    // Without --strict, the good rows go in and the bad one is named.
    let store = small_store(&dir.path().join("strict"));
    let out = ember(&["ingest", path(&store), path(&one_bad)]);
    let said = ok(&out);
    assert!(said.contains("ingested 99 events (1 bad row skipped)"), "{said}");
    assert!(
        stderr(&out).contains("row 58: user_id: negative value -5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn parquet_vectors_with_a_null_component_are_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vectors.parquet");
    let mut list = FixedSizeListBuilder::new(Float32Builder::new(), 3);
    for (i, row) in [[Some(1.0), Some(0.0), Some(0.0)], [Some(0.0), None, Some(1.0)]]
        .iter()
        .enumerate()
    {
        for x in row {
            list.values().append_option(*x);
        }
        list.append(true);
        assert!(i < 2);
    }
    let list = list.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("item_id", DataType::Int64, false),
        Field::new("vector", list.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef, Arc::new(list)],
    )
    .unwrap();
    write_parquet(&file, &[batch], 1024);
    let store = dir.path().join("host");
    let out = ember(&["ingest", path(&store), path(&file), "--vectors", "--dim", "3"]);
    let said = ok(&out);
    assert!(said.contains("ingested 1 vector (1 bad row skipped)"), "{said}");
    assert!(
        stderr(&out).contains("row 2: item 2: component 1 of the vector is null"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::vector(&store, 2), None, "a null component was read as 0.0");
    assert!(common::vector(&store, 1).is_some());
    // Into a named space, of a new store and of a store without it: the
    // space is created host-fed, as for CSV vectors.
    for target in [dir.path().join("new"), store.clone()] {
        let said = ok(&ember(&[
            "ingest",
            path(&target),
            path(&file),
            "--vectors",
            "--space",
            "extra",
            "--dim",
            "3",
        ]));
        assert!(said.contains("ingested 1 vector"), "{said}");
        let s = emberdb::Store::open_read_only(&target).unwrap();
        assert!(s.space("extra").unwrap().get(1).unwrap().is_some());
    }
}

/// JSON lines share the events' one check: a negative weight is a bad line
/// (as in CSV and Parquet), and --strict then writes nothing.
#[test]
fn json_lines_with_negative_weights_are_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!("{{\"user_id\":1,\"item_id\":{i},\"ts\":{i}}}\n"));
    }
    text.push_str("{\"user_id\":1,\"item_id\":2,\"ts\":3,\"weight\":-1}\n");
    std::fs::write(&input, text).unwrap();
    refused_everywhere(
        dir.path(),
        "jsonl",
        &["ingest", "STORE", path(&input), "--strict", "--dim", "8"],
        "line 51: event of user 1 on item 2 is invalid: weight -1 is negative",
    );
    let csv = dir.path().join("future.csv");
    std::fs::write(&csv, format!("1,2,{}\n", u64::MAX)).unwrap();
    refused_everywhere(
        dir.path(),
        "future",
        &["ingest", "STORE", path(&csv), "--dim", "8"],
        "is more than a day past this machine's clock",
    );
}

/// A row of only an id does not erase the item's attributes; files whose
/// every row is refused exit non-zero and create nothing.
#[test]
fn keyed_rows_with_nothing_to_set_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let only_id = dir.path().join("only-id.csv");
    std::fs::write(&only_id, "item_id,title,year\n10\n").unwrap();
    refused_everywhere(
        dir.path(),
        "only-id",
        &["ingest", "STORE", path(&only_id), "--items"],
        "line 2: item 10 has no value",
    );
    // The item keeps its attributes.
    let store = dir.path().join("case-only-id").join("store");
    let read = emberdb::Store::open_read_only(&store).unwrap();
    assert_eq!(read.title(10).as_deref(), Some("Ten"));
    assert_eq!(read.attributes(10).len(), 2);
    drop(read);

    let long = "x".repeat(300);
    let items = dir.path().join("long.csv");
    std::fs::write(&items, format!("item_id,title\n1,{long}\n2,{long}\n")).unwrap();
    refused_everywhere(
        dir.path(),
        "long-items",
        &["ingest", "STORE", path(&items), "--items"],
        "no good item's row in the file (2 bad lines)",
    );
    let users = dir.path().join("users.csv");
    std::fs::write(&users, format!("user_id,occupation\n1,{long}\n")).unwrap();
    refused_everywhere(
        dir.path(),
        "long-users",
        &["ingest", "STORE", path(&users), "--users"],
        "no good user's row in the file (1 bad line)",
    );
}

/// An all-bad input reports the first 20 reasons and a count of the rest
/// (only those 20 are kept in memory).
#[test]
fn an_all_bad_file_reports_twenty_reasons_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    std::fs::write(&input, "x,y,z\n".repeat(50_000)).unwrap();
    let store = dir.path().join("store");
    let err = failed(&ember(&["ingest", path(&store), path(&input), "--dim", "8"]));
    assert_eq!(err.matches("is not a non-negative integer").count(), 20, "{err}");
    assert!(err.contains("49980 more bad lines"), "{err}");
    assert!(!store.exists());
}

#[test]
fn malformed_filter_ranges_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let before = contents(&store);
    for (filter, expected) in [
        ("year=abc..def", "the range's minimum \"abc\" is not an integer"),
        ("year=..1995", "the range's minimum \"\" is not an integer"),
        ("year=1995..", "the range's maximum \"\" is not an integer"),
        ("year=1996..1995", "the range is empty (1996 > 1995)"),
        ("=1", "an empty key before `=`"),
    ] {
        let err = failed(&ember(&["knn", path(&store), "--popular", "--filter", filter]));
        assert!(err.contains(expected), "{filter}: {err}");
    }
    let said = ok(&ember(&[
        "knn",
        path(&store),
        "--popular",
        "--filter",
        "year=1995..1995",
    ]));
    assert!(said.contains("10"), "{said}");
    assert!(contents(&store) == before);
}

#[test]
fn an_export_into_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    ok(&ember(&["train", path(&store)]));
    let before = contents(&store);
    for inside in [store.join("exports"), store.join("segments").join("x")] {
        let err = failed(&ember(&[
            "export",
            path(&store),
            "--format",
            "parquet",
            "--out",
            path(&inside),
        ]));
        assert!(err.contains("inside the store"), "{err}");
        assert!(!inside.exists());
    }
    assert!(contents(&store) == before);
    let outside = dir.path().join("exports");
    ok(&ember(&[
        "export",
        path(&store),
        "--format",
        "parquet",
        "--out",
        path(&outside),
    ]));
    assert!(outside.join("items.parquet").is_file());
}
