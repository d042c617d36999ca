//! Transparent huge pages for the embedding tables during a run. A step
//! touches thousands of random rows of tables of tens of megabytes (each
//! item's input and output vectors and their two Adam moments): with 4 KiB
//! pages nearly every row is a TLB miss, with 2 MiB pages the tables fit
//! the TLB. The tables are ordinary heap buffers; the kernel is asked to
//! back the 2 MiB-aligned part of each with huge pages now
//! (`MADV_HUGEPAGE`, then `MADV_COLLAPSE`, Linux 6.1 and later). Both are
//! advice: where the kernel declines (older kernels, THP off, no free huge
//! pages), nothing changes but the speed.

/// Huge pages on x86-64 and AArch64 Linux (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Asks for huge pages under each table (see the module docs). Returns the
/// bytes the kernel accepted to collapse now.
pub(crate) fn advise(tables: &[&[f32]]) -> usize {
    tables.iter().map(|t| advise_one(t)).sum()
}

#[cfg(target_os = "linux")]
fn advise_one(table: &[f32]) -> usize {
    let start = table.as_ptr() as usize;
    let end = start + std::mem::size_of_val(table);
    let (lo, hi) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
    if hi <= lo {
        return 0;
    }
    let (ptr, len) = (lo as *mut libc::c_void, hi - lo);
    // SAFETY: `[lo, hi)` lies inside `table`, memory this process owns and
    // keeps mapped for at least the call. `madvise` with these two advices
    // changes only how the kernel backs the pages (huge or base pages), never
    // their contents or their mapping, so no Rust reference to the table is
    // affected; a refusal is an error return, which is ignored.
    unsafe {
        if libc::madvise(ptr, len, libc::MADV_HUGEPAGE) != 0 {
            return 0;
        }
        if libc::madvise(ptr, len, libc::MADV_COLLAPSE) != 0 {
            return 0;
        }
    }
    len
}

#[cfg(not(target_os = "linux"))]
fn advise_one(_table: &[f32]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_leaves_the_values_and_small_tables_alone() {
        let big: Vec<f32> = (0..3 * HUGE_PAGE / 4).map(|i| i as f32).collect();
        let small = vec![1.0f32; 100];
        let accepted = advise(&[&big, &small]);
        // At most the aligned interior of the big table; none of the small.
        assert!(accepted <= std::mem::size_of_val(&big[..]) && accepted.is_multiple_of(HUGE_PAGE));
        assert!(big.iter().enumerate().all(|(i, v)| *v == i as f32));
        assert!(small.iter().all(|v| *v == 1.0));
    }
}
