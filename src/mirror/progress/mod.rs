//! Mirror progress: for each source partition, the next source offset to mirror, kept in
//! an internal compacted topic on the *target* cluster (`__kmirror_progress`), so a
//! daemon on any host resumes where the last one stopped and keeps no local state.
//!
//! A position only moves after the target acknowledged every record below it, and never
//! moves backwards: a write always sends the current positions of the partitions that
//! changed, writes go one at a time, and a failed or cancelled write marks its partitions
//! changed again. Besides positions, each flow has a marker record saying that its first
//! start is done, so `start_from` applies once per flow, not once per process.
//! Records are encoded in [`codec`], read back in [`load`], and exchanged with the target in
//! [`store`] (the only place that produces to the topic); [`writer`] decides what a
//! write carries and when it is made.

mod codec;
pub mod forget;
mod groups;
mod load;
mod maps;
mod source_topics;
pub use source_topics::other_source;
mod store;
mod writer;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmirror_wire::errors::{ErrorClass, ResponseError};
use serde::{Deserialize, Serialize};

use crate::client::produce_lane::Gate;
use crate::client::{ClientError, ClusterClient};
use crate::offsets::OffsetMap;
use codec::Entry;

use crate::mirror::ownership::lease::Lease;
pub use codec::SyncedGroup;

/// The internal topic holding progress.
pub const PROGRESS_TOPIC: &str = "__kmirror_progress";

/// What is stored per source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Every source offset below this has been acknowledged by the target.
    pub next_source_offset: i64,
    /// The target offset after the last mirrored record (for offset translation).
    pub next_target_offset: i64,
    /// The source partition leader epoch of the last batch below `next_source_offset`
    /// (Kafka's committed leader epoch): the first Fetch after a restart carries it as its
    /// `last_fetched_epoch`, so a source log that diverged while the daemon was stopped is
    /// noticed too (KIP-320). Absent in positions written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_epoch: Option<i32>,
}

/// The hasher of the maps each acknowledged batch looks up (four lookups per batch):
/// foldhash, several times faster than SipHash on a topic name. The keys are the flow's own
/// partitions, not input an attacker picks.
type FastHash = foldhash::fast::RandomState;

/// Per-partition state looked up per acknowledged batch.
type ByPartition<V> = HashMap<SourcePartition, V, FastHash>;

/// A source partition of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePartition {
    pub topic: String,
    pub partition: i32,
}

/// Errors loading progress that retrying cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cluster {cluster}: topic {PROGRESS_TOPIC} has cleanup.policy={policy}; it must be compacted, or the progress of idle partitions is deleted with old segments (set cleanup.policy=compact)")]
    NotCompacted { cluster: String, policy: String },
}

#[derive(Debug, Default)]
struct State {
    positions: ByPartition<Position>,
    /// Each partition's offset map ([`maps`]).
    maps: ByPartition<OffsetMap>,
    /// The target topic of each source topic, as discovery last found it (not stored: the
    /// maps keep theirs).
    targets: HashMap<String, crate::offsets::map::TargetTopic>,
    /// Partitions whose target topic changed and that had no acknowledgement with records
    /// since: their position's target offset stays unknown (-1).
    target_unknown: HashSet<SourcePartition, FastHash>,
    /// The source offsets the group sync last read, by group, and which changed since
    /// they were last written.
    groups: HashMap<String, SyncedGroup>,
    groups_dirty: HashSet<String>,
    /// The id each source topic had when the flow first mirrored it, and which of those
    /// are not written yet ([`source_topics`]).
    source_topics: HashMap<String, uuid::Uuid>,
    source_topics_dirty: HashSet<String>,
    /// The cluster id of the source the progress belongs to, and whether it is not
    /// written yet ([`source_topics`]).
    source_cluster: Option<String>,
    source_cluster_dirty: bool,
    /// The source log start of each partition, as last seen (not stored).
    log_starts: HashMap<SourcePartition, i64>,
    /// Partitions whose position changed since it was last written.
    dirty: HashSet<SourcePartition, FastHash>,
    /// The flow's first start is done: `start_from` no longer applies.
    initialised: bool,
    /// The marker saying so is not written yet.
    marker_dirty: bool,
    /// Partitions found at the first start that start at the source's end once they can
    /// (`start_from: latest`, no leader then); kept in the marker.
    start_at_end: BTreeSet<SourcePartition>,
}

