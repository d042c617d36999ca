//! The 1.0 surface: a `Store` is a cheap handle shared by threads and a
//! `Space` an owned one; one training call reports every space by name;
//! compaction and verification take their options in one call; batches of
//! upserts are all or nothing and batches of queries answer as one by one;
//! a query setter that its kind does not take is refused; and the names
//! that these replaced still compile and do the same.

mod common;

use std::sync::Mutex;

use common::{planted_events, random_vectors};
use emberdb::{
    CompactOptions, DnnOptions, Durability, Error, Metric, Options, Query, RoundOverrides, SpaceSpec, Store,
    TrainOptions, TrainRequest, VerifyOptions, DEFAULT_SPACE,
};

const TEXT_DIM: usize = 8;

fn two_channels() -> Options {
    Options::trained(16)
        .train_options(TrainOptions::default().epochs(3).threads(1).seed(5))
        .space(
            "dnn",
            SpaceSpec::youtube_dnn(16).dnn_options(DnnOptions {
                epochs: 2,
                incremental_epochs: 1,
                threads: 1,
                ..DnnOptions::default()
            }),
        )
        .space("text", SpaceSpec::host(TEXT_DIM).metric(Metric::Cosine))
        .segment_rows(64)
        .durability(Durability::None)
}

fn generations(store: &Store) -> Vec<(String, u64)> {
    store
        .stats()
        .unwrap()
        .spaces
        .iter()
        .filter_map(|s| s.trainer.as_ref().map(|t| (s.name.clone(), t.generation)))
        .collect()
}

#[test]
fn a_store_is_shared_by_clones_across_threads_and_closes_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(TEXT_DIM).durability(Durability::Buffered)).unwrap();
    let vectors = random_vectors(400, TEXT_DIM, 1);
    std::thread::scope(|scope| {
        for part in 0..4u64 {
            let mine = store.clone();
            let vectors = &vectors;
            scope.spawn(move || {
                for id in (part * 100)..(part + 1) * 100 {
                    mine.upsert(id, &vectors[id as usize]).unwrap();
                    assert!(mine.get(id).unwrap().is_some());
                    let hits = mine.knn(&Query::vector(&vectors[id as usize]).k(1)).unwrap();
                    assert_eq!(hits[0].id, id, "a write one clone made is what the same clone reads");
                }
            });
        }
    });
    assert_eq!(store.stats().unwrap().live_rows, 400);
    // A space handle owns its store: it works after the store handle is
    // gone, and the store stays locked until it goes too.
    let space = store.space(DEFAULT_SPACE).unwrap();
    drop(store);
    space.upsert(400, &vectors[0]).unwrap();
    assert!(matches!(
        Store::open(dir.path(), Options::existing()),
        Err(Error::Locked { .. })
    ));
    assert_eq!(space.store().stats().unwrap().live_rows, 401);
    drop(space);
    let reopened = Store::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(reopened.stats().unwrap().live_rows, 401);
}

#[test]
fn one_training_call_reports_every_space_by_name_and_checks_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), two_channels()).unwrap();
    store.append_events(&planted_events(60, 4, 10, 8, 3)).unwrap();

    // Refused before anything runs: a host-fed space, an unknown one,
    // overrides one of the named spaces refuses.
    let before = generations(&store);
    assert!(matches!(
        store.train_with(&TrainRequest::new().space(DEFAULT_SPACE).space("text")),
        Err(Error::NotTrained { ref space, .. }) if space == "text"
    ));
    assert!(matches!(
        store.train_with(&TrainRequest::new().space("nope")),
        Err(Error::UnknownSpace { .. })
    ));
    let window = RoundOverrides {
        window: Some(3),
        ..RoundOverrides::default()
    };
    assert!(matches!(
        store.train_with(&TrainRequest::new().overrides(window)),
        Err(Error::InvalidOptions(_))
    ));
    assert_eq!(generations(&store), before, "a refused request trained something");

    let seen = Mutex::new(Vec::new());
    let progress = |space: &str, fraction: f64| {
        assert!((0.0..=1.0).contains(&fraction), "{fraction}");
        let mut seen = seen.lock().unwrap();
        if seen.last().is_none_or(|s: &String| s != space) {
            seen.push(space.to_string());
        }
    };
    let reports = store.train_with(&TrainRequest::new().progress(&progress)).unwrap();
    let names: Vec<&str> = reports.iter().map(|r| r.space.as_str()).collect();
    assert_eq!(names, [DEFAULT_SPACE, "dnn"]);
    assert!(
        reports.iter().all(|r| r.generation == 1 && r.new_events > 0),
        "{reports:?}"
    );
    assert_eq!(*seen.lock().unwrap(), [DEFAULT_SPACE, "dnn"]);

    // One space, full, in the order named; the other is left alone.
    let reports = store.train_with(&TrainRequest::full().space("dnn")).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].space.as_str(), reports[0].full), ("dnn", true));
    assert_eq!(
        generations(&store),
        [(DEFAULT_SPACE.to_string(), 1), ("dnn".to_string(), 2)]
    );
    // A space handle trains its own space.
    assert_eq!(
        store.space(DEFAULT_SPACE).unwrap().train().unwrap().space,
        DEFAULT_SPACE
    );
}

