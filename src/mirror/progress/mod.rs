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
//! [`store`] (the only place that produces to the topic).

mod codec;
pub mod forget;
mod groups;
mod load;
mod maps;
mod source_topics;
pub use source_topics::other_source;
mod store;

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

/// How often a progress writer that keeps failing says so again.
const REPORT_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Progress writes failing in a row.
struct Failing {
    since: std::time::Instant,
    /// When it was last reported at WARN (or ERROR).
    reported: Option<std::time::Instant>,
    /// Whether an error that needs an operator was reported (at ERROR, at once).
    reported_fatal: bool,
    count: u64,
}

impl Failing {
    fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            reported: None,
            reported_fatal: false,
            count: 0,
        }
    }

    /// One more failed write of `flow`'s progress: a WARN (an ERROR when it needs an
    /// operator, at once) when none was logged for REPORT_AGAIN, DEBUG otherwise.
    fn failed(&mut self, flow: &str, e: &ClientError) {
        let now = std::time::Instant::now();
        self.count += 1;
        let fatal = e.class() == ErrorClass::Fatal;
        let due = self
            .reported
            .is_none_or(|r| now.duration_since(r) >= REPORT_AGAIN)
            || (fatal && !self.reported_fatal);
        if !due {
            tracing::debug!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; will retry.");
            return;
        }
        self.reported = Some(now);
        self.reported_fatal |= fatal;
        if fatal {
            tracing::error!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; this needs operator action. A restart would mirror again what was acknowledged since the last write.");
        } else {
            tracing::warn!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; will retry (reported again every minute while it fails).");
        }
    }
}

/// The time the final progress write gets when the drain has none left.
const FINAL_WRITE_LEAST: std::time::Duration = std::time::Duration::from_secs(3);

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

