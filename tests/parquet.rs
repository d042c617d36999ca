//! Parquet export and import, checked by a reader we did not write (the
//! parquet crate's arrow reader): the schema, the row counts, vectors bit
//! for bit, neighbours as `knn` gives them, events as the histories hold
//! them, Milvus's two-column layout; events and vectors read back in;
//! bad rows reported by number and refused whole under `strict`.
#![cfg(feature = "parquet")]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use common::vector_for;
use emberdb::{Durability, Event, ExportOptions, ImportOptions, Metric, Options, Query, Store};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

const DIM: usize = 6;

fn read(path: &Path) -> (Arc<Schema>, Vec<RecordBatch>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let batches = builder
        .with_batch_size(100)
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    (schema, batches)
}

fn int64s(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(col)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn vectors(batches: &[RecordBatch]) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for b in batches {
        let list = b.column_by_name("vector").unwrap().as_fixed_size_list();
        for i in 0..list.len() {
            out.push(list.value(i).as_primitive::<Float32Type>().values().to_vec());
        }
    }
    out
}

fn store(path: &Path) -> Store {
    let store = Store::open(
        path,
        Options::new(DIM)
            .metric(Metric::L2)
            .durability(Durability::None)
            .segment_rows(64),
    )
    .unwrap();
    for id in 0..300u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.space("default").unwrap().delete(5).unwrap();
    store
        .set_attributes(1, &[("title", "One"), ("genre", "A"), ("genre", "B")])
        .unwrap();
    store.set_attributes(2, &[("year", "1999")]).unwrap();
    let events: Vec<Event> = (0..200u64)
        .map(|n| Event::new(n % 7, n % 300, 1_000 + n).with_weight((n % 5) as f32))
        .collect();
    store.append_events(&events).unwrap();
    store
}

#[test]
fn exported_files_read_back_with_the_parquet_crate() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("store"));
    let out = dir.path().join("out");
    let report = store
        .export_parquet(
            &out,
            &ExportOptions {
                neighbours: 5,
                user_vectors: true,
                row_group_rows: 64,
                ..ExportOptions::default()
            },
        )
        .unwrap();
    assert_eq!(report.items, 299);
    assert_eq!(report.files.len(), 4);

    // items.parquet: schema, ids, vectors bit for bit, attributes.
    let (schema, batches) = read(&out.join("items.parquet"));
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["item_id", "vector", "genre", "title", "year", "space", "generation"]
    );
    assert_eq!(
        schema.field(1).data_type(),
        &DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), DIM as i32)
    );
    assert!(batches.len() > 1, "written in row groups");
    let ids = int64s(&batches, "item_id");
    assert_eq!(ids.len(), 299);
    assert!(!ids.contains(&5));
    for (id, v) in ids.iter().zip(vectors(&batches)) {
        let stored = store.get(*id as u64).unwrap().unwrap();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            stored.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    let genre = batches[0].column_by_name("genre").unwrap().as_list::<i32>();
    let row1 = ids.iter().position(|i| *i == 1).unwrap();
    let genres = genre.value(row1);
    assert_eq!(
        genres.as_string::<i32>().iter().flatten().collect::<Vec<_>>(),
        ["A", "B"]
    );

    // neighbours.parquet: the top 5 of `knn` for every item.
    let (schema, batches) = read(&out.join("neighbours.parquet"));
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["item_id", "rank", "neighbour_id", "score"]);
    let (items, neighbours) = (int64s(&batches, "item_id"), int64s(&batches, "neighbour_id"));
    let ranks: Vec<i32> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("rank")
                .unwrap()
                .as_primitive::<Int32Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(items.len(), 299 * 5);
    for probe in [0i64, 1, 150, 299 - 1] {
        let want: Vec<i64> = store
            .knn(&Query::item(probe as u64).k(5))
            .unwrap()
            .iter()
            .map(|h| h.id as i64)
            .collect();
        let got: Vec<i64> = items
            .iter()
            .zip(&neighbours)
            .zip(&ranks)
            .filter(|((i, _), _)| **i == probe)
            .map(|((_, n), _)| *n)
            .collect();
        assert_eq!(got, want, "item {probe}");
    }

    // events.parquet: the histories, each event once.
    let (_, batches) = read(&out.join("events.parquet"));
    let users = int64s(&batches, "user_id");
    let items = int64s(&batches, "item_id");
    assert_eq!(users.len(), 200);
    let mut per_user: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (u, i) in users.iter().zip(&items) {
        per_user.entry(*u).or_default().push(*i as u64);
    }
    for (u, items) in per_user {
        assert_eq!(store.history(u as u64).unwrap(), items);
    }
    let (_, batches) = read(&out.join("user_vectors.parquet"));
    assert_eq!(int64s(&batches, "user_id").len(), 7);

    // Milvus: item_id and vector only.
    let milvus = dir.path().join("milvus");
    store
        .export_parquet(
            &milvus,
            &ExportOptions {
                milvus: true,
                neighbours: 0,
                events: false,
                ..ExportOptions::default()
            },
        )
        .unwrap();
    let (schema, _) = read(&milvus.join("items.parquet"));
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["item_id", "vector"]);
    assert!(!milvus.join("neighbours.parquet").exists() && !milvus.join("events.parquet").exists());

    // Read back in: vectors into a new host store, events into another.
    let copy = Store::open(dir.path().join("copy"), Options::new(DIM).metric(Metric::L2)).unwrap();
    let r = copy
        .import_vectors_parquet(out.join("items.parquet"), &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!((r.rows, r.imported, r.bad_rows), (299, 299, 0));
    for id in [0u64, 1, 150, 299] {
        assert_eq!(copy.get(id).unwrap(), store.get(id).unwrap(), "item {id}");
    }
    let r = copy
        .import_events_parquet(out.join("events.parquet"), &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(r.imported, 200);
    for user in 0..7 {
        assert_eq!(copy.history(user).unwrap(), store.history(user).unwrap());
    }
}

fn write_events(path: &Path, users: Vec<Option<i64>>, items: Vec<i64>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("item_id", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let n = items.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(Int64Array::from(items)),
        Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn bad_rows_are_reported_by_number_and_strict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.parquet");
    write_events(&file, vec![Some(1), None, Some(2), Some(3)], vec![10, 11, -12, 13]);
    let store = Store::open(dir.path().join("s"), Options::trained(4).durability(Durability::None)).unwrap();
    let strict = ImportOptions {
        strict: true,
        ..ImportOptions::default()
    };
    let r = store.import_events_parquet(&file, &strict, &|_| {}).unwrap();
    assert_eq!(r.imported, 0);
    assert_eq!(r.bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![2, 3]);
    assert!(store.history(1).unwrap().is_empty(), "strict wrote something");
    let r = store
        .import_events_parquet(&file, &ImportOptions::default(), &|_| {})
        .unwrap();
    assert_eq!((r.rows, r.imported, r.bad_rows), (4, 2, 2));
    assert!(
        r.bad[0].1.contains("null") && r.bad[1].1.contains("negative"),
        "{:?}",
        r.bad
    );
    assert_eq!(store.history(3).unwrap(), vec![13]);
    // A file without the columns is an error naming it.
    let err = store.import_vectors_parquet(&file, &ImportOptions::default(), &|_| {});
    assert!(err.is_err());
}
