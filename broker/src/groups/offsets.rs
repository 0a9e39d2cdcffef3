//! Committed offsets: the in-memory table and the OffsetCommit, OffsetFetch and
//! OffsetDelete APIs on top of it (validated against the group state machine, written to
//! the store before the answer).
//!
//! Not here: transactional offset commits (`txn_offsets.rs`), offset expiry (`expiry.rs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::state::{Group, GroupState};
pub use super::store::CommittedOffset;
use super::store::{GroupOffsets, Record};
use super::Inner;

/// Committed offsets of every group.
#[derive(Debug, Clone, Default)]
pub struct OffsetsTable {
    groups: BTreeMap<String, GroupOffsets>,
}

impl OffsetsTable {
    pub fn from_snapshot(groups: BTreeMap<String, GroupOffsets>) -> Self {
        Self { groups }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// The group's offsets, ordered by topic and partition.
    pub fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group)
    }

    pub fn insert(&mut self, group: &str, topic: String, partition: i32, c: CommittedOffset) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic, partition), c);
    }

    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        if let Some(offsets) = self.groups.get_mut(group) {
            offsets.remove(&(topic.to_string(), partition));
            if offsets.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    pub fn remove_group(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// Every group holding offsets, with them.
    pub fn groups(&self) -> impl Iterator<Item = (&String, &GroupOffsets)> {
        self.groups.iter()
    }

    /// Every (group, partition) holding an offset of `topic`.
    pub fn partitions_of_topic(&self, topic: &str) -> Vec<(String, i32)> {
        self.groups
            .iter()
            .flat_map(|(g, offsets)| {
                offsets
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(move |(_, p)| (g.clone(), *p))
            })
            .collect()
    }
}

impl CommittedOffset {
    /// An offset committed now: `(offset, leader epoch)`, its metadata (null is stored as
    /// ""), `(commit time, expiry)` in ms.
    pub(super) fn new(
        (offset, leader_epoch): (i64, i32),
        metadata: Option<&StrBytes>,
        (commit_timestamp_ms, expire_timestamp_ms): (i64, Option<i64>),
    ) -> Self {
        Self {
            offset,
            leader_epoch,
            metadata: Some(metadata.map(|m| m.to_string()).unwrap_or_default()),
            commit_timestamp_ms,
            expire_timestamp_ms,
        }
    }
}

/// The length of offset metadata as `offset.metadata.max.bytes` limits it. Kafka:
/// OffsetMetadataManager.isMetadataInvalid counts Java chars (UTF-16 code units), not
/// bytes, despite the setting's name.
pub(super) fn metadata_chars(metadata: Option<&StrBytes>) -> usize {
    metadata.map_or(0, |m| m.encode_utf16().count())
}

/// Requested partitions per topic; `None` = every committed partition of the group.
type Requested = Option<Vec<(String, Vec<i32>)>>;

/// (topic, [(partition, offset, leader epoch, metadata, error)]) as OffsetFetch answers
/// them.
type Fetched = Vec<(String, Vec<(i32, i64, i32, String, i16)>)>;

impl Inner {
    pub(super) fn offset_commit(
        &mut self,
        now: Instant,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
        let generation = req.generation_id_or_member_epoch;

        // Group-level verdict, Kafka's order: a missing group accepts only simple commits.
        let verdict = match self.groups.get(&group_id) {
            Some(_) => {
                // Overdue timers first (and persist what they changed).
                let outcomes = self.on_group(now, &group_id, |_| Vec::new());
                self.dispatch(outcomes);
                let group = self.groups.get_mut(&group_id).expect("present");
                group.validate_offset_commit(now, generation, &member_id, instance_id.as_deref())
            }
            None if generation < 0 => {
                let mut probe = Group::new(group_id.clone(), self.config.group.clone());
                probe.validate_offset_commit(now, generation, &member_id, instance_id.as_deref())
            }
            // Kafka: OffsetMetadataManager.validateOffsetCommit (v9+ GROUP_ID_NOT_FOUND,
            // ILLEGAL_GENERATION below, for backward compatibility)
            None if version >= 9 => Err(ResponseError::GroupIdNotFound.code()),
            None => Err(ResponseError::IllegalGeneration.code()),
        };

        let timestamp = self.clock.wall_ms(now);
        // Kafka: OffsetMetadataManager.expireTimestampMs (v2-4 retention_time_ms, -1 = the
        // broker's offsets.retention.minutes)
        let expire_timestamp_ms = (version <= 4 && req.retention_time_ms != -1)
            .then(|| timestamp.saturating_add(req.retention_time_ms));
        let mut records = Vec::new();
        let mut errors: Vec<Vec<i16>> = Vec::new();
        for topic in &req.topics {
            let mut topic_errors = Vec::new();
            for p in &topic.partitions {
                let metadata_len = metadata_chars(p.committed_metadata.as_ref());
                let error = if !self
                    .partitions
                    .partition_exists(&topic.name, p.partition_index)
                {
                    ResponseError::UnknownTopicOrPartition.code()
                } else if let Err(e) = verdict {
                    // Kafka: OffsetMetadataManager.commitOffset (validateOffsetCommit for
                    // the whole request before any partition's isMetadataInvalid).
                    e
                } else if metadata_len > self.config.max_offset_metadata_bytes {
                    ResponseError::OffsetMetadataTooLarge.code()
                } else {
                    records.push(Record::Offset {
                        group: group_id.clone(),
                        topic: topic.name.to_string(),
                        partition: p.partition_index,
                        committed: CommittedOffset::new(
                            (p.committed_offset, p.committed_leader_epoch),
                            p.committed_metadata.as_ref(),
                            (timestamp, expire_timestamp_ms),
                        ),
                    });
                    0
                };
                topic_errors.push(error);
            }
            errors.push(topic_errors);
        }

        if !records.is_empty() {
            match self.store.append(&records) {
                Ok(()) => {
                    if !self.groups.contains_key(&group_id) {
                        let group = Group::new(group_id.clone(), self.config.group.clone());
                        self.groups.insert(group_id.clone(), group);
                    }
                    for r in records {
                        if let Record::Offset {
                            topic,
                            partition,
                            committed,
                            ..
                        } = r
                        {
                            self.supersede_pending(&group_id, &topic, partition);
                            self.offsets.insert(&group_id, topic, partition, committed);
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(group = %group_id, %error, "Cannot persist committed offsets.");
                    // Kafka: CoordinatorOperationExceptionHelper.handleOperationException
                    // (KAFKA_STORAGE_ERROR -> NOT_COORDINATOR)
                    for e in errors.iter_mut().flatten().filter(|e| **e == 0) {
                        *e = ResponseError::NotCoordinator.code();
                    }
                }
            }
        }

        let topics = req
            .topics
            .iter()
            .zip(errors)
            .map(|(topic, errors)| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .zip(errors)
                            .map(|(p, e)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// Offsets of one group: the requested partitions (-1 where nothing is committed),
    /// or every committed partition. With `stable` (require_stable, v7+), a partition with
    /// an offset of an open transaction is UNSTABLE_OFFSET_COMMIT (Kafka:
    /// OffsetMetadataManager.fetchOffsets).
    fn fetch_group(&self, group_id: &str, requested: Requested, stable: bool) -> Fetched {
        let entry = |topic: &str, partition: i32| {
            if stable && self.has_pending_txn_offset(group_id, topic, partition) {
                let unstable = ResponseError::UnstableOffsetCommit.code();
                return (partition, -1, -1, String::new(), unstable);
            }
            match self.offsets.get(group_id, topic, partition) {
                Some(c) => (
                    partition,
                    c.offset,
                    c.leader_epoch,
                    c.metadata.clone().unwrap_or_default(),
                    0,
                ),
                None => (partition, -1, -1, String::new(), 0),
            }
        };
        match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let rows = partitions.into_iter().map(|p| entry(&topic, p)).collect();
                    (topic, rows)
                })
                .collect(),
            None => {
                let mut out: Fetched = Vec::new();
                for (topic, partition) in self
                    .offsets
                    .group(group_id)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let row = entry(topic, *partition);
                    match out.last_mut() {
                        Some((t, rows)) if t == topic => rows.push(row),
                        _ => out.push((topic.clone(), vec![row])),
                    }
                }
                out
            }
        }
    }

    pub(super) fn offset_fetch(
        &mut self,
        req: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        if version >= 8 {
            let groups = req
                .groups
                .into_iter()
                .map(|g| {
                    let requested = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes))
                            .collect()
                    });
                    let topics = self
                        .fetch_group(&g.group_id, requested, req.require_stable)
                        .into_iter()
                        .map(|(topic, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, offset, epoch, md, error)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(error)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(StrBytes::from_string(md)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let requested = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        let topics = self
            .fetch_group(&req.group_id, requested, version >= 7 && req.require_stable)
            .into_iter()
            .map(|(topic, rows)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(
                        rows.into_iter()
                            .map(|(p, offset, epoch, md, error)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(error)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(if version >= 5 {
                                        epoch
                                    } else {
                                        -1
                                    })
                                    .with_metadata(Some(StrBytes::from_string(md)))
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    pub(super) fn offset_delete(
        &mut self,
        now: Instant,
        req: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        let group_id = req.group_id.to_string();
        // Kafka: GroupCoordinatorService.deleteOffsets.
        if group_id.is_empty() {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::InvalidGroupId.code());
        }
        if !self.groups.contains_key(&group_id) {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
        }
        let outcomes = self.on_group(now, &group_id, |_| Vec::new());
        self.dispatch(outcomes);
        let group = &self.groups[&group_id];
        // Topics that must keep their offsets; `None` = all of them.
        let protected = match group.state() {
            GroupState::Dead => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::GroupIdNotFound.code())
            }
            GroupState::Empty => Some(Default::default()),
            _ if group.protocol_type() == Some("consumer") => group.subscribed_topics(),
            _ => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::NonEmptyGroup.code())
            }
        };
        let mut records = Vec::new();
        let mut topics = Vec::new();
        for topic in &req.topics {
            let name = topic.name.to_string();
            let subscribed = protected.as_ref().is_none_or(|t| t.contains(&name));
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = if !self.partitions.partition_exists(&name, p.partition_index) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if subscribed {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        records.push(Record::OffsetDelete {
                            group: group_id.clone(),
                            topic: name.clone(),
                            partition: p.partition_index,
                        });
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        if let Err(error) = self.store.append(&records) {
            tracing::error!(group = %group_id, %error, "Cannot persist deleted offsets.");
            // Kafka: CoordinatorOperationExceptionHelper.handleOperationException
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::NotCoordinator.code());
        }
        for r in records {
            if let Record::OffsetDelete {
                topic, partition, ..
            } = r
            {
                self.drop_pending(Some(&group_id), &topic, Some(partition));
                self.offsets.remove(&group_id, &topic, partition);
            }
        }
        // Kafka up to 3.9: GroupCoordinator.handleDeleteOffsets -> GroupMetadataManager
        // .cleanupGroupMetadata turns an Empty group left without offsets Dead and removes it.
        if self.config.group.empty_group_dies_with_its_offsets
            && self.groups[&group_id].state() == GroupState::Empty
            && self.offsets.group(&group_id).is_none()
        {
            let _ = self.delete_group(&group_id);
        }
        OffsetDeleteResponse::default().with_topics(topics)
    }

    pub(super) fn remove_topic_offsets(&mut self, topic: &str) {
        let doomed = self.offsets.partitions_of_topic(topic);
        let records: Vec<Record> = doomed
            .iter()
            .map(|(group, partition)| Record::OffsetDelete {
                group: group.clone(),
                topic: topic.to_string(),
                partition: *partition,
            })
            .collect();
        if let Err(error) = self.store.append(&records) {
            tracing::error!(%topic, %error, "Cannot persist the removal of a deleted topic's offsets.");
        }
        for (group, partition) in doomed {
            self.offsets.remove(&group, topic, partition);
        }
        self.drop_pending(None, topic, None);
    }
}
