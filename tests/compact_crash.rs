//! A real `kill -9` while compactions run: a child process writes under
//! `Durability::Sync` and compacts over and over; the parent kills it at a
//! random moment, reopens, and checks that every acknowledged write is
//! there, every acknowledged delete is gone, and that `verify` finds the
//! store whole with nothing left over (the old or the new layout, never a
//! mix). The directory is kept across iterations.
//!
//! `EMBER_COMPACT_CRASH_ITERATIONS` raises the number of kills (default 8).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{normalized, vector_for};
use emberdb::{Durability, IndexSpec, Options, Store};
use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const CHILD_DIR: &str = "EMBER_COMPACT_CHILD_DIR";
const CHILD_ROUND: &str = "EMBER_COMPACT_CHILD_ROUND";

fn opts() -> Options {
    Options::new(DIM)
        .durability(Durability::Sync)
        .segment_rows(150)
        .index(IndexSpec::Flat)
        .history_len(10)
}

#[test]
fn compact_crash_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return; // Run as a normal test: nothing to do.
    };
    let round: u64 = round.parse().unwrap();
    let store = Store::open(&dir, opts()).unwrap();
    println!("READY");
    for i in 0u64.. {
        let id = round * 1_000_000 + i;
        store.upsert(id, &vector_for(id, DIM)).unwrap();
        println!("ACK U {id}");
        if i % 3 == 2 {
            let victim = id - 2;
            println!("TRY D {victim}");
            store.delete(victim).unwrap();
            println!("ACK D {victim}");
        }
        if i % 40 == 39 {
            store.compact().unwrap();
            println!("COMPACTED");
        }
    }
}

#[test]
fn killed_compactions_leave_the_old_or_the_new_layout() {
    let iterations: u64 = std::env::var("EMBER_COMPACT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (mut upserts, mut deletes, mut tried) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut compactions = 0;
    for round in 1..=iterations {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "compact_crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("child never became ready");
            if line.ends_with("READY") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [.., "ACK", "U", id] => {
                    upserts.insert(id.parse::<u64>().unwrap());
                }
                [.., "TRY", "D", id] => {
                    tried.insert(id.parse::<u64>().unwrap());
                }
                [.., "ACK", "D", id] => {
                    deletes.insert(id.parse::<u64>().unwrap());
                }
                [.., "COMPACTED"] => compactions += 1,
                _ => {}
            }
        }

        let store = Store::open(dir.path(), opts()).unwrap();
        for id in &upserts {
            let got = store.get(*id).unwrap();
            if deletes.contains(id) {
                assert_eq!(got, None, "round {round}: deleted item {id} is back");
            } else if !tried.contains(id) {
                assert_eq!(
                    got,
                    Some(normalized(&vector_for(*id, DIM))),
                    "round {round}: item {id} lost"
                );
            }
        }
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "round {round}: {:?}", report.problems);
    }
    assert!(
        compactions >= iterations,
        "the children compacted only {compactions} times"
    );
    println!(
        "{iterations} kills, {} acknowledged upserts, {} deletes, {compactions} compactions",
        upserts.len(),
        deletes.len()
    );
}