/// The positions of one flow: the latest acknowledged ones and which changed since the
/// last write.
#[derive(Debug)]
pub struct Progress {
    flow: String,
    state: Mutex<State>,
    /// Held for a whole write, so an older write never lands after a newer one.
    writing: tokio::sync::Mutex<()>,
    /// The largest batch the progress topic accepts (`max.message.bytes`).
    max_batch_bytes: AtomicUsize,
    /// Since when (unix ms) the periodic writes fail, and the last error; `None` while
    /// they succeed.
    write_failing: Mutex<Option<(i64, String)>>,
    /// An exclusive flow's ownership lease: nothing is written unless it holds
    /// ([`crate::mirror::ownership::lease`]).
    lease: std::sync::OnceLock<Lease>,
    /// The lease, as the gate the flow's batches pass when their request is built.
    gate: std::sync::OnceLock<Gate>,
}

impl State {
    /// Moves the position of `sp` forward (never back); cloning the key only for a new
    /// partition or a newly changed one (this runs for every acknowledged batch).
    fn advance(&mut self, sp: &SourcePartition, position: Position) {
        let changed = match self.positions.get_mut(sp) {
            Some(current) => {
                let merged = merge(Some(*current), position);
                let changed = *current != merged;
                *current = merged;
                changed
            }
            None => {
                self.positions.insert(sp.clone(), position);
                true
            }
        };
        if changed && !self.dirty.contains(sp) {
            self.dirty.insert(sp.clone());
        }
    }
}

/// `position` unless it would move `current` backwards.
fn merge(current: Option<Position>, position: Position) -> Position {
    match current {
        Some(c) if c.next_source_offset > position.next_source_offset => c,
        _ => position,
    }
}

impl Progress {
    /// A flow's progress with nothing stored yet, for other modules' tests.
    #[cfg(test)]
    pub(crate) fn fresh(flow: &str) -> Self {
        Self::new(flow, codec::Loaded::default(), 1 << 20)
    }

