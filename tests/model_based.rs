//! A model-based test, as redb's: random sequences of upserts, deletes,
//! event batches, small training rounds, compactions, seals, snapshots,
//! clean reopens and crashes (`close_without_checkpoint`: no checkpoint,
//! no final flush, as a `kill -9` of a `Buffered` store leaves it), checked
//! after every step against an in-memory model: a `BTreeMap` of vectors
//! and a `Vec` of items per user. Real `kill -9` of a child process is
//! `tests/crash_kill.rs` and `ember torture`.
//!
//! `MODEL_SEQUENCES` and `MODEL_STEPS` make it longer.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::vector_for;
use emberdb::{Durability, Event, IndexSpec, Metric, Options, Query, SpaceSpec, Store, TrainOptions};
use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const ITEMS: u64 = 300;
const USERS: u64 = 25;
const HISTORY_LEN: usize = 50;

fn opts() -> Options {
    let train = TrainOptions::default().epochs(1).incremental_epochs(1).threads(1);
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .segment_rows(64)
        .flat_below(32)
        .index(IndexSpec::hnsw())
        .history_len(HISTORY_LEN)
        .wal_file_bytes(8 * 1024)
        .space("i2v", SpaceSpec::item2vec(DIM).train_options(train))
}

/// A vector for `id` at `version`, told apart from every other.
fn value(id: u64, version: u64) -> Vec<f32> {
    let mut v = vector_for(id, DIM);
    v[0] = (version * 10_000 + id) as f32;
    v
}

#[derive(Default, Clone)]
struct Model {
    items: BTreeMap<u64, Vec<f32>>,
    histories: HashMap<u64, Vec<u64>>,
}

impl Model {
    fn check(&self, store: &Store, step: &str) {
        let ids = store.ids().unwrap();
        let expected: Vec<u64> = self.items.keys().copied().collect();
        let mut ids_sorted = ids.clone();
        ids_sorted.sort_unstable();
        assert_eq!(ids_sorted, expected, "{step}: the ids");
        for (id, v) in &self.items {
            assert_eq!(store.get(*id).unwrap().as_ref(), Some(v), "{step}: item {id}");
        }
        for user in 0..USERS {
            let want = self
                .histories
                .get(&user)
                .map_or(&[][..], |h| &h[h.len().saturating_sub(HISTORY_LEN)..]);
            assert_eq!(store.history(user).unwrap(), want, "{step}: user {user}");
        }
        // An exact query of a stored vector finds it first (distance 0).
        if let Some((id, v)) = self.items.iter().next() {
            let hits = store.knn(&Query::vector(v).k(1).exact()).unwrap();
            assert_eq!(hits.first().map(|h| h.id), Some(*id), "{step}: exact knn");
        }
    }
}

fn run_sequence(dir: &Path, seed: u64, steps: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut store = Some(Store::open(dir, opts()).unwrap());
    let mut version = 0u64;
    let mut ts = 0u64;
    let mut snapshots = 0;
    for step in 0..steps {
        let s = store.as_ref().unwrap();
        let roll = rng.gen_range(0..100);
        let what = match roll {
            0..=34 => {
                let id = rng.gen_range(0..ITEMS);
                version += 1;
                s.upsert(id, &value(id, version)).unwrap();
                model.items.insert(id, value(id, version));
                "upsert"
            }
            35..=49 => {
                let id = rng.gen_range(0..ITEMS);
                let was = s.delete(id).unwrap();
                // (Live anywhere: the trained space may hold it even when
                // the host-fed default space does not.)
                if model.items.remove(&id).is_some() {
                    assert!(was, "step {step}: delete {id} of a live item said false");
                }
                "delete"
            }
            50..=69 => {
                let batch: Vec<Event> = (0..rng.gen_range(1..30))
                    .map(|_| {
                        ts += 1;
                        Event::new(rng.gen_range(0..USERS), rng.gen_range(0..ITEMS), ts)
                    })
                    .collect();
                s.append_events(&batch).unwrap();
                for e in &batch {
                    model.histories.entry(e.user).or_default().push(e.item);
                }
                "events"
            }
            70..=74 => {
                s.space("i2v").unwrap().train().unwrap();
                "train"
            }
            75..=79 => {
                s.compact().unwrap();
                "compact"
            }
            80..=83 => {
                s.seal().unwrap();
                "seal"
            }
            84..=86 => {
                snapshots += 1;
                let dest = dir.with_extension(format!("snap{snapshots}"));
                s.snapshot(&dest).unwrap();
                // The snapshot holds exactly the model, read-only too.
                model.check(
                    &Store::open_read_only(&dest).unwrap(),
                    &format!("step {step}: snapshot"),
                );
                std::fs::remove_dir_all(&dest).unwrap();
                "snapshot"
            }
            87..=92 => {
                drop(store.take());
                store = Some(Store::open(dir, opts()).unwrap());
                "reopen"
            }
            _ => {
                // A crash: nothing after the last write call is flushed or
                // checkpointed; `Buffered` writes are in the OS already.
                store.take().unwrap().close_without_checkpoint();
                let reopened = Store::open(dir, opts()).unwrap();
                assert!(
                    reopened.verify().unwrap().problems.is_empty(),
                    "step {step}: verify after a crash"
                );
                store = Some(reopened);
                "crash"
            }
        };
        model.check(store.as_ref().unwrap(), &format!("seed {seed} step {step} ({what})"));
    }
    let s = store.take().unwrap();
    let report = s.verify().unwrap();
    assert!(report.problems.is_empty(), "seed {seed}: {:?}", report.problems);
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_sequences_match_the_model_after_every_step() {
    let sequences = env("MODEL_SEQUENCES", 6);
    let steps = env("MODEL_STEPS", 120);
    for seed in 0..sequences as u64 {
        let dir = tempfile::tempdir().unwrap();
        run_sequence(&dir.path().join("store"), seed, steps);
    }
    println!("{sequences} sequences of {steps} steps matched the model after every step");
}
