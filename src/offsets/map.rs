//! The offset map of one source partition: which target offset holds each mirrored record.
//!
//! Every acknowledged produce adds runs `(source_start, target_start, count)`: `count`
//! records at consecutive source offsets written at consecutive target offsets. A run that
//! continues the last one on both sides merges into it, so a topic without gaps costs one
//! run; gaps in the source (compaction, aborted transactions, control batches, deleted
//! records) start new runs. The map is complete from `start` (the first source offset it
//! accounts for) to the partition's mirrored position `(next_source, next_target)`: a source
//! offset in that range was either mirrored (inside a run) or is a gap (no record was
//! mirrored for it). Runs are kept in chunks of [`CHUNK_RUNS`], at most [`MAX_CHUNKS`].
//! Past that bound the oldest chunk is thinned rather than dropped, as MirrorMaker 2 keeps
//! its offset syncs spaced out with age: it is merged into the next one, and of their runs
//! at most [`CHUNK_RUNS`] are kept, spaced further apart the older they are ([`thin`]). A source
//! offset inside a kept run still translates exactly; between two kept runs of a thinned
//! chunk, where runs were dropped, it translates to the end of the kept run before it
//! ([`Translation::Approximate`]): never past the exact target offset, so a consumer going
//! on from there reads some records again and skips none. A source writing many gaps (a
//! marker per transaction of an exactly-once producer) thus keeps a translation for every
//! offset since the map began, coarser with age, instead of losing the oldest. Chunks go
//! only when the source log start passes them, and `start` moves up with it.
//!
//! After a restart the daemon may mirror records again that it mirrored before (progress
//! is written after the acks): the map is rewound to the stored position, and the newer
//! copies replace the older ones, since a consumer positioned at a newer copy reads every
//! record after it exactly once.

use serde::{Deserialize, Serialize};

/// Runs per stored chunk.
pub const CHUNK_RUNS: usize = 256;
/// Chunks kept per partition: at most `CHUNK_RUNS * MAX_CHUNKS` runs.
pub const MAX_CHUNKS: usize = 16;

/// `count` records at source offsets `source_start..` and target offsets `target_start..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub source_start: i64,
    pub target_start: i64,
    pub count: i64,
}

impl Run {
    fn source_end(&self) -> i64 {
        self.source_start + self.count
    }

    fn target_end(&self) -> i64 {
        self.target_start + self.count
    }
}

/// What a source offset translates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Translation {
    /// The record at this source offset is at `target_offset` on the target (or, for the
    /// mirrored position itself, the next record mirrored will be).
    Exact { target_offset: i64 },
    /// No record was mirrored for this source offset; `target_offset` holds the next one
    /// that was (or will be).
    Gap { target_offset: i64 },
    /// The offset lies where the map was thinned (runs dropped to bound it): `target_offset`
    /// is the end of the kept run before it, at or before the exact target offset, so a
    /// consumer going on from it reads again at most the records mirrored since that run.
    Approximate { target_offset: i64 },
    /// The offset is past what is mirrored so far (`mirrored_through`, exclusive).
    NotYet { mirrored_through: i64 },
    /// The offset is below the source partition's log start (its records were deleted);
    /// `target_offset` holds the first record from the log start on, where a consumer
    /// resetting to the earliest offset would go on (if it is mirrored).
    BelowLogStart {
        log_start: i64,
        target_offset: Option<i64>,
    },
    /// The offset is below what the map accounts for (mirrored before the map began, or
    /// trimmed from it).
    BeforeMap { map_start: i64 },
    /// The record was mirrored to `translated`, but the target no longer holds it: its log
    /// starts at `target_offset` (its own retention deleted the copy, or DeleteRecords).
    /// A consumer goes on from the target's log start, the first record it still holds,
    /// where one resetting to the earliest offset would; committed at `translated`, it
    /// would be out of range and, with Kafka's default `auto.offset.reset=latest`, skip to
    /// the end.
    BelowTargetLogStart { target_offset: i64, translated: i64 },
}

