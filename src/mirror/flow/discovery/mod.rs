//! Discovery: the source topics a flow mirrors, their target topics (created, grown and
//! config-synced), where each new partition starts, and source topics deleted (said once)
//! and re-created (stopped, never re-mirrored silently).
//!
//! It runs beside the fetch loop, not in it: its requests (metadata, configs, topic
//! creation, the first positions) cross the link to the target, and a WAN round trip per
//! topic must not pause the mirroring of every partition. It reports what it found as
//! [`Found`] events; the fetch loop starts and stops partitions from them. A matched topic
//! it cannot mirror (no target topic and `create_topics: false`, too few target
//! partitions, a creation refused) is listed in the flow's stats with its reason.

mod config_sync;
mod reports;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kmirror_wire::errors::ErrorClass;
use uuid::Uuid;

use crate::client::metadata::MetadataSnapshot;
use crate::client::{list_offsets, ClientError, ClusterClient};
use crate::config::{Flow, StartFrom};
use crate::mirror::progress::{other_source, Position, Progress, SourcePartition, PROGRESS_TOPIC};
use crate::mirror::selection::{
    known_to_target, mirrored_topics, same_cluster, target_action, TargetAction,
};
use crate::offsets::map::TargetTopic;
use crate::telemetry::stats::FlowStats;

/// How long a new partition's start offset is asked for in one discovery round.
const START_POSITION_DEADLINE: Duration = Duration::from_secs(10);
/// New partitions whose start offsets are asked at the same time.
const START_POSITIONS_AT_ONCE: usize = 64;

/// What one discovery round found.
#[derive(Debug)]
pub(super) enum Found {
    /// A partition to mirror, from `start` (its stored or chosen position) on.
    Start {
        partition: SourcePartition,
        target_topic: String,
        topic_id: Uuid,
        start: Position,
    },
    /// A source topic whose id changed: it was deleted and re-created (while the flow
    /// ran, or before it started). `partitions`: the new topic's count.
    Recreated {
        topic: String,
        partitions: i32,
        old_id: Uuid,
        new_id: Uuid,
    },
}

/// Discovery's own state, apart from the fetch loop's.
pub(super) struct Discovery {
    pub flow: Flow,
    pub source: Arc<ClusterClient>,
    pub target: Arc<ClusterClient>,
    pub progress: Arc<Progress>,
    /// Where failed rounds are counted and shown, and the topics not mirrored listed (so
    /// each is reported once).
    stats: Arc<FlowStats>,
    /// Source topics stopped because they were deleted and re-created.
    recreated: HashSet<String>,
    /// Partitions reported as [`Found::Start`].
    started: HashSet<SourcePartition>,
    /// New partitions whose start offset the source could not give (said once each).
    unstarted: HashSet<SourcePartition>,
    /// Source topics of started partitions found gone from the source (reported once).
    missing: HashSet<String>,
    /// Whether source and target were found to be one cluster ([`same_cluster`]): once
    /// found, kept, so that no round whose two answers differ mirrors the flow's copies.
    one_cluster: bool,
    /// (target topic, config key) pairs reported as unknown to the target.
    reported_unknown_configs: std::sync::Mutex<HashSet<(String, String)>>,
    /// Per target topic, what its config sync last reported: refused key (or "" for a
    /// sync that could not be tried) and reason ([`config_sync`]).
    config_sync_reported: std::sync::Mutex<HashMap<String, HashMap<String, String>>>,
    failed_rounds: super::failed_rounds::FailedRounds,
}

impl Discovery {
    pub fn new(
        flow: Flow,
        source: Arc<ClusterClient>,
        target: Arc<ClusterClient>,
        progress: Arc<Progress>,
        stats: Arc<FlowStats>,
    ) -> Self {
        stats.retain_unmirrored(&BTreeSet::new());
        Self {
            flow,
            source,
            target,
            progress,
            stats,
            recreated: HashSet::new(),
            started: HashSet::new(),
            unstarted: HashSet::new(),
            missing: HashSet::new(),
            one_cluster: false,
            reported_unknown_configs: Default::default(),
            config_sync_reported: Default::default(),
            failed_rounds: Default::default(),
        }
    }

