//! What each flow has done, and how far behind it is: counters the pipelines and the fetch
//! loop update (atomics, one lock per acknowledged batch for the latency histogram), read
//! by the metrics callbacks, `/status`, `/readyz` and the periodic progress line.
//!
//! Lag of a partition: the source's last stable offset (from its last Fetch response; the
//! high watermark unless a transaction is open there, as Kafka's read_committed consumer
//! counts it) minus the mirrored position (the next source offset acknowledged by the target). Its age: the
//! timestamp of the oldest batch the daemon holds for it and has not had acknowledged;
//! when the backlog has not been read yet, the age of the last record mirrored (an upper
//! bound); 0 when caught up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use opentelemetry::KeyValue;

use crate::mirror::progress::SourcePartition;

mod history;
mod lifecycle;
mod partition;
mod readings;
mod unmirrored;

pub use history::{Sample, HISTORY_SECONDS, SAMPLE_SECONDS};
pub use partition::{PartitionState, PartitionStats};
pub use unmirrored::UnmirroredTopic;

/// Replication latency is kept in milliseconds, from 1 ms to a week, with two significant
/// digits (1% resolution).
/// A cluster failing for less than this is not a reason yet (`/readyz`), nor a partition's
/// lag unknown: a leader moving fails a request or two until the next metadata names the
/// new leader, and a probe that lands in that moment must not take the daemon out of
/// service.
pub const FAILING_GRACE_MS: i64 = 5_000;

const LATENCY_MAX_MS: u64 = 7 * 24 * 3600 * 1000;
const LATENCY_DIGITS: u8 = 2;

/// Indexes of `side_errors`.
/// The position of a partition that has not started ([`FlowStats::partition_not_started`]).
pub const NOT_STARTED: i64 = -1;

const SOURCE: usize = 0;
const TARGET: usize = 1;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Counters of one flow.
#[derive(Debug)]
pub struct FlowStats {
    pub name: String,
    pub source: String,
    pub target: String,
    /// `flow="<name>"`, built once for the metrics.
    pub attribute: KeyValue,
    records: AtomicU64,
    bytes: AtomicU64,
    /// Record bytes read from the source, whatever became of them.
    fetched_bytes: AtomicU64,
    /// Fetch requests the source answered (Kafka's consumer: fetch-total).
    fetch_requests: AtomicU64,
    /// Records found on the target past where the flow's acknowledged records went
    /// (mirrored again after an unclean stop; `Pipeline::mirrored_again`).
    mirrored_again_records: AtomicU64,
    throttle_wait_us: AtomicU64,
    /// Unix ms when a batch last waited for the flow's rate limits; 0 before.
    throttled_ms: AtomicI64,
    in_flight_bytes: AtomicU64,
    started: AtomicBool,
    /// Why the flow has not started yet: the latest error of its setup (progress,
    /// producer id, first discovery round); `None` before one and once it started.
    start_error: Mutex<Option<String>>,
    /// Another kmirror owns the flow (`exclusive: true`); this one stands by.
    standby: AtomicBool,
    /// The flow stopped for good and needs an operator (e.g. its progress belongs to
    /// another source cluster): nothing is retried.
    gave_up: AtomicBool,
    /// Why this kmirror is not in the flow's ownership group (`exclusive: true`): joining
    /// it, or the error that keeps it out.
    joining: Mutex<Option<String>>,
    /// Unix ms of the fetch loop's last turn; 0 while it does not run.
    loop_beat_ms: AtomicI64,
    /// Unix ms of the last acknowledged batch, 0 before the first.
    last_ack_ms: AtomicI64,
    /// Unix ms when the flow last finished starting (a reload, a takeover by this
    /// standby or a setup retry starts it again); 0 before.
    started_ms: AtomicI64,
    /// Unix ms since which the target refuses or cannot be reached; 0 when it answers.
    target_failing_since_ms: AtomicI64,
    /// The same for the source's Fetches.
    source_failing_since_ms: AtomicI64,
    /// The last error of the source's Fetches and of the target's Produces, each apart:
    /// what `/readyz` says a failing side fails with.
    side_errors: Mutex<[String; 2]>,
    retries: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    last_error: Mutex<Option<(i64, String)>>,
    latency_ms: Mutex<Histogram<u64>>,
    /// The sum of the latencies recorded in `latency_ms`, unrounded (ms).
    latency_sum_ms: AtomicU64,
    /// The OTLP push's latency instrument, recorded per batch; `None` without
    /// `telemetry.otlp` (`/metrics` reads `latency_ms` at scrape time instead).
    latency: Option<opentelemetry::metrics::Histogram<f64>>,
    partitions: Mutex<BTreeMap<SourcePartition, Arc<PartitionStats>>>,
    /// Topics the flow matches and does not mirror, by name ([`unmirrored`]).
    unmirrored: Mutex<BTreeMap<String, UnmirroredTopic>>,
    history: Mutex<VecDeque<Sample>>,
    /// What `GET /offsets` translates with, once the flow has loaded its progress.
    offsets: Mutex<Option<Arc<crate::offsets::report::FlowOffsets>>>,
    /// The group offset sync's last round per group.
    groups: Mutex<BTreeMap<String, GroupSyncState>>,
}