impl Translation {
    /// The target offset a consumer should go on from, if there is one.
    pub fn target_offset(&self) -> Option<i64> {
        match self {
            Translation::Exact { target_offset }
            | Translation::Gap { target_offset }
            | Translation::Approximate { target_offset } => Some(*target_offset),
            Translation::BelowLogStart { target_offset, .. } => *target_offset,
            Translation::BelowTargetLogStart { target_offset, .. } => Some(*target_offset),
            _ => None,
        }
    }
}

/// The target topic a map's runs were written to: its name, and its topic id once known
/// (a topic deleted and created again under the same name has a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetTopic {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
}

impl TargetTopic {
    /// Whether runs written to `self` cannot be read in `other`: another name, or the
    /// same name with another id (both known).
    pub fn is_other_than(&self, other: &TargetTopic) -> bool {
        self.name != other.name || matches!((self.id, other.id), (Some(a), Some(b)) if a != b)
    }
}

/// One stored piece of a map: runs `index * CHUNK_RUNS ..` of the partition's runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The first source offset this chunk accounts for (the end of the previous chunk).
    pub start: i64,
    pub runs: Vec<Run>,
    /// The target topic of the runs; absent in chunks stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetTopic>,
    /// Runs were dropped from it to bound the map: a space between two of its runs (and
    /// after its last) may hold records that were mirrored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thinned: bool,
}

/// At most [`CHUNK_RUNS`] of `runs` (in source order, from source offset `start`): the
/// first, the last, and between them the run at or before each of a series of offsets
/// whose distances from the end grow geometrically, from one run's average span up to the
/// whole span. The error of a translation then grows with the offset's age, by a few
/// percent of it (MirrorMaker 2's offset syncs, spaced by powers of two, can put a consumer
/// back by as much as the offset's age). Thinned again at every merge, older runs stay
/// spaced out by age.
fn thin(runs: Vec<Run>, start: i64) -> Vec<Run> {
    let (Some(&first), Some(&last)) = (runs.first(), runs.last()) else {
        return runs;
    };
    if runs.len() <= CHUNK_RUNS {
        return runs;
    }
    let end = last.source_end();
    let span = (end - start).max(1) as f64;
    let steps = (CHUNK_RUNS - 2) as i32;
    // Distances d_k = step * (g^k - 1) / (g - 1): the first step the average span of the
    // newest runs, d_steps the whole span, so g solves (g^steps - 1) / (g - 1) = span / step.
    let newest = runs[runs.len() - CHUNK_RUNS].source_start;
    let step = ((end - newest) as f64 / CHUNK_RUNS as f64).max(1.0);
    let reach_at = |g: f64, k: i32| (g.powi(k) - 1.0) / (g - 1.0);
    let (mut low, mut high) = (1.0 + 1e-9, 2.0f64);
    // (At g = 2 the reach is 2^254 - 1 steps, past any span.)
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if reach_at(mid, steps) < span / step {
            low = mid;
        } else {
            high = mid;
        }
    }
    let mut kept = Vec::with_capacity(CHUNK_RUNS);
    kept.push(first);
    let mut i = 0;
    for k in (1..steps).rev() {
        let at = end - (step * reach_at(low, k)) as i64;
        while i + 1 < runs.len() && runs[i + 1].source_start <= at {
            i += 1;
        }
        if kept.last() != Some(&runs[i]) {
            kept.push(runs[i]);
        }
    }
    if kept.last() != Some(&last) {
        kept.push(last);
    }
    kept
}

/// The space between two runs (or before the first, after the last) that an offset lies in.
struct Space<'a> {
    before: Option<&'a Run>,
    after: Option<&'a Run>,
    /// `before` is in a thinned chunk: runs may have been dropped after it.
    thinned: bool,
}

impl Space<'_> {
    /// What an offset in this space translates to, on the side whose run start and end
    /// `start` and `end` give; `past_last` is that side's mirrored end. The next run's
    /// start, unless runs may have been dropped since the one before (thinned): then that
    /// one's end, never past the exact answer.
    fn translation(
        &self,
        past_last: i64,
        start: impl Fn(&Run) -> i64,
        end: impl Fn(&Run) -> i64,
    ) -> Translation {
        let next = self.after.map_or(past_last, start);
        match self.before.filter(|b| self.thinned && end(b) < next) {
            Some(before) => Translation::Approximate {
                target_offset: end(before),
            },
            None => Translation::Gap {
                target_offset: next,
            },
        }
    }
}

