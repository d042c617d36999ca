//! A sealed segment's rows ordered by item id: how an item is found in a
//! segment without a registry. Version-2 segment files carry it as their
//! last section (written with the segment, mapped with it, its own crc32);
//! format-1 files get it built in memory on first use.
//!
//! | bytes (from the section start) | field |
//! |---|---|
//! | 0..pad | zero padding, so that the ids start 8-byte aligned in the file |
//! | pad..pad + 8n | the segment's ids, ascending (u64 LE; duplicates adjacent) |
//! | pad + 8n..pad + 12n | the row of each of those ids (u32 LE; equal ids by row) |
//!
//! The section starts where the rows end (`vectors_offset + 4 * n * dim`);
//! `pad` is 0 or 4. The header's `order_crc` covers the whole section.

/// The rows of a segment ordered by id: `ids[i]` lives at row `rows[i]`.
#[derive(Clone, Copy)]
pub(crate) struct IdOrder<'a> {
    pub ids: &'a [u64],
    pub rows: &'a [u32],
}

/// An order built in memory (format-1 files, and for writing).
pub(crate) struct OwnedIdOrder {
    pub ids: Vec<u64>,
    pub rows: Vec<u32>,
}

impl OwnedIdOrder {
    /// Orders `ids` (a segment's id column, row by row). The caller bounds
    /// the row count by `u32::MAX` (segments are).
    pub fn build(ids: &[u64]) -> Self {
        let mut pairs: Vec<(u64, u32)> = ids.iter().enumerate().map(|(row, id)| (*id, row as u32)).collect();
        pairs.sort_unstable();
        OwnedIdOrder {
            ids: pairs.iter().map(|(id, _)| *id).collect(),
            rows: pairs.iter().map(|(_, row)| *row).collect(),
        }
    }

    pub fn view(&self) -> IdOrder<'_> {
        IdOrder {
            ids: &self.ids,
            rows: &self.rows,
        }
    }
}

/// Where the section starts, given where the rows end: 8-byte aligned.
pub(crate) fn section_offset(rows_end: usize) -> usize {
    rows_end.next_multiple_of(8)
}

/// The section's length for `count` rows starting at `offset`, padding
/// included, from `rows_end`.
pub(crate) fn section_len(rows_end: usize, count: usize) -> usize {
    section_offset(rows_end) - rows_end + 12 * count
}

impl<'a> IdOrder<'a> {
    /// The rows holding `id` (more than one only when a row was replaced
    /// in the segment before it was sealed; all but one are then dead).
    pub fn rows_of(&self, id: u64) -> impl Iterator<Item = u32> + 'a {
        let start = self.ids.partition_point(|&i| i < id);
        let ids = &self.ids[start..];
        let rows = &self.rows[start..];
        ids.iter()
            .zip(rows)
            .take_while(move |(i, _)| **i == id)
            .map(|(_, row)| *row)
    }

    /// Calls `f(id, row)` for each id of `wanted` (sorted) that the segment
    /// holds: by binary search when `wanted` is short, else by one merge.
    pub fn each_of(&self, wanted: &[u64], mut f: impl FnMut(u64, u32)) {
        let log = usize::BITS - self.ids.len().leading_zeros();
        if wanted.len().saturating_mul(log as usize) < self.ids.len() {
            for &id in wanted {
                for row in self.rows_of(id) {
                    f(id, row);
                }
            }
            return;
        }
        let mut at = 0;
        for (&id, &row) in self.ids.iter().zip(self.rows) {
            while at < wanted.len() && wanted[at] < id {
                at += 1;
            }
            if at == wanted.len() {
                break;
            }
            if wanted[at] == id {
                f(id, row);
            }
        }
    }

    /// Whether this is exactly the order of `column` (a segment's ids, row
    /// by row): ascending, every row once, each naming the id its row
    /// holds. The reason when it is not.
    pub fn check_against(&self, column: &[u64]) -> std::result::Result<(), String> {
        if self.ids.len() != column.len() || self.rows.len() != column.len() {
            return Err(format!(
                "the id order has {} entries for {} rows",
                self.ids.len(),
                column.len()
            ));
        }
        // Strictly ascending (id, row) pairs, each matching its row, and as
        // many as rows: so every row is named exactly once.
        for (i, (&id, &row)) in self.ids.iter().zip(self.rows).enumerate() {
            if i > 0 && (self.ids[i - 1], self.rows[i - 1]) >= (id, row) {
                return Err(format!("the id order is not ascending at entry {i}"));
            }
            let r = row as usize;
            match column.get(r) {
                None => return Err(format!("the id order names row {row}, past the last row")),
                Some(&held) if held != id => {
                    return Err(format!(
                        "the id order places item {id} at row {row}, which holds item {held}"
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_orders_by_id_then_row_and_finds_duplicates() {
        let column = [30, 10, 20, 10, 40];
        let order = OwnedIdOrder::build(&column);
        assert_eq!(order.ids, [10, 10, 20, 30, 40]);
        assert_eq!(order.rows, [1, 3, 2, 0, 4]);
        let view = order.view();
        assert_eq!(view.rows_of(10).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(view.rows_of(40).collect::<Vec<_>>(), [4]);
        assert_eq!(view.rows_of(25).count(), 0);
        assert_eq!(view.rows_of(99).count(), 0);
        assert_eq!(view.check_against(&column), Ok(()));
    }

    #[test]
    fn each_of_agrees_between_search_and_merge() {
        let column: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 1009).collect();
        let order = OwnedIdOrder::build(&column);
        // Few wanted ids take the binary searches, many take the merge.
        for wanted in [vec![3u64, 500, 1008, 2000], (0..1100u64).step_by(3).collect()] {
            let mut found = Vec::new();
            order.view().each_of(&wanted, |id, row| found.push((id, row)));
            let mut expected: Vec<(u64, u32)> = column
                .iter()
                .enumerate()
                .filter(|(_, id)| wanted.contains(id))
                .map(|(row, id)| (*id, row as u32))
                .collect();
            expected.sort_unstable();
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn check_against_names_each_kind_of_damage() {
        let column = [5u64, 6, 7];
        let good = OwnedIdOrder::build(&column);
        let cases: [(Vec<u64>, Vec<u32>, &str); 5] = [
            (vec![5, 6], vec![0, 1], "2 entries for 3 rows"),
            (vec![6, 5, 7], vec![1, 0, 2], "not ascending"),
            (vec![5, 6, 7], vec![0, 1, 9], "past the last row"),
            (vec![5, 6, 7], vec![0, 2, 1], "which holds item 7"),
            (vec![5, 5, 7], vec![0, 0, 2], "not ascending"),
        ];
        for (ids, rows, expected) in cases {
            let order = IdOrder { ids: &ids, rows: &rows };
            let reason = order.check_against(&column).unwrap_err();
            assert!(reason.contains(expected), "{reason}");
        }
        assert_eq!(good.view().check_against(&column), Ok(()));
        let twice = IdOrder {
            ids: &[5, 5, 7],
            rows: &[0, 1, 2],
        };
        assert!(twice.check_against(&[5, 5, 7]).is_ok());
        assert!(twice.check_against(&[5, 6, 7]).unwrap_err().contains("holds item 6"));
    }

    #[test]
    fn the_section_starts_aligned() {
        assert_eq!(section_offset(64), 64);
        assert_eq!(section_offset(68), 72);
        assert_eq!(section_len(68, 3), 4 + 36);
        assert_eq!(section_len(64, 0), 0);
    }
}