#[test]
fn compaction_and_verification_take_a_space_and_a_dry_run_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), two_channels()).unwrap();
    let text = store.space("text").unwrap();
    let vectors = random_vectors(200, TEXT_DIM, 2);
    for (id, v) in vectors.iter().enumerate() {
        text.upsert(id as u64, v).unwrap();
    }
    store.seal().unwrap();
    for id in 0..100 {
        assert!(text.delete(id).unwrap());
    }
    let rows = text.stats().rows;
    let dry = store
        .compact_with(&CompactOptions::new().space("text").dry_run())
        .unwrap();
    // Every deleted row is in a segment worth rewriting.
    assert!(dry.segments_in > 0 && dry.rows_in - dry.rows_kept == 100, "{dry:?}");
    assert_eq!(text.stats().rows, rows, "a dry run changed the space");
    // The default space has nothing to compact.
    let other = store
        .compact_with(&CompactOptions::new().space(DEFAULT_SPACE).dry_run())
        .unwrap();
    assert_eq!(other.segments_in, 0, "{other:?}");
    let done = store.compact_with(&CompactOptions::new().space("text")).unwrap();
    assert_eq!((done.segments_in, done.rows_kept), (dry.segments_in, dry.rows_kept));
    assert_eq!(text.stats().rows, rows - 100);
    assert_eq!(text.stats().live_rows, 100);
    assert!(matches!(
        store.compact_with(&CompactOptions::new().space("nope")),
        Err(Error::UnknownSpace { .. })
    ));

    let one = store.verify_with(&VerifyOptions::new().space("text")).unwrap();
    assert!(one.problems.is_empty() && one.files_checked > 0, "{one:?}");
    let all = store.verify().unwrap();
    assert!(all.problems.is_empty(), "{all:?}");
    assert!(all.files_checked > one.files_checked, "{all:?} against {one:?}");
}

