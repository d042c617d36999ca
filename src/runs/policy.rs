//! Which runs of a kind to merge next: size-tiered, fan-in T = 4, with a
//! guard on the number of runs (issue 27 memo, section 3).
//!
//! tier(run) = floor(log4(bytes / flush_bytes)); [`pick`] returns the
//! newest group of 4 adjacent runs of one tier. Only adjacent runs merge,
//! so the runs' `[from, to)` ranges stay disjoint and in order, and
//! "newest wins" stays "later run wins". Past [`MAX_RUNS`] runs the newest 4
//! merge whatever their tiers, bounding a reader's fan-out.
//!
//! Why tiered and not levelled:
//! - Appends are spread over all users, so every flush spans the whole key
//!   range. Levelling gets its low write cost from key-range partitions;
//!   here each L0 -> L1 merge would rewrite all of L1, a write amplification
//!   of about ratio x levels (10-15).
//! - Tiered rewrites each byte once per tier it climbs: about log4(total /
//!   flush), 4-5 times from a 32 MiB flush to 4 GB of runs.
//! - Truncation to a user's top L and dropping deletion entries need all of
//!   a user's or id's entries, which only a merge into the oldest (bottom)
//!   run has; the oldest run is in the tiered merges as soon as the tier
//!   below it fills (lazy levelling).
//! - The cost is read fan-out: at most 3 runs a tier plus the one filling,
//!   which [`MAX_RUNS`] caps, each about a microsecond warm.

use std::ops::Range;

/// Runs merged at once, and the ratio between tiers.
pub(crate) const FAN_IN: usize = 4;

/// More runs than this and a merge is picked even without 4 of one tier
/// (see [`pick`]), so at most `MAX_RUNS + 1` runs exist at once.
pub(crate) const MAX_RUNS: usize = 12;

/// floor(log4(bytes / flush_bytes)); 0 for anything up to 4 flushes.
pub(crate) fn tier(bytes: u64, flush_bytes: u64) -> u32 {
    let mut ratio = bytes / flush_bytes.max(1);
    let mut tier = 0;
    while ratio >= FAN_IN as u64 {
        ratio /= FAN_IN as u64;
        tier += 1;
    }
    tier
}

/// The newest `width` adjacent free runs of one tier (any tier with
/// `same_tier` false), if any.
fn newest_group(tiers: &[u32], free: &[bool], width: usize, same_tier: bool) -> Option<Range<usize>> {
    (width..=tiers.len()).rev().map(|end| end - width..end).find(|r| {
        free[r.clone()].iter().all(|&f| f) && (!same_tier || tiers[r.clone()].iter().all(|&t| t == tiers[r.start]))
    })
}

/// The runs to merge next, given their sizes in bytes (oldest first) and the
/// size of a flush: the newest 4 adjacent runs of one tier; failing that,
/// with more than [`MAX_RUNS`] runs, the newest 3 adjacent runs of one tier,
/// or the newest 4 if no 3 share a tier; otherwise nothing.
///
/// Why 3 of a tier past the guard, not simply the newest 4: 1,000 equal
/// flushes fill tiers 0-4, up to 15 runs, so the guard fires for good. The
/// newest 4 then mixes tiers, and its output (larger than the runs before
/// it) is the newest run, merged again with the next 3 flushes, and again:
/// a growing run rewritten every 3 flushes (write amplification 43 over
/// 1,000 flushes, 674 over 5,000, in the test below's simulation). Merging
/// 3 of one tier keeps the sizes graded oldest to newest: 3.8 and 5.6.
#[cfg(test)]
pub(crate) fn pick(sizes: &[u64], flush_bytes: u64) -> Option<Range<usize>> {
    pick_free(sizes, &vec![true; sizes.len()], flush_bytes)
}

