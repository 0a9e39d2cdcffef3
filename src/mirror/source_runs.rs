//! Where the parts of a split batch lie in the source: a batch's records have source
//! offsets in one run, or in several where it was merged from batches with gaps between
//! them (a compacted source); split into parts, each part takes its share of the runs, and
//! its position to reach once acknowledged is where the next part starts.

/// Source offsets as `(first offset, count)` runs.
pub type Runs = Vec<(i64, i64)>;

/// The source offsets of one part of a split batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOffsets {
    pub first_source_offset: i64,
    /// The next part's first offset; after the last part, the whole batch's next offset.
    pub next_source_offset: i64,
    /// Its records' runs; empty when they are one run from `first_source_offset` on.
    pub source_runs: Runs,
}

/// The offsets of consecutive parts holding `part_records` records each, of a batch whose
/// records lie in `runs` and after which the source goes on at `next_source_offset`.
pub fn part_offsets(
    mut runs: Runs,
    part_records: &[i32],
    next_source_offset: i64,
) -> Vec<PartOffsets> {
    let mut first = runs.first().map_or(next_source_offset, |r| r.0);
    let mut out = Vec::with_capacity(part_records.len());
    for (i, &count) in part_records.iter().enumerate() {
        let (these, rest) = take_runs(runs, i64::from(count));
        runs = rest;
        first = these.first().map_or(first, |r| r.0);
        let next = match runs.first() {
            Some(next) if i + 1 < part_records.len() => next.0,
            _ => next_source_offset,
        };
        out.push(PartOffsets {
            first_source_offset: first,
            next_source_offset: next,
            source_runs: if these.len() > 1 { these } else { Vec::new() },
        });
        first = next;
    }
    out
}

/// `runs` split after their first `count` offsets.
fn take_runs(runs: Runs, count: i64) -> (Runs, Runs) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut left = count;
    for (start, n) in runs {
        if left >= n {
            first.push((start, n));
            left -= n;
        } else if left > 0 {
            first.push((start, left));
            second.push((start + left, n - left));
            left = 0;
        } else {
            second.push((start, n));
        }
    }
    (first, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: i64, next: i64, runs: Runs) -> PartOffsets {
        PartOffsets {
            first_source_offset: first,
            next_source_offset: next,
            source_runs: runs,
        }
    }

    #[test]
    fn parts_take_their_share_of_the_runs_and_end_where_the_next_begins() {
        // One run; the source goes on after a gap (the batch's last records compacted away).
        assert_eq!(
            part_offsets(vec![(100, 10)], &[4, 6], 120),
            vec![part(100, 104, vec![]), part(104, 120, vec![])]
        );
        // Two runs with a gap between them, cut inside the first, at the gap, and inside
        // the second.
        let runs = vec![(0, 30), (50, 30)];
        assert_eq!(
            part_offsets(runs.clone(), &[20, 20, 20], 80),
            vec![
                part(0, 20, vec![]),
                part(20, 60, vec![(20, 10), (50, 10)]),
                part(60, 80, vec![]),
            ]
        );
        assert_eq!(
            part_offsets(runs, &[30, 30], 90),
            vec![part(0, 50, vec![]), part(50, 90, vec![])]
        );
    }
}
