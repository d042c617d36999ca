use super::*;

#[test]
fn the_fence_finds_what_a_plain_search_finds() {
    for len in [0usize, 1, 511, 512, 513, 1500, 4096] {
        let index: Vec<u64> = (0..len as u64).map(|i| i / 3 * 2).collect();
        let fence = Fence::build(&index);
        for probe in 0..(len as u64 + 3) {
            assert_eq!(
                fence.partition_point(&index, |k| k < probe),
                index.partition_point(|&k| k < probe),
                "len {len} probe {probe}"
            );
            assert_eq!(
                fence.partition_point(&index, |k| k <= probe),
                index.partition_point(|&k| k <= probe),
                "len {len} probe {probe}"
            );
        }
    }
}

#[test]
fn a_bad_block_stays_bad_and_a_good_one_is_checked_once() {
    let check = BlockCheck::new(70);
    let mut calls = 0;
    for _ in 0..3 {
        assert!(check
            .run(65, || {
                calls += 1;
                Ok(())
            })
            .is_ok());
    }
    assert_eq!(calls, 1);
    assert!(check.run(64, || Err("bad".into())).is_err());
    assert!(check.run(64, || Ok(())).is_err(), "a bad verdict is sticky");
    assert!(check.run(63, || Ok(())).is_ok(), "neighbours are not touched");
}
