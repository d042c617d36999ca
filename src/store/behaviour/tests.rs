//! A round's gather split by user range against one walk and against a
//! model of the history rule.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};

use crate::event::Event;
use crate::meta::records::RunManifest;
use crate::store::behaviour::Behaviour;

const HISTORY_LEN: usize = 40;

/// Every event written, by user: (ts, seq, item).
type Written = BTreeMap<u64, Vec<(u64, u64, u64)>>;

/// A behaviour of four runs (each thousands of entries, so of many blocks)
/// and a recent part, with timestamps out of order so that the (ts, seq)
/// rule and the cut both matter; and every event written, by user.
fn behaviour_with_runs(dir: &std::path::Path) -> (Behaviour, Written) {
    let behaviour = Behaviour::open(dir, &RunManifest::default(), HISTORY_LEN).unwrap();
    let mut manifest = RunManifest::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut written: Written = BTreeMap::new();
    let mut seq = 0u64;
    for batch in 0..5 {
        for _ in 0..3_000 {
            let user = rng.gen_range(0..300u64);
            let item = rng.gen_range(0..1_000u64);
            let ts = seq + rng.gen_range(0..500u64);
            behaviour.append(seq, &Event::new(user, item, ts));
            written.entry(user).or_default().push((ts, seq, item));
            seq += 1;
        }
        // The last batch stays in the recent part.
        if batch < 4 {
            let flushed = behaviour.write_recent(&mut manifest, seq).unwrap();
            behaviour.install_flushed(flushed);
        }
    }
    (behaviour, written)
}

type Gathered = Vec<(u64, Vec<(u64, u64, u64)>)>;

fn gathered(behaviour: &Behaviour, cut: u64, parts: usize) -> Gathered {
    behaviour
        .round_events_in(cut, parts)
        .unwrap()
        .iter()
        .map(|u| (u.user, u.events.iter().map(|e| (e.ts, e.seq, e.item)).collect()))
        .collect()
}

#[test]
fn a_gather_in_parts_is_the_gather_in_one_and_the_history_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (behaviour, written) = behaviour_with_runs(dir.path());
    let largest = behaviour
        .load()
        .events
        .iter()
        .max_by_key(|r| r.count())
        .cloned()
        .unwrap();
    assert_eq!(
        largest.user_quantiles(3).unwrap().len(),
        2,
        "the parts must really split"
    );
    for cut in [u64::MAX, 13_500, 7_000] {
        let model: Gathered = written
            .iter()
            .filter_map(|(&user, events)| {
                let mut events = events.clone();
                events.sort_unstable();
                let newest = events.split_off(events.len().saturating_sub(HISTORY_LEN));
                let below: Vec<_> = newest.into_iter().filter(|&(_, seq, _)| seq < cut).collect();
                (!below.is_empty()).then_some((user, below))
            })
            .collect();
        let whole = gathered(&behaviour, cut, 1);
        assert_eq!(whole, model, "cut {cut}: one walk against the model");
        for parts in [2, 3, 8] {
            assert_eq!(gathered(&behaviour, cut, parts), whole, "cut {cut}: {parts} parts");
        }
    }
}

#[test]
fn a_scan_from_a_user_starts_at_or_before_that_user_and_misses_none_of_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (behaviour, _) = behaviour_with_runs(dir.path());
    let runs = behaviour.load().events.clone();
    for run in &runs {
        let everything: Vec<_> = run.entries().map(|g| g.unwrap().to_vec()).collect();
        for from in [0, 1, 77, 150, 299, 300, u64::MAX] {
            let expected: Vec<_> = everything.iter().filter(|g| g[0].user >= from).cloned().collect();
            let from_there: Vec<_> = run
                .entries_from(from)
                .unwrap()
                .map(|g| g.unwrap().to_vec())
                .filter(|g| g[0].user >= from)
                .collect();
            assert_eq!(from_there, expected, "run {} from user {from}", run.id());
        }
    }
}
