//! Crash test with a real `kill -9`: a child process (this test binary, run
//! again in child mode) writes under `Durability::Sync` and prints each
//! acknowledged write; the parent kills it at a random moment, reopens the
//! store and checks that every acknowledged write is there and that nothing
//! unacknowledged appears half-written. The store directory is kept across
//! iterations, so each one also recovers from all the crashes before it.
//!
//! `EMBER_CRASH_ITERATIONS` raises the number of kills (default 20).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::vector_for;
use emberdb::{Durability, Event, Metric, Options, Query, Store};
use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const CHILD_DIR: &str = "EMBER_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "EMBER_CRASH_CHILD_ROUND";

fn opts() -> Options {
    // Small segments and log files, so kills land during seals, rotations
    // and checkpoints too.
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Sync)
        .segment_rows(40)
        .wal_file_bytes(8 * 1024)
        .checkpoint_wal_bytes(24 * 1024)
        .history_len(100_000)
}

/// Ids written in round `r` are `r * ROUND_IDS + i`.
const ROUND_IDS: u64 = 1_000_000;

/// Child mode: write forever, acknowledging each write on stdout.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return; // Run as a normal test: nothing to do.
    };
    let round: u64 = round.parse().unwrap();
    let store = Store::open(&dir, opts()).unwrap();
    println!("READY");
    for i in 0.. {
        let id = round * ROUND_IDS + i;
        store.upsert(id, &vector_for(id, DIM)).unwrap();
        println!("ACK U {id}");
        store.append_event(Event::new(round, id, i)).unwrap();
        println!("ACK E {round} {id}");
        if i % 3 == 0 {
            store
                .set_attributes(id, &[("i", &i.to_string()), ("round", "r")])
                .unwrap();
            println!("ACK A {id}");
        }
        if i % 5 == 4 {
            let victim = id - 3;
            println!("TRY D {victim}");
            assert!(store.delete(victim).unwrap());
            println!("ACK D {victim}");
        }
        if i % 50 == 49 {
            let batch: Vec<Event> = (0..20).map(|j| Event::new(ROUND_IDS + round, j, i)).collect();
            store.append_events(&batch).unwrap();
            println!("ACK B {round} {}", batch.len());
        }
    }
}

#[derive(Default)]
struct Acked {
    upserts: BTreeSet<u64>,
    deletes: BTreeSet<u64>,
    /// A delete that was started but not acknowledged may or may not be done.
    tried_deletes: BTreeSet<u64>,
    /// Items whose attributes were acknowledged.
    attributes: BTreeSet<u64>,
    /// user -> items of acknowledged single events.
    events: BTreeMap<u64, Vec<u64>>,
    batch_events: usize,
}

fn run_child_and_kill(dir: &std::path::Path, round: u64, rng: &mut impl Rng) -> Acked {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the child has opened (recovered) the store, then let it
    // write for a random while.
    // (The harness may print "test crash_child ... " on the same line.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child never became ready");
        if line.ends_with("READY") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "child never became ready");
    }
    std::thread::sleep(Duration::from_millis(rng.gen_range(20..400)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();

    let mut acked = Acked::default();
    for line in rx.try_iter() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ACK", "U", id] => {
                acked.upserts.insert(id.parse().unwrap());
            }
            ["TRY", "D", id] => {
                acked.tried_deletes.insert(id.parse().unwrap());
            }
            ["ACK", "D", id] => {
                acked.deletes.insert(id.parse().unwrap());
            }
            ["ACK", "A", id] => {
                acked.attributes.insert(id.parse().unwrap());
            }
            ["ACK", "E", user, item] => acked
                .events
                .entry(user.parse().unwrap())
                .or_default()
                .push(item.parse().unwrap()),
            ["ACK", "B", _, n] => acked.batch_events += n.parse::<usize>().unwrap(),
            // A line cut by the kill, or test-harness chatter.
            _ => {}
        }
    }
    acked
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let iterations: u64 = std::env::var("EMBER_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut all_upserts = BTreeSet::new();
    let mut all_deletes = BTreeSet::new();
    let mut maybe_deleted = BTreeSet::new();
    let mut total_acks = 0;
    for round in 0..iterations {
        let acked = run_child_and_kill(dir.path(), round, &mut rng);
        total_acks += acked.upserts.len();
        all_upserts.extend(acked.upserts.iter().copied());
        all_deletes.extend(acked.deletes.iter().copied());
        maybe_deleted.extend(acked.tried_deletes.difference(&acked.deletes).copied());

        let store = Store::open(dir.path(), opts()).unwrap();
        // Every acknowledged upsert of every round is there, whole, unless
        // its deletion was acknowledged.
        for &id in &all_upserts {
            let got = store.get(id).unwrap();
            if all_deletes.contains(&id) {
                assert_eq!(got, None, "round {round}: deleted item {id} came back");
            } else if maybe_deleted.contains(&id) && got.is_none() {
                // Its delete was in flight at the kill and made it.
            } else {
                assert_eq!(got, Some(vector_for(id, DIM)), "round {round}: acknowledged item {id}");
            }
        }
        // Unacknowledged writes (at most the one in flight) are whole or absent.
        let last = acked.upserts.iter().next_back().copied().unwrap_or(round * ROUND_IDS);
        for id in last + 1..last + 3 {
            if let Some(v) = store.get(id).unwrap() {
                assert_eq!(v, vector_for(id, DIM), "round {round}: in-flight item {id} is torn");
            }
        }
        // Acknowledged events are in the user's history, in order.
        let history = store.history(round).unwrap();
        for (user, items) in &acked.events {
            assert_eq!(*user, round);
            assert!(history.len() >= items.len(), "round {round}: history lost events");
            assert!(history.len() <= items.len() + 1, "round {round}: events appeared twice");
            assert_eq!(&history[..items.len()], &items[..], "round {round}: history differs");
        }
        // Acknowledged attributes are there, whole.
        for &id in &acked.attributes {
            let i = (id - round * ROUND_IDS).to_string();
            let want = vec![("i".to_string(), i), ("round".to_string(), "r".to_string())];
            assert_eq!(store.attributes(id), want, "round {round}: attributes of {id}");
        }
        // The trending counts agree with the histories: every event that
        // survived counted once, whatever the kills cut (all events are
        // inside the default window).
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        for user in (0..=round).chain(ROUND_IDS..=ROUND_IDS + round) {
            for item in store.history(user).unwrap() {
                *counts.entry(item).or_default() += 1;
            }
        }
        let popular = store.knn(&Query::popular().k(50)).unwrap();
        for hit in &popular {
            assert_eq!(
                Some(hit.score as u32),
                counts.get(&hit.id).copied(),
                "round {round}: count of {}",
                hit.id
            );
        }
        let top = counts
            .iter()
            .filter(|(id, _)| !all_deletes.contains(id) && !maybe_deleted.contains(id))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        // (An item whose delete was in flight may or may not rank.)
        assert!(
            popular.first().map(|h| h.score as u32).unwrap_or(0) >= top,
            "round {round}"
        );
        let batched = store.history(ROUND_IDS + round).unwrap().len();
        assert!(batched >= acked.batch_events, "round {round}: batch events lost");
        assert_eq!(batched % 20, 0, "round {round}: a batch was half applied");
        drop(store);
    }
    eprintln!(
        "{iterations} kills, {total_acks} acknowledged upserts, {} deletes",
        all_deletes.len()
    );
    assert!(
        total_acks > iterations as usize,
        "the child wrote too little to test anything"
    );
}
