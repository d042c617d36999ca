//! The trending channel (`Query::popular`), blends (`Query::blend`) and
//! `Query::recommend`: counts kept from events over a sliding window and
//! across restarts, seen items and deleted items left out, blended scores
//! merged as documented, and bad input refused without a change.

mod common;

use common::planted_events;
use emberdb::{
    Durability, Error, Event, Hit, Options, Query, Store, TrainOptions, RECOMMEND_POPULAR_WEIGHT, RECOMMEND_USER_WEIGHT,
};

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

/// Item `i` gets `i` events from distinct users, at time `ts`.
fn events_at(ts: u64, items: std::ops::Range<u64>, first_user: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for item in items {
        for n in 0..item {
            out.push(Event::new(first_user + n, item, ts));
        }
    }
    out
}

#[test]
fn popular_counts_the_window_and_slides_with_the_newest_event() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options::new(4).durability(Durability::Sync).trending_window(2_400);
    let store = Store::open(dir.path(), opts()).unwrap();
    // Before any event: nothing trends, and that is not an error.
    assert!(store.knn(&Query::popular()).unwrap().is_empty());
    store.append_events(&events_at(1_000, 1..8, 0)).unwrap();
    let hits = store.knn(&Query::popular().k(3)).unwrap();
    assert_eq!(ids(&hits), vec![7, 6, 5]);
    assert_eq!(hits[0].score, 7.0);
    // Later events on other items: 100..103 get 10, 20, 30 events.
    let mut later = Vec::new();
    for (n, item) in [(10, 100), (20, 101), (30, 102)] {
        later.extend((0..n).map(|u| Event::new(500 + u, item, 2_000)));
    }
    store.append_events(&later).unwrap();
    assert_eq!(ids(&store.knn(&Query::popular().k(4)).unwrap()), vec![102, 101, 100, 7]);
    store.flush().unwrap();
    // An event past the window pushes the first events out.
    store.append_event(Event::new(9, 200, 3_500)).unwrap();
    let hits = store.knn(&Query::popular().k(10)).unwrap();
    assert_eq!(ids(&hits), vec![102, 101, 100, 200]);
    drop(store);
    // A restart (checkpointed counts plus the replayed tail) keeps them,
    // nothing counted twice.
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(store.knn(&Query::popular().k(10)).unwrap(), hits);
    assert_eq!(store.stats().unwrap().trending_items, 4);
    drop(store);
    // An open that does not name a window keeps the store's: the counts
    // are the stored ones.
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(store.knn(&Query::popular().k(10)).unwrap(), hits);
    drop(store);
    // Another window: counted again from the histories.
    let store = Store::open(dir.path(), opts().trending_window(1_000_000)).unwrap();
    let all = store.knn(&Query::popular().k(3)).unwrap();
    assert_eq!(ids(&all), vec![102, 101, 100]);
    assert_eq!(store.knn(&Query::popular().k(100)).unwrap().len(), 11);
}

#[test]
fn popular_for_a_user_leaves_seen_deleted_and_excluded_items_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(4).durability(Durability::None)).unwrap();
    store.append_events(&events_at(10, 1..20, 0)).unwrap();
    // User 0 saw every item (it is the first user of each); user 18 saw 19 only.
    assert!(store.knn(&Query::popular().for_user(0)).unwrap().is_empty());
    assert_eq!(
        store.knn(&Query::popular().for_user(0).include_seen()).unwrap().len(),
        10
    );
    let hits = store.knn(&Query::popular().for_user(18).k(3)).unwrap();
    assert_eq!(ids(&hits), vec![18, 17, 16]);
    store.delete(18).unwrap();
    let hits = store.knn(&Query::popular().for_user(18).k(3).exclude(&[17])).unwrap();
    assert_eq!(ids(&hits), vec![16, 15, 14]);
}

