//! Hostile input through the API: every size a caller gives is bounded
//! before anything is allocated for it, nothing aborts the process, and a
//! refused call changes nothing.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use emberdb::{
    check_events_parquet, Durability, Error, Event, Filter, ImportOptions, Metric, Options, Query, SpaceSpec, Store,
    MAX_FUTURE_MS, MAX_NPROBE, MAX_RECENT,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

fn trained(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, Options::trained(8).durability(Durability::None)).unwrap();
    let events: Vec<Event> = (0..200u64).map(|i| Event::new(i % 7, i % 23, i)).collect();
    store.append_events(&events).unwrap();
    store.train().unwrap();
    store
}

#[test]
fn sizes_past_their_bounds_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained(dir.path());
    for query in [
        Query::user(1).recent(usize::MAX).k(5),
        Query::seeds(1).recent(usize::MAX).k(5),
        Query::seeds(1).recent(MAX_RECENT + 1).k(5),
        Query::user(1).recent(0).k(5),
        Query::item(1).ef_search(usize::MAX).k(5),
        Query::item(1).nprobe(MAX_NPROBE + 1).k(5),
        Query::item(1).nprobe(0).k(5),
        Query::blend().add(Query::user(1).recent(usize::MAX), 1.0).k(5),
    ] {
        let err = store.knn(&query).unwrap_err();
        assert!(matches!(err, Error::InvalidQuery(_)), "{query:?}: {err}");
        assert!(err.to_string().contains("out of range"), "{err}");
    }
    assert!(matches!(
        store.knn(&Query::item(1).k(usize::MAX)),
        Err(Error::InvalidK { .. })
    ));
    // The largest allowed sizes run (bounded by the history).
    assert!(store.knn(&Query::seeds(1).recent(MAX_RECENT).k(5)).is_ok());
}

/// A `not` a hundred thousand deep neither overflows the stack in `knn`
/// nor when it is dropped: past the depth limit the filter keeps none of
/// its parts, and the query refuses it.
#[test]
fn a_deeply_nested_filter_is_refused_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained(dir.path());
    store.set_attributes(1, &[("genre", "a")]).unwrap();
    let mut filter = Filter::eq("genre", "a");
    for _ in 0..100_000 {
        filter = Filter::not(filter);
    }
    let err = store.knn(&Query::item(2).filter(filter.clone()).k(5)).unwrap_err();
    assert!(err.to_string().contains("filter is too large"), "{err}");
    let err = store.knn(&Query::popular().filter(filter).k(5)).unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err}");
    // A filter within the limits runs.
    let mut ok = Filter::eq("genre", "a");
    for _ in 0..(emberdb::MAX_FILTER_DEPTH - 1) / 2 {
        ok = Filter::not(Filter::not(ok));
    }
    assert!(store.knn(&Query::popular().filter(ok).k(5)).is_ok());
}

#[test]
fn bad_options_and_unknown_spaces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let Err(err) = Store::open(&path, Options::trained(8).meta_cache_bytes(0)) else {
        panic!("meta_cache_bytes(0) was taken");
    };
    assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    assert!(err.to_string().contains("meta_cache_bytes"), "{err}");
    assert!(!path.join("meta").exists(), "a refused option created a store");
    let store = trained(&path);
    let err = store.knn(&Query::item(1).space("nope").k(3)).unwrap_err();
    assert!(matches!(err, Error::UnknownSpace { .. }), "{err}");
    // Kinds that span spaces take no space at all: refused, not ignored.
    for query in [
        Query::popular().space("nope").k(3),
        Query::recommend(1).space("nope").k(3),
    ] {
        let err = store.knn(&query).unwrap_err();
        assert!(
            matches!(err, Error::InvalidQuery(ref m) if m.contains("`space`")),
            "{err}"
        );
    }
}