#[test]
fn a_batch_of_upserts_is_all_or_nothing_and_equals_upserts_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(TEXT_DIM).durability(Durability::Sync)).unwrap();
    let vectors = random_vectors(50, TEXT_DIM, 3);
    let ids: Vec<u64> = (0..50).collect();

    // Refused whole: a bad row anywhere, a count that does not match.
    let mut bad = vectors.clone();
    bad[37][2] = f32::NAN;
    assert!(matches!(
        store.upsert_batch(&ids, &bad),
        Err(Error::NonFiniteVector { index: 2, .. })
    ));
    assert!(matches!(
        store.upsert_batch(&ids, &vectors[..49].to_vec()),
        Err(Error::InvalidBatch(_))
    ));
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    assert!(matches!(
        store.upsert_batch(&ids, &flat[..flat.len() - 1]),
        Err(Error::InvalidBatch(_))
    ));
    // No ids with rows, and rows that are not whole, are mismatches too.
    assert!(matches!(store.upsert_batch(&[], &flat), Err(Error::InvalidBatch(_))));
    assert!(matches!(
        store.upsert_batch(&[], &vec![vec![0.5f32; TEXT_DIM]]),
        Err(Error::InvalidBatch(_))
    ));
    store.upsert_batch(&[], &Vec::<f32>::new()).unwrap();
    assert_eq!(store.stats().unwrap().live_rows, 0, "a refused batch wrote rows");

    store.upsert_batch(&ids, &flat).unwrap();
    let other = tempfile::tempdir().unwrap();
    let one_by_one = Store::open(other.path(), Options::new(TEXT_DIM).durability(Durability::Sync)).unwrap();
    for (id, v) in ids.iter().zip(&vectors) {
        one_by_one.upsert(*id, v).unwrap();
    }
    for id in &ids {
        assert_eq!(store.get(*id).unwrap(), one_by_one.get(*id).unwrap());
    }
    // Rows as slices; a repeated id takes its last row.
    let rows: Vec<&[f32]> = vec![&vectors[1], &vectors[2]];
    store.upsert_batch(&[7, 7], &rows).unwrap();
    assert_eq!(store.get(7).unwrap(), one_by_one.get(2).unwrap());
    // Durable: the batch is there after a reopen.
    drop(store);
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(store.stats().unwrap().live_rows, 50);
    // A trained space refuses a batch as it refuses an upsert.
    let trained = tempfile::tempdir().unwrap();
    let trained = Store::open(trained.path(), Options::trained(TEXT_DIM)).unwrap();
    assert!(matches!(
        trained.upsert_batch(&ids, &flat),
        Err(Error::TrainedStore { .. })
    ));
}

#[test]
fn a_batch_of_queries_answers_as_one_by_one_and_fails_on_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), two_channels()).unwrap();
    store.append_events(&planted_events(60, 4, 10, 8, 3)).unwrap();
    store.train().unwrap();
    let mut queries = Vec::new();
    for id in 0..40u64 {
        queries.push(Query::item(id).k(5));
        queries.push(Query::user(id % 60).k(7).space("dnn"));
        queries.push(Query::recommend(id % 60).k(6));
    }
    let batch = store.knn_batch(&queries).unwrap();
    assert_eq!(batch.len(), queries.len());
    for (query, hits) in queries.iter().zip(&batch) {
        assert_eq!(hits, &store.knn(query).unwrap(), "{query:?}");
    }
    assert!(store.knn_batch(&[]).unwrap().is_empty());
    // Top-N for every item: as item queries one by one, in order, an id
    // with no vector in the space left out.
    let ids: Vec<u64> = vec![3, 1, 999_999, 2];
    let neighbours = store.neighbours("dnn", &ids, 4).unwrap();
    let expected: Vec<(u64, Vec<emberdb::Hit>)> = [3u64, 1, 2]
        .iter()
        .map(|id| (*id, store.knn(&Query::item(*id).k(4).space("dnn")).unwrap()))
        .collect();
    assert_eq!(neighbours, expected);
    assert!(matches!(
        store.neighbours("nope", &ids, 4),
        Err(Error::UnknownSpace { .. })
    ));
    queries.insert(30, Query::item(1).k(0));
    queries.insert(60, Query::item(1).space("nope"));
    assert!(matches!(store.knn_batch(&queries), Err(Error::InvalidK { k: 0, .. })));
}