#[test]
fn blends_merge_normalised_scores_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(2).durability(Durability::None)).unwrap();
    // Vectors: item i at angle i degrees from [1, 0].
    for i in 0..40u64 {
        let a = (i as f32).to_radians();
        store.upsert(i, &[a.cos(), a.sin()]).unwrap();
    }
    // Popularity: items 30..40, item 39 the most.
    store.append_events(&events_at(10, 30..40, 0)).unwrap();
    let near = Query::vector(&[1.0, 0.0]);
    let k = 5;
    let blend = Query::blend().add(near.clone(), 1.0).add(Query::popular(), 0.5).k(k);
    let hits = store.knn(&blend).unwrap();
    assert_eq!(hits.len(), k);
    // Recompute from the channels, as documented: each asked for 2k,
    // min-max normalised, weighted and summed.
    let channel = |q: Query, metric_l2: bool| {
        let hits = store.knn(&q.k(2 * k)).unwrap();
        let scores: Vec<f32> = hits
            .iter()
            .map(|h| if metric_l2 { -h.score } else { h.score })
            .collect();
        let (lo, hi) = scores
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), s| (l.min(*s), h.max(*s)));
        hits.iter()
            .zip(scores)
            .map(|(h, s)| (h.id, (s - lo) / (hi - lo)))
            .collect::<Vec<_>>()
    };
    let mut want: std::collections::HashMap<u64, f32> = Default::default();
    for (id, s) in channel(near.clone(), false) {
        *want.entry(id).or_default() += s;
    }
    for (id, s) in channel(Query::popular(), false) {
        *want.entry(id).or_default() += 0.5 * s;
    }
    let mut want: Vec<(u64, f32)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (hit, (id, score)) in hits.iter().zip(&want) {
        assert_eq!(hit.id, *id);
        assert!((hit.score - score).abs() < 1e-5);
    }
    // No duplicates; the blend's exclusions and k reach every channel.
    let banned = [0, 1, 39];
    let hits = store.knn(&blend.clone().k(30).exclude(&banned)).unwrap();
    assert_eq!(hits.len(), 30);
    let mut seen = ids(&hits);
    assert!(seen.iter().all(|id| !banned.contains(id)));
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 30);
    // A blend of one channel keeps that channel's order, whatever its
    // metric says "near" is (L2 here: smaller is nearer).
    let l2 = tempfile::tempdir().unwrap();
    let l2 = Store::open(
        l2.path(),
        Options::new(2).metric(emberdb::Metric::L2).durability(Durability::None),
    )
    .unwrap();
    for i in 0..40u64 {
        l2.upsert(i, &[i as f32, 0.0]).unwrap();
    }
    l2.append_events(&[Event::new(1, 10, 1), Event::new(1, 30, 2)]).unwrap();
    for q in [
        Query::vector(&[3.0, 0.0]),
        Query::seeds(1),
        Query::item(20),
        Query::user(1),
    ] {
        let alone = ids(&l2.knn(&q.clone().k(5)).unwrap());
        let blended = ids(&l2.knn(&Query::blend().add(q.clone(), 1.0).k(5)).unwrap());
        assert_eq!(blended, alone, "{q:?}");
    }
    // Bad blends are refused.
    assert!(matches!(store.knn(&Query::blend()), Err(Error::InvalidQuery(_))));
    assert!(matches!(
        store.knn(&Query::blend().add(near.clone(), -1.0)),
        Err(Error::InvalidQuery(_))
    ));
    assert!(matches!(
        store.knn(&Query::blend().add(near, f32::NAN)),
        Err(Error::InvalidQuery(_))
    ));
}

#[test]
fn recommend_works_before_training_and_uses_the_trained_space_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(16)
            .train_options(TrainOptions::default().epochs(5).threads(1))
            .durability(Durability::None),
    )
    .unwrap();
    let events = planted_events(100, 5, 20, 10, 2);
    store.append_events(&events).unwrap();
    // Untrained: the trending items the user has not seen.
    let before = store.knn(&Query::recommend(0).k(10)).unwrap();
    let trending = store.knn(&Query::popular().for_user(0).k(10)).unwrap();
    assert_eq!(ids(&before), ids(&trending));
    // A user with no events gets the trending items.
    assert_eq!(store.knn(&Query::recommend(999_999).k(5)).unwrap().len(), 5);
    store.train().unwrap();
    let after = store.knn(&Query::recommend(0).k(10)).unwrap();
    assert_eq!(after.len(), 10);
    let seen = store.history(0).unwrap();
    assert!(after.iter().all(|h| !seen.contains(&h.id)));
    // Trained: the documented blend of the user channel and trending.
    let blend = Query::blend()
        .add(Query::user(0), RECOMMEND_USER_WEIGHT)
        .add(Query::popular().for_user(0), RECOMMEND_POPULAR_WEIGHT)
        .k(10);
    assert_eq!(after, store.knn(&blend).unwrap());
    assert_ne!(ids(&after), ids(&trending), "the trained channel changed nothing");
}

#[test]
fn bad_event_weights_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(4).durability(Durability::None)).unwrap();
    store.append_event(Event::new(1, 2, 3).with_weight(4.0)).unwrap();
    for w in [-1.0, f32::NAN, f32::INFINITY] {
        let batch = [Event::new(1, 5, 4), Event::new(1, 6, 5).with_weight(w)];
        assert!(
            matches!(store.append_events(&batch), Err(Error::InvalidEvent { .. })),
            "{w}"
        );
    }
    assert_eq!(store.history(1).unwrap(), vec![2]);
    assert_eq!(ids(&store.knn(&Query::popular()).unwrap()), vec![2]);
}

#[test]
fn weighted_pooling_follows_event_weights() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(2).durability(Durability::None)).unwrap();
    for i in 0..90u64 {
        let a = (i as f32).to_radians();
        store.upsert(i, &[a.cos(), a.sin()]).unwrap();
    }
    // Item 10 weighs 1, item 80 weighs 0: weighted pooling searches from
    // item 10 alone; the plain mean from halfway between them.
    store
        .append_events(&[
            Event::new(1, 10, 1).with_weight(1.0),
            Event::new(1, 80, 2).with_weight(0.0),
        ])
        .unwrap();
    let weighted = ids(&store
        .knn(&Query::user(1).recent(2).pooling(emberdb::Pooling::Weighted).k(4))
        .unwrap());
    let from_10 = ids(&store.knn(&Query::item(10).k(5).exclude(&[80])).unwrap());
    assert_eq!(weighted, from_10[..4]);
    let mean = ids(&store.knn(&Query::user(1).recent(2).k(2)).unwrap());
    assert!(mean.iter().all(|id| (40..=50).contains(id)), "{mean:?}");
}
