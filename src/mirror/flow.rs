//! One flow at run time: discovers matching source topics and partitions (new ones within
//! `discovery_interval`), creates target topics with the source's partition count and
//! synced configs, and runs the fetch loop that feeds each partition's [`Pipeline`].
//!
//! Backpressure: every fetched byte holds a permit of the flow's `max_in_flight_bytes`
//! semaphore until the target acknowledged it, and a partition whose queue is full is left
//! out of the next Fetch; a slow target therefore slows fetching instead of growing memory.
//! A target topic with fewer partitions than its source that cannot be grown stops that
//! topic with an error — partitions are never remapped silently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kmirror_wire::errors::ResponseError;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::pipeline::{Chunk, Ended, Pipeline};
use super::progress::{Position, Progress, ProgressError, SourcePartition, PROGRESS_TOPIC};
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

struct Running {
    next_fetch_offset: i64,
    tx: mpsc::Sender<Chunk>,
    task: tokio::task::JoinHandle<Ended>,
}

/// A flow's state while it runs.
pub struct FlowRunner {
    flow: Flow,
    source: Arc<ClusterClient>,
    target: Arc<ClusterClient>,
    throttle: Arc<Throttle>,
    memory: Arc<Semaphore>,
    memory_permits: usize,
    partitions: BTreeMap<SourcePartition, Running>,
    /// Topics reported as blocked, so the report is not repeated every discovery.
    blocked: HashSet<String>,
}

impl FlowRunner {
    pub fn new(flow: Flow, source: Arc<ClusterClient>, target: Arc<ClusterClient>) -> Self {
        let memory_permits = usize::try_from(flow.limits.max_in_flight_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            throttle: Arc::new(Throttle::new(
                flow.limits.bytes_per_sec,
                flow.limits.records_per_sec,
            )),
            memory: Arc::new(Semaphore::new(memory_permits)),
            memory_permits,
            flow,
            source,
            target,
            partitions: BTreeMap::new(),
            blocked: HashSet::new(),
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
        let mut topics: Vec<(&String, i32)> = source_md
            .topics
            .iter()
            .filter(|(name, meta)| {
                !meta.is_internal && name.as_str() != PROGRESS_TOPIC && self.flow.matches(name)
            })
            .map(|(name, meta)| (name, meta.partitions.len() as i32))
            .collect();
        topics.sort();
        for (topic, count) in topics {
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
        let refuse = |reason: String| ClientError::Broker {
            cluster: self.target.name().to_string(),
            what: reason,
            error: ResponseError::InvalidPartitions,
            message: None,
        };
        match target_count {
            None if self.flow.create_topics => {
                self.target
                    .create_topic(target_topic, count, &configs)
                    .await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, partitions = count, configs = configs.len(), "Created target topic.");
                return Ok(());
            }
            None => {
                return Err(refuse(format!(
                    "target topic {target_topic} does not exist and create_topics is off"
                )))
            }
            Some(n) if n < count && self.flow.create_topics => {
                self.target.create_partitions(target_topic, count).await?;
                tracing::info!(flow = %self.flow.name, topic = %target_topic, from = n, to = count, "Added partitions to target topic.");
            }
            Some(n) if n < count => {
                return Err(refuse(format!("target topic {target_topic} has {n} partitions, fewer than the source's {count}; partitions are kept, not remapped")));
            }
            Some(_) => {}
        }
        if self.flow.sync_configs.enabled {
            let current: HashMap<String, String> = self
                .target
                .topic_configs(target_topic)
                .await?
                .into_iter()
                .collect();
            // Synced configs the source topic no longer sets go back to the target's
            // default, as MirrorMaker 2 does; excluded ones are the target's own business.
            let removed: Vec<String> = current
                .keys()
                .filter(|k| {
                    self.flow.sync_configs.syncs(k) && !configs.iter().any(|(name, _)| name == *k)
                })
                .cloned()
                .collect();
            let changed: Vec<(String, String)> = configs
                .into_iter()
                .filter(|(k, v)| current.get(k) != Some(v))
                .collect();
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
        };
        tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = start, "Partition started.");
        let (flow, topic, partition) = (self.flow.name.clone(), sp.topic.clone(), sp.partition);
        let task = tokio::spawn(async move {
            let ended = pipeline.run(rx).await;
            if let Ended::Failed(e) = &ended {
                tracing::error!(%flow, %topic, partition, error = %e, "Partition no longer mirrored; it needs operator action. Its progress is kept.");
            }
            ended
        });
        self.partitions.insert(
            sp,
            Running {
                next_fetch_offset: start,
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
        for (sp, r) in &self.partitions {
            if r.task.is_finished() || r.tx.capacity() == 0 {
                continue;
            }
            match md.leader(&sp.topic, sp.partition) {
                Some(leader) => by_leader.entry(leader).or_default().push(FetchWant {
                    topic: sp.topic.clone(),
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
        let max_bytes =
            i32::try_from((self.memory_permits / 8).max(PARTITION_FETCH_BYTES as usize))
                .unwrap_or(i32::MAX);
        let source = self.source.clone();
        let results = join_all(by_leader.into_iter().map(|(leader, wants)| {
            let source = source.clone();
            async move {
                let m = source.broker(leader).await?;
                fetch::fetch(&m, &wants, FETCH_WAIT_MS, max_bytes, PARTITION_FETCH_BYTES)
                    .await
                    .map_err(|e| ClientError::Request {
                        cluster: source.name().to_string(),
                        source: e,
                    })
            }
        }))
        .await;
        for result in results {
            let got = match result {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(flow = %self.flow.name, error = %e, "Fetch failed; retrying.");
                    refresh = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            for g in got {
                refresh |= self.deliver(g).await;
            }
        }
        if refresh {
            let _ = self.source.refresh_metadata().await;
        }
    }

    /// Hands one partition's fetched data to its pipeline; returns whether metadata is stale.
    async fn deliver(&mut self, g: fetch::FetchGot) -> bool {
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
                tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, error = %e, "Corrupt batch from source; fetching again.");
                return false;
            }
        };
        let Some(next) = sliced.next_offset else {
            return false;
        };
        let bytes = sliced.bytes();
        let want = bytes.min(self.memory_permits) as u32;
        let permit = if want > 0 {
            match self.memory.clone().acquire_many_owned(want).await {
                Ok(p) => Some(p),
                Err(_) => return false,
            }
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
