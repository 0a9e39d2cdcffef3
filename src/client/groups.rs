//! Consumer-group calls for offset sync: list groups, find a group's coordinator, read a
//! group's state and committed offsets, and commit offsets as an admin (no member).
//!
//! Kafka spreads groups over coordinators, so ListGroups goes to every broker
//! (`KafkaAdminClient.listConsumerGroups` does the same). An admin commit carries
//! generation -1 and no member id; Kafka accepts it only while the group is EMPTY
//! (`ClassicGroup.validateOffsetCommit`), so callers check the state first and still
//! handle the refusal.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::errors::ResponseError;
use kmirror_wire::messenger::Messenger;

use super::{ClientError, ClusterClient};

/// FindCoordinator answers of COORDINATOR_NOT_AVAILABLE asked again, and the pause before
/// each: a second for a new cluster to create `__consumer_offsets` (short: a coordinator
/// that moves answers so too, and the caller's own retries then take over).
const COORDINATOR_CREATED_ASKS: u32 = 10;
const COORDINATOR_CREATED_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// FindCoordinator `key_type` of a consumer group.
const GROUP_KEY: i8 = 0;

/// A committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The commit's metadata string ("" when none): Kafka Streams keeps a partition's
    /// stream time there, so a copy of the offset carries it (as MirrorMaker 2's does).
    pub metadata: String,
}

