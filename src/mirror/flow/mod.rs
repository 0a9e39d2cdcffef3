//! One flow at run time: discovers matching source topics and partitions (new ones within
//! `discovery_interval`), creates target topics with the source's partition count and
//! synced configs, and runs the fetch loop that feeds each partition's
//! [`Pipeline`](super::pipeline::Pipeline).
//!
//! Backpressure: every fetched byte counts against the flow's `max_in_flight_bytes`
//! ([`super::memory`]) from the Fetch request until the target acknowledged it; a partition
//! whose queue is full or that holds its share is left out of the next Fetch, so a slow or
//! stuck target slows fetching instead of growing memory, and one stuck partition does not
//! stall the others.
//! A target topic with fewer partitions than its source that cannot be grown stops that
//! topic with an error — partitions are never remapped silently.
//!
//! Discovery runs beside the fetch loop ([`discovery`]), and fetches to a leader run
//! beside each other ([`fetching`]), so neither a slow target link nor a long-polling
//! Fetch holds up partitions that have data and room.
//!
//! Split by concern: [`discovery`] (topics, target topics, start positions, re-created
//! sources), [`partitions`] (a partition's pipeline), [`fetching`] (the fetch loop),
//! [`delivery`] (the hand-off of fetched data to pipelines) and [`refetch`] (a bad source
//! batch fetched again before its partition stops).

mod discovery;
mod failed_rounds;
use discovery::{Discovery, Found};
mod delivery;
mod fetching;
mod lag_refresh;
mod partitions;
mod refetch;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::offsets::mm2::Mm2Writer;
use crate::offsets::report::FlowOffsets;
use crate::offsets::sync::GroupSync;
use uuid::Uuid;

use super::acl_sync::AclSync;
use super::memory::{Held, Memory};
use super::ownership::lease::Lease;
use super::pipeline::{Chunk, Ended};
use super::progress::{Progress, ProgressError, SourcePartition};
use super::Drain;
use crate::client::produce::ProducerSession;
use crate::client::{report_retries, ClientError, ClusterClient};
use crate::config::Flow;
use crate::telemetry::stats::{FlowStats, PartitionStats};
use crate::throttle::Throttle;

/// Chunks queued per partition between the fetcher and its pipeline.
const QUEUE_CHUNKS: usize = 4;
/// Long-poll wait of a Fetch for partitions that have caught up.
const FETCH_WAIT_MS: i32 = 250;
/// Most bytes one partition returns per Fetch.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// A fetch smaller than this waits for memory instead.
const MIN_FETCH_BYTES: usize = 64 << 10;
// A shared Fetch reserves its bytes twice (the split): the least budget validation takes
// must let one be sent.
const _: () = assert!(2 * MIN_FETCH_BYTES as u64 <= crate::config::Limits::MIN_MAX_IN_FLIGHT_BYTES);
/// A partition with less than this left of its share waits for acks instead of fetching.
const MIN_PARTITION_FETCH_BYTES: usize = 64 << 10;

struct Running {
    next_fetch_offset: i64,
    /// The leader epoch of the last batch fetched (-1 before the first): the next Fetch's
    /// `last_fetched_epoch`, so a source log that diverged is noticed (KIP-320).
    last_fetched_epoch: i32,
    /// Bytes this partition holds (fetched, not yet acknowledged).
    held: Held,
    /// The pipeline's input; `None` once the partition is stopped: its pipeline then
    /// produces what it already holds and ends.
    tx: Option<mpsc::Sender<Chunk>>,
    task: tokio::task::JoinHandle<Ended>,
    /// In a Fetch now (a partition is in one Fetch at a time).
    fetching: bool,
    /// Its last Fetch brought nothing: it is fetched with a long poll, apart from the
    /// partitions that have data.
    caught_up: bool,
    /// Its last Fetch brought a response's worth of data: it is fetched in a Fetch of its
    /// own, whose payload it is handed without a copy.
    alone: bool,
    /// What telemetry reports of it.
    stats: Arc<PartitionStats>,
    /// Not fetched before this (after an error for it).
    not_before: Option<Instant>,
    /// When its last Fetch was answered.
    answered_at: Option<Instant>,
    /// Whether the source's metadata names no leader for it (said once, at WARN, and
    /// when it has one again).
    leaderless: bool,
    /// Its next batch did not fit the free memory: the bytes it needs free to be fetched,
    /// and since when.
    needs: Option<(usize, Instant)>,
    /// The size its next batch is expected to have (0 before its first data): its last
    /// batch's, or the next one's when a response was cut inside it.
    batch_bytes: usize,
    /// `batch_bytes` is the next batch's own size, read from its header.
    batch_bytes_exact: bool,
    /// The source log start last seen in a Fetch response, told to the progress (which
    /// trims the offset map by it and reports offsets below it).
    log_start: i64,
    progress: Arc<Progress>,
}