/// The offset map of one source partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMap {
    /// Chunks in order; `first_chunk` is the index of `chunks[0]`.
    chunks: Vec<Chunk>,
    first_chunk: u64,
    /// Chunk indexes changed since [`Self::take_changes`] (sorted, no repeats).
    changed: Vec<u64>,
    /// Chunk indexes dropped since then (to be deleted from storage).
    dropped: Vec<u64>,
}

impl OffsetMap {
    /// An empty map accounting for source offsets from `start` on.
    pub fn new(start: i64) -> Self {
        Self::from_chunks(
            0,
            vec![Chunk {
                start,
                runs: Vec::new(),
                target: None,
                thinned: false,
            }],
        )
    }

    /// A map read back from storage: consecutive chunks from index `first_chunk`.
    pub fn from_chunks(first_chunk: u64, chunks: Vec<Chunk>) -> Self {
        Self {
            chunks,
            first_chunk,
            changed: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// The first source offset the map accounts for.
    pub fn start(&self) -> i64 {
        self.chunks.first().map_or(0, |c| c.start)
    }

    /// Number of runs held.
    pub fn run_count(&self) -> usize {
        self.chunks.iter().map(|c| c.runs.len()).sum()
    }

    fn runs(&self) -> impl DoubleEndedIterator<Item = &Run> {
        self.chunks.iter().flat_map(|c| c.runs.iter())
    }

    fn last_index(&self) -> u64 {
        self.first_chunk + self.chunks.len() as u64 - 1
    }

    fn mark_changed(&mut self, index: u64) {
        if let Err(at) = self.changed.binary_search(&index) {
            self.changed.insert(at, index);
        }
    }

    /// Records that `count` records from `source_start` were written from `target_start`.
    pub fn record(&mut self, source_start: i64, target_start: i64, count: i64) {
        if count <= 0 {
            return;
        }
        let last = self.chunks.last().expect("a map has a chunk");
        let end = last.runs.last().map_or(last.start, Run::source_end);
        if source_start < end.max(last.start) {
            // Mirrored again (after a restart): what the map said from here on is stale.
            self.rewind(source_start);
        }
        let last_index = self.last_index();
        let chunk = self.chunks.last_mut().expect("a map has a chunk");
        if let Some(last) = chunk.runs.last_mut() {
            if last.source_end() == source_start && last.target_end() == target_start {
                last.count += count;
                self.mark_changed(last_index);
                return;
            }
        }
        let run = Run {
            source_start,
            target_start,
            count,
        };
        if chunk.runs.len() < CHUNK_RUNS {
            chunk.runs.push(run);
            self.mark_changed(last_index);
            return;
        }
        let target = chunk.target.clone();
        self.chunks.push(Chunk {
            start: source_start,
            runs: vec![run],
            target,
            thinned: false,
        });
        self.mark_changed(last_index + 1);
        if self.chunks.len() > MAX_CHUNKS {
            self.thin_first();
        }
    }

    /// Merges the oldest chunk into the next and thins their runs ([`thin`]). The merged
    /// chunk takes the next one's index, so stored chunks stay consecutive.
    fn thin_first(&mut self) {
        let first = self.chunks.remove(0);
        let mut runs = first.runs;
        let next = &mut self.chunks[0];
        runs.append(&mut next.runs);
        next.runs = thin(runs, first.start);
        next.start = first.start;
        next.thinned = true;
        if next.target.is_none() {
            next.target = first.target;
        }
        self.changed.retain(|&i| i != self.first_chunk);
        self.dropped.push(self.first_chunk);
        self.first_chunk += 1;
        self.mark_changed(self.first_chunk);
    }
    /// The target topic the map's runs were written to, if recorded (chunks stored before
    /// it was kept have none).
    pub fn target(&self) -> Option<&TargetTopic> {
        self.chunks.iter().rev().find_map(|c| c.target.as_ref())
    }

    /// Records the target topic of the runs to come (a map that had none, or an id
    /// learned for its name); the runs so far stay.
    pub fn set_target(&mut self, target: TargetTopic) {
        let last_index = self.last_index();
        let chunk = self.chunks.last_mut().expect("a map has a chunk");
        if chunk.target.as_ref() != Some(&target) {
            chunk.target = Some(target);
            self.mark_changed(last_index);
        }
    }

    /// Starts the map again at source offset `start`, for runs written to `target`: the
    /// partition's target topic changed (a rename, or the topic deleted and created
    /// again), so no record mirrored before `start` is in it. Runs from `start` on (written
    /// to `target` since) are kept. Offsets below `start` translate as
    /// [`Translation::BeforeMap`] from then on, never into the new topic. Whether a run
    /// was kept.
    pub fn restart(&mut self, start: i64, target: TargetTopic) -> bool {
        let next_index = self.last_index() + 1;
        let kept: Vec<Run> = self
            .runs()
            .filter(|r| r.source_start >= start)
            .copied()
            .collect();
        // Runs kept from a thinned chunk keep the spaces between them uncertain.
        let thinned = self
            .chunks
            .iter()
            .any(|c| c.thinned && c.runs.last().is_some_and(|r| r.source_end() > start));
        for _ in 0..self.chunks.len() {
            self.drop_first();
        }
        debug_assert_eq!(self.first_chunk, next_index);
        self.chunks.push(Chunk {
            start,
            runs: Vec::new(),
            target: Some(target),
            thinned: false,
        });
        self.mark_changed(next_index);
        let any = !kept.is_empty();
        for run in kept {
            self.record(run.source_start, run.target_start, run.count);
        }
        if thinned {
            for c in &mut self.chunks {
                c.thinned = true;
            }
        }
        any
    }

    /// Forgets what the map says about source offsets from `source` on: the partition is
    /// mirrored again from there (a restart from stored progress).
    pub fn rewind(&mut self, source: i64) {
        while self.chunks.len() > 1 && self.chunks.last().is_some_and(|c| c.start >= source) {
            self.chunks.pop();
            let index = self.first_chunk + self.chunks.len() as u64;
            self.changed.retain(|&i| i != index);
            self.dropped.push(index);
        }
        let last_index = self.last_index();
        let chunk = self.chunks.last_mut().expect("a map has a chunk");
        let before = chunk.runs.len();
        chunk.runs.retain(|r| r.source_start < source);
        let mut touched = chunk.runs.len() != before;
        if let Some(last) = chunk.runs.last_mut().filter(|r| r.source_end() > source) {
            last.count = source - last.source_start;
            touched = true;
        }
        if chunk.start > source {
            chunk.start = source;
            touched = true;
        }
        if touched {
            self.mark_changed(last_index);
        }
    }

    fn drop_first(&mut self) {
        self.chunks.remove(0);
        self.changed.retain(|&i| i != self.first_chunk);
        self.dropped.push(self.first_chunk);
        self.first_chunk += 1;
    }

    /// Drops the chunks wholly below the source log start `log_start`.
    pub fn trim(&mut self, log_start: i64) {
        while self.chunks.len() > 1 && self.chunks[1].start <= log_start {
            self.drop_first();
        }
    }

    /// Translates source offset `offset` for a partition mirrored up to `next_source`
    /// (exclusive) whose next record will be at `next_target`; `log_start` is the source
    /// log start offset if known.
    pub fn translate(
        &self,
        offset: i64,
        next_source: i64,
        next_target: i64,
        log_start: Option<i64>,
    ) -> Translation {
        if let Some(log_start) = log_start.filter(|&l| offset < l) {
            let from_log_start = self.translate(log_start, next_source, next_target, None);
            return Translation::BelowLogStart {
                log_start,
                target_offset: from_log_start.target_offset(),
            };
        }
        if offset > next_source {
            return Translation::NotYet {
                mirrored_through: next_source,
            };
        }
        if offset < self.start() {
            return Translation::BeforeMap {
                map_start: self.start(),
            };
        }
        if offset == next_source {
            return Translation::Exact {
                target_offset: next_target,
            };
        }
        match self.locate(offset, |run| run.source_start) {
            Ok(run) => Translation::Exact {
                target_offset: run.target_start + (offset - run.source_start),
            },
            Err(space) => space.translation(next_target, |run| run.target_start, Run::target_end),
        }
    }

    /// The other way (failback): the source offset a consumer at target offset `offset` of
    /// the mirrored copy goes on from. Inside a run: that record's source offset. At or past
    /// the mirrored end (`next_target`): `next_source`, since everything mirrored was read.
    /// Between runs (records the mirror did not write): the next run's source offset.
    /// `target_offset` in the answer is the source-side offset.
    pub fn translate_back(&self, offset: i64, next_source: i64, next_target: i64) -> Translation {
        if next_target >= 0 && offset >= next_target {
            return Translation::Exact {
                target_offset: next_source,
            };
        }
        let first_target = self.runs().next().map(|r| r.target_start);
        if first_target.is_none_or(|first| offset < first) {
            return Translation::BeforeMap {
                map_start: first_target.unwrap_or(next_target),
            };
        }
        match self.locate(offset, |run| run.target_start) {
            Ok(run) => Translation::Exact {
                target_offset: run.source_start + (offset - run.target_start),
            },
            Err(space) => space.translation(next_source, |run| run.source_start, Run::source_end),
        }
    }

    /// The run holding `offset` on the side whose run start `start` gives (source or
    /// target), or else the space between runs it lies in.
    fn locate(&self, offset: i64, start: impl Fn(&Run) -> i64) -> Result<&Run, Space<'_>> {
        let mut after = None;
        for chunk in self.chunks.iter().rev() {
            for run in chunk.runs.iter().rev() {
                if start(run) <= offset {
                    if offset < start(run) + run.count {
                        return Ok(run);
                    }
                    return Err(Space {
                        before: Some(run),
                        after,
                        thinned: chunk.thinned,
                    });
                }
                after = Some(run);
            }
        }
        Err(Space {
            before: None,
            after,
            thinned: false,
        })
    }

    /// The chunks changed and dropped since the last call, for storage: `(index,
    /// Some(chunk))` to write, `(index, None)` to delete.
    pub fn take_changes(&mut self) -> Vec<(u64, Option<Chunk>)> {
        let mut out: Vec<(u64, Option<Chunk>)> = std::mem::take(&mut self.dropped)
            .into_iter()
            .map(|i| (i, None))
            .collect();
        for index in std::mem::take(&mut self.changed) {
            let chunk = &self.chunks[(index - self.first_chunk) as usize];
            out.push((index, Some(chunk.clone())));
        }
        out
    }

    /// Marks chunks as changed again (their write failed).
    pub fn restore_changes(&mut self, changes: &[(u64, Option<Chunk>)]) {
        for (index, chunk) in changes {
            match chunk {
                Some(_) if *index >= self.first_chunk && *index <= self.last_index() => {
                    self.mark_changed(*index)
                }
                None if !self.dropped.contains(index) => self.dropped.push(*index),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
        }
    }

    /// The brute-force model: for every mirrored source offset, its target offset.
    #[derive(Default)]
    struct Model {
        target_of: std::collections::BTreeMap<i64, i64>,
    }

    impl Model {
        fn translate(&self, offset: i64, next_source: i64, next_target: i64) -> Translation {
            if offset > next_source {
                return Translation::NotYet {
                    mirrored_through: next_source,
                };
            }
            if offset == next_source {
                return Translation::Exact {
                    target_offset: next_target,
                };
            }
            if let Some(&t) = self.target_of.get(&offset) {
                return Translation::Exact { target_offset: t };
            }
            let next = self.target_of.range(offset..).next().map(|(_, &t)| t);
            Translation::Gap {
                target_offset: next.unwrap_or(next_target),
            }
        }
    }

    /// Mirrors random batches with random gaps (and, now and then, a restart that mirrors
    /// a stretch again), then checks every offset against the model, and again after a
    /// round trip through storage.
    #[test]
    fn translation_agrees_with_a_brute_force_model() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let start = rng.below(50) as i64;
            let mut map = OffsetMap::new(start);
            let mut model = Model::default();
            let (mut source, mut target) = (start, 0i64);
            // A stored copy, updated from `take_changes` like the progress topic is.
            let mut stored: std::collections::BTreeMap<u64, Chunk> = Default::default();
            // Every fifth seed runs long enough to pass the bound on runs.
            let batches = if seed % 5 == 0 {
                4000
            } else {
                rng.below(600) + 1
            };
            for _ in 0..batches {
                if rng.below(500) == 0 {
                    // Source retention moves the log start.
                    map.trim(source - rng.below(100) as i64);
                }
                if seed % 5 != 0 && rng.below(20) == 0 && source > start {
                    // A restart: mirror again from an earlier position.
                    source -= rng.below((source - start) as u64 + 1) as i64;
                    model.target_of.retain(|&s, _| s < source);
                    map.rewind(source);
                }
                source += match rng.below(4) {
                    0 => rng.below(30) as i64, // a gap
                    _ => 0,
                };
                let count = rng.below(5) as i64 + 1;
                // A batch may hold records with gaps between them: several runs, one ack.
                for _ in 0..count {
                    map.record(source, target, 1);
                    model.target_of.insert(source, target);
                    source += 1 + if rng.below(6) == 0 { 2 } else { 0 };
                    target += 1;
                }
                for (index, chunk) in map.take_changes() {
                    match chunk {
                        Some(c) => stored.insert(index, c),
                        None => stored.remove(&index),
                    };
                }
            }
            assert!(map.run_count() <= CHUNK_RUNS * MAX_CHUNKS);
            assert!(seed % 5 != 0 || map.start() > start, "seed {seed} trims");
            let first = *stored.keys().next().unwrap();
            let reloaded = OffsetMap::from_chunks(first, stored.values().cloned().collect());
            for m in [&map, &reloaded] {
                for offset in start..source + 3 {
                    let want = if offset < m.start() {
                        Translation::BeforeMap {
                            map_start: m.start(),
                        }
                    } else {
                        model.translate(offset, source, target)
                    };
                    assert_eq!(
                        m.translate(offset, source, target, None),
                        want,
                        "seed {seed} offset {offset}"
                    );
                }
            }
            assert_eq!(reloaded.chunks, map.chunks, "seed {seed}");
        }
    }

