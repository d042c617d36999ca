use super::*;

pub(crate) fn entry(user: u64, seq: u64, ts: u64) -> EventEntry {
    EventEntry {
        user,
        seq,
        item: user * 1000 + seq,
        ts,
        weight: 1.0,
        reserved: 0,
    }
}

fn header(id: u64, from: u64, to: u64) -> RunHeader {
    RunHeader {
        id,
        from_seq: from,
        to_seq: to,
        history_len: 0,
        bottom: false,
    }
}

/// `users` users with `per` events each (user u gets u % 7 extra), seq
/// numbers from 100 in user order.
fn sample(users: u64, per: u64) -> Vec<EventEntry> {
    let mut out = Vec::new();
    let mut seq = 100;
    for u in 0..users {
        for i in 0..per + u % 7 {
            out.push(entry(u * 3 + 1, seq, 5_000 - i));
            seq += 1;
        }
    }
    out
}

fn write(dir: &Path, entries: &[EventEntry]) -> Arc<EventRun> {
    let to = entries.iter().map(|e| e.seq + 1).max().unwrap_or(100);
    write_event_run(dir, header(9, 0, to), entries.iter().copied()).unwrap()
}

fn by_user(entries: &[EventEntry]) -> Vec<Vec<EventEntry>> {
    entries.chunk_by(|a, b| a.user == b.user).map(<[_]>::to_vec).collect()
}

#[test]
fn round_trip_lookups_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(40, 20);
    let run = write(dir.path(), &entries);
    assert_eq!((run.count(), run.users(), run.id()), (entries.len() as u64, 40, 9));
    assert_eq!(run.header(), header(9, 0, entries.last().unwrap().seq + 1));
    assert_eq!(run.bytes(), std::fs::metadata(run.path()).unwrap().len());
    for user in by_user(&entries) {
        assert_eq!(run.user_slice(user[0].user).unwrap(), &user[..]);
    }
    for absent in [0, 2, 3, 1_000, u64::MAX] {
        assert!(run.user_slice(absent).unwrap().is_empty(), "user {absent}");
    }
    let scanned: Vec<Vec<EventEntry>> = run.entries().map(|s| s.unwrap().to_vec()).collect();
    assert_eq!(scanned, by_user(&entries));
    assert_eq!(run.verify().unwrap(), entries.len() as u64);
    // Reopened from disk, the same.
    let again = EventRun::open(run.path(), 9).unwrap();
    assert_eq!(again.user_slice(4).unwrap(), run.user_slice(4).unwrap());
    assert!(matches!(
        EventRun::open(run.path(), 8),
        Err(Error::Corruption { offset: 24, .. })
    ));
}

#[test]
fn an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = write_event_run(dir.path(), header(1, 5, 5), []).unwrap();
    assert_eq!((run.count(), run.users(), run.bytes()), (0, 0, 128));
    assert!(run.user_slice(0).unwrap().is_empty());
    assert!(run.user_slice(u64::MAX).unwrap().is_empty());
    assert_eq!(run.entries().count(), 0);
    assert_eq!(run.verify().unwrap(), 0);
}