    fn new(flow: &str, loaded: codec::Loaded, max_batch_bytes: usize) -> Self {
        let initialised = loaded.marker || !loaded.positions.is_empty();
        Self {
            flow: flow.to_string(),
            state: Mutex::new(State {
                maps: maps::from_loaded(loaded.maps, &loaded.positions),
                targets: HashMap::new(),
                target_unknown: HashSet::default(),
                groups: loaded.groups,
                groups_dirty: HashSet::new(),
                source_topics: loaded.source_topics,
                source_topics_dirty: HashSet::new(),
                source_cluster: loaded.source_cluster,
                source_cluster_dirty: false,
                log_starts: HashMap::new(),
                positions: loaded.positions.into_iter().collect(),
                dirty: HashSet::default(),
                initialised,
                // Progress written before markers existed: the flow did start before.
                marker_dirty: initialised && !loaded.marker,
                start_at_end: loaded.start_at_end.into_iter().collect(),
            }),
            writing: tokio::sync::Mutex::new(()),
            max_batch_bytes: AtomicUsize::new(max_batch_bytes),
            write_failing: Mutex::new(None),
            lease: std::sync::OnceLock::new(),
            gate: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("progress lock")
    }

    pub fn get(&self, sp: &SourcePartition) -> Option<Position> {
        self.lock().positions.get(sp).copied()
    }

    /// Records that everything below `position.next_source_offset` is on the target. A
    /// position behind the current one is ignored: progress never moves backwards.
    pub fn advance(&self, sp: &SourcePartition, mut position: Position) {
        let mut st = self.lock();
        if !st.target_unknown.is_empty() && st.target_unknown.contains(sp) {
            position.next_target_offset = -1;
        }
        st.advance(sp, position);
    }

    /// [`Self::advance`] after an acknowledged produce, whose records (as `(first source
    /// offset, count)` runs) were written from target offset `target_base`, which extends
    /// the partition's offset map: one lock for both.
    pub fn acknowledged(
        &self,
        sp: &SourcePartition,
        position: Position,
        mirrored: Option<(i64, &[(i64, i64)])>,
    ) {
        let mut st = self.lock();
        let mut position = position;
        if let Some((target_base, runs)) = mirrored {
            st.mirrored(sp, target_base, runs);
            if !st.target_unknown.is_empty() {
                st.target_unknown.remove(sp);
            }
        } else if !st.target_unknown.is_empty() && st.target_unknown.contains(sp) {
            position.next_target_offset = -1;
        }
        st.advance(sp, position);
    }

    /// Whether the flow's first start is done (stored, or recorded by this process), so
    /// partitions without a position are new and `start_from` does not apply to them.
    pub fn is_initialised(&self) -> bool {
        self.lock().initialised
    }

    /// Records that the flow's first start is done; written by the next [`Self::write`],
    /// after the positions that were chosen with it.
    pub fn mark_initialised(&self) {
        let mut st = self.lock();
        if !st.initialised {
            st.initialised = true;
            st.marker_dirty = true;
        }
    }

    /// Whether `sp` was found at the flow's first start, with `start_from: latest`, and
    /// could not start then: it starts at the source's end once it can.
    pub fn starts_at_end(&self, sp: &SourcePartition) -> bool {
        self.lock().start_at_end.contains(sp)
    }

    /// Records whether `sp` starts at the source's end once it can (see
    /// [`Self::starts_at_end`]); kept in the marker, written by the next [`Self::write`].
    pub fn set_starts_at_end(&self, sp: &SourcePartition, at_end: bool) {
        let mut st = self.lock();
        let changed = if at_end {
            st.start_at_end.insert(sp.clone())
        } else {
            st.start_at_end.remove(sp)
        };
        if changed && st.initialised {
            st.marker_dirty = true;
        }
    }

    /// Keeps only the partitions that start at the source's end for which `keep` holds
    /// (a partition whose topic is gone waits no more).
    pub fn retain_starts_at_end(&self, keep: impl Fn(&SourcePartition) -> bool) {
        let mut st = self.lock();
        let before = st.start_at_end.len();
        st.start_at_end.retain(|sp| keep(sp));
        if st.start_at_end.len() != before && st.initialised {
            st.marker_dirty = true;
        }
    }

    /// Reads the flow's positions from the target cluster, creating the progress topic if
    /// needed. Transient errors are retried (forever; cancel to stop); only errors that
    /// need an operator end it.
    pub async fn load(flow: &str, target: &ClusterClient) -> Result<Arc<Self>, ProgressError> {
        let max_batch_bytes = store::ensure_topic(target, None).await?;
        let loaded = load::read_all(flow, &store::TargetLog { target }, target).await?;
        let partitions = loaded.positions.len();
        let progress = Self::new(flow, loaded, max_batch_bytes);
        tracing::info!(
            flow,
            partitions,
            initialised = progress.is_initialised(),
            max_batch_bytes,
            "Loaded mirror progress."
        );
        Ok(Arc::new(progress))
    }

    /// Reads the flow's stored progress without creating or writing anything (for
    /// `kmirror offsets` and `kmirror failover`); gives up after `deadline`.
    pub async fn read(
        flow: &str,
        target: &ClusterClient,
        deadline: Duration,
    ) -> Result<Arc<Self>, ClientError> {
        let metadata = target.refresh_metadata().await?;
        if metadata.partition_count(PROGRESS_TOPIC).is_none() {
            return Err(ClientError::Refused {
                cluster: target.name().to_string(),
                what: format!("no {PROGRESS_TOPIC} topic: no flow has run against this cluster"),
            });
        }
        let loaded = read_stored(flow, target, deadline).await?;
        Ok(Arc::new(Self::new(flow, loaded, 1 << 20)))
    }
}

/// What `flow` stored on `target`, read to the end within `deadline`.
async fn read_stored(
    flow: &str,
    target: &ClusterClient,
    deadline: Duration,
) -> Result<codec::Loaded, ClientError> {
    let log = store::TargetLog { target };
    tokio::time::timeout(deadline, load::read_all(flow, &log, target))
        .await
        .map_err(|_| ClientError::Incomplete {
            cluster: target.name().to_string(),
            what: format!("reading the progress of flow {flow} took longer than {deadline:?}"),
        })?
}

/// Partitions and positions for the tests of this module and its children.
#[cfg(test)]
mod fixtures {
    use super::{Position, SourcePartition};

    pub(super) fn sp_of(topic: &str, partition: i32) -> SourcePartition {
        SourcePartition {
            topic: topic.into(),
            partition,
        }
    }

    pub(super) fn sp(partition: i32) -> SourcePartition {
        sp_of("t", partition)
    }

    pub(super) fn pos(offset: i64) -> Position {
        Position {
            next_source_offset: offset,
            next_target_offset: offset + 100,
            leader_epoch: None,
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod writer_tests;

#[cfg(test)]
mod tests;