    /// Back translation inverts forward translation for every mirrored record.
    #[test]
    fn translating_back_inverts_translating() {
        let mut map = OffsetMap::new(10);
        map.record(10, 100, 5);
        map.record(20, 105, 3); // source gap 15..20
        map.record(30, 120, 2); // target gap 108..120 (another writer)
        let (next_source, next_target) = (32, 122);
        for source in [10, 14, 20, 22, 30, 31] {
            let target = map
                .translate(source, next_source, next_target, None)
                .target_offset()
                .unwrap();
            assert_eq!(
                map.translate_back(target, next_source, next_target),
                Translation::Exact {
                    target_offset: source
                }
            );
        }
        assert_eq!(
            map.translate_back(110, next_source, next_target),
            Translation::Gap { target_offset: 30 }
        );
        assert_eq!(
            map.translate_back(122, next_source, next_target),
            Translation::Exact { target_offset: 32 }
        );
        assert_eq!(
            map.translate_back(90, next_source, next_target),
            Translation::BeforeMap { map_start: 100 }
        );
    }

    #[test]
    fn contiguous_runs_merge_and_gaps_start_new_ones() {
        let mut map = OffsetMap::new(0);
        map.record(0, 0, 10);
        map.record(10, 10, 5);
        assert_eq!(map.run_count(), 1);
        map.record(20, 15, 5); // source gap 15..20
        assert_eq!(map.run_count(), 2);
        assert_eq!(
            map.translate(17, 25, 20, None),
            Translation::Gap { target_offset: 15 }
        );
        assert_eq!(
            map.translate(22, 25, 20, None),
            Translation::Exact { target_offset: 17 }
        );
        assert_eq!(
            map.translate(25, 25, 20, None),
            Translation::Exact { target_offset: 20 }
        );
        assert_eq!(
            map.translate(26, 25, 20, None),
            Translation::NotYet {
                mirrored_through: 25
            }
        );
        assert_eq!(
            map.translate(3, 25, 20, Some(5)),
            Translation::BelowLogStart {
                log_start: 5,
                target_offset: Some(5)
            }
        );
    }

