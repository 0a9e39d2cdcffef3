//! The offset maps kept with the progress: each acknowledged produce extends its
//! partition's map ([`Progress::acknowledged`]); changed chunks are written with the positions
//! (before them, so a stored position never runs ahead of its stored map); at load a map is
//! rewound to its partition's stored position, since what was mirrored after it will be
//! mirrored again.

use std::collections::{BTreeMap, HashMap};

use super::{Entry, Position, Progress, SourcePartition, State};
use crate::offsets::map::{Chunk, TargetTopic};
use crate::offsets::{OffsetMap, Translation};

/// The maps of loaded chunks: per partition the consecutive chunks ending at the highest
/// index (a gap would mean a lost chunk; what precedes it is not trusted), rewound to the
/// stored position.
pub(super) fn from_loaded(
    chunks: HashMap<SourcePartition, BTreeMap<u64, Chunk>>,
    positions: &HashMap<SourcePartition, Position>,
) -> super::ByPartition<OffsetMap> {
    let mut maps = super::ByPartition::default();
    for (sp, by_index) in chunks {
        let mut kept: Vec<(u64, Chunk)> = Vec::new();
        for (index, chunk) in by_index.into_iter().rev() {
            if kept.last().is_some_and(|(last, _)| *last != index + 1) {
                break;
            }
            kept.push((index, chunk));
        }
        kept.reverse();
        let Some(first) = kept.first().map(|(index, _)| *index) else {
            continue;
        };
        let mut map = OffsetMap::from_chunks(first, kept.into_iter().map(|(_, c)| c).collect());
        if let Some(position) = positions.get(&sp) {
            map.rewind(position.next_source_offset);
        }
        maps.insert(sp, map);
    }
    maps
}

impl State {
    /// Starts the map of `sp` again at `start` for `target` ([`OffsetMap::restart`]).
    /// Unless a run into the new topic was kept, the target offset of the position is
    /// unknown (-1, translated as not yet mirrored) until the next acknowledgement with
    /// records: the pipeline's own idea of it is the earlier topic's.
    fn restart(&mut self, sp: &SourcePartition, start: i64, target: &TargetTopic) {
        let kept = match self.maps.get_mut(sp) {
            Some(map) => map.restart(start, target.clone()),
            None => false,
        };
        if !kept {
            if let Some(p) = self.positions.get_mut(sp) {
                p.next_target_offset = -1;
            }
            self.target_unknown.insert(sp.clone());
        }
        self.dirty.insert(sp.clone());
    }

    /// Extends the map of `sp` with `source_runs` (`(first source offset, count)` runs, in
    /// order) acknowledged from target offset `target_base` on ([`Progress::acknowledged`]).
    pub(super) fn mirrored(
        &mut self,
        sp: &SourcePartition,
        target_base: i64,
        source_runs: &[(i64, i64)],
    ) {
        let Some(&(first, _)) = source_runs.first() else {
            return;
        };
        // One lookup for a partition that has its map (every batch but its first).
        let map = match self.maps.get_mut(sp) {
            Some(map) => map,
            None => {
                let start = self
                    .positions
                    .get(sp)
                    .map_or(first, |p| p.next_source_offset.min(first));
                let mut map = OffsetMap::new(start);
                if let Some(target) = self.targets.get(&sp.topic) {
                    map.set_target(target.clone());
                }
                self.maps.entry(sp.clone()).or_insert(map)
            }
        };
        let mut target = target_base;
        for &(source, count) in source_runs {
            map.record(source, target, count);
            target += count;
        }
    }

    /// The map changes to write, as entries (before the positions).
    pub(super) fn take_map_changes(&mut self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (sp, map) in &mut self.maps {
            for (index, chunk) in map.take_changes() {
                entries.push(Entry::MapChunk(sp.clone(), index, chunk));
            }
        }
        entries
    }

    /// Marks an unwritten map entry changed again.
    pub(super) fn restore_map_change(
        &mut self,
        sp: &SourcePartition,
        index: u64,
        chunk: &Option<Chunk>,
    ) {
        if let Some(map) = self.maps.get_mut(sp) {
            map.restore_changes(&[(index, chunk.clone())]);
        }
    }
}