impl Running {
    /// Stops fetching for this partition; batches already fetched are still produced.
    fn stop(&mut self) {
        self.tx = None;
    }

    /// Whether fetching for it has stopped ([`Self::stop`]).
    fn stopped(&self) -> bool {
        self.tx.is_none()
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
    /// The id each mirrored source topic had when its partitions started.
    topic_ids: HashMap<String, Uuid>,
    /// Fetch rounds so far: each round starts at a different partition, so none is always
    /// last (Kafka returns a batch larger than the per-partition limit only to the first).
    round: usize,
    /// Partitions whose next batch was reported too large, and at which offset.
    reported_cut: HashMap<SourcePartition, i64>,
    /// Partitions whose batch larger than the budget was reported, and at which offset.
    reported_large: HashMap<SourcePartition, i64>,
    /// Source batches that could not be mirrored, fetched again ([`refetch`]).
    bad_batches: refetch::BadBatches,
    /// An exclusive flow's ownership lease: progress is written only while it holds.
    lease: Option<Lease>,
    stats: Arc<FlowStats>,
}

impl FlowRunner {
    pub fn new(
        flow: Flow,
        source: Arc<ClusterClient>,
        target: Arc<ClusterClient>,
        stats: Arc<FlowStats>,
    ) -> Self {
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
            topic_ids: HashMap::new(),
            round: 0,
            reported_cut: HashMap::new(),
            reported_large: HashMap::new(),
            bad_batches: Default::default(),
            lease: None,
            stats,
        }
    }