/// Entries taken out of `dirty` for a write; whatever was not written when this is dropped
/// (failure or cancellation) is marked dirty again.
struct Taken<'a> {
    progress: &'a Progress,
    entries: Vec<Entry>,
    written: usize,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut st = self.progress.lock();
        for e in &self.entries[self.written..] {
            match e {
                Entry::Position(sp, _) => {
                    st.dirty.insert(sp.clone());
                }
                Entry::MapChunk(sp, index, chunk) => st.restore_map_change(sp, *index, chunk),
                Entry::Group(group, _) => {
                    st.groups_dirty.insert(group.clone());
                }
                Entry::SourceTopic(topic, _) => {
                    st.source_topics_dirty.insert(topic.clone());
                }
                Entry::SourceCluster(_) => st.source_cluster_dirty = true,
                Entry::Marker(_) => st.marker_dirty = true,
                Entry::Forget(_) => {}
            }
        }
    }
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

    /// Since when (unix ms) the periodic progress writes fail, with the last error; `None`
    /// while they succeed.
    pub fn write_failing(&self) -> Option<(i64, String)> {
        self.write_failing
            .lock()
            .expect("write failing lock")
            .clone()
    }

    /// Records the outcome of a periodic write.
    fn note_write(&self, result: Result<(), &ClientError>) {
        let mut failing = self.write_failing.lock().expect("write failing lock");
        *failing = match result {
            Ok(()) => None,
            Err(e) => {
                let since = failing
                    .as_ref()
                    .map_or_else(crate::telemetry::stats::now_ms, |f| f.0);
                Some((since, e.to_string()))
            }
        };
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

    /// Takes the changed map chunks (each partition's followed by its position when that
    /// changed too), the other changed positions (current values), the groups and the
    /// marker, in that order.
    fn take(&self) -> Taken<'_> {
        let mut st = self.lock();
        let mut dirty = std::mem::take(&mut st.dirty);
        // A partition's map changes are followed by its position, so that one batch
        // carries both ([`codec::encode`]): a crash between two batches of a write never
        // leaves a restarted map without the position it belongs to.
        let changes = st.take_map_changes();
        let mut entries = Vec::with_capacity(changes.len() + dirty.len());
        if std::mem::take(&mut st.source_cluster_dirty) {
            entries.extend(st.source_cluster.clone().map(Entry::SourceCluster));
        }
        let topics = std::mem::take(&mut st.source_topics_dirty);
        entries.extend(topics.into_iter().filter_map(|topic| {
            let id = *st.source_topics.get(&topic)?;
            Some(Entry::SourceTopic(topic, id))
        }));
        let mut changes = changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            let sp = match &change {
                Entry::MapChunk(sp, ..) => sp.clone(),
                _ => {
                    entries.push(change);
                    continue;
                }
            };
            entries.push(change);
            let partition_ends =
                !matches!(changes.peek(), Some(Entry::MapChunk(next, ..)) if *next == sp);
            if partition_ends && dirty.remove(&sp) {
                if let Some(p) = st.positions.get(&sp) {
                    entries.push(Entry::Position(sp, *p));
                }
            }
        }
        entries.extend(dirty.into_iter().filter_map(|sp| {
            let p = *st.positions.get(&sp)?;
            Some(Entry::Position(sp, p))
        }));
        let groups = std::mem::take(&mut st.groups_dirty);
        entries.extend(groups.into_iter().filter_map(|group| {
            let synced = st.groups.get(&group)?.clone();
            Some(Entry::Group(group, synced))
        }));
        if std::mem::take(&mut st.marker_dirty) {
            entries.push(Entry::Marker(st.start_at_end.iter().cloned().collect()));
        }
        Taken {
            progress: self,
            entries,
            written: 0,
        }
    }

    /// Writes what changed since the last write, in batches that fit the topic's
    /// `max.message.bytes`, one batch per request. What is not written stays dirty.
    /// From now on, writes only while `lease` holds (an exclusive flow's owner).
    pub fn write_only_under(&self, lease: Lease) {
        let _ = self.gate.set(Arc::new(lease.clone()));
        let _ = self.lease.set(lease);
    }

    /// The gate the flow's batches pass when their Produce request is built: the lease of
    /// an exclusive flow's owner, none otherwise.
    pub fn send_gate(&self) -> Option<Gate> {
        self.gate.get().cloned()
    }

    /// Whether this daemon may write now: not an exclusive flow's owner whose lease lapsed.
    pub fn may_write(&self) -> bool {
        self.lease.get().is_none_or(Lease::held)
    }

    /// Returns once this daemon may send: at once but for an exclusive flow's owner whose
    /// lease lapsed, which waits until it is renewed (or its flow ends).
    pub async fn wait_owned(&self) {
        if let Some(lease) = self.lease.get() {
            lease.wait_held().await;
        }
    }

    fn check_lease(&self, target: &ClusterClient) -> Result<(), ClientError> {
        if self.may_write() {
            return Ok(());
        }
        Err(ClientError::Incomplete {
            cluster: target.name().to_string(),
            what: format!("writing {PROGRESS_TOPIC}: this daemon's ownership of the flow lapsed (its session may have expired; another kmirror may own the flow)"),
        })
    }

    pub async fn write(&self, target: &ClusterClient) -> Result<usize, ClientError> {
        let _turn = self.writing.lock().await;
        self.check_lease(target)?;
        let mut taken = self.take();
        if taken.entries.is_empty() {
            return Ok(0);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let limit = self.max_batch_bytes.load(Ordering::Relaxed);
        // The daemon's own finding, not the broker's MESSAGE_TOO_LARGE.
        let batches = codec::encode(&self.flow, &taken.entries, now, limit).map_err(|e| {
            ClientError::Refused {
                cluster: target.name().to_string(),
                what: format!("writing {PROGRESS_TOPIC}: {e}"),
            }
        })?;
        for batch in batches {
            self.check_lease(target)?;
            if let Err(e) = store::send_batch(target, batch.bytes).await {
                if let ClientError::Broker {
                    error: ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge,
                    ..
                } = &e
                {
                    // The topic's limit was lowered since it was read: smaller batches.
                    self.max_batch_bytes
                        .store((limit / 2).max(1024), Ordering::Relaxed);
                    return Err(ClientError::Incomplete {
                        cluster: target.name().to_string(),
                        what: format!("{e}; writing smaller batches next time"),
                    });
                }
                return Err(e);
            }
            taken.written = batch.entries.end;
        }
        Ok(taken.entries.len())
    }

    /// Writes every `interval` until `stop`; then writes once more, retrying for up to
    /// `drain`'s deadline, so a restart does not mirror again what was acknowledged.
    pub async fn run_writer(
        self: Arc<Self>,
        target: Arc<ClusterClient>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
        drain: super::Drain,
    ) {
        // A target that is down fails every write: reported at once, then once every
        // REPORT_AGAIN with the count (each failure at DEBUG), and its end at INFO.
        let mut failing: Option<Failing> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            // An owner whose lease lapsed writes nothing: its ownership ends any moment.
            if !self.may_write() {
                continue;
            }
            // A target that accepts and never answers holds a write (and the metadata
            // refresh after a failed one) for the request timeout: the stop does not wait
            // for it. Nothing is lost: what a cancelled write took stays to be written.
            let written = tokio::select! {
                _ = stop.cancelled() => break,
                written = self.write(&target) => written,
            };
            self.note_write(written.as_ref().map(|_| ()));
            if let Err(e) = written {
                failing
                    .get_or_insert_with(Failing::new)
                    .failed(&self.flow, &e);
                let refreshed = tokio::select! {
                    _ = stop.cancelled() => break,
                    refreshed = target.refresh_metadata() => refreshed,
                };
                if refreshed.is_err() {
                    tracing::debug!(flow = %self.flow, "Target metadata refresh failed.");
                }
            } else if let Some(f) = failing.take() {
                tracing::info!(flow = %self.flow, failed_writes = f.count, failing_for_s = f.since.elapsed().as_secs(), "Mirror progress written again.");
            }
        }
        if !self.may_write() {
            tracing::warn!(flow = %self.flow, "The final progress write is skipped: this daemon's ownership of the flow lapsed, and another kmirror may own it and have stored newer positions. The next owner mirrors again what was acknowledged since the last write.");
            return;
        }
        // What the drain left, but time for one write even when it left nothing: a write
        // takes milliseconds when the target answers, and this bounds one that does not.
        // The retries get the same time: a target back within it is still written to.
        let time = drain.remaining().max(FINAL_WRITE_LEAST);
        let last = tokio::time::timeout(
            time,
            target.retry("writing the final progress", Some(time), || {
                self.write(&target)
            }),
        )
        .await;
        let failed = match last {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} ms", time.as_millis())),
        };
        if let Some(error) = failed {
            tracing::warn!(flow = %self.flow, error, "The final progress write failed; the restart mirrors again what was acknowledged since the last successful write.");
        }
    }
}