    #[test]
    fn the_map_is_bounded_and_trimmed_by_the_log_start() {
        let mut map = OffsetMap::new(0);
        let runs = (CHUNK_RUNS * (MAX_CHUNKS + 2)) as i64;
        for i in 0..runs {
            map.record(i * 2, i, 1);
        }
        assert!(map.run_count() <= CHUNK_RUNS * MAX_CHUNKS);
        // Thinned, not dropped: the oldest offsets still translate.
        assert_eq!(map.start(), 0);
        assert_eq!(
            map.translate(0, runs * 2, runs, None),
            Translation::Exact { target_offset: 0 }
        );
        let changes = map.take_changes();
        assert_eq!(changes.iter().filter(|(_, c)| c.is_none()).count(), 2);
        // The log start passing the thinned chunk drops it; the map starts at the next.
        let next_start = map.chunks[1].start;
        map.trim(next_start);
        assert_eq!(map.start(), next_start);
        assert_eq!(map.take_changes(), vec![(2, None)]);
        assert_eq!(
            map.translate(next_start - 1, runs * 2, runs, None),
            Translation::BeforeMap {
                map_start: next_start
            }
        );
    }

    /// A source with a gap every few records (an exactly-once producer's markers) runs far
    /// past the bound: every offset still translates, exactly where the map kept its run,
    /// and elsewhere never past the exact offset, both ways and after storage.
    #[test]
    fn a_thinned_map_translates_every_offset_never_past_the_exact_one() {
        let mut rng = Rng(0x5eed);
        let mut map = OffsetMap::new(0);
        let mut model = Model::default();
        let mut stored: std::collections::BTreeMap<u64, Chunk> = Default::default();
        let (mut source, mut target) = (0i64, 0i64);
        while source < 200_000 {
            let count = rng.below(12) as i64 + 1;
            map.record(source, target, count);
            for i in 0..count {
                model.target_of.insert(source + i, target + i);
            }
            source += count + 1; // the transaction's marker
            target += count;
            for (index, chunk) in map.take_changes() {
                match chunk {
                    // Stored as the progress topic stores it.
                    Some(c) => {
                        let json = serde_json::to_string(&c).unwrap();
                        stored.insert(index, serde_json::from_str(&json).unwrap())
                    }
                    None => stored.remove(&index),
                };
            }
        }
        assert!(map.run_count() <= CHUNK_RUNS * MAX_CHUNKS);
        assert_eq!(map.start(), 0);
        let first = *stored.keys().next().unwrap();
        let reloaded = OffsetMap::from_chunks(first, stored.values().cloned().collect());
        assert_eq!(reloaded.chunks, map.chunks);
        let back_of: std::collections::BTreeMap<i64, i64> =
            model.target_of.iter().map(|(&s, &t)| (t, s)).collect();
        let (mut approximate, mut last) = (0, 0);
        for offset in 0..=source {
            let want = model.translate(offset, source, target);
            let got = reloaded.translate(offset, source, target, None);
            match got {
                Translation::Approximate { target_offset } => {
                    approximate += 1;
                    let exact = want.target_offset().unwrap();
                    assert!(target_offset <= exact, "offset {offset}: {got:?} {want:?}");
                    // What a consumer reads again grows with the offset's age, by a few
                    // percent of it.
                    let age = source - offset;
                    assert!(
                        exact - target_offset <= age / 10 + 20,
                        "offset {offset} (age {age}): {target_offset} for {exact}"
                    );
                }
                _ => assert_eq!(got, want, "offset {offset}"),
            }
            // A group moving on never moves back on the target.
            let at = got.target_offset().unwrap();
            assert!(at >= last, "offset {offset}: {at} after {last}");
            last = at;
        }
        assert!(approximate > 0);
        // The newest chunks are whole: the last 10,000 offsets translate exactly.
        for offset in source - 10_000..source {
            assert!(!matches!(
                map.translate(offset, source, target, None),
                Translation::Approximate { .. }
            ));
        }
        for offset in 0..target {
            let exact = back_of[&offset];
            match reloaded.translate_back(offset, source, target) {
                Translation::Exact { target_offset } => assert_eq!(target_offset, exact),
                Translation::Approximate { target_offset } => assert!(target_offset <= exact),
                other => panic!("target offset {offset}: {other:?}"),
            }
        }
    }
}