/// [`pick`] among the runs that `free` marks (the others are inputs of
/// merges in flight, see `Options::merge_threads`): a group never spans a
/// busy run, and the guard still counts every run.
pub(crate) fn pick_free(sizes: &[u64], free: &[bool], flush_bytes: u64) -> Option<Range<usize>> {
    debug_assert_eq!(sizes.len(), free.len());
    let tiers: Vec<u32> = sizes.iter().map(|&b| tier(b, flush_bytes)).collect();
    let free = &free[..tiers.len().min(free.len())];
    let tiers = &tiers[..free.len()];
    newest_group(tiers, free, FAN_IN, true).or_else(|| {
        (sizes.len() > MAX_RUNS)
            .then(|| newest_group(tiers, free, FAN_IN - 1, true).or_else(|| newest_group(tiers, free, FAN_IN, false)))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_picks() {
        assert_eq!(
            (tier(0, 10), tier(39, 10), tier(40, 10), tier(160, 10), tier(5, 0)),
            (0, 0, 1, 2, 1)
        );
        assert_eq!(pick(&[10, 10, 10], 10), None);
        assert_eq!(pick(&[10, 10, 10, 10], 10), Some(0..4));
        assert_eq!(pick(&[160, 40, 10, 10, 10, 10], 10), Some(2..6));
        assert_eq!(pick(&[40, 40, 40, 40, 10], 10), Some(0..4));
        assert_eq!(pick(&[10; 13], 10), Some(9..13));
        // Past the guard without 4 of a tier: the newest 3 of one.
        let graded = [4096, 1024, 1024, 1024, 256, 256, 256, 64, 64, 64, 16, 16, 16];
        assert_eq!(pick(&graded, 1), Some(10..13));
        let mixed = [4096, 1024, 256, 1024, 256, 64, 256, 64, 16, 64, 16, 4, 16];
        assert_eq!(pick(&mixed, 1), Some(9..13));
    }

    #[test]
    fn busy_runs_are_never_picked_or_spanned() {
        let sizes = [10u64; 8];
        let mut free = [true; 8];
        assert_eq!(pick_free(&sizes, &free, 10), Some(4..8));
        free[4..8].fill(false);
        assert_eq!(pick_free(&sizes, &free, 10), Some(0..4));
        free[1] = false;
        assert_eq!(pick_free(&sizes, &free, 10), None, "no 4 free adjacent runs");
        // Past the guard, the newest free group of any tier.
        let sizes = [4096, 1024, 256, 1024, 256, 64, 256, 64, 16, 64, 16, 4, 16];
        let mut free = [true; 13];
        free[9..13].fill(false);
        assert_eq!(pick_free(&sizes, &free, 1), Some(5..9));
        free.fill(false);
        assert_eq!(pick_free(&sizes, &free, 1), None);
    }

    #[test]
    fn a_thousand_flushes_stay_within_bounds() {
        const FLUSH: u64 = 1 << 20;
        for (flushes, size) in [
            (1_000u64, FLUSH),
            (1_000, FLUSH / 2),
            (1_000, FLUSH * 3 / 2),
            (5_000, FLUSH),
        ] {
            // (bytes, from, to) per run, oldest first.
            let mut runs: Vec<(u64, u64, u64)> = Vec::new();
            let (mut flushed, mut written, mut most) = (0u64, 0u64, 0usize);
            for i in 0..flushes {
                runs.push((size, i, i + 1));
                flushed += size;
                most = most.max(runs.len());
                while let Some(r) = pick(&runs.iter().map(|r| r.0).collect::<Vec<_>>(), FLUSH) {
                    assert!(r.len() == FAN_IN || (r.len() == FAN_IN - 1 && runs.len() > MAX_RUNS));
                    let group = &runs[r.clone()];
                    assert!(group.windows(2).all(|w| w[0].2 == w[1].1), "merged ranges are adjacent");
                    // No truncation: a merge writes its inputs' bytes.
                    let merged = (group.iter().map(|g| g.0).sum(), group[0].1, group[group.len() - 1].2);
                    written += merged.0;
                    runs.splice(r, [merged]);
                }
                assert!(runs.windows(2).all(|w| w[0].2 == w[1].1), "ranges stay adjacent");
                assert_eq!((runs[0].1, runs[runs.len() - 1].2), (0, i + 1));
                assert!(runs.len() <= MAX_RUNS, "after merging: {} runs", runs.len());
            }
            assert!(most <= MAX_RUNS + 1, "{most} runs at once");
            let amplification = written as f64 / flushed as f64;
            assert!(amplification <= 6.0, "write amplification {amplification}");
            println!("{flushes} flushes of {size} B: {most} runs at most, write amplification {amplification:.2}");
        }
    }
}