#[test]
fn a_large_run_with_users_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sample(3_000, 32);
    // One user filling several blocks whole, to span more than two.
    let seq = entries.last().unwrap().seq + 1;
    entries.extend((0..1_000).map(|i| entry(1 << 40, seq + i, i)));
    assert!(entries.len() > 100_000);
    let run = write(dir.path(), &entries);
    let users = by_user(&entries);
    let mut spanning = 0;
    let mut at = 0;
    for user in &users {
        if at / BLOCK_ENTRIES != (at + user.len() - 1) / BLOCK_ENTRIES {
            spanning += 1;
        }
        at += user.len();
        assert_eq!(run.user_slice(user[0].user).unwrap(), &user[..]);
    }
    assert!(spanning > 300, "{spanning} users span a block boundary");
    assert_eq!(run.user_slice(1 << 40).unwrap().len(), 1_000);
    let fresh = EventRun::open(run.path(), 9).unwrap();
    let scanned: Vec<&[EventEntry]> = fresh.entries().map(|s| s.unwrap()).collect();
    assert_eq!(scanned.len(), users.len());
    assert!(scanned.iter().zip(&users).all(|(a, b)| *a == &b[..]));
    assert_eq!(fresh.verify().unwrap(), entries.len() as u64);
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        vec![entry(1, 5, 0), entry(1, 5, 1)],
        vec![entry(2, 5, 0), entry(1, 6, 1)],
        vec![entry(1, 50, 0)],
        vec![entry(1, 4, 0)],
        vec![EventEntry {
            weight: f32::NAN,
            ..entry(1, 5, 0)
        }],
        vec![EventEntry {
            weight: -1.0,
            ..entry(1, 5, 0)
        }],
        vec![EventEntry {
            reserved: 1,
            ..entry(1, 5, 0)
        }],
    ];
    for (i, entries) in cases.into_iter().enumerate() {
        let outcome = write_event_run(dir.path(), header(3, 5, 10), entries);
        assert!(matches!(outcome, Err(Error::InvalidEvent { .. })), "case {i}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "case {i} left a file"
        );
    }
    let failing = [Ok(entry(1, 5, 0)), Err(Error::InvalidOptions("stop".into()))];
    assert!(matches!(
        write_event_run_from(dir.path(), header(3, 5, 10), failing),
        Err(Error::InvalidOptions(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A small run over 3 blocks (so the index and table have some bytes).
fn small(dir: &Path) -> (Arc<EventRun>, Vec<u8>) {
    let run = write(dir, &sample(30, 20));
    assert_eq!(run.frame.blocks, 3);
    let bytes = std::fs::read(run.path()).unwrap();
    (run, bytes)
}

#[test]
fn every_bit_flip_outside_the_blocks_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (run, bytes) = small(dir.path());
    let path = run.path().to_path_buf();
    let index_at = run.frame.index_offset;
    // The directory's slots are checked on first touch, like the blocks
    // (see `a_damaged_directory_never_gives_a_wrong_history`).
    let slots = run.frame.directory.as_ref().unwrap().slot_range();
    drop(run);
    let outside = (0..HEADER_LEN)
        .chain(index_at..bytes.len())
        .filter(|b| !slots.contains(b));
    for byte in outside {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[byte] ^= 1 << bit;
            std::fs::write(&path, &bad).unwrap();
            match EventRun::open(&path, 9) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                Err(Error::NewerFormat { .. }) => {}
                other => panic!("byte {byte} bit {bit}: {:?}", other.map(|r| r.count())),
            }
        }
    }
    for len in [0, 1, 63, 64, 127, 128, 4096, bytes.len() - 64, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert!(
            matches!(EventRun::open(&path, 9), Err(Error::Corruption { .. })),
            "cut at {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&path, &longer).unwrap();
    assert!(EventRun::open(&path, 9).is_err());
}

#[test]
fn a_damaged_block_fails_its_reads_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (run, mut bytes) = small(dir.path());
    let path = run.path().to_path_buf();
    let entries = sample(30, 20);
    drop(run);
    // A byte inside block 1 (entries 256..512).
    let victim = entries[300].user;
    bytes[HEADER_LEN + 300 * ENTRY_BYTES + 17] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let run = EventRun::open(&path, 9).unwrap();
    let block_start = (HEADER_LEN + BLOCK_ENTRIES * ENTRY_BYTES) as u64;
    for _ in 0..2 {
        match run.user_slice(victim) {
            Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (path.clone(), block_start)),
            other => panic!("{other:?}"),
        }
    }
    // Users wholly in other blocks still read.
    assert_eq!(run.user_slice(entries[0].user).unwrap().len(), 20);
    assert!(run.user_slice(entries[600].user).is_ok());
    assert!(matches!(run.verify(), Err(Error::Corruption { offset, .. }) if offset == block_start));
    let scan: Vec<_> = run.entries().collect();
    assert!(scan.last().unwrap().is_err(), "the scan ends with the error");
}

#[test]
fn disorder_with_restamped_checksums_is_caught_at_first_touch() {
    let dir = tempfile::tempdir().unwrap();
    let (run, bytes) = small(dir.path());
    let path = run.path().to_path_buf();
    let entries = sample(30, 20);
    drop(run);
    let block_start = (HEADER_LEN + BLOCK_ENTRIES * ENTRY_BYTES) as u64;
    // Two entries of block 1 swapped, crcs restamped: opens, then fails.
    let mut swapped = bytes.clone();
    let (a, b) = (HEADER_LEN + 300 * ENTRY_BYTES, HEADER_LEN + 301 * ENTRY_BYTES);
    let first: Vec<u8> = swapped[a..b].to_vec();
    swapped.copy_within(b..b + ENTRY_BYTES, a);
    swapped[b..b + ENTRY_BYTES].copy_from_slice(&first);
    restamp(&mut swapped);
    std::fs::write(&path, &swapped).unwrap();
    let run = EventRun::open(&path, 9).unwrap();
    assert!(
        matches!(run.user_slice(entries[300].user), Err(Error::Corruption { offset, .. }) if offset == block_start)
    );
    assert!(matches!(run.verify(), Err(Error::Corruption { offset, .. }) if offset == block_start));
    drop(run);
    // The last entry of block 0 and the first of block 1 swapped: each
    // block alone may pass, the read across the boundary does not.
    let mut across = bytes.clone();
    let (a, b) = (HEADER_LEN + 255 * ENTRY_BYTES, HEADER_LEN + 256 * ENTRY_BYTES);
    let first: Vec<u8> = across[a..b].to_vec();
    across.copy_within(b..b + ENTRY_BYTES, a);
    across[b..b + ENTRY_BYTES].copy_from_slice(&first);
    restamp(&mut across);
    std::fs::write(&path, &across).unwrap();
    let run = EventRun::open(&path, 9).unwrap();
    assert!(run.verify().is_err());
    assert!(run.entries().any(|s| s.is_err()));
    // The untouched, restamped file is still clean.
    drop(run);
    let mut same = bytes.clone();
    restamp(&mut same);
    assert_eq!(same, bytes);
}

#[test]
fn the_directory_finds_what_the_binary_search_finds() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = sample(5_000, 3);
    let seq = entries.last().unwrap().seq + 1;
    entries.extend((0..700).map(|i| entry(1 << 40, seq + i, i)));
    let run = write(dir.path(), &entries);
    let table = run.frame.directory.as_ref().expect("version 2 runs carry a directory");
    assert!(table.slot_range().len() / 8 >= 2 * run.users() as usize);
    let users = by_user(&entries);
    let index = run.frame.index(run.path()).unwrap().to_vec();
    for user in &users {
        let u = user[0].user;
        assert_eq!(run.user_slice(u).unwrap(), &user[..], "user {u}");
        // The sparse index alone gives the same slice.
        let past = index.partition_point(|&k| k <= u);
        let first = index.partition_point(|&k| k < u).saturating_sub(1);
        let window = &run.all().unwrap()[first * BLOCK_ENTRIES..(past * BLOCK_ENTRIES).min(entries.len())];
        let (lo, hi) = (
            window.partition_point(|e| e.user < u),
            window.partition_point(|e| e.user <= u),
        );
        assert_eq!(&window[lo..hi], &user[..]);
    }
    for absent in (0..20_000u64).filter(|u| u % 3 != 1).chain([u64::MAX, (1 << 40) + 1]) {
        assert!(run.user_slice(absent).unwrap().is_empty(), "user {absent}");
    }
    assert_eq!(run.verify().unwrap(), entries.len() as u64);
}

