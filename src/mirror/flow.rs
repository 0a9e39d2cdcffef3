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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kmirror_wire::errors::ResponseError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::memory::{Held, Memory, Reservation};
use super::pipeline::{Chunk, Ended, Pipeline};
use super::progress::{Position, Progress, ProgressError, SourcePartition};
use super::selection::{config_changes, mirrored_topics, target_action, TargetAction};
use crate::client::fetch::{self, FetchWant};
use crate::client::produce::ProducerSession;
use crate::client::{ClientError, ClusterClient};
use crate::config::{Flow, StartFrom};
use crate::throttle::Throttle;

/// Chunks queued per partition between the fetcher and its pipeline.
const QUEUE_CHUNKS: usize = 4;
/// Long-poll wait of each Fetch.
const FETCH_WAIT_MS: i32 = 250;
/// Most bytes one partition returns per Fetch.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// A fetch smaller than this waits for memory instead.
const MIN_FETCH_BYTES: usize = 64 << 10;

struct Running {
    next_fetch_offset: i64,
    /// Bytes this partition holds (fetched, not yet acknowledged).
    held: Held,
    tx: mpsc::Sender<Chunk>,
    task: tokio::task::JoinHandle<Ended>,
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

    /// Finds matching topics and starts their partitions; an error here (storing the
    /// first positions failed for good) stops the flow.
    async fn discover(
        &mut self,
        progress: &Arc<Progress>,
        session: ProducerSession,
    ) -> Result<(), ClientError> {
        let (source_md, target_md) = match (
            self.source.refresh_metadata().await,
            self.target.refresh_metadata().await,
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(flow = %self.flow.name, error = %e, "Discovery failed; retrying at the next interval.");
                return Ok(());
            }
        };
        let topics: Vec<(&String, i32, Uuid)> = mirrored_topics(&self.flow, &source_md)
            .into_iter()
            .map(|(name, meta)| (name, meta.partitions.len() as i32, meta.topic_id))
            .collect();
        for (topic, count, topic_id) in topics {
            if self.recreated.contains(topic) {
                continue;
            }
            match self.topic_ids.get(topic) {
                Some(known) if !known.is_nil() && !topic_id.is_nil() && *known != topic_id => {
                    self.stop_recreated(topic, *known, topic_id);
                    continue;
                }
                Some(_) => {}
                None => {
                    self.topic_ids.insert(topic.clone(), topic_id);
                }
            }
            let target_topic = self.flow.rename(topic);
            match self
                .ensure_target(
                    topic,
                    &target_topic,
                    count,
                    target_md.partition_count(&target_topic),
                )
                .await
            {
                Ok(()) => {
                    self.blocked.remove(topic);
                }
                Err(e) => {
                    if self.blocked.insert(topic.clone()) {
                        tracing::error!(flow = %self.flow.name, topic = %topic, target_topic = %target_topic, error = %e, "Topic not mirrored.");
                    }
                    continue;
                }
            }
            for partition in 0..count {
                let sp = SourcePartition {
                    topic: topic.clone(),
                    partition,
                };
                if !self.partitions.contains_key(&sp) {
                    self.start_partition(sp, &target_topic, progress, session)
                        .await;
                }
            }
        }
        if !progress.is_initialised() {
            // The flow's first start: the positions `start_from` chose and the marker that
            // ends it are stored before anything is mirrored (the first Fetch comes after
            // this returns), so a restart never applies `start_from` again.
            progress.mark_initialised();
            let stored = self
                .target
                .retry("writing the first positions", None, || {
                    progress.write(&self.target)
                })
                .await;
            return stored.map(|_| ());
        }
        // Start positions chosen just now are written at once, so a crash right after
        // discovery restarts new partitions from the same place.
        if let Err(e) = progress.write(&self.target).await {
            tracing::warn!(flow = %self.flow.name, error = %e, "Cannot write start positions yet; the progress writer retries.");
        }
        Ok(())
    }

    /// Stops every partition of a source topic whose id changed: it was deleted and
    /// re-created, so its offsets start again and the progress kept for the old topic
    /// means nothing for the new one. Mirroring it again is an operator's decision.
    fn stop_recreated(&mut self, topic: &str, old_id: Uuid, new_id: Uuid) {
        self.recreated.insert(topic.to_string());
        let mut stopped = 0;
        for (sp, r) in &self.partitions {
            if sp.topic == topic {
                r.task.abort();
                stopped += 1;
            }
        }
        tracing::error!(flow = %self.flow.name, topic, %old_id, %new_id, partitions = stopped, "Source topic was deleted and re-created (its topic id changed); its mirroring is stopped. Other topics keep flowing. To mirror the new topic, remove its progress entries or rename it, then restart.");
    }

    /// Makes sure the target topic exists with at least `count` partitions and the
    /// source's synced configs.
    async fn ensure_target(
        &self,
        topic: &str,
        target_topic: &str,
        count: i32,
        target_count: Option<i32>,
    ) -> Result<(), ClientError> {
        let configs = if self.flow.sync_configs.enabled {
            let mut c = self.source.topic_configs(topic).await?;
            c.retain(|(k, _)| self.flow.sync_configs.syncs(k));
            c
        } else {
            Vec::new()
        };
        let refuse = |reason: String| ClientError::Refused {
            cluster: self.target.name().to_string(),
            what: reason,
        };
        match target_action(&self.flow, count, target_count) {
            TargetAction::Create { partitions } => {
                self.target
                    .create_topic(target_topic, partitions, &configs)
                    .await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, partitions, configs = configs.len(), "Created target topic.");
                return Ok(());
            }
            TargetAction::Missing => {
                return Err(refuse(format!(
                    "target topic {target_topic} does not exist and create_topics is off"
                )))
            }
            TargetAction::AddPartitions { from, to } => {
                self.target.create_partitions(target_topic, to).await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, from, to, "Added partitions to target topic.");
            }
            TargetAction::Blocked { target, source } => {
                return Err(refuse(format!("target topic {target_topic} has {target} partitions, fewer than the source's {source}; partitions are kept, not remapped")));
            }
            TargetAction::Exists => {}
        }
        if self.flow.sync_configs.enabled {
            let current = self.target.topic_configs(target_topic).await?;
            let (changed, removed) = config_changes(&self.flow, &configs, &current);
            if !changed.is_empty() || !removed.is_empty() {
                self.target
                    .alter_topic_configs(target_topic, &changed, &removed)
                    .await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, changed = changed.len(), removed = removed.len(), "Synced topic configs.");
            }
        }
        Ok(())
    }

    async fn start_partition(
        &mut self,
        sp: SourcePartition,
        target_topic: &str,
        progress: &Arc<Progress>,
        session: ProducerSession,
    ) {
        let (start, target_offset) = match progress.get(&sp) {
            Some(p) => (p.next_source_offset, p.next_target_offset),
            None => {
                // `start_from` applies at the flow's first start only (stored, see
                // `discover`); partitions found later, even while the daemon was
                // stopped, are new: mirrored from their start, so nothing is lost.
                let timestamp = match (progress.is_initialised(), self.flow.start_from) {
                    (false, StartFrom::Latest) => -1,
                    _ => -2,
                };
                let source = self.source.clone();
                let got = source
                    .retry("ListOffsets", Some(Duration::from_secs(30)), || async {
                        let m = source.leader(&sp.topic, sp.partition).await?;
                        let (code, offset) =
                            fetch::list_offset(&m, &sp.topic, sp.partition, timestamp)
                                .await
                                .map_err(|e| ClientError::Request {
                                    cluster: source.name().to_string(),
                                    source: e,
                                })?;
                        match ClientError::from_code(source.name(), "ListOffsets", code, None) {
                            Some(e) => Err(e),
                            None => Ok(offset),
                        }
                    })
                    .await;
                match got {
                    Ok(offset) => {
                        // Record the chosen start at once: a partition that receives
                        // nothing before a restart would otherwise have no progress, and
                        // the restart would choose again (start_from: latest skipping
                        // what was written while the daemon was stopped).
                        progress.advance(
                            &sp,
                            Position {
                                next_source_offset: offset,
                                next_target_offset: -1,
                            },
                        );
                        (offset, -1)
                    }
                    Err(e) => {
                        tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, error = %e, "Cannot find the start offset; will retry.");
                        return;
                    }
                }
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let pipeline = Pipeline {
            flow: self.flow.name.clone(),
            source: sp.clone(),
            target_topic: target_topic.to_string(),
            target: self.target.clone(),
            throttle: self.throttle.clone(),
            progress: progress.clone(),
            session,
            next_sequence: 0,
            next_target_offset: target_offset,
            batch_bytes: usize::try_from(self.flow.limits.batch_bytes).unwrap_or(usize::MAX),
            start_offset: start,
            throttled_until: None,
            memory: self.memory.clone(),
        };
        tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = start, "Partition started.");
        let (flow, topic, partition) = (self.flow.name.clone(), sp.topic.clone(), sp.partition);
        let task = tokio::spawn(async move {
            let ended = pipeline.run(rx).await;
            if let Ended::Failed(e) = &ended {
                tracing::error!(%flow, %topic, partition, error = %e, "Partition stopped: it needs operator action. Its progress is kept; nothing after it is mirrored.");
            }
            ended
        });
        self.partitions.insert(
            sp,
            Running {
                next_fetch_offset: start,
                held: Held::default(),
                tx,
                task,
            },
        );
    }

    /// One Fetch per source leader for every partition with room in its queue.
    async fn fetch_round(&mut self) {
        let md = self.source.metadata();
        let mut by_leader: HashMap<i32, Vec<FetchWant>> = HashMap::new();
        let mut refresh = false;
        let ready: Vec<(&SourcePartition, &Running)> = self
            .partitions
            .iter()
            .filter(|(_, r)| !r.task.is_finished() && r.tx.capacity() > 0)
            .collect();
        // A partition fetches only while one more fetch stays within its share of the
        // memory; one that holds it waits for its acks, and the others go on.
        let share = (self.memory.fetch_pool_bytes() / ready.len().max(1))
            .max(PARTITION_FETCH_BYTES as usize);
        let ready: Vec<_> = ready
            .into_iter()
            .filter(|(_, r)| r.held.bytes() + PARTITION_FETCH_BYTES as usize <= share)
            .collect();
        self.round = self.round.wrapping_add(1);
        let skip = if ready.is_empty() {
            0
        } else {
            self.round % ready.len()
        };
        for (sp, r) in ready.iter().skip(skip).chain(ready.iter().take(skip)) {
            match md.leader(&sp.topic, sp.partition) {
                Some(leader) => by_leader.entry(leader).or_default().push(FetchWant {
                    topic: sp.topic.clone(),
                    topic_id: self
                        .topic_ids
                        .get(&sp.topic)
                        .copied()
                        .filter(|id| !id.is_nil()),
                    partition: sp.partition,
                    offset: r.next_fetch_offset,
                }),
                None => refresh = true,
            }
        }
        if by_leader.is_empty() {
            if refresh {
                let _ = self.source.refresh_metadata().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        // Each response's max_bytes is reserved before it is asked for, so responses
        // count against max_in_flight_bytes; a leader gets no fetch when memory is short.
        let per_response = (self.memory.fetch_pool_bytes() / 8).max(PARTITION_FETCH_BYTES as usize);
        let mut requests = Vec::new();
        for (leader, wants) in by_leader {
            let bytes = per_response.min(self.memory.fetch_available());
            if bytes < MIN_FETCH_BYTES {
                continue;
            }
            if let Some(r) = self.memory.try_reserve_fetch(bytes) {
                requests.push((leader, wants, r));
            }
        }
        if requests.is_empty() {
            // Everything is held by batches on their way to the target: wait for acks.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                self.memory.wait_fetch(PARTITION_FETCH_BYTES as usize),
            )
            .await;
            return;
        }
        let source = self.source.clone();
        let results = join_all(requests.into_iter().map(|(leader, wants, reservation)| {
            let source = source.clone();
            async move {
                let max_bytes = i32::try_from(reservation.bytes()).unwrap_or(i32::MAX);
                let partition_max = PARTITION_FETCH_BYTES.min(max_bytes);
                let got = async {
                    let m = source.broker(leader).await?;
                    fetch::fetch(&m, &wants, FETCH_WAIT_MS, max_bytes, partition_max)
                        .await
                        .map_err(|e| ClientError::Request {
                            cluster: source.name().to_string(),
                            source: e,
                        })
                }
                .await;
                got.map(|g| (g, reservation))
            }
        }))
        .await;
        let mut throttle_ms = 0;
        for result in results {
            let (got, mut reservation) = match result {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(flow = %self.flow.name, error = %e, "Fetch failed; retrying.");
                    refresh = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            throttle_ms = throttle_ms.max(got.first().map_or(0, |g| g.throttle_time_ms));
            for g in got {
                refresh |= self.deliver(g, &mut reservation).await;
            }
        }
        if refresh {
            let _ = self.source.refresh_metadata().await;
            // Kafka answers at once for partitions in error; do not spin on them.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if throttle_ms > 0 {
            // KIP-219: the source broker asked for a pause before the next fetch.
            tracing::debug!(flow = %self.flow.name, throttle_ms, "Source throttled the fetch.");
            tokio::time::sleep(super::pipeline::throttle_wait(throttle_ms)).await;
        }
    }

    /// Hands one partition's fetched data to its pipeline; returns whether metadata is stale.
    async fn deliver(&mut self, g: fetch::FetchGot, reservation: &mut Reservation) -> bool {
        let sp = SourcePartition {
            topic: g.topic,
            partition: g.partition,
        };
        let Some(r) = self.partitions.get_mut(&sp) else {
            return false;
        };
        if g.error_code != 0 {
            let error = ResponseError::try_from_code(g.error_code)
                .unwrap_or(ResponseError::UnknownServerError);
            if error == ResponseError::OffsetOutOfRange {
                tracing::error!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = r.next_fetch_offset, log_start_offset = g.log_start_offset, high_watermark = g.high_watermark, "Source offset out of range: records were deleted before they were mirrored. The partition is paused; nothing is skipped silently.");
                r.task.abort();
                return false;
            }
            tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, %error, "Fetch error for partition.");
            return true;
        }
        let sliced = match fetch::slice(&g.records, r.next_fetch_offset, &g.aborted) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = r.next_fetch_offset, error = %e, "Partition stopped: the source returned a batch that cannot be mirrored (corrupt, or an old message format). Progress is kept; nothing after it is mirrored.");
                r.task.abort();
                return false;
            }
        };
        let Some(next) = sliced.next_offset else {
            if let Some((offset, size_bytes)) = sliced.cut_batch {
                if self.reported_cut.insert(sp.clone(), offset) != Some(offset) {
                    tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset, size_bytes, partition_fetch_bytes = PARTITION_FETCH_BYTES, "Source batch is larger than one partition's share of a fetch; it is fetched whole when the partition comes first in a fetch.");
                }
            }
            return false;
        };
        let bytes = sliced.bytes();
        if bytes > reservation.bytes() {
            // Kafka returns the first batch whole even beyond max_bytes (KIP-74). Count it
            // if the memory is free; otherwise leave it and fetch it again later, never
            // waiting here (that would stall every partition behind this one).
            // A batch larger than the whole pool takes all of it.
            let more = (bytes - reservation.bytes()).min(
                self.memory
                    .fetch_pool_bytes()
                    .saturating_sub(reservation.bytes()),
            );
            match self.memory.try_reserve_fetch(more) {
                Some(r) => reservation.merge(r),
                None => {
                    tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, bytes, "No memory for a batch larger than the fetch; fetching it again later.");
                    return false;
                }
            }
        }
        let permit = if bytes > 0 {
            reservation.take(bytes, &r.held)
        } else {
            None
        };
        let chunk = Chunk {
            records: sliced.records,
            data: sliced.contiguous(),
            next_source_offset: next,
            permit,
        };
        if r.tx.send(chunk).await.is_ok() {
            r.next_fetch_offset = next;
        }
        false
    }
}
