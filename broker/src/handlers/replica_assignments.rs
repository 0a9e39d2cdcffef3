//! Manual replica assignments of CreateTopics and CreatePartitions, checked as Kafka's
//! controller checks them: registered nodes only, each once, as many per partition as the
//! topic's other partitions, at least one live, and (CreateTopics) partitions numbered
//! 0, 1, 2, ... Every refusal is INVALID_REPLICA_ASSIGNMENT.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::cluster::leadership::{validate_assignment, ElectionError};
use crate::state::Broker;
use crate::topics::{Topic, TopicError};

/// Why a topic or its new partitions were not created: the registry's error, or Kafka's
/// refusal of their replicas.
#[derive(Debug)]
pub enum Refused {
    Topic(TopicError),
    Replicas(ResponseError, String),
}

impl From<TopicError> for Refused {
    fn from(e: TopicError) -> Self {
        Refused::Topic(e)
    }
}

/// Gives the partitions of `topic` from `first` on their `replicas` in the leadership
/// table (written to disk first).
pub fn assign(
    broker: &Broker,
    topic: &Topic,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> Result<(), TopicError> {
    broker
        .cluster
        .assign(topic, first, replicas)
        .map_err(|source| TopicError::Persist {
            path: "leaders.json".into(),
            source,
        })
}

/// Checks one partition's manual assignment; `replication_factor`: the replica count the
/// topic's other partitions have, if known.
// Kafka: ReplicationControlManager.validateManualPartitionAssignment, and the ISR check of
// createTopic and createPartitions
pub fn check(
    broker: &Broker,
    partition: i32,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), String> {
    validate_assignment(replicas, &broker.cluster.node_ids()).map_err(|e| match e {
        ElectionError::InvalidAssignment(message) => message,
        other => other.to_string(),
    })?;
    if let Some(rf) = replication_factor.filter(|&rf| rf != replicas.len()) {
        return Err(format!(
            "The manual partition assignment includes a partition with {} replica(s), but \
             this is not consistent with previous partitions, which have {rf} replica(s).",
            replicas.len()
        ));
    }
    if !replicas.iter().any(|&r| broker.cluster.is_live(r)) {
        return Err(format!(
            "All brokers specified in the manual partition assignment for partition \
             {partition} are fenced or in controlled shutdown."
        ));
    }
    Ok(())
}

/// A new topic's replicas from its manual assignments `(partition, replicas)`, in
/// partition order.
// Kafka: ReplicationControlManager.createTopic (the manual assignment branch)
pub fn for_new_topic(
    broker: &Broker,
    assignments: impl IntoIterator<Item = (i32, Vec<i32>)>,
) -> Result<Vec<Vec<i32>>, String> {
    let mut by_partition = BTreeMap::new();
    let mut replication_factor = None;
    for (partition, replicas) in assignments {
        if by_partition.contains_key(&partition) {
            return Err(format!(
                "Found multiple manual partition assignments for partition {partition}"
            ));
        }
        check(broker, partition, &replicas, replication_factor)?;
        replication_factor = Some(replicas.len());
        by_partition.insert(partition, replicas);
    }
    if !by_partition
        .keys()
        .copied()
        .eq(0..by_partition.len() as i32)
    {
        return Err("partitions should be a consecutive 0-based integer sequence".into());
    }
    Ok(by_partition.into_values().collect())
}