/// A version-1 run (before the directory) written from a version-2 one:
/// the directory cut out, the version and footer set back, restamped.
fn as_version_1(bytes: &[u8], run: &EventRun) -> Vec<u8> {
    let dir_at = run.frame.directory.as_ref().unwrap().offset() as usize;
    let footer_at = bytes.len() - blocks::FOOTER_LEN;
    let mut old = bytes[..dir_at].to_vec();
    old.extend_from_slice(&bytes[footer_at..]);
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let new_footer = old.len() - blocks::FOOTER_LEN;
    old[new_footer + 56..new_footer + 60].fill(0);
    restamp(&mut old);
    old
}

#[test]
fn version_1_runs_without_a_directory_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(400, 5);
    let run = write(dir.path(), &entries);
    let bytes = std::fs::read(run.path()).unwrap();
    let old = as_version_1(&bytes, &run);
    let path = run.path().to_path_buf();
    drop(run);
    std::fs::write(&path, &old).unwrap();
    let run = EventRun::open(&path, 9).unwrap();
    assert!(run.frame.directory.is_none());
    for user in by_user(&entries) {
        assert_eq!(run.user_slice(user[0].user).unwrap(), &user[..]);
    }
    assert!(run.user_slice(2).unwrap().is_empty());
    assert_eq!(run.verify().unwrap(), entries.len() as u64);
}

#[test]
fn a_damaged_directory_never_gives_a_wrong_history() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(300, 4);
    let users = by_user(&entries);
    let run = write(dir.path(), &entries);
    let path = run.path().to_path_buf();
    let slots = run.frame.directory.as_ref().unwrap().slot_range();
    let bytes = std::fs::read(&path).unwrap();
    drop(run);
    let occupied: Vec<usize> = (slots.start..slots.end)
        .step_by(8)
        .filter(|&at| bytes[at..at + 8] != [0xff; 8])
        .collect();
    assert_eq!(occupied.len(), users.len());
    // A flip in any slot byte, with and without its crcs restamped: every
    // lookup is the true history or Corruption naming the file; verify
    // fails.
    for (n, &at) in occupied.iter().enumerate().step_by(7) {
        for (byte, bit) in [(0, 0), (3, 5), (4, 1), (5, 7), (7, 2)] {
            for restamped in [false, true] {
                let mut bad = bytes.clone();
                bad[at + byte] ^= 1 << bit;
                if restamped {
                    restamp(&mut bad);
                }
                std::fs::write(&path, &bad).unwrap();
                let run = EventRun::open(&path, 9).unwrap();
                for user in &users {
                    match run.user_slice(user[0].user) {
                        Ok(slice) if slice == &user[..] => {}
                        Ok(slice) if restamped && slice.is_empty() => {
                            // The damaged slot no longer finds its user:
                            // only `verify` can tell (below).
                        }
                        Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                        other => panic!("slot {n} byte {byte} bit {bit}: {other:?}"),
                    }
                }
                assert!(
                    matches!(run.verify(), Err(Error::Corruption { ref file, .. }) if *file == path),
                    "slot {n} byte {byte} bit {bit}, restamped {restamped}"
                );
            }
        }
    }
}

#[test]
fn the_exponential_search_counts_a_users_prefix_as_a_linear_count_does() {
    for len in 0..70u64 {
        for mine in 0..=len {
            let entries: Vec<EventEntry> = (0..len)
                .map(|i| entry(if i < mine { 5 } else { 6 + i }, i, i))
                .collect();
            assert_eq!(prefix_of(&entries, 5), mine as usize, "{mine} of {len}");
            assert_eq!(prefix_of(&entries, 4), 0, "another user's entries, {len}");
        }
    }
}