/// Under inner product and L2, a vector whose squared norm could overflow a
/// score is refused (as an upsert and as a query): infinite scores do not
/// order.
#[test]
fn vectors_too_long_to_score_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, metric) in [("ip", Metric::InnerProduct), ("l2", Metric::L2)] {
        let opts = Options::new(2).metric(metric).durability(Durability::None);
        let store = Store::open(dir.path().join(name), opts).unwrap();
        store.upsert(1, &[1.0, 0.0]).unwrap();
        let err = store.upsert(2, &[3e38, 0.0]).unwrap_err();
        assert!(matches!(err, Error::VectorTooLong { .. }), "{err}");
        assert_eq!(store.get(2).unwrap(), None);
        let err = store.knn(&Query::vector(&[3e38, 3e38]).k(1)).unwrap_err();
        assert!(matches!(err, Error::VectorTooLong { .. }), "{err}");
        // Long but scoreable vectors are kept, and score finitely.
        store.upsert(3, &[1e18, 1e18]).unwrap();
        let hits = store.knn(&Query::vector(&[1e18, -1e18]).k(2)).unwrap();
        assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
    }
    let space = SpaceSpec::host(2).metric(Metric::L2);
    let store = Store::open(dir.path().join("spaces"), Options::new(2).space("x", space)).unwrap();
    let err = store.space("x").unwrap().upsert(1, &[f32::MAX, 0.0]).unwrap_err();
    assert!(matches!(err, Error::VectorTooLong { .. }), "{err}");
}

/// An event far ahead of the clock is refused; the trending channel keeps
/// answering from the events around it.
#[test]
fn an_event_far_in_the_future_is_refused_and_trending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(8).trending_window(1_000).durability(Durability::None),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    store.append_event(Event::new(1, 5, now)).unwrap();
    for far in [u64::MAX, now * 1_000_000, now + MAX_FUTURE_MS + 60_000] {
        let err = store.append_event(Event::new(1, 9, far)).unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { item: 9, .. }), "{err}");
        // A batch with one such event is refused whole.
        let err = store
            .append_events(&[Event::new(2, 6, now), Event::new(2, 9, far)])
            .unwrap_err();
        assert!(err.to_string().contains("past this machine's clock"), "{err}");
    }
    store.append_event(Event::new(2, 6, now + 1)).unwrap();
    store.append_event(Event::new(3, 6, now + 2)).unwrap();
    let ids: Vec<u64> = store
        .knn(&Query::popular().k(5))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, vec![6, 5]);
    assert_eq!(store.history(2).unwrap(), vec![6]);
}

/// With the channel off, popular is refused; a later open with it on
/// counts again from the histories.
#[test]
fn trending_can_be_off_and_comes_back_counted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::trained(8)
            .durability(Durability::None)
            .trending_window(1_000_000)
    };
    let store = Store::open(dir.path(), opts()).unwrap();
    store
        .append_events(&[Event::new(1, 5, 10), Event::new(2, 5, 11)])
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts().trending(false)).unwrap();
    store
        .append_events(&[Event::new(3, 7, 12), Event::new(4, 7, 13), Event::new(5, 7, 14)])
        .unwrap();
    let err = store.knn(&Query::popular().k(3)).unwrap_err();
    assert!(err.to_string().contains("trending channel is off"), "{err}");
    store.flush().unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    let hits = store.knn(&Query::popular().k(3)).unwrap();
    let got: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
    assert_eq!(got, vec![(7, 3.0), (5, 2.0)]);
}

/// An open with the channel off keeps the store's window for the next open
/// that does not set one; `recommend` then serves the user channel alone.
#[test]
fn trending_off_keeps_the_window_and_recommend_answers() {
    let dir = tempfile::tempdir().unwrap();
    // Window 240: buckets of 10, so events 300 apart leave each other's.
    let store = Store::open(
        dir.path(),
        Options::trained(8).durability(Durability::None).trending_window(240),
    )
    .unwrap();
    store
        .append_events(&[Event::new(1, 5, 10), Event::new(2, 6, 15)])
        .unwrap();
    store.train().unwrap();
    store.flush().unwrap();
    drop(store);
    let off = Store::open(dir.path(), Options::existing().trending(false)).unwrap();
    let hits = off.knn(&Query::recommend(1).k(3)).unwrap();
    assert!(
        !hits.is_empty(),
        "recommend without trending answers from the user channel"
    );
    off.flush().unwrap();
    drop(off);
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    store.append_event(Event::new(3, 7, 400)).unwrap();
    // The default 7-day window would still hold items 5 and 6.
    let ids: Vec<u64> = store
        .knn(&Query::popular().k(3))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, vec![7], "the store's window of 240 was forgotten");
}