/// Partitions and positions for the tests of this module and its children.
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
mod tests {
    use super::fixtures::{pos, sp};
    use super::*;

    fn progress() -> Progress {
        Progress::new("f", codec::Loaded::default(), 1 << 20)
    }

    fn positions(taken: &Taken<'_>) -> Vec<(SourcePartition, Position)> {
        let mut out: Vec<_> = taken
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Position(sp, p) => Some((sp.clone(), *p)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A progress record too large for the topic's limit is the daemon's own finding: an
    /// error that names the topic and the limit, not a MESSAGE_TOO_LARGE the broker never
    /// sent.
    #[tokio::test]
    async fn a_record_over_the_limit_is_refused_not_blamed_on_the_broker() {
        let (broker, client) = crate::client::local_cluster("target").await;
        let p = Progress::new("f", codec::Loaded::default(), 64);
        p.advance(&sp(0), pos(5));
        let e = p.write(&client).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused { what, .. }
                if what.contains(PROGRESS_TOPIC) && what.contains("max.message.bytes = 64")),
            "{e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Fatal);
        let _ = broker.shutdown().await;
    }

    #[test]
    fn positions_never_move_backwards() {
        let p = progress();
        p.advance(&sp(0), pos(5));
        p.advance(&sp(0), pos(10));
        p.advance(&sp(0), pos(7));
        assert_eq!(p.get(&sp(0)), Some(pos(10)));
    }

    /// Finding 16: a write that fails after a newer one succeeded must not put its stale
    /// position back; the partition is written again with its current position.
    #[test]
    fn a_failed_older_write_does_not_bring_back_a_stale_position() {
        let p = progress();
        p.advance(&sp(0), pos(5));
        let older = p.take();
        assert_eq!(positions(&older), [(sp(0), pos(5))]);
        p.advance(&sp(0), pos(10));
        let mut newer = p.take();
        assert_eq!(positions(&newer), [(sp(0), pos(10))]);
        newer.written = newer.entries.len();
        drop(newer); // succeeded
        drop(older); // failed: nothing written
        assert_eq!(positions(&p.take()), [(sp(0), pos(10))]);
    }

    /// A write cut short (failure after some batches, or cancellation) marks exactly the
    /// unwritten entries dirty again, marker included.
    #[test]
    fn unwritten_entries_stay_dirty_and_the_marker_goes_last() {
        let p = progress();
        assert!(!p.is_initialised());
        p.advance(&sp(0), pos(1));
        p.advance(&sp(1), pos(2));
        p.mark_initialised();
        assert!(p.is_initialised());
        let mut taken = p.take();
        assert_eq!(taken.entries.len(), 3);
        assert_eq!(taken.entries.last(), Some(&Entry::Marker(Vec::new())));
        taken.written = 1;
        let first = match &taken.entries[0] {
            Entry::Position(sp, _) => sp.clone(),
            _ => unreachable!(),
        };
        drop(taken);
        let again = p.take();
        assert_eq!(again.entries.len(), 2);
        assert!(!positions(&again).iter().any(|(sp, _)| *sp == first));
        assert_eq!(again.entries.last(), Some(&Entry::Marker(Vec::new())));
    }

    /// Progress written before markers existed means the flow did start before.
    #[test]
    fn stored_positions_without_a_marker_count_as_initialised() {
        let mut loaded = codec::Loaded::default();
        loaded.positions.insert(sp(0), pos(3));
        let p = Progress::new("f", loaded, 1 << 20);
        assert!(p.is_initialised());
        assert_eq!(p.take().entries, [Entry::Marker(Vec::new())]);
        let fresh = progress();
        assert!(!fresh.is_initialised());
        assert!(fresh.take().entries.is_empty());
    }
}