/// What the group offset sync last did for one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupSyncState {
    /// When offsets were last committed on the target (ms since the epoch; 0: never).
    pub last_synced_unix_ms: i64,
    /// Partitions committed then.
    pub partitions: usize,
    /// Why the last round left the group or some of its partitions alone, if it did.
    pub skipped: Option<String>,
}

impl FlowStats {
    pub fn new(
        name: &str,
        (source, target): (&str, &str),
        latency: Option<opentelemetry::metrics::Histogram<f64>>,
    ) -> Self {
        Self {
            name: name.to_string(),
            source: source.to_string(),
            target: target.to_string(),
            attribute: KeyValue::new("flow", name.to_string()),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
            mirrored_again_records: AtomicU64::new(0),
            fetch_requests: AtomicU64::new(0),
            throttle_wait_us: AtomicU64::new(0),
            throttled_ms: AtomicI64::new(0),
            in_flight_bytes: AtomicU64::new(0),
            started: AtomicBool::new(false),
            start_error: Mutex::default(),
            standby: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            joining: Mutex::default(),
            loop_beat_ms: AtomicI64::new(0),
            last_ack_ms: AtomicI64::new(0),
            started_ms: AtomicI64::new(0),
            target_failing_since_ms: AtomicI64::new(0),
            source_failing_since_ms: AtomicI64::new(0),
            side_errors: Mutex::default(),
            retries: Mutex::default(),
            errors: Mutex::default(),
            last_error: Mutex::default(),
            latency_ms: Mutex::new(
                Histogram::new_with_bounds(1, LATENCY_MAX_MS, LATENCY_DIGITS)
                    .expect("valid histogram bounds"),
            ),
            latency_sum_ms: AtomicU64::new(0),
            latency,
            partitions: Mutex::default(),
            unmirrored: Mutex::default(),
            history: Mutex::default(),
            offsets: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    /// Records a group sync round for `group`: `committed` partitions (0: none this
    /// round) and why anything was skipped.
    pub fn group_synced(&self, group: &str, committed: usize, skipped: Option<String>) {
        let mut groups = self.groups.lock().expect("groups lock");
        let state = groups.entry(group.to_string()).or_default();
        if committed > 0 {
            state.last_synced_unix_ms = now_ms();
            state.partitions = committed;
        }
        state.skipped = skipped;
    }

    /// The group sync's last round per group.
    pub fn groups(&self) -> BTreeMap<String, GroupSyncState> {
        self.groups.lock().expect("groups lock").clone()
    }

    /// Makes the flow's offset maps available to `GET /offsets`.
    pub fn set_offsets(&self, offsets: Arc<crate::offsets::report::FlowOffsets>) {
        *self.offsets.lock().expect("offsets lock") = Some(offsets);
    }

    /// The flow's offset maps, once it loaded its progress.
    pub fn offsets(&self) -> Option<Arc<crate::offsets::report::FlowOffsets>> {
        self.offsets.lock().expect("offsets lock").clone()
    }

    /// The stats of a partition that starts at `position` (kept if it existed and had
    /// started).
    pub fn partition(&self, sp: &SourcePartition, position: i64) -> Arc<PartitionStats> {
        let mut partitions = self.partitions.lock().expect("partitions lock");
        let p = partitions
            .entry(sp.clone())
            .or_insert_with(|| Arc::new(PartitionStats::new(position)));
        if !p.has_started() {
            *p = Arc::new(PartitionStats::new(position));
        }
        let p = p.clone();
        p.set_state(PartitionState::Running, None);
        p.started_again();
        p
    }

    /// Forgets the partitions waiting to start ([`Self::partition_not_started`]) that
    /// `keep` does not keep.
    pub fn retain_not_started(&self, keep: impl Fn(&SourcePartition) -> bool) {
        let mut partitions = self.partitions.lock().expect("partitions lock");
        partitions.retain(|sp, p| p.has_started() || keep(sp));
    }

    /// A new partition that cannot start yet (the source did not give its start offset):
    /// counted with an unknown lag, and shown with `why`, until it starts.
    pub fn partition_not_started(&self, sp: &SourcePartition, why: String) {
        let mut partitions = self.partitions.lock().expect("partitions lock");
        let p = partitions
            .entry(sp.clone())
            .or_insert_with(|| Arc::new(PartitionStats::new(NOT_STARTED)));
        p.error(why);
    }

    /// Marks the partitions of source topic `topic` as waiting for it (deleted), or not.
    pub fn source_topic_deleted(&self, topic: &str, deleted: bool) {
        let partitions = self.partitions.lock().expect("partitions lock");
        for (_, p) in partitions.iter().filter(|(sp, _)| sp.topic == topic) {
            p.source_deleted(deleted);
        }
    }

    pub fn partitions(&self) -> Vec<(SourcePartition, Arc<PartitionStats>)> {
        self.partitions
            .lock()
            .expect("partitions lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A batch of `records` records and `bytes` bytes whose newest record has timestamp
    /// `max_timestamp_ms` was acknowledged by the target at `now` (Unix ms).
    pub fn acknowledged(
        &self,
        p: &PartitionStats,
        records: u64,
        bytes: u64,
        max_timestamp_ms: i64,
        now: i64,
    ) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_ack_ms.store(now, Ordering::Relaxed);
        self.target_failing_since_ms.store(0, Ordering::Relaxed);
        p.last_mirrored_ms
            .fetch_max(max_timestamp_ms, Ordering::Relaxed);
        let latency_ms = u64::try_from(now - max_timestamp_ms).unwrap_or(0);
        self.latency_ms
            .lock()
            .expect("latency lock")
            .saturating_record(latency_ms.max(1));
        self.latency_sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
        if let Some(latency) = &self.latency {
            latency.record(
                latency_ms as f64 / 1000.0,
                std::slice::from_ref(&self.attribute),
            );
        }
    }

    /// A produce to the target failed with an error of `class` and is retried.
    pub fn produce_retry(&self, class: &'static str, error: &dyn std::fmt::Display) {
        *self
            .retries
            .lock()
            .expect("retries lock")
            .entry(class)
            .or_default() += 1;
        let now = now_ms();
        let _ = self.target_failing_since_ms.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.side_errors.lock().expect("side errors lock")[TARGET] = error.to_string();
        *self.last_error.lock().expect("error lock") = Some((now, error.to_string()));
    }

    /// A Fetch from the source failed (it is retried).
    pub fn source_failed(&self, error: &dyn std::fmt::Display) {
        let now = now_ms();
        let _ = self.source_failing_since_ms.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.side_errors.lock().expect("side errors lock")[SOURCE] = error.to_string();
        *self.last_error.lock().expect("error lock") = Some((now, error.to_string()));
    }

    /// The last error of the source's Fetches (`source`) or of the target's Produces.
    pub fn side_error(&self, source: bool) -> String {
        let side = if source { SOURCE } else { TARGET };
        self.side_errors.lock().expect("side errors lock")[side].clone()
    }

    /// A Fetch from the source was answered.
    pub fn source_answered(&self) {
        self.fetch_requests.fetch_add(1, Ordering::Relaxed);
        self.source_failing_since_ms.store(0, Ordering::Relaxed);
    }

    pub fn fetch_requests(&self) -> u64 {
        self.fetch_requests.load(Ordering::Relaxed)
    }

    /// Since when (Unix ms) the source's Fetches have been failing, if they are.
    pub fn source_failing_since_ms(&self) -> Option<i64> {
        Some(self.source_failing_since_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// An error that stopped a partition or the flow, of `class`.
    pub fn failed(&self, class: &'static str, error: &dyn std::fmt::Display) {
        self.count_error(class);
        *self.last_error.lock().expect("error lock") = Some((now_ms(), error.to_string()));
    }

    fn count_error(&self, class: &'static str) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(class)
            .or_default() += 1;
    }

    pub fn throttled(&self, waited_us: u64) {
        self.throttle_wait_us
            .fetch_add(waited_us, Ordering::Relaxed);
        if waited_us > 0 {
            self.throttled_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Unix ms when a batch last waited for the flow's rate limits (0: never).
    pub fn throttled_ms(&self) -> i64 {
        self.throttled_ms.load(Ordering::Relaxed)
    }

    /// A Fetch response carried `bytes` of records for one partition.
    pub fn read_from_source(&self, bytes: u64) {
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn fetched_bytes(&self) -> u64 {
        self.fetched_bytes.load(Ordering::Relaxed)
    }

    /// A partition's target held `records` past where the flow's acknowledged records went.
    pub fn mirrored_again(&self, records: u64) {
        self.mirrored_again_records
            .fetch_add(records, Ordering::Relaxed);
    }

    pub fn mirrored_again_records(&self) -> u64 {
        self.mirrored_again_records.load(Ordering::Relaxed)
    }

    pub fn set_in_flight_bytes(&self, bytes: u64) {
        self.in_flight_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// Every flow of the running topology.
#[derive(Debug, Default)]
pub struct Flows {
    flows: Mutex<Vec<Arc<FlowStats>>>,
}

impl Flows {
    pub fn add(&self, flow: Arc<FlowStats>) {
        self.flows.lock().expect("flows lock").push(flow);
    }

    pub fn get(&self, name: &str) -> Option<Arc<FlowStats>> {
        self.all().into_iter().find(|f| f.name == name)
    }

    pub fn remove(&self, name: &str) {
        self.flows
            .lock()
            .expect("flows lock")
            .retain(|f| f.name != name);
    }

    pub fn all(&self) -> Vec<Arc<FlowStats>> {
        self.flows.lock().expect("flows lock").clone()
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
