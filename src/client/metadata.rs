//! Cluster metadata: brokers, controller, and each topic's partitions and leaders.

use std::collections::HashMap;

use kafka_protocol::messages::MetadataRequest;
use kmirror_wire::messenger::Messenger;

use super::ClientError;

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub leader: i32,
    pub leader_epoch: i32,
    pub error_code: i16,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// The topic id (Metadata v10+); nil when the broker does not report one.
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionMeta>,
    pub is_internal: bool,
}

/// A point-in-time view of the cluster.
#[derive(Debug, Clone, Default)]
pub struct MetadataSnapshot {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    /// Broker id to `host:port`.
    pub brokers: HashMap<i32, String>,
    pub topics: HashMap<String, TopicMeta>,
}

impl MetadataSnapshot {
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self
            .topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        (p.leader >= 0).then_some(p.leader)
    }
    /// The partition's leader epoch (Metadata v7+), -1 when unknown.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .map_or(-1, |p| p.leader_epoch)
    }
    /// The topic's id, if the cluster reported one (Kafka 2.8+ at Metadata v10+).
    pub fn topic_id(&self, topic: &str) -> Option<uuid::Uuid> {
        self.topics
            .get(topic)
            .map(|t| t.topic_id)
            .filter(|id| !id.is_nil())
    }
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partitions.len() as i32)
    }
}

/// Asks `m` for the metadata of every topic.
pub async fn fetch(m: &Messenger, cluster: &str) -> Result<MetadataSnapshot, ClientError> {
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let (resp, _) = m.send(&req).await.map_err(|source| ClientError::Request {
        cluster: cluster.to_string(),
        source,
    })?;
    let brokers = resp
        .brokers
        .iter()
        .map(|b| {
            let host = b.host.as_str();
            let addr = if host.contains(':') {
                format!("[{host}]:{}", b.port)
            } else {
                format!("{host}:{}", b.port)
            };
            (b.node_id.0, addr)
        })
        .collect();
    let topics = resp
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let name = t.name.as_ref()?.to_string();
            let mut partitions: Vec<(i32, PartitionMeta)> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        PartitionMeta {
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            error_code: p.error_code,
                        },
                    )
                })
                .collect();
            partitions.sort_by_key(|(i, _)| *i);
            Some((
                name,
                TopicMeta {
                    topic_id: t.topic_id,
                    partitions: partitions.into_iter().map(|(_, p)| p).collect(),
                    is_internal: t.is_internal,
                },
            ))
        })
        .collect();
    Ok(MetadataSnapshot {
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
        controller_id: resp.controller_id.0,
        brokers,
        topics,
    })
}
