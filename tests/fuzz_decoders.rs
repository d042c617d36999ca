//! Every decoder of bytes read from disk, fed mutated valid inputs: no
//! input may panic, hang or allocate beyond a bound. A mutated input has
//! its checksums restamped three times in four (`fuzz::fix_checksums`), so
//! that the mutations also reach the parsing behind the checksums.
//!
//! CI runs `FUZZ_CASES` cases per decoder (default 2,000). Longer:
//! `FUZZ_CASES=1000000 cargo test --release --test fuzz_decoders -- --nocapture`,
//! or the `cargo fuzz` targets in `fuzz/` (nightly), which call the same
//! entry points.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use emberdb::fuzz::{decode, fix_checksums, seeds, Decoder};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The largest allocation a decoder may make for inputs of a few KB: a
/// length field trusted before it is checked asks for far more.
const ALLOCATION_BOUND: usize = 32 << 20;

/// Records the largest single allocation request made on this thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the only
// addition is a thread-local `Cell` update, which neither allocates nor
// unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    /// A length or count field set to an extreme.
    Word32 {
        at: usize,
        value: u32,
    },
    Word64 {
        at: usize,
        value: u64,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word32 = prop_oneof![Just(0u32), Just(1), Just(u32::MAX), Just(i32::MAX as u32), any::<u32>()];
    let word64 = prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(1 << 40), any::<u64>()];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), word32).prop_map(|(at, value)| Mutation::Word32 { at, value }),
        (any::<usize>(), word64).prop_map(|(at, value)| Mutation::Word64 { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    let pos = |at: usize, width: usize| (n >= width).then(|| at % (n - width + 1));
    match m {
        Mutation::Flip { at, bit } => {
            if let Some(p) = pos(*at, 1) {
                bytes[p] ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(p) = pos(*at, 1) {
                bytes[p] = *byte;
            }
        }
        Mutation::Word32 { at, value } => {
            // Fields sit at multiples of 4 in every layout.
            if let Some(p) = pos(*at, 4) {
                let p = p / 4 * 4;
                bytes[p..p + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Word64 { at, value } => {
            if let Some(p) = pos(*at, 8) {
                let p = p / 8 * 8;
                bytes[p..p + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Truncate { len } => bytes.truncate(len % (n + 1)),
        Mutation::Insert { at, bytes: b } => {
            let p = at % (n + 1);
            bytes.splice(p..p, b.iter().copied());
        }
        Mutation::Remove { at, len } => {
            if n > 0 {
                let p = at % n;
                bytes.drain(p..(p + len).min(n));
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn fuzz(decoder: Decoder) {
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(decoder, dir.path());
    assert!(!seeds.is_empty(), "{}: no seeds", decoder.name());
    for seed in &seeds {
        assert_eq!(
            decode(decoder, seed, dir.path()),
            Ok(()),
            "{}: a valid seed is refused",
            decoder.name()
        );
    }
    let accepted = Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..seeds.len(),
        prop::collection::vec(mutation(), 1..5),
        prop::bool::weighted(0.75),
    );
    let outcome = runner.run(&strategy, |(seed, mutations, fix)| {
        let mut bytes = seeds[seed].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if fix {
            fix_checksums(decoder, &mut bytes);
        }
        LARGEST.with(|l| l.set(0));
        let result = decode(decoder, &bytes, dir.path());
        let largest = LARGEST.with(|l| l.get());
        if result.is_ok() {
            accepted.set(accepted.get() + 1);
        }
        if largest > ALLOCATION_BOUND {
            return Err(TestCaseError::fail(format!(
                "allocated {largest} bytes at once for an input of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{}: {e}", decoder.name());
    }
    println!(
        "{}: {} cases, {} mutated inputs accepted, no panic, largest allocation within {} MiB",
        decoder.name(),
        cases(),
        accepted.get(),
        ALLOCATION_BOUND >> 20
    );
}

#[test]
fn wal_files_never_panic() {
    fuzz(Decoder::WalFile);
}

#[test]
fn wal_records_never_panic() {
    fuzz(Decoder::WalRecord);
}

#[test]
fn metadata_envelopes_never_panic() {
    fuzz(Decoder::Envelope);
}

#[test]
fn segment_files_never_panic() {
    fuzz(Decoder::Segment);
}

#[test]
fn index_file_wrappers_never_panic() {
    fuzz(Decoder::IndexFile);
}

#[test]
fn trainer_states_never_panic() {
    fuzz(Decoder::TrainerState);
}

#[test]
fn dnn_states_never_panic() {
    fuzz(Decoder::DnnState);
}

#[test]
fn metadata_pointers_never_panic() {
    fuzz(Decoder::Current);
}

#[test]
fn recovery_copies_never_panic() {
    fuzz(Decoder::Recovery);
}

#[test]
fn event_runs_never_panic() {
    fuzz(Decoder::EventRun);
}

#[test]
fn keyed_runs_never_panic() {
    fuzz(Decoder::KeyedRun);
}

#[test]
fn every_decoder_has_a_test() {
    assert_eq!(Decoder::ALL.len(), 11, "a decoder was added: give it a test above");
}
