//! Two merges planned at once, the older one installed first: the newer
//! one must still merge the runs it reserved.

use std::collections::BTreeMap;

use crate::store::behaviour::merger::{merge_one, reserve_next};
use crate::{Durability, Event, Options, Store};

#[test]
fn a_merge_planned_before_an_older_one_installed_merges_the_runs_it_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::new(4)
            .durability(Durability::Sync)
            .history_len(1_000_000)
            .merge_threads(0)
    };
    let store = Store::open(dir.path(), opts()).unwrap();
    let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut ts = 1_000u64;
    // Eight runs of one tier: the policy's newest group of four, then the
    // four before it.
    for _ in 0..8 {
        let batch: Vec<Event> = (0..200u64)
            .map(|i| {
                ts += 1;
                Event::new(i % 13, ts % 31, ts)
            })
            .collect();
        store.append_events(&batch).unwrap();
        for e in &batch {
            expected.entry(e.user).or_default().push(e.item);
        }
        store.flush().unwrap();
    }
    let runs_before = store.shared.behaviour.load().events.len();
    assert!(runs_before >= 8, "{runs_before} runs");
    let newer = reserve_next(&store.shared).expect("a merge is due");
    let older = reserve_next(&store.shared).expect("a second, disjoint merge is due");
    assert!(
        older.plan.range.end <= newer.plan.range.start,
        "{:?} then {:?}",
        older.plan,
        newer.plan
    );
    merge_one(&store.shared, &store.write, older.plan.clone()).unwrap();
    drop(older);
    // The newer plan's range now points past the shifted list.
    merge_one(&store.shared, &store.write, newer.plan.clone()).unwrap();
    drop(newer);
    assert_eq!(store.shared.behaviour.load().events.len(), runs_before - 6);
    for (user, items) in &expected {
        assert_eq!(&store.history(*user).unwrap(), items, "user {user}");
    }
    store.verify().unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    for (user, items) in &expected {
        assert_eq!(&store.history(*user).unwrap(), items, "user {user} after reopen");
    }
}