#[test]
fn a_setter_the_query_kind_does_not_take_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), two_channels()).unwrap();
    store.append_events(&planted_events(20, 2, 5, 4, 3)).unwrap();
    store.train().unwrap();
    let refused = [
        (Query::item(1).for_user(3), "for_user", "item"),
        (Query::vector(&[1.0; 16]).include_seen(), "include_seen", "vector"),
        (Query::item(1).recent(3), "recent", "item"),
        (Query::seeds(1).pooling(emberdb::Pooling::Max), "pooling", "seeds"),
        (Query::user(1).add(Query::item(2), 1.0), "add", "user"),
        (Query::popular().space("dnn"), "space", "popular"),
        (Query::popular().exact(), "exact", "popular"),
        (Query::blend().nprobe(4).add(Query::item(1), 1.0), "nprobe", "blend"),
        (Query::recommend(1).include_seen(), "include_seen", "recommend"),
        (Query::blend().add(Query::item(1).for_user(2), 1.0), "for_user", "item"),
    ];
    for (query, setter, kind) in refused {
        match store.knn(&query) {
            Err(Error::InvalidQuery(message)) => assert!(
                message.contains(&format!("`{setter}`")) && message.contains(&format!("{kind} query")),
                "{message}"
            ),
            other => panic!("{query:?} gave {other:?}"),
        }
    }
    // The setters each kind takes still work.
    for query in [
        Query::user(1)
            .recent(2)
            .include_seen()
            .pooling(emberdb::Pooling::Max)
            .exact(),
        Query::seeds(1).recent(2).include_seen().space("dnn"),
        Query::popular().for_user(1).include_seen(),
        Query::item(1).space("dnn").ef_search(16).nprobe(2),
    ] {
        store.knn(&query.k(3)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The calls that `train_with`, `compact_with` and `verify_with` replaced
/// still compile and do what they did.
#[test]
#[allow(deprecated)]
fn the_replaced_names_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), two_channels()).unwrap();
    store.append_events(&planted_events(40, 4, 10, 6, 3)).unwrap();
    let report = store
        .train_with_progress(emberdb::RoundKind::Incremental, &|_| {})
        .unwrap();
    assert_eq!(report.space, DEFAULT_SPACE);
    assert_eq!(store.train_space("dnn").unwrap().space, "dnn");
    let r = store
        .train_space_with_progress("dnn", emberdb::RoundKind::Full, &|_| {})
        .unwrap();
    assert!(r.full);
    let overrides = RoundOverrides {
        epochs: Some(1),
        ..RoundOverrides::default()
    };
    let r = store
        .train_space_with(DEFAULT_SPACE, emberdb::RoundKind::Full, &overrides, &|_| {})
        .unwrap();
    assert_eq!(r.epochs, 1);
    assert_eq!(store.train_full().unwrap().space, DEFAULT_SPACE);
    store.compact_dry_run().unwrap();
    store.compact_space("text").unwrap();
    assert!(store.verify_space("dnn").unwrap().problems.is_empty());
}

/// One name per concept: the getters are `get_*` (a builder takes each
/// plain name), the learning rate and negatives are called so in every
/// option struct, and `DnnOptions` is set with builder methods as the
/// others are; the older names still work.
#[test]
#[allow(deprecated)]
fn option_names_are_one_per_concept_and_the_old_ones_still_work() {
    let opts = Options::new(12)
        .metric(Metric::L2)
        .segment_rows(500)
        .index(emberdb::IndexSpec::Flat);
    assert_eq!(
        (
            opts.get_dim(),
            opts.get_metric(),
            opts.get_segment_rows(),
            opts.get_index()
        ),
        (12, Metric::L2, 500, emberdb::IndexSpec::Flat)
    );
    assert_eq!(
        (opts.metric_kind(), opts.segment_rows_value(), opts.index_spec()),
        (Metric::L2, 500, emberdb::IndexSpec::Flat)
    );
    assert!(opts.get_train_options().is_none());

    let new_names = TrainOptions::default()
        .negatives(7)
        .learning_rate(0.05)
        .min_learning_rate(0.001)
        .incremental_learning_rate(0.02);
    let old_names = TrainOptions::default()
        .negative(7)
        .alpha(0.05)
        .min_alpha(0.001)
        .incremental_alpha(0.02);
    assert_eq!(new_names, old_names);
    assert_ne!(new_names, TrainOptions::default());

    let built = DnnOptions::default()
        .epochs(3)
        .negatives(64)
        .learning_rate(0.01)
        .threads(1)
        .seed(9);
    let literal = DnnOptions {
        epochs: 3,
        negatives: 64,
        learning_rate: 0.01,
        threads: 1,
        seed: 9,
        ..DnnOptions::default()
    };
    assert_eq!(built, literal);

    let spec = SpaceSpec::youtube_dnn(8).dnn_options(built.clone());
    assert_eq!(spec.get_dnn_options(), Some(&built));
    assert_eq!(spec.get_metric(), Metric::InnerProduct);
    assert_eq!((spec.dnn(), spec.metric_kind()), (Some(&built), Metric::InnerProduct));
    let host = SpaceSpec::host(4).index(emberdb::IndexSpec::Flat);
    assert_eq!(host.get_index(), Some(emberdb::IndexSpec::Flat));
    assert!(host.get_train_options().is_none());
}
