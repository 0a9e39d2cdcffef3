//! Transactional offset commits (TxnOffsetCommit): offsets a transactional producer
//! commits for a group are held per producer id, invisible to OffsetFetch, until its
//! transaction ends: a commit marker makes them the group's committed offsets (unless a
//! commit written after them holds the partition: a plain one, or another transaction's
//! that committed first), an abort drops them. While
//! any are pending for a partition, an OffsetFetch asking for stable offsets gets
//! UNSTABLE_OFFSET_COMMIT there.
//!
//! Kafka: OffsetMetadataManager (validateTransactionalOffsetCommit,
//! commitTransactionalOffset, replayEndTransactionMarker, fetchOffsets) and
//! ClassicGroup.validateOffsetCommit(isTransactional).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use tokio::time::Instant;

use super::offsets::metadata_chars;
use super::state::Group;
use super::store::{CommittedOffset, Record};
use super::Inner;

/// One offset waiting for its transaction's end.
#[derive(Debug, Clone)]
pub(super) struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: CommittedOffset,
    /// A plain OffsetCommit of the partition, or another transaction's offset written
    /// after it, was committed meanwhile: the commit marker keeps that.
    pub superseded: bool,
    /// Its place among pending offsets (Kafka: its record's offset in `__consumer_offsets`).
    pub seq: u64,
}

impl Inner {
    /// TxnOffsetCommit. `refused` answers a partition authorization or existence refused
    /// (its code), as KafkaApis merges them; `verify` asks the transaction coordinator
    /// whether the group is in the producer's transaction, under this coordinator's lock,
    /// so that the transaction cannot end between the answer and the pending offsets.
    pub(super) fn txn_offset_commit(
        &mut self,
        now: Instant,
        req: &TxnOffsetCommitRequest,
        refused: &dyn Fn(&str, i32) -> Option<i16>,
        verify: &dyn Fn() -> Result<(), i16>,
    ) -> TxnOffsetCommitResponse {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
        // Kafka: GroupCoordinatorService.commitTransactionalOffsets (an empty group id
        // before the verification), then OffsetMetadataManager
        // .validateTransactionalOffsetCommit.
        let verdict = if group_id.is_empty() {
            Err(ResponseError::InvalidGroupId.code())
        } else if let Err(e) = verify() {
            Err(e)
        } else {
            match self.groups.get_mut(&group_id) {
                Some(group) => group.validate_txn_offset_commit(
                    req.generation_id,
                    &member_id,
                    instance.as_deref(),
                ),
                None if req.generation_id < 0 => Ok(()),
                None => Err(ResponseError::IllegalGeneration.code()),
            }
        };
        let timestamp = self.clock.wall_ms(now);
        let mut pending: Vec<PendingOffset> = Vec::new();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let metadata_len = metadata_chars(p.committed_metadata.as_ref());
                        let code = if let Some(code) = refused(&t.name, p.partition_index) {
                            code
                        } else if let Err(e) = verdict {
                            e
                        } else if metadata_len > self.config.max_offset_metadata_bytes {
                            ResponseError::OffsetMetadataTooLarge.code()
                        } else {
                            pending.push(PendingOffset {
                                group: group_id.clone(),
                                topic: t.name.to_string(),
                                partition: p.partition_index,
                                committed: CommittedOffset::new(
                                    (p.committed_offset, p.committed_leader_epoch),
                                    p.committed_metadata.as_ref(),
                                    (timestamp, None),
                                ),
                                superseded: false,
                                seq: 0,
                            });
                            0
                        };
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if verdict.is_ok() && !group_id.is_empty() && !self.groups.contains_key(&group_id) {
            // A simple group, as Kafka creates it for the commit.
            let group = Group::new(group_id.clone(), self.config.group.clone());
            self.groups.insert(group_id, group);
        }
        for p in &mut pending {
            self.pending_seq += 1;
            p.seq = self.pending_seq;
        }
        self.pending_txn_offsets
            .entry(req.producer_id.0)
            .or_default()
            .extend(pending);
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    /// Ends producer `producer_id`'s transaction for its pending offsets: a commit writes
    /// them (each unless a plain commit of its partition came after it), an abort drops
    /// them. Kafka: OffsetMetadataManager.replayEndTransactionMarker.
    pub(super) fn complete_txn_offsets(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        let kept: Vec<PendingOffset> = pending.into_iter().filter(|p| !p.superseded).collect();
        // Other transactions' offsets written before these are older records: they lose.
        for p in &kept {
            for other in self.pending_txn_offsets.values_mut().flatten() {
                let same = other.group == p.group
                    && other.topic == p.topic
                    && other.partition == p.partition;
                if same && other.seq < p.seq {
                    other.superseded = true;
                }
            }
        }
        let records: Vec<Record> = kept
            .into_iter()
            .map(|p| Record::Offset {
                group: p.group,
                topic: p.topic,
                partition: p.partition,
                committed: p.committed,
            })
            .collect();
        if let Err(error) = self.store.append(&records) {
            tracing::error!(producer_id, %error, "Cannot persist transactional offsets.");
        }
        for r in records {
            if let Record::Offset {
                group,
                topic,
                partition,
                committed,
            } = r
            {
                if !self.groups.contains_key(&group) {
                    let g = Group::new(group.clone(), self.config.group.clone());
                    self.groups.insert(group.clone(), g);
                }
                self.offsets.insert(&group, topic, partition, committed);
            }
        }
    }

    /// A plain commit of the group's partition: pending offsets of it are older and lose
    /// to it at their commit marker.
    pub(super) fn supersede_pending(&mut self, group: &str, topic: &str, partition: i32) {
        for p in self.pending_txn_offsets.values_mut().flatten() {
            if p.group == group && p.topic == topic && p.partition == partition {
                p.superseded = true;
            }
        }
    }

    /// An offset deleted (OffsetDelete, its topic deleted): pending offsets of it go too.
    /// Kafka: OffsetMetadataManager.replay of a tombstone ("remove all the pending offset
    /// commits related to the tombstone").
    pub(super) fn drop_pending(
        &mut self,
        group: Option<&str>,
        topic: &str,
        partition: Option<i32>,
    ) {
        for offsets in self.pending_txn_offsets.values_mut() {
            offsets.retain(|p| {
                !(group.is_none_or(|g| p.group == g)
                    && p.topic == topic
                    && partition.is_none_or(|i| p.partition == i))
            });
        }
    }

    /// Whether a transaction holds an offset of the group's partition that it has not
    /// ended yet (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub(super) fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets
            .values()
            .flatten()
            .any(|p| p.group == group && p.topic == topic && p.partition == partition)
    }
}