impl Progress {
    /// Discovery found `target` as the target topic of source `topic` (its `partitions`).
    /// A partition whose map was written to another topic (another name, or the same name
    /// with another topic id) starts its map again at its position ([`State::restart`]).
    /// Returns those partitions with the source offset their map starts at.
    pub fn target_topic(
        &self,
        topic: &str,
        partitions: i32,
        target: &TargetTopic,
    ) -> Vec<(i32, i64)> {
        let mut st = self.lock();
        let previous = st.targets.insert(topic.to_string(), target.clone());
        if previous.as_ref() == Some(target) {
            return Vec::new();
        }
        let renamed = previous.is_some_and(|p| p.is_other_than(target));
        let mut restarted = Vec::new();
        for partition in 0..partitions {
            let sp = SourcePartition {
                topic: topic.to_string(),
                partition,
            };
            let Some(position) = st.positions.get(&sp).copied() else {
                continue;
            };
            let other = match st.maps.get_mut(&sp) {
                Some(map) => match map.target() {
                    Some(before) if before.is_other_than(target) => true,
                    // A known id is not forgotten when metadata lacks it for a moment.
                    Some(before) if before.name == target.name && target.id.is_none() => false,
                    _ => {
                        map.set_target(target.clone());
                        false
                    }
                },
                None => renamed && position.next_target_offset >= 0,
            };
            if other {
                st.restart(&sp, position.next_source_offset, target);
                restarted.push((partition, position.next_source_offset));
            }
        }
        restarted
    }

    /// The target topic the offset map of `sp` translates into, as stored with it; `None`
    /// without a map, or for one written before maps named their topic.
    pub fn map_target(&self, sp: &SourcePartition) -> Option<TargetTopic> {
        self.lock().maps.get(sp).and_then(|m| m.target().cloned())
    }

    /// The next source offset of each partition of `topic` that has a position.
    pub fn positions_of(&self, topic: &str, partitions: i32) -> Vec<(i32, i64)> {
        let st = self.lock();
        (0..partitions)
            .filter_map(|partition| {
                let sp = SourcePartition {
                    topic: topic.to_string(),
                    partition,
                };
                st.positions
                    .get(&sp)
                    .map(|p| (partition, p.next_source_offset))
            })
            .collect()
    }

    /// The target topic of source `topic` was created just now although the flow had
    /// mirrored into a topic of that name (deleted since): each partition's map starts
    /// again at `before`, its position when the topic was missing, keeping what was
    /// acknowledged into the new topic since.
    pub fn target_recreated(&self, topic: &str, before: &[(i32, i64)], target: &TargetTopic) {
        let mut st = self.lock();
        st.targets.insert(topic.to_string(), target.clone());
        for &(partition, start) in before {
            let sp = SourcePartition {
                topic: topic.to_string(),
                partition,
            };
            st.restart(&sp, start, target);
        }
    }

    /// The other way: the source offset of `sp` a consumer at `offset` of the target copy
    /// goes on from ([`OffsetMap::translate_back`]); `None` without a position.
    pub fn translate_back(&self, sp: &SourcePartition, offset: i64) -> Option<Translation> {
        let st = self.lock();
        let position = st.positions.get(sp)?;
        let (next_source, next_target) = (position.next_source_offset, position.next_target_offset);
        Some(match st.maps.get(sp) {
            Some(map) => map.translate_back(offset, next_source, next_target),
            None => OffsetMap::new(next_source).translate_back(offset, next_source, next_target),
        })
    }

    /// The source topics the flow has positions for.
    pub fn topics(&self) -> std::collections::BTreeSet<String> {
        self.lock()
            .positions
            .keys()
            .map(|sp| sp.topic.clone())
            .collect()
    }

    /// Records the source log start of `sp` (from a Fetch response or ListOffsets): the
    /// map drops what lies wholly below it, and offsets below it translate as such.
    pub fn source_log_start(&self, sp: &SourcePartition, log_start: i64) {
        let mut st = self.lock();
        if let Some(map) = st.maps.get_mut(sp) {
            map.trim(log_start);
        }
        let known = st.log_starts.entry(sp.clone()).or_insert(log_start);
        *known = (*known).max(log_start);
    }