/// A blend is one level of channels: a nested blend is refused, and one
/// nested a hundred thousand deep is built and dropped without recursion.
#[test]
fn nested_blends_are_refused_without_recursion() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained(dir.path());
    let mut q = Query::blend().add(Query::popular(), 1.0);
    for _ in 0..100_000 {
        q = Query::blend().add(q, 1.0).add(Query::recommend(1), 0.5);
    }
    let err = store.knn(&q.clone().k(5)).unwrap_err();
    assert!(err.to_string().contains("itself a blend"), "{err}");
    let flat = Query::blend()
        .add(Query::popular().k(0), 1.0)
        .add(Query::user(1), 1.0)
        .k(5);
    assert_eq!(
        store.knn(&flat).unwrap().len(),
        5,
        "a channel's own k is the blend's to set"
    );
}

/// More items than the kept ranking holds, and a filter that refuses all
/// of its items without naming the rest: popular goes past it and still
/// returns the best of the others.
#[test]
fn popular_reads_past_the_kept_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(8)
            .durability(Durability::None)
            .trending_window(1 << 40),
    )
    .unwrap();
    let hot = 17_000u64;
    let mut events = Vec::new();
    for item in 0..hot {
        // Hot items: three events each; item `hot + i` has one.
        for n in 0..3 {
            events.push(Event::new(n, item, 1 + item));
        }
        store.set_attributes(item, &[("hot", "1")]).unwrap();
    }
    for i in 0..10 {
        events.push(Event::new(9, hot + i, 2 + i));
        events.push(Event::new(10, hot + i, 3 + i));
    }
    events.push(Event::new(9, hot + 20, 99));
    store.append_events(&events).unwrap();
    let q = Query::popular().filter(Filter::not(Filter::eq("hot", "1"))).k(5);
    let hits = store.knn(&q).unwrap();
    let got: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
    let expected: Vec<(u64, f32)> = (0..5).map(|i| (hot + i, 2.0)).collect();
    assert_eq!(got, expected);
}

fn write(path: &std::path::Path, batch: RecordBatch, rows_per_group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_size(rows_per_group)
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn events(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("item_id", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..n).map(|i| i % 13).collect::<Vec<_>>())),
        Arc::new(Int64Array::from((0..n).map(|i| i % 31).collect::<Vec<_>>())),
        Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// A row group that cannot be read part way through an import: the error
/// names the group and its rows and how many rows were written before it.
#[test]
fn a_failed_row_group_is_named_with_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.parquet");
    write(&file, events(3000), 1000);
    let reader = parquet::file::reader::SerializedFileReader::new(File::open(&file).unwrap()).unwrap();
    let (start, len) = parquet::file::reader::FileReader::metadata(&reader)
        .row_group(2)
        .column(1)
        .byte_range();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[start as usize + 8..(start + len) as usize].fill(0xff);
    std::fs::write(&file, bytes).unwrap();

    let err = check_events_parquet(&file, &ImportOptions::default(), &|_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("row group 3 of 3 (rows 2001 to 3000)") && text.contains("nothing was written"),
        "{text}"
    );
    let store = Store::open(dir.path().join("s"), Options::trained(8).durability(Durability::None)).unwrap();
    let err = store
        .import_events_parquet(&file, &ImportOptions::default(), &|_| {})
        .unwrap_err();
    assert!(err.to_string().contains("2000 rows before it were written"), "{err}");
    let strict = ImportOptions {
        strict: true,
        ..ImportOptions::default()
    };
    let fresh = Store::open(dir.path().join("t"), Options::trained(8).durability(Durability::None)).unwrap();
    let err = fresh.import_events_parquet(&file, &strict, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!((0..13).all(|user| fresh.history(user).unwrap().is_empty()));
    assert_eq!(fresh.stats().unwrap().trending_items, 0);
}
