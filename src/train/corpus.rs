//! A training corpus: one sequence of vocabulary indices per user, in time
//! order, stored flat.

#[derive(Debug, Default, Clone)]
pub(crate) struct Corpus {
    tokens: Vec<u32>,
    /// `starts[i]..starts[i + 1]` is sequence `i`.
    starts: Vec<usize>,
}

impl Corpus {
    pub fn new() -> Self {
        Corpus {
            tokens: Vec::new(),
            starts: vec![0],
        }
    }

    /// Adds a sequence; sequences of fewer than two items have no pairs and
    /// are skipped.
    pub fn push(&mut self, sequence: &[u32]) {
        if sequence.len() < 2 {
            return;
        }
        self.tokens.extend_from_slice(sequence);
        self.starts.push(self.tokens.len());
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.tokens[self.starts[i]..self.starts[i + 1]]
    }

    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Positive pairs of sequence `i` before subsampling, with `window` (0 =
    /// the whole sequence) items on each side.
    pub fn pairs_of(&self, i: usize, window: usize) -> u64 {
        let n = (self.starts[i + 1] - self.starts[i]) as u64;
        pairs_in(n, window as u64)
    }
}

/// Ordered pairs `(i, j)`, `i != j`, `|i - j| <= window` in `n` items.
pub(crate) fn pairs_in(n: u64, window: u64) -> u64 {
    if window == 0 || window >= n {
        return n * n.saturating_sub(1);
    }
    // Every item has `2 * window` neighbours, less those cut at the ends.
    n * 2 * window - window * (window + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_count_matches_enumeration() {
        for n in 0..12u64 {
            for w in 0..14u64 {
                let mut brute = 0;
                for i in 0..n {
                    for j in 0..n {
                        if i != j && (w == 0 || i.abs_diff(j) <= w) {
                            brute += 1;
                        }
                    }
                }
                assert_eq!(pairs_in(n, w), brute, "n {n} w {w}");
            }
        }
    }

    #[test]
    fn short_sequences_are_skipped() {
        let mut c = Corpus::new();
        c.push(&[1]);
        c.push(&[1, 2, 3]);
        c.push(&[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.sequence(0), &[1, 2, 3]);
        assert_eq!(c.tokens(), 3);
    }
}