    /// Translates source offset `offset` of `sp`; `None` if the flow has no position for
    /// the partition. `log_start` is the source log start offset if the caller knows it;
    /// otherwise the last one recorded ([`Self::source_log_start`]) is used.
    pub fn translate(
        &self,
        sp: &SourcePartition,
        offset: i64,
        log_start: Option<i64>,
    ) -> Option<Translation> {
        let st = self.lock();
        let position = st.positions.get(sp)?;
        let (next_source, next_target) = (position.next_source_offset, position.next_target_offset);
        let log_start = log_start.or_else(|| st.log_starts.get(sp).copied());
        let translation = match st.maps.get(sp) {
            Some(map) => map.translate(offset, next_source, next_target, log_start),
            None => {
                OffsetMap::new(next_source).translate(offset, next_source, next_target, log_start)
            }
        };
        // Before the first acknowledgement the target offset of the next record is unknown.
        Some(match translation {
            Translation::Exact { target_offset } | Translation::Gap { target_offset }
                if target_offset < 0 =>
            {
                Translation::NotYet {
                    mirrored_through: next_source,
                }
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, Loaded};
    use super::super::fixtures::sp;
    use super::*;

    /// Acknowledged runs are written as map chunks before the positions; read back, the
    /// map translates the same, and a map stored beyond its position is rewound.
    #[test]
    fn maps_are_written_before_positions_and_read_back() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        p.advance(
            &sp(0),
            Position {
                next_source_offset: 0,
                next_target_offset: -1,
                leader_epoch: None,
            },
        );
        assert_eq!(
            p.translate(&sp(0), 0, None),
            Some(Translation::NotYet {
                mirrored_through: 0
            })
        );
        p.acknowledged(
            &sp(0),
            Position {
                next_source_offset: 20,
                next_target_offset: 515,
                leader_epoch: None,
            },
            Some((500, &[(0, 10), (15, 5)])),
        );
        assert_eq!(
            p.translate(&sp(0), 12, None),
            Some(Translation::Gap { target_offset: 510 })
        );
        assert_eq!(
            p.translate(&sp(0), 16, None),
            Some(Translation::Exact { target_offset: 511 })
        );
        let taken = p.take();
        assert!(
            matches!(taken.entries[0], Entry::MapChunk(_, 0, Some(_))),
            "{:?}",
            taken.entries
        );
        assert!(matches!(taken.entries[1], Entry::Position(..)));
        let mut loaded = Loaded::default();
        for batch in codec::encode("f", &taken.entries, 1, 1 << 20).unwrap() {
            loaded.apply("f", &batch.bytes).unwrap();
        }
        // The stored position is behind the map: what follows is mirrored again.
        loaded.positions.insert(
            sp(0),
            Position {
                next_source_offset: 17,
                next_target_offset: 512,
                leader_epoch: None,
            },
        );
        let reloaded = Progress::new("f", loaded, 1 << 20);
        assert_eq!(
            reloaded.translate(&sp(0), 16, None),
            Some(Translation::Exact { target_offset: 511 })
        );
        assert_eq!(
            reloaded.translate(&sp(0), 17, None),
            Some(Translation::Exact { target_offset: 512 })
        );
        assert_eq!(
            reloaded.translate(&sp(0), 18, None),
            Some(Translation::NotYet {
                mirrored_through: 17
            })
        );
        reloaded.acknowledged(
            &sp(0),
            Position {
                next_source_offset: 20,
                next_target_offset: 903,
                leader_epoch: None,
            },
            Some((900, &[(17, 3)])),
        );
        assert_eq!(
            reloaded.translate(&sp(0), 18, None),
            Some(Translation::Exact { target_offset: 901 })
        );
        assert_eq!(p.translate(&sp(1), 0, None), None);
    }

    /// A partition whose target topic changed (a rename; the same name with another topic
    /// id; a topic created again) starts its map again: no offset translates into the new
    /// topic from before, a record-less advance does not bring the earlier topic's target
    /// offset back, and the map with its target is what is stored and read back.
    #[test]
    fn a_changed_target_topic_starts_the_map_again() {
        let topic = |name: &str, id: Option<u128>| TargetTopic {
            name: name.into(),
            id: id.map(uuid::Uuid::from_u128),
        };
        let position = |next_source_offset, next_target_offset| Position {
            next_source_offset,
            next_target_offset,
            leader_epoch: None,
        };
        let exact = |at| Some(Translation::Exact { target_offset: at });
        let before = |start| Some(Translation::BeforeMap { map_start: start });
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        assert!(p.target_topic("t", 1, &topic("a.t", None)).is_empty());
        p.acknowledged(&sp(0), position(100, 100), Some((0, &[(0, 100)])));
        assert_eq!(p.translate(&sp(0), 50, None), exact(50));
        // The id learned for the same name, then missing from metadata for a moment:
        // nothing moves, and the id is kept.
        assert!(p.target_topic("t", 1, &topic("a.t", Some(1))).is_empty());
        assert!(p.target_topic("t", 1, &topic("a.t", None)).is_empty());
        assert_eq!(p.translate(&sp(0), 50, None), exact(50));
        // Renamed: the map starts again at the position, whose target offset is unknown,
        // also after an advance without records (a marker) from the pipeline, which still
        // holds the earlier topic's.
        assert_eq!(p.target_topic("t", 1, &topic("b.t", Some(2))), [(0, 100)]);
        assert_eq!(p.translate(&sp(0), 50, None), before(100));
        p.acknowledged(&sp(0), position(101, 100), None);
        let not_yet = |through| {
            Some(Translation::NotYet {
                mirrored_through: through,
            })
        };
        assert_eq!(p.translate(&sp(0), 101, None), not_yet(101));
        p.acknowledged(&sp(0), position(150, 49), Some((0, &[(101, 49)])));
        assert_eq!(p.translate(&sp(0), 120, None), exact(19));
        assert_eq!(p.translate(&sp(0), 150, None), exact(49));
        // Renamed back to a topic that exists: again, from where it is.
        assert_eq!(p.target_topic("t", 1, &topic("a.t", Some(1))), [(0, 150)]);
        assert_eq!(p.translate(&sp(0), 120, None), before(150));
        p.acknowledged(&sp(0), position(160, 110), Some((100, &[(150, 10)])));
        // The same name, another id (deleted and created again by someone else).
        assert_eq!(p.target_topic("t", 1, &topic("a.t", Some(3))), [(0, 160)]);
        // Created again by the flow while it was at 160; what was acknowledged into the
        // new topic before the map moved (160..165) is kept.
        let at_160 = p.positions_of("t", 1);
        assert_eq!(at_160, [(0, 160)]);
        p.acknowledged(&sp(0), position(165, 5), Some((0, &[(160, 5)])));
        p.target_recreated("t", &at_160, &topic("a.t", None));
        assert_eq!(p.translate(&sp(0), 162, None), exact(2));
        assert_eq!(p.translate(&sp(0), 159, None), before(160));
        // Stored and read back: the old chunks deleted, the new one with its target.
        let taken = p.take();
        let mut loaded = Loaded::default();
        for batch in codec::encode("f", &taken.entries, 1, 1 << 20).unwrap() {
            loaded.apply("f", &batch.bytes).unwrap();
        }
        let reloaded = Progress::new("f", loaded, 1 << 20);
        assert_eq!(reloaded.translate(&sp(0), 162, None), exact(2));
        assert_eq!(reloaded.translate(&sp(0), 159, None), before(160));
        assert!(reloaded
            .target_topic("t", 1, &topic("a.t", Some(4)))
            .is_empty());
        assert!(!reloaded
            .target_topic("t", 1, &topic("c.t", None))
            .is_empty());
    }

    /// A write that needs several batches keeps each partition's map chunks and position
    /// in one batch (a batch is appended whole), so a crash between two batches never
    /// leaves a map stored without its position.
    #[test]
    fn a_partitions_map_and_position_share_a_batch() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        let partitions = 40;
        for partition in 0..partitions {
            // Gaps make several runs, so each partition's chunk is a few hundred bytes.
            let runs: Vec<(i64, i64)> = (0..20).map(|r| (r * 10, 5)).collect();
            p.acknowledged(
                &sp(partition),
                Position {
                    next_source_offset: 200,
                    next_target_offset: 100,
                    leader_epoch: None,
                },
                Some((0, &runs)),
            );
        }
        let taken = p.take();
        let owner = |e: &Entry| match e {
            Entry::MapChunk(sp, ..) | Entry::Position(sp, _) => Some(sp.partition),
            _ => None,
        };
        for pair in taken.entries.windows(2) {
            if let Entry::MapChunk(sp, ..) = &pair[0] {
                assert_eq!(owner(&pair[1]), Some(sp.partition), "{:?}", taken.entries);
            }
        }
        let unit_bytes = codec::encode("f", &taken.entries[..2], 1, 1 << 20).unwrap()[0]
            .bytes
            .len();
        // Limits from one partition's batch (with the encoder's allowance of up to 35
        // bytes per record for lengths and deltas) to four: without the rule, batches end
        // mid-partition at most of them.
        for limit in (unit_bytes + 70..unit_bytes * 4).step_by(11) {
            let batches = codec::encode("f", &taken.entries, 1, limit).unwrap();
            for b in &batches {
                assert!(b.bytes.len() <= limit);
                let first = &taken.entries[b.entries.start];
                let last = &taken.entries[b.entries.end - 1];
                assert!(
                    matches!(first, Entry::MapChunk(..)),
                    "limit {limit}: a batch starts with {first:?}"
                );
                assert!(
                    matches!(last, Entry::Position(..)),
                    "limit {limit}: a batch ends with {last:?}"
                );
            }
        }
    }
}
