//! A partition's lifecycle: the pipeline task that produces it to the target, from where
//! discovery said it starts, and how it ends.

use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::refetch::BadBatch;
use super::{FlowRunner, Running, QUEUE_CHUNKS};
use crate::client::produce::ProducerSession;
use crate::mirror::memory::Held;
use crate::mirror::pipeline::{Ended, Pipeline};
use crate::mirror::progress::{Position, Progress, SourcePartition, PROGRESS_TOPIC};
use crate::telemetry::stats::{FlowStats, PartitionState, PartitionStats};

impl FlowRunner {
    /// Starts the pipeline of a partition discovery found, mirroring from `start`; its
    /// first Fetch carries the position's leader epoch as its `last_fetched_epoch`.
    /// `renew_session` when the partition was mirrored with `session` before (it starts
    /// again after a bad source batch).
    pub(super) fn start_partition(
        &mut self,
        sp: SourcePartition,
        target_topic: &str,
        position: Position,
        progress: &Arc<Progress>,
        (session, renew_session): (ProducerSession, bool),
    ) {
        let start = position.next_source_offset;
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let stats = self.stats.partition(&sp, start);
        let pipeline = Pipeline {
            flow: self.flow.name.clone(),
            source: sp.clone(),
            target_topic: target_topic.to_string(),
            target: self.target.clone(),
            throttle: self.throttle.clone(),
            progress: progress.clone(),
            session,
            next_sequence: 0,
            session_acked: false,
            splits: 0,
            next_target_offset: position.next_target_offset,
            reported_mirrored_again: false,
            batch_bytes: usize::try_from(self.flow.limits.batch_bytes).unwrap_or(usize::MAX),
            start_offset: start,
            lane: self.target.assign_produce_lane(),
            flow_stats: self.stats.clone(),
            stats: stats.clone(),
            route: Default::default(),
            renew_session,
        };
        tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = start, "Partition started.");
        let (flow, topic, partition) = (self.flow.name.clone(), sp.topic.clone(), sp.partition);
        let (flow_stats, partition_stats) = (self.stats.clone(), stats.clone());
        let bad_batches = self.bad_batches.sender();
        let target_topic = target_topic.to_string();
        let task = tokio::spawn(async move {
            let ended = pipeline.run(rx).await;
            match &ended {
                Ended::Failed(e, batch) => {
                    let said = match batch {
                        Some(batch) => format!("{e}; {batch}"),
                        None => e.to_string(),
                    };
                    tracing::error!(%flow, %topic, partition, error = %said, "Partition stopped: it needs operator action. Nothing after it is mirrored; its progress is kept, so once the cause in `error` is removed (e.g. a target limit raised), a restart of kmirror, or a reload that changes this flow, mirrors it on from here.");
                    flow_stats.failed("fatal", &said);
                    partition_stats.set_state(PartitionState::Failed, Some(said));
                }
                // The flow fetches it again, or stops the partition.
                Ended::Corrupt { offset, error } => bad_batches.send(BadBatch {
                    partition: SourcePartition { topic, partition },
                    target_topic,
                    offset: *offset,
                    error: error.clone(),
                }),
                // A partition stopped for an error (offset out of range, a diverged log, a
                // re-created topic) drains what it holds and stays failed.
                Ended::Drained if partition_stats.state() == PartitionState::Failed => {}
                Ended::Drained => partition_stats.set_state(PartitionState::Stopped, None),
            }
            ended
        });
        self.partitions.insert(
            sp,
            Running {
                next_fetch_offset: start,
                last_fetched_epoch: position.leader_epoch.unwrap_or(-1),
                held: Held::default(),
                tx: Some(tx),
                task,
                fetching: false,
                caught_up: false,
                alone: false,
                stats,
                not_before: None,
                answered_at: None,
                leaderless: false,
                needs: None,
                batch_bytes: 0,
                batch_bytes_exact: false,
                log_start: -1,
                progress: progress.clone(),
            },
        );
    }

    /// Stops every partition of a source topic whose id changed: it was deleted and
    /// re-created, so its offsets start again and the progress kept for the old topic
    /// means nothing for the new one. Mirroring it again is an operator's decision. A topic
    /// re-created while the daemon was stopped has no partition running: its partitions
    /// are shown failed all the same.
    pub(super) fn stop_recreated(
        &mut self,
        topic: &str,
        partitions: i32,
        (old_id, new_id): (Uuid, Uuid),
        progress: &Progress,
    ) {
        let reason = format!("source topic re-created (topic id {old_id} -> {new_id})");
        let mut stopped = 0;
        for (sp, r) in self.partitions.iter_mut() {
            if sp.topic == topic {
                r.stop();
                r.stats
                    .set_state(PartitionState::Failed, Some(reason.clone()));
                r.stats.source_recreated();
                stopped += 1;
            }
        }
        for partition in 0..partitions {
            let sp = SourcePartition {
                topic: topic.to_string(),
                partition,
            };
            if !self.partitions.contains_key(&sp) {
                let position = progress.get(&sp).map_or(0, |p| p.next_source_offset);
                let stats = self.stats.partition(&sp, position);
                stats.set_state(PartitionState::Failed, Some(reason.clone()));
            }
        }
        let flow = &self.flow.name;
        tracing::error!(%flow, topic, %old_id, %new_id, partitions_stopped = stopped, "Source topic was deleted and re-created (its topic id changed); it is not mirrored: the flow's progress for it belongs to the old topic. Other topics keep flowing. To mirror the new topic from its start: stop the daemon, run `kmirror forget CONFIG --flow {flow} --topic {topic}` (it deletes the flow's records of the topic from {PROGRESS_TOPIC} on the target), and start it again; or take the topic out of this flow and mirror it in a flow of another name.");
    }
}

/// The ERROR for a source batch that cannot be mirrored (corrupt, or an old format), once.
pub(super) fn report_bad_source_batch(
    (flow, topic, partition): (&str, &str, i32),
    offset: i64,
    error: &dyn std::fmt::Display,
    (flow_stats, partition_stats): (&FlowStats, &PartitionStats),
) {
    tracing::error!(%flow, %topic, partition, offset, %error, "Partition stopped: the source returned a batch that cannot be mirrored (corrupt, or an old message format). Progress is kept; nothing after it is mirrored.");
    flow_stats.failed("corrupt_source", error);
    partition_stats.set_state(
        PartitionState::Failed,
        Some(format!("source batch at offset {offset}: {error}")),
    );
}
