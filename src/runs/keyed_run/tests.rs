//! Keyed run tests: round trips, refused input, damage at open and at read.
use super::*;

fn header(id: u64, bottom: bool) -> RunHeader {
    RunHeader {
        id,
        from_seq: 10,
        to_seq: 10_000,
        history_len: 0,
        bottom,
    }
}

fn set(id: u64) -> Vec<(String, String)> {
    (0..id % 4)
        .map(|i| (format!("key{i}"), format!("value {id} {}", "x".repeat(i as usize))))
        .collect()
}

/// 600 ids (5 blocks), every 7th a deletion, one with an empty set.
fn sample() -> Vec<KeyedItem> {
    (0..600u64)
        .map(|i| (i * 2 + 1, 10 + i, (i % 7 != 3).then(|| set(i))))
        .collect()
}

fn write(dir: &Path) -> Arc<KeyedRun> {
    write_keyed_run(dir, RunKind::Attributes, header(4, false), sample()).unwrap()
}

#[test]
fn round_trip_with_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let run = write(dir.path());
    assert_eq!((run.count(), run.id(), run.kind()), (600, 4, RunKind::Attributes));
    assert_eq!(run.header(), header(4, false));
    assert_eq!(run.bytes(), std::fs::metadata(run.path()).unwrap().len());
    for (id, seq, value) in sample() {
        assert_eq!(run.get(id).unwrap(), Some(KeyedValue { seq, value }), "id {id}");
        assert_eq!(run.get(id + 1).unwrap(), None);
    }
    assert_eq!(run.get(0).unwrap(), None);
    assert_eq!(run.get(u64::MAX).unwrap(), None);
    let listed: Vec<_> = run.iter().map(|r| r.unwrap()).collect();
    let expected: Vec<_> = sample()
        .into_iter()
        .map(|(id, seq, value)| (id, KeyedValue { seq, value }))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(run.verify().unwrap(), 600);
    assert!(matches!(
        KeyedRun::open(run.path(), RunKind::Features, 4),
        Err(Error::Corruption { offset: 20, .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the scratch file is gone"
    );
    // Empty, and a bottom run.
    let empty = write_keyed_run(dir.path(), RunKind::Features, header(5, true), []).unwrap();
    assert_eq!((empty.count(), empty.verify().unwrap()), (0, 0));
    assert_eq!(empty.get(3).unwrap(), None);
    let bottom = write_keyed_run(dir.path(), RunKind::Features, header(6, true), [(1, 10, Some(set(3)))]).unwrap();
    assert!(bottom.header().bottom);
    assert_eq!(bottom.get(1).unwrap().unwrap().value, Some(set(3)));
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let too_many = vec![("k".to_string(), "v".to_string()); MAX_FEATURES + 1];
    let too_long = vec![("k".to_string(), "v".repeat(MAX_FEATURE_BYTES + 1))];
    let cases: Vec<(bool, Vec<KeyedItem>)> = vec![
        (false, vec![(2, 10, None), (2, 11, None)]),
        (false, vec![(3, 10, None), (2, 11, None)]),
        (false, vec![(3, 9, None)]),
        (false, vec![(3, 10_000, None)]),
        (false, vec![(3, 10, Some(too_many))]),
        (false, vec![(3, 10, Some(too_long))]),
        (true, vec![(3, 10, None)]),
    ];
    for (i, (bottom, entries)) in cases.into_iter().enumerate() {
        let outcome = write_keyed_run(dir.path(), RunKind::Features, header(3, bottom), entries);
        assert!(
            matches!(outcome, Err(Error::InvalidFeatures { .. })),
            "case {i}: {outcome:?}",
            outcome = outcome.err()
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "case {i} left a file"
        );
    }
    let attrs = write_keyed_run(
        dir.path(),
        RunKind::Attributes,
        header(3, false),
        [(1, 10, None), (1, 11, None)],
    );
    assert!(matches!(attrs, Err(Error::InvalidAttributes { item: 1, .. })));
    assert!(write_keyed_run(dir.path(), RunKind::Events, header(3, false), []).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn every_bit_flip_outside_the_blocks_and_values_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let run = write(dir.path());
    let path = run.path().to_path_buf();
    let (index_at, tail) = (run.frame.index_offset, run.frame.tail_offset);
    drop(run);
    let bytes = std::fs::read(&path).unwrap();
    let outside = (0..HEADER_LEN)
        .chain(index_at..tail)
        .chain(bytes.len() - 64..bytes.len());
    for byte in outside {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[byte] ^= 1 << bit;
            std::fs::write(&path, &bad).unwrap();
            match KeyedRun::open(&path, RunKind::Attributes, 4) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                Err(Error::NewerFormat { .. }) => {}
                other => panic!("byte {byte} bit {bit}: {:?}", other.map(|r| r.count())),
            }
        }
    }
    for len in [0, 63, 64, 127, 128, 4096, tail, bytes.len() - 64, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert!(KeyedRun::open(&path, RunKind::Attributes, 4).is_err(), "cut at {len}");
    }
}

#[test]
fn damage_fails_only_what_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let run = write(dir.path());
    let path = run.path().to_path_buf();
    let tail = run.frame.tail_offset;
    drop(run);
    let bytes = std::fs::read(&path).unwrap();
    let entries = sample();

    // A value byte: only that id fails, at its value's offset.
    // Entry 203 holds a set of three pairs (see `sample`).
    let (victim, _, _) = entries[203];
    let run = KeyedRun::open(&path, RunKind::Attributes, 4).unwrap();
    let e = run.all().unwrap()[203];
    assert!(e.value_len > 10);
    drop(run);
    let mut bad = bytes.clone();
    bad[tail + e.value_offset as usize + 2] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    let run = KeyedRun::open(&path, RunKind::Attributes, 4).unwrap();
    let at = (tail as u64) + e.value_offset;
    for _ in 0..2 {
        assert!(matches!(run.get(victim), Err(Error::Corruption { offset, .. }) if offset == at));
    }
    assert!(run.get(entries[202].0).is_ok() && run.get(entries[204].0).is_ok());
    let failed: Vec<u64> = run
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| entries[i].0)
        .collect();
    assert_eq!(failed, vec![victim]);
    assert!(run.verify().is_err());
    drop(run);

    // A value that decodes badly (a count past the limit), crc restamped.
    let mut undecodable = bytes.clone();
    let v = tail + e.value_offset as usize;
    undecodable[v..v + 2].copy_from_slice(&(MAX_FEATURES as u16 + 1).to_le_bytes());
    restamp(&mut undecodable);
    std::fs::write(&path, &undecodable).unwrap();
    let run = KeyedRun::open(&path, RunKind::Attributes, 4).unwrap();
    assert!(matches!(run.get(victim), Err(Error::Corruption { reason, .. }) if reason.contains("pairs")));
    assert!(run.get(entries[204].0).is_ok());
    drop(run);

    // An entry byte of block 2: its ids fail at the block's start, others read.
    let mut bad = bytes.clone();
    bad[HEADER_LEN + 300 * ENTRY_BYTES + 9] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    let run = KeyedRun::open(&path, RunKind::Attributes, 4).unwrap();
    let block_start = FORMAT.block_offset(2);
    for _ in 0..2 {
        assert!(matches!(run.get(entries[300].0), Err(Error::Corruption { offset, .. }) if offset == block_start));
    }
    assert!(run.get(entries[0].0).is_ok() && run.get(entries[599].0).is_ok());
    assert_eq!(run.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(run.iter().filter(|r| r.is_ok()).count(), 600 - 128);
    drop(run);

    // Disorder inside a block, checksums restamped: caught at first touch.
    let mut swapped = bytes.clone();
    let (a, b) = (HEADER_LEN + 300 * ENTRY_BYTES, HEADER_LEN + 301 * ENTRY_BYTES);
    let first = swapped[a..b].to_vec();
    swapped.copy_within(b..b + ENTRY_BYTES, a);
    swapped[b..b + ENTRY_BYTES].copy_from_slice(&first);
    restamp(&mut swapped);
    std::fs::write(&path, &swapped).unwrap();
    let run = KeyedRun::open(&path, RunKind::Attributes, 4).unwrap();
    assert!(matches!(run.get(entries[300].0), Err(Error::Corruption { offset, .. }) if offset == block_start));
    assert!(run.verify().is_err());
    drop(run);
    let mut same = bytes.clone();
    restamp(&mut same);
    assert_eq!(same, bytes);
}
