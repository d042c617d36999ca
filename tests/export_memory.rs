//! `export_parquet` streams `events.parquet` from the runs a row group at a
//! time: the heap it allocates while it runs does not grow with the events
//! exported. Measured by a counting global allocator around two exports of
//! stores that differ only in their number of events (4x), and checked
//! against the rows written (every event, a row group at a time).
//!
//! One test in this binary: the allocator counts every thread's heap.

#![cfg(feature = "parquet")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use emberdb::{Durability, Event, ExportOptions, Options, Store};

/// The system allocator, counting the bytes live now and the most since
/// the last [`reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call goes to `System` with the caller's own arguments, so
// the `GlobalAlloc` contract is `System`'s; the counters are atomics that
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given (see the impl).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given (see the impl).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given (see the impl).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as given (see the impl).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a new peak at what is live now; returns that.
fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

const USERS: u64 = 2_000;
const ITEMS: u64 = 200;
const DIM: usize = 8;

/// A store of `events` events over [`USERS`] users, all in runs (flushed
/// every 100 k events), with vectors for [`ITEMS`] items.
fn store_with(path: &std::path::Path, events: u64) -> Store {
    let store = Store::open(
        path,
        Options::new(DIM)
            .durability(Durability::None)
            .merge_threads(0)
            .background_indexing(false),
    )
    .unwrap();
    for item in 0..ITEMS {
        store.upsert(item, &common::vector_for(item, DIM)).unwrap();
    }
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..events {
        batch.push(Event::new(i % USERS, (i * 7) % ITEMS, 1_000 + i));
        if batch.len() == 10_000 {
            store.append_events(&batch).unwrap();
            batch.clear();
        }
        if (i + 1) % 100_000 == 0 {
            store.flush().unwrap();
        }
    }
    store.append_events(&batch).unwrap();
    store.flush().unwrap();
    store
}

/// The most heap `export_parquet` of `store` held above what was live when
/// it began, and the rows of its `events.parquet`.
fn export_peak(store: &Store, out: &std::path::Path) -> (usize, u64) {
    let opts = ExportOptions {
        neighbours: 0,
        row_group_rows: 4_096,
        ..ExportOptions::default()
    };
    let before = reset_peak();
    let report = store.export_parquet(out, &opts).unwrap();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (peak, report.events)
}

#[test]
fn exporting_events_takes_the_same_heap_for_four_times_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let (small_events, large_events) = (200_000u64, 800_000u64);
    let small = store_with(&dir.path().join("small"), small_events);
    let (small_peak, small_rows) = export_peak(&small, &dir.path().join("small-out"));
    drop(small);
    let large = store_with(&dir.path().join("large"), large_events);
    let (large_peak, large_rows) = export_peak(&large, &dir.path().join("large-out"));
    println!(
        "export heap peak: {:.2} MiB for {small_events} events, {:.2} MiB for {large_events}",
        small_peak as f64 / (1 << 20) as f64,
        large_peak as f64 / (1 << 20) as f64
    );
    assert_eq!((small_rows, large_rows), (small_events, large_events));
    // What does grow is Parquet's footer, a few KiB of metadata a row group
    // kept until the file closes (0.6 MiB for 150 more groups here).
    // Gathering the histories would hold at least 16 bytes (user, item) of
    // each event: 12.8 MB for the large store, 9.6 MB more than the small.
    let gathered_difference = ((large_events - small_events) * 16) as usize;
    assert!(
        large_peak < small_peak + gathered_difference / 8,
        "the heap grew with the events: {small_peak} B for {small_events} events, {large_peak} B for {large_events}"
    );
    assert!(
        large_peak < (large_events * 16) as usize / 2,
        "the export held {large_peak} B for {large_events} events"
    );
    // What was written: every event, in row groups of the size asked.
    let file = std::fs::File::open(dir.path().join("large-out/events.parquet")).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let rows = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .num_rows();
    assert_eq!(rows as u64, large_events);
    assert!(
        parquet::file::reader::FileReader::metadata(&reader).num_row_groups() >= (large_events / 4_096) as usize,
        "row groups of at most 4,096 rows"
    );
}