    /// Rounds, one every `discovery_interval`, until one reads both clusters' metadata:
    /// the flow's first, which it waits for before it fetches or says it is ready.
    pub async fn first_round(&mut self) -> Result<Vec<Found>, ClientError> {
        loop {
            if let Some(found) = self.round().await? {
                return Ok(found);
            }
            tokio::time::sleep(self.flow.discovery_interval).await;
        }
    }

    /// One round: the partitions to start and the topics to stop; `None` when the
    /// clusters' metadata could not be read (counted in the flow's stats; the next round
    /// asks again). An error (storing the first positions failed for good, or the progress
    /// was written for another source cluster) stops the flow.
    pub async fn round(&mut self) -> Result<Option<Vec<Found>>, ClientError> {
        let (source_md, target_md) = match tokio::join!(
            self.source.refresh_metadata(),
            self.target.refresh_metadata()
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                self.stats.discovery_failed(&e);
                self.failed_rounds.failed(&self.flow.name, &e);
                return Ok(None);
            }
        };
        self.failed_rounds.succeeded(&self.flow.name);
        // Kafka: MetadataResponse.cluster_id (v2+; every release kmirror supports has one).
        if let Some(cluster_id) = &source_md.cluster_id {
            if let Err(stored) = self.progress.check_source_cluster(cluster_id) {
                return Err(ClientError::Refused {
                    cluster: self.target.name().to_string(),
                    what: format!("{}, so the flow does not start; give one of the flows another name (its progress then starts anew)", other_source(&self.flow.name, &self.flow.source, &stored, cluster_id)),
                });
            }
        }
        let mut found = Vec::new();
        if !self.one_cluster && same_cluster(&source_md, &target_md) {
            self.one_cluster = true;
            tracing::warn!(flow = %self.flow.name, source = %self.flow.source, target = %self.flow.target, "Source and target are one cluster (same cluster id and brokers): the topics this flow writes are not mirrored again.");
        }
        let topics: Vec<(String, i32, Uuid)> =
            mirrored_topics(&self.flow, &source_md, self.one_cluster)
                .into_iter()
                .map(|(name, meta)| (name.clone(), meta.partitions.len() as i32, meta.topic_id))
                .collect();
        self.stats
            .retain_unmirrored(&topics.iter().map(|(name, ..)| name.as_str()).collect());
        self.report_missing(&source_md);
        let mut new = Vec::new();
        // Partitions of topics partly mirrored that cannot start (target_not_ready), and
        // the topics whose target could not be checked this round (their listed
        // partitions stay listed).
        let mut blocked: Vec<(SourcePartition, String)> = Vec::new();
        let mut unsure: HashSet<String> = HashSet::new();
        for (topic, count, topic_id) in topics {
            if self.recreated.contains(&topic) {
                continue;
            }
            // The id kept with the progress: the one the flow first mirrored (a topic
            // re-created since, while the daemon ran or was stopped, has another one).
            // The partitions are fetched by the kept id, or by this one when none is kept
            // (nil: the source has no topic ids).
            let known = self.progress.source_topic_id(&topic);
            if let Some(known) = known.filter(|k| !topic_id.is_nil() && *k != topic_id) {
                self.recreated.insert(topic.clone());
                found.push(Found::Recreated {
                    topic,
                    partitions: count,
                    old_id: known,
                    new_id: topic_id,
                });
                continue;
            }
            self.progress.note_source_topic_id(&topic, topic_id);
            let fetch_id = known.unwrap_or(topic_id);
            let target_topic = self.flow.rename(&topic);
            match self
                .ensure_target(
                    &topic,
                    &target_topic,
                    count,
                    target_md.partition_count(&target_topic),
                )
                .await
            {
                Ok(()) => {
                    if self.stats.topic_mirrored(&topic) {
                        tracing::info!(flow = %self.flow.name, topic = %topic, target_topic = %target_topic, "Topic mirrored now: its target topic is ready.");
                    }
                    let target = TargetTopic {
                        name: target_topic.clone(),
                        id: target_md.topic_id(&target_topic).filter(|id| !id.is_nil()),
                    };
                    let restarted = self.progress.target_topic(&topic, count, &target);
                    if let Some(&(partition, from)) = restarted.first() {
                        tracing::warn!(flow = %self.flow.name, topic = %topic, target_topic = %target_topic, partitions = restarted.len(), partition, source_offset = from, "The flow's target topic for this source topic is another one than the records mirrored so far went to (its rename changed, or the topic was deleted and created again): mirroring goes on into it from the source offsets reached, so the records mirrored before are not in it. Offset translation starts again from those offsets; group offsets below them are not translated into this topic.");
                    }
                }
                Err(e) => {
                    match self.target_not_ready(&topic, &target_topic, count, &e) {
                        Some(partitions) => blocked.extend(partitions),
                        None => {
                            unsure.insert(topic.clone());
                        }
                    }
                    continue;
                }
            }
            for partition in 0..count {
                let sp = SourcePartition {
                    topic: topic.clone(),
                    partition,
                };
                if !self.started.contains(&sp) {
                    new.push((sp, target_topic.clone(), fetch_id));
                }
            }
        }
        // New partitions' start positions, asked all at once: one whose leader is down
        // must not hold up the others (nor the next topics) for its retries.
        // A partition waiting to start whose topic is gone (deleted) waits no more.
        let waiting: HashSet<&SourcePartition> = new.iter().map(|(sp, ..)| sp).collect();
        self.stats.retain_not_started(|sp| {
            waiting.contains(sp)
                || unsure.contains(&sp.topic)
                || blocked.iter().any(|(b, _)| b == sp)
        });
        for (sp, why) in blocked {
            self.stats.partition_not_started(&sp, why);
        }
        self.unstarted.retain(|sp| waiting.contains(sp));
        // Kept with the progress, so dropped only for a topic gone from the source (not
        // for one whose target topic could not be made this round).
        self.progress.retain_starts_at_end(|sp| {
            source_md
                .partition_count(&sp.topic)
                .is_some_and(|count| sp.partition < count)
        });
        let this = &*self;
        let starts: Vec<_> = futures::stream::iter(new)
            .map(|(sp, target_topic, topic_id)| async move {
                let start = this.start_position(&sp, &target_topic).await;
                (sp, target_topic, topic_id, start)
            })
            .buffered(START_POSITIONS_AT_ONCE)
            .collect()
            .await;
        // Per target topic, new partitions mirrored from their start into a target
        // partition that already holds records: (partitions, records held).
        let mut again: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        for (sp, target_topic, topic_id, start) in starts {
            match start {
                Ok((start, held)) => {
                    if let Some(held) = held {
                        let e = again.entry(target_topic.clone()).or_default();
                        *e = (e.0 + 1, e.1 + held);
                    }
                    if self.unstarted.remove(&sp) {
                        tracing::info!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, next_source_offset = start.next_source_offset, "Found the start offset; the partition starts.");
                    }
                    self.progress.set_starts_at_end(&sp, false);
                    self.started.insert(sp.clone());
                    found.push(Found::Start {
                        partition: sp,
                        target_topic,
                        topic_id,
                        start,
                    });
                }
                Err(e) => {
                    // Found at the first start, it starts at the end once it can, as the
                    // others did, also after a restart (kept with the progress).
                    if !self.progress.is_initialised() && self.flow.start_from == StartFrom::Latest
                    {
                        self.progress.set_starts_at_end(&sp, true);
                    }
                    if self.unstarted.insert(sp.clone()) {
                        tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, error = %e, "Cannot find the start offset; the partition waits, and the next discovery round asks again.");
                    }
                    self.stats
                        .partition_not_started(&sp, format!("cannot find its start offset: {e}"));
                }
            }
        }
        for (topic, (partitions, records)) in again {
            tracing::warn!(flow = %self.flow.name, %topic, partitions, records, "The target partitions already hold records, and this flow has no stored position for their source partitions: they are mirrored from the source's start, after those records. If those are copies of the same source records (the flow was renamed, the topic moved to it from another flow, its progress was deleted, or another tool mirrored them), the target now holds them twice; to go on where an earlier flow stopped, keep its name.");
        }
        let progress = &self.progress;
        if !progress.is_initialised() {
            // The flow's first start: the positions `start_from` chose and the marker that
            // ends it are stored before anything is mirrored (the first Fetch comes after
            // this returns), so a restart never applies `start_from` again.
            progress.mark_initialised();
            self.target
                .retry("writing the first positions", None, || {
                    progress.write(&self.target)
                })
                .await?;
            return Ok(Some(found));
        }
        // Start positions chosen just now are written before their partitions start, so a
        // crash right after discovery restarts new partitions from the same place.
        if let Err(e) = progress.write(&self.target).await {
            tracing::warn!(flow = %self.flow.name, error = %e, "Cannot write start positions yet; the progress writer retries.");
        }
        Ok(Some(found))
    }

    /// Where a partition starts: its progress, or, for a partition seen for the first
    /// time, `start_from` (recorded in the progress at once). An error when the source
    /// cannot say within [`START_POSITION_DEADLINE`]; the next round asks again. With the
    /// records its partition of `target_topic` holds already when a new partition is
    /// mirrored from its start and it holds some (they will be there twice).
    async fn start_position(
        &self,
        sp: &SourcePartition,
        target_topic: &str,
    ) -> Result<(Position, Option<i64>), ClientError> {
        if let Some(p) = self.progress.get(sp) {
            return Ok((p, None));
        }
        // `start_from` applies at the flow's first start only (stored, see `round`), and
        // to the partitions found then that could start only later; partitions found
        // later, even while the daemon was stopped, are new: mirrored from their start,
        // so nothing is lost.
        let first_found = !self.progress.is_initialised() || self.progress.starts_at_end(sp);
        let timestamp = match (first_found, self.flow.start_from) {
            (true, StartFrom::Latest) => list_offsets::LATEST,
            _ => list_offsets::EARLIEST,
        };
        let source = &self.source;
        let list = || source.list_offset(&sp.topic, sp.partition, timestamp);
        let offset = if self.unstarted.contains(sp) {
            // It failed in an earlier round, which said so at WARN: one quiet attempt per
            // round, so the round neither waits for its retries before it hands over the
            // partitions that can start, nor logs them again.
            let attempt = tokio::time::timeout(START_POSITION_DEADLINE, list()).await;
            let attempt = attempt.unwrap_or_else(|_| {
                Err(ClientError::Incomplete {
                    cluster: source.name().to_string(),
                    what: format!(
                        "ListOffsets: no answer within {} s",
                        START_POSITION_DEADLINE.as_secs()
                    ),
                })
            });
            match attempt {
                Ok(offset) => offset,
                Err(e) => {
                    if e.class() == ErrorClass::RetryRefreshMetadata {
                        // The next round asks the leader the metadata names now.
                        let _ = source.refresh_metadata().await;
                    }
                    return Err(e);
                }
            }
        } else {
            source
                .retry("ListOffsets", Some(START_POSITION_DEADLINE), list)
                .await?
        };
        // Record the chosen start at once: a partition that receives nothing before a
        // restart would otherwise have no progress, and the restart would choose again
        // (start_from: latest skipping what was written while the daemon was stopped).
        let start = Position {
            next_source_offset: offset,
            next_target_offset: -1,
            leader_epoch: None,
        };
        self.progress.advance(sp, start);
        // Bounded as the start offset is: a target that does not answer must not hold up
        // the other partitions' starts.
        let held = if timestamp == list_offsets::EARLIEST {
            let target = &self.target;
            let ask = |timestamp| target.list_offset(target_topic, sp.partition, timestamp);
            let held = async {
                let end = ask(list_offsets::LATEST).await.ok()?;
                let start = ask(list_offsets::EARLIEST).await.ok()?;
                Some(end - start)
            };
            tokio::time::timeout(START_POSITION_DEADLINE, held)
                .await
                .ok()
                .flatten()
                .filter(|&records| records > 0)
        } else {
            None
        };
        Ok((start, held))
    }

    /// Makes sure the target topic exists with at least `count` partitions, and syncs the
    /// source's configs to it. Only a target topic that cannot be created or grown is an
    /// error: config sync reports its own failures ([`config_sync`]).
    async fn ensure_target(
        &self,
        topic: &str,
        target_topic: &str,
        count: i32,
        target_count: Option<i32>,
    ) -> Result<(), ClientError> {
        let refuse = |reason: String| ClientError::Refused {
            cluster: self.target.name().to_string(),
            what: reason,
        };
        match target_action(&self.flow, count, target_count) {
            TargetAction::Create { partitions } => {
                // Created with the source's configs (cleanup.policy among them) or not
                // yet: a source that cannot give them now is asked again next round.
                let (mut configs, _) = self.synced_source_configs(topic).await?;
                // The target topic's keys cannot be asked yet; the progress topic's can.
                if !configs.is_empty() {
                    match self.target.topic_configs_and_keys(PROGRESS_TOPIC).await {
                        Ok((_, known)) => {
                            configs = self.known_to_target(configs, &known, target_topic)
                        }
                        Err(e) => {
                            tracing::debug!(flow = %self.flow.name, error = %e, "Cannot learn the target's topic config keys; every synced config is sent.")
                        }
                    }
                }
                // Where each partition was while the topic was missing: what is
                // acknowledged from there on went to the topic created now.
                let before = self.progress.positions_of(topic, count);
                let created = self
                    .create_with_configs(target_topic, partitions, &configs)
                    .await?;
                if !created {
                    tracing::debug!(flow = %self.flow.name, topic = %target_topic, "The target topic existed after all (metadata had not shown it).");
                    return Ok(());
                }
                // This flow had mirrored the source topic before: its target topic was
                // deleted, or the flow's rename changed since (progress is kept by source
                // partition; either way, what was mirrored is not in the topic created now).
                let mirrored_before: i64 = (0..count)
                    .filter_map(|partition| {
                        self.progress.get(&SourcePartition {
                            topic: topic.to_string(),
                            partition,
                        })
                    })
                    .map(|p| p.next_target_offset.max(0))
                    .sum();
                if mirrored_before > 0 {
                    let target = TargetTopic {
                        name: target_topic.to_string(),
                        id: None,
                    };
                    self.progress.target_recreated(topic, &before, &target);
                    tracing::warn!(flow = %self.flow.name, topic = %target_topic, partitions, records = mirrored_before, "The target topic was missing although this flow had mirrored records of its source topic: it was deleted on the target, or the flow's rename changed. Created; mirroring goes on from the source offsets reached, so the records mirrored before are not in this topic. Offset translation starts again from those offsets; group offsets below them are not translated into this topic.");
                } else {
                    tracing::info!(flow = %self.flow.name, topic = %target_topic, partitions, configs = configs.len(), "Created target topic.");
                }
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
        self.sync_configs(topic, target_topic).await;
        Ok(())
    }

    /// [`known_to_target`], with a WARN once per target topic and key left out.
    fn known_to_target(
        &self,
        configs: Vec<(String, String)>,
        known: &HashSet<String>,
        target_topic: &str,
    ) -> Vec<(String, String)> {
        let (kept, unknown) = known_to_target(configs, known);
        for key in unknown {
            let first = self
                .reported_unknown_configs
                .lock()
                .expect("reported configs lock")
                .insert((target_topic.to_string(), key.clone()));
            if first {
                tracing::warn!(flow = %self.flow.name, topic = %target_topic, config = %key, "The target cluster does not know this topic config (an older Kafka, or another vendor's key); it is not synced. Add it to sync_configs.exclude to silence this.");
            }
        }
        kept
    }
}
