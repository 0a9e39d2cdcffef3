//! One flow at run time: discovers matching source topics and partitions (new ones within
//! `discovery_interval`), creates target topics with the source's partition count and
//! synced configs, and runs the fetch loop that feeds each partition's [`Pipeline`].
//!
//! Backpressure: every fetched byte counts against the flow's `max_in_flight_bytes`
//! ([`super::memory`]) from the Fetch request until the target acknowledged it; a partition
//! whose queue is full or that holds its share is left out of the next Fetch, so a slow or
//! stuck target slows fetching instead of growing memory, and one stuck partition does not
//! stall the others.
//! A target topic with fewer partitions than its source that cannot be grown stops that
//! topic with an error — partitions are never remapped silently.
//!
//! Split by concern: [`discovery`] (topics, target topics, re-created sources),
//! [`partitions`] (a partition's start position and pipeline), [`fetching`] (the fetch
//! loop and the hand-off to pipelines).

mod discovery;
mod fetching;
mod partitions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::memory::{Held, Memory};
use super::pipeline::{Chunk, Ended};
use super::progress::{Progress, ProgressError, SourcePartition};
use crate::client::ClusterClient;
use crate::config::Flow;
use crate::throttle::Throttle;

/// Chunks queued per partition between the fetcher and its pipeline.
const QUEUE_CHUNKS: usize = 4;
/// Long-poll wait of each Fetch.
const FETCH_WAIT_MS: i32 = 250;
/// Most bytes one partition returns per Fetch.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// A fetch smaller than this waits for memory instead.
const MIN_FETCH_BYTES: usize = 64 << 10;
/// A partition with less than this left of its share waits for acks instead of fetching.
const MIN_PARTITION_FETCH_BYTES: usize = 64 << 10;

struct Running {
    next_fetch_offset: i64,
    /// Bytes this partition holds (fetched, not yet acknowledged).
    held: Held,
    /// The pipeline's input; `None` once the partition is stopped: its pipeline then
    /// produces what it already holds and ends.
    tx: Option<mpsc::Sender<Chunk>>,
    task: tokio::task::JoinHandle<Ended>,
}

impl Running {
    /// Stops fetching for this partition; batches already fetched are still produced.
    fn stop(&mut self) {
        self.tx = None;
    }

    fn wants_data(&self) -> bool {
        !self.task.is_finished() && self.tx.as_ref().is_some_and(|tx| tx.capacity() > 0)
    }
}

/// A flow's state while it runs.
pub struct FlowRunner {
    flow: Flow,
    source: Arc<ClusterClient>,
    target: Arc<ClusterClient>,
    throttle: Arc<Throttle>,
    memory: Memory,
    partitions: BTreeMap<SourcePartition, Running>,
    /// Topics reported as blocked, so the report is not repeated every discovery.
    blocked: HashSet<String>,
    /// The id each mirrored source topic had when its partitions started.
    topic_ids: HashMap<String, Uuid>,
    /// Source topics stopped because they were deleted and re-created.
    recreated: HashSet<String>,
    /// Fetch rounds so far: each round starts at a different partition, so none is always
    /// last (Kafka returns a batch larger than the per-partition limit only to the first).
    round: usize,
    /// Partitions whose next batch was reported too large, and at which offset.
    reported_cut: HashMap<SourcePartition, i64>,
}

impl FlowRunner {
    pub fn new(flow: Flow, source: Arc<ClusterClient>, target: Arc<ClusterClient>) -> Self {
        let memory =
            Memory::new(usize::try_from(flow.limits.max_in_flight_bytes).unwrap_or(usize::MAX));
        Self {
            throttle: Arc::new(Throttle::new(
                flow.limits.bytes_per_sec,
                flow.limits.records_per_sec,
            )),
            memory,
            flow,
            source,
            target,
            partitions: BTreeMap::new(),
            blocked: HashSet::new(),
            topic_ids: HashMap::new(),
            recreated: HashSet::new(),
            round: 0,
            reported_cut: HashMap::new(),
        }
    }

    /// Runs until `stop`, then drains: in-flight produces finish (up to `drain_deadline`)
    /// and the final progress is written.
    pub async fn run(mut self, stop: CancellationToken, drain_deadline: Duration) {
        let name = self.flow.name.clone();
        // Transient errors are retried inside (until `stop`); what is left needs an operator.
        let setup = async {
            let progress = Progress::load(&name, &self.target).await?;
            let session = self
                .target
                .retry("InitProducerId", None, || self.target.init_producer())
                .await?;
            Ok::<_, ProgressError>((progress, session))
        };
        let (progress, session) = tokio::select! {
            _ = stop.cancelled() => return,
            r = setup => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(flow = %name, error = %e, "Flow cannot start; it needs operator action.");
                    return;
                }
            },
        };
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(progress.clone().run_writer(
            self.target.clone(),
            Duration::from_millis(500),
            writer_stop.clone(),
            drain_deadline,
        ));
        tracing::info!(flow = %name, source = %self.source.name(), target = %self.target.name(), producer_id = session.producer_id, "Flow started.");
        let mut next_discovery = Instant::now();
        while !stop.is_cancelled() {
            if Instant::now() >= next_discovery {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = self.discover(&progress, session) => if let Err(e) = r {
                        tracing::error!(flow = %name, error = %e, "Cannot store the flow's start positions; the flow stops and needs operator action.");
                        break;
                    }
                }
                next_discovery = Instant::now() + self.flow.discovery_interval;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.fetch_round() => {}
            }
        }
        // Drain: no more fetching; pipelines finish what they hold.
        let mut tasks = Vec::new();
        for (sp, r) in std::mem::take(&mut self.partitions) {
            drop(r.tx);
            tasks.push((sp, r.task));
        }
        let drained =
            tokio::time::timeout(drain_deadline, join_all(tasks.iter_mut().map(|(_, t)| t))).await;
        if drained.is_err() {
            tracing::warn!(flow = %name, "Drain deadline passed; unacknowledged batches will be mirrored again after restart.");
            for (_, t) in &tasks {
                t.abort();
            }
        }
        writer_stop.cancel();
        let _ = writer.await;
        tracing::info!(flow = %name, "Flow stopped.");
    }
}