/// What DescribeGroups says about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// Kafka's state name: `Empty`, `Stable`, `PreparingRebalance`, `Dead`, ...
    pub state: String,
    pub members: usize,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl ClusterClient {
    fn group_error(
        &self,
        what: String,
        code: i16,
        message: Option<&str>,
    ) -> Result<(), ClientError> {
        match ClientError::from_code(self.name(), &what, code, message) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(super) fn unsupported(&self, e: kmirror_wire::versions::NoCommonVersion) -> ClientError {
        ClientError::Refused {
            cluster: self.name().to_string(),
            what: e.to_string(),
        }
    }

    /// The ids of the groups on the cluster, asked of every broker (each lists the groups
    /// it coordinates), and the brokers' failures. A broker that cannot answer, or answers
    /// with an error (COORDINATOR_LOAD_IN_PROGRESS while it loads its groups after a
    /// restart), leaves out only its own groups: what it listed anyway is kept, as Kafka's
    /// admin client keeps the valid part (`listConsumerGroups().valid()`). An error only
    /// when no broker answered.
    pub async fn list_groups(&self) -> Result<(BTreeSet<String>, Vec<ClientError>), ClientError> {
        let brokers: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let mut groups = BTreeSet::new();
        let mut failures = Vec::new();
        for id in &brokers {
            let listed = async {
                let m = self.broker(*id).await?;
                let (resp, _) = m
                    .send(&ListGroupsRequest::default())
                    .await
                    .map_err(|e| self.request(e))?;
                groups.extend(resp.groups.into_iter().map(|g| g.group_id.0.to_string()));
                self.group_error(
                    format!("listing the groups of broker {id}"),
                    resp.error_code,
                    None,
                )
            };
            if let Err(e) = listed.await {
                failures.push(e);
            }
        }
        if !brokers.is_empty() && failures.len() == brokers.len() {
            return Err(failures.swap_remove(0));
        }
        Ok((groups, failures))
    }

    /// The connection to the coordinator of `group`.
    pub async fn coordinator(&self, group: &str) -> Result<Arc<Messenger>, ClientError> {
        let node = self.coordinator_id(group).await?;
        self.broker(node).await
    }

    /// The node id of the coordinator of `group` (FindCoordinator), known to the metadata.
    ///
    /// Kafka creates `__consumer_offsets` on a cluster's first FindCoordinator and answers
    /// COORDINATOR_NOT_AVAILABLE until it exists (KafkaApis.getCoordinator): that answer is
    /// asked again for a while, as Kafka's own clients do, so a fresh cluster is not
    /// reported failing. Any other error, or one that lasts, goes to the caller's retries.
    pub async fn coordinator_id(&self, group: &str) -> Result<i32, ClientError> {
        let mut asked = 1;
        loop {
            match self.find_coordinator(group).await {
                Err(ClientError::Broker {
                    error: ResponseError::CoordinatorNotAvailable,
                    ..
                }) if asked < COORDINATOR_CREATED_ASKS => {
                    tokio::time::sleep(COORDINATOR_CREATED_PAUSE).await;
                    asked += 1;
                }
                found => return found,
            }
        }
    }

    async fn find_coordinator(&self, group: &str) -> Result<i32, ClientError> {
        let m = self.any_broker().await?;
        let version = m
            .versions()
            .pick::<FindCoordinatorRequest>()
            .map_err(|e| self.unsupported(e))?;
        // v4+ takes a list of keys; older versions one key.
        let req = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)])
        } else {
            FindCoordinatorRequest::default().with_key(s(group))
        }
        .with_key_type(GROUP_KEY);
        let resp = m
            .send_at(&req, version)
            .await
            .map_err(|e| self.request(e))?;
        let what = format!("finding the coordinator of group {group}");
        // v4+ answers per key; older versions at the top level.
        let (code, message, node) = if version >= 4 {
            let c = resp
                .coordinators
                .first()
                .ok_or_else(|| ClientError::Incomplete {
                    cluster: self.name().to_string(),
                    what: what.clone(),
                })?;
            (c.error_code, c.error_message.clone(), c.node_id.0)
        } else {
            (resp.error_code, resp.error_message.clone(), resp.node_id.0)
        };
        self.group_error(what, code, message.as_deref())?;
        if !self.metadata().brokers.contains_key(&node) {
            self.refresh_metadata().await?;
        }
        Ok(node)
    }

    /// The state and member count of `group` (`Dead` if it does not exist).
    pub async fn group_state(&self, group: &str) -> Result<GroupState, ClientError> {
        let m = self.coordinator(group).await?;
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        let g = resp.groups.first().ok_or_else(|| ClientError::Incomplete {
            cluster: self.name().to_string(),
            what: format!("describing group {group}"),
        })?;
        // DescribeGroups v6 (Kafka 4.x) answers GROUP_ID_NOT_FOUND for a group that does
        // not exist; older versions state `Dead` (GroupCoordinatorService.describeGroups).
        if g.error_code == ResponseError::GroupIdNotFound.code() {
            return Ok(GroupState {
                state: "Dead".to_string(),
                members: 0,
            });
        }
        self.group_error(
            format!("describing group {group}"),
            g.error_code,
            g.error_message.as_deref(),
        )?;
        Ok(GroupState {
            state: g.group_state.to_string(),
            members: g.members.len(),
        })
    }

    /// Every offset `group` has committed (partitions without one are left out).
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<Committed>, ClientError> {
        let m = self.coordinator(group).await?;
        let version = m
            .versions()
            .pick::<OffsetFetchRequest>()
            .map_err(|e| self.unsupported(e))?;
        // v8+ takes a list of groups; older versions one group at the top level. No topic
        // list: all of the group's offsets.
        let req = if version >= 8 {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)
        };
        let resp = m
            .send_at(&req, version)
            .await
            .map_err(|e| self.request(e))?;
        let what = format!("reading the offsets of group {group}");
        // The v8+ and the older partition types have the same fields.
        macro_rules! partition_row {
            ($p:expr) => {{
                let metadata = $p.metadata.as_ref().map_or("", |m| m.as_str());
                (
                    $p.partition_index,
                    $p.committed_offset,
                    metadata,
                    $p.error_code,
                )
            }};
        }
        // v8+ answers per group; older versions at the top level.
        let (code, topics) = if version >= 8 {
            let g = resp.groups.first().ok_or_else(|| ClientError::Incomplete {
                cluster: self.name().to_string(),
                what: what.clone(),
            })?;
            let topics = g.topics.iter().map(|t| {
                let partitions = t.partitions.iter();
                (&t.name, partitions.map(|p| partition_row!(p)).collect())
            });
            (g.error_code, topics.collect::<Vec<(&TopicName, Vec<_>)>>())
        } else {
            let topics = resp.topics.iter().map(|t| {
                let partitions = t.partitions.iter();
                (&t.name, partitions.map(|p| partition_row!(p)).collect())
            });
            (resp.error_code, topics.collect())
        };
        self.group_error(what.clone(), code, None)?;
        let mut out = Vec::new();
        for (topic, partitions) in topics {
            for (partition, offset, metadata, code) in partitions {
                self.group_error(format!("{what} ({} {partition})", topic.0), code, None)?;
                if offset >= 0 {
                    out.push(Committed {
                        topic: topic.0.to_string(),
                        partition,
                        offset,
                        metadata: metadata.to_string(),
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Commits `offsets` for `group` as an admin (generation -1, no member): refused by
    /// Kafka unless the group is empty.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[Committed],
    ) -> Result<(), ClientError> {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for c in offsets {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(c.partition)
                .with_committed_offset(c.offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(&c.metadata)));
            match topics.iter_mut().find(|t| t.name.0.as_str() == c.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(&c.topic)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let m = self.coordinator(group).await?;
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_retention_time_ms(-1)
            .with_topics(topics);
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        for t in &resp.topics {
            for p in &t.partitions {
                self.group_error(
                    format!(
                        "committing the offset of group {group} on {} {}",
                        t.name.0, p.partition_index
                    ),
                    p.error_code,
                    None,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// A new cluster answers the first FindCoordinator COORDINATOR_NOT_AVAILABLE while it
    /// creates `__consumer_offsets`, as Kafka does: the coordinator is still found at once,
    /// not reported as a failure to the caller's retries (a WARN, a failed round).
    #[tokio::test]
    async fn a_new_clusters_coordinator_is_found_by_the_first_lookup() {
        let (_broker, client) = crate::client::local_cluster("target").await;
        client.refresh_metadata().await.unwrap();
        assert!(!client.metadata().topics.contains_key("__consumer_offsets"));
        let node = client.coordinator_id("app").await.expect("found at once");
        assert!(client.metadata().brokers.contains_key(&node));
        client.refresh_metadata().await.unwrap();
        assert!(client.metadata().topics["__consumer_offsets"].is_internal);
    }
}