    /// Writes progress only while `lease` holds (an exclusive flow's owner).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Runs until `stop`, then drains: in-flight produces finish (up to `drain_deadline`)
    /// and the final progress is written.
    pub async fn run(mut self, stop: CancellationToken, drain: Drain) {
        let name = self.flow.name.clone();
        // A flow restarted by a reload keeps its counters, but is not ready until it
        // started, and its partitions are those this run finds.
        self.stats.restarting();
        // Transient errors are retried inside (until `stop`), each shown as the reason the
        // flow has not started; what is left needs an operator.
        let stats = self.stats.clone();
        let setup = report_retries(move |e| stats.setup_retried(e), async {
            let progress = Progress::load(&name, &self.target).await?;
            let session = self
                .target
                .retry("InitProducerId", None, || self.target.init_producer())
                .await?;
            Ok::<_, ProgressError>((progress, session))
        });
        let (progress, session) = tokio::select! {
            _ = stop.cancelled() => return,
            r = setup => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(flow = %name, error = %e, "Flow cannot start; it needs operator action.");
                    self.stats.failed("fatal", &e);
                    self.stats.start_failed(&e);
                    self.stats.gave_up();
                    return;
                }
            },
        };
        if let Some(lease) = &self.lease {
            progress.write_only_under(lease.clone());
        }
        self.stats.set_offsets(Arc::new(FlowOffsets {
            flow: self.flow.clone(),
            progress: progress.clone(),
            source: self.source.clone(),
            target: self.target.clone(),
            reverse: Vec::new(),
        }));
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(progress.clone().run_writer(
            self.target.clone(),
            Duration::from_millis(500),
            writer_stop.clone(),
            drain.clone(),
        ));
        tracing::debug!(flow = %name, producer_id = session.producer_id, "Flow set up; reading both clusters' metadata.");
        let mut discovery = Discovery::new(
            self.flow.clone(),
            self.source.clone(),
            self.target.clone(),
            progress.clone(),
            self.stats.clone(),
        );
        // The first round that reads the metadata finishes before anything is fetched: it
        // stores the first positions (see `Discovery::round`).
        let first = tokio::select! {
            _ = stop.cancelled() => None,
            r = discovery.first_round() => Some(r),
        };
        match &first {
            // Ready from here: both clusters answered (progress, producer id, metadata).
            Some(Ok(found)) => {
                let partitions = found
                    .iter()
                    .filter(|f| matches!(f, Found::Start { .. }))
                    .count();
                tracing::info!(flow = %name, source = %self.source.name(), target = %self.target.name(), producer_id = session.producer_id, partitions, "Flow started.");
                self.stats.set_started(true)
            }
            Some(Err(e)) => self.stats.start_failed(e),
            None => {}
        }
        let (found_tx, mut found_rx) = mpsc::channel::<Result<Vec<Found>, ClientError>>(1);
        if let Some(first) = first {
            let _ = found_tx.try_send(first);
        }
        let interval = self.flow.discovery_interval;
        let discovering = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(found) = discovery.round().await.transpose() else {
                    continue;
                };
                let fatal = found.is_err();
                if found_tx.send(found).await.is_err() || fatal {
                    return;
                }
            }
        });
        let mm2 = self.flow.mm2_compat.then(|| {
            Arc::new(Mm2Writer::new(
                self.target.clone(),
                &self.flow.source,
                &self.flow.target,
            ))
        });
        let heartbeats = mm2.clone().map(|mm2| tokio::spawn(mm2.run_heartbeats()));
        let group_sync = self
            .flow
            .groups
            .clone()
            .filter(|groups| groups.sync_offsets || mm2.is_some())
            .map(|groups| {
                tokio::spawn(
                    GroupSync::new(
                        self.flow.clone(),
                        groups,
                        self.source.clone(),
                        self.target.clone(),
                        progress.clone(),
                        self.stats.clone(),
                        mm2,
                    )
                    .run(),
                )
            });
        let acl_sync = self.flow.sync_acls.then(|| {
            tokio::spawn(
                AclSync::new(self.flow.clone(), self.source.clone(), self.target.clone()).run(),
            )
        });
        let mut fetches = fetching::Fetches::default();
        let mut lag_refresh = lag_refresh::LagRefresh::default();
        while !stop.is_cancelled() {
            self.stats.beat(true);
            self.restart_after_bad_batches(&progress, session);
            self.start_fetches(&mut fetches);
            lag_refresh.maybe_start(
                &self.source,
                self.partitions.iter().map(|(sp, r)| (sp, &r.stats)),
            );
            self.stats.set_in_flight_bytes(
                (self.memory.fetch_pool_bytes() - self.memory.fetch_available()) as u64,
            );
            let wake = self.next_wake(&fetches);
            tokio::select! {
                _ = stop.cancelled() => break,
                found = found_rx.recv() => match found {
                    Some(Ok(found)) => self.apply(found, &progress, session),
                    Some(Err(e)) => {
                        tracing::error!(flow = %name, error = %e, "The flow stops and needs operator action: its start positions cannot be stored, or its progress belongs to another source.");
                        self.stats.failed("fatal", &e);
                        self.stats.gave_up();
                        break;
                    }
                    None => break,
                },
                Some(done) = fetches.next() => self.finish_fetch(done, &mut fetches),
                Some(bad) = self.bad_batches.next() => self.bad_batch(bad),
                _ = self.memory.released() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        self.stats.beat(false);
        lag_refresh.stop();
        discovering.abort();
        for task in [group_sync, heartbeats, acl_sync].into_iter().flatten() {
            task.abort();
        }
        // Drain: no more fetching; pipelines finish what they hold, except batches still
        // waiting for the flow's rate limits, which are not sent (a low limit would hold
        // the drain past its deadline, and the batches in flight with it).
        self.throttle.close();
        let mut tasks = Vec::new();
        for (sp, r) in std::mem::take(&mut self.partitions) {
            drop(r.tx);
            tasks.push((sp, r.task));
        }
        let drained = drain
            .within(join_all(tasks.iter_mut().map(|(_, t)| t)))
            .await;
        if drained.is_none() {
            tracing::warn!(flow = %name, "Drain deadline passed or drain abandoned; unacknowledged batches will be mirrored again.");
            for (_, t) in &tasks {
                t.abort();
            }
        }
        writer_stop.cancel();
        let _ = writer.await;
        tracing::info!(flow = %name, "Flow stopped.");
    }

    /// Starts the partitions discovery found and stops re-created topics.
    fn apply(&mut self, found: Vec<Found>, progress: &Arc<Progress>, session: ProducerSession) {
        for f in found {
            match f {
                Found::Start {
                    partition,
                    target_topic,
                    topic_id,
                    start,
                } => {
                    self.topic_ids
                        .entry(partition.topic.clone())
                        .or_insert(topic_id);
                    self.start_partition(
                        partition,
                        &target_topic,
                        start,
                        progress,
                        (session, false),
                    );
                }
                Found::Recreated {
                    topic,
                    partitions,
                    old_id,
                    new_id,
                } => self.stop_recreated(&topic, partitions, (old_id, new_id), progress),
            }
        }
    }
}
