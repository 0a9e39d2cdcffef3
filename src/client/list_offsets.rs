//! ListOffsets for one partition, as Kafka's own consumer asks it (KIP-320): with the
//! leader epoch the client's metadata knows, so a broker that is no longer the leader, or
//! not yet, answers FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH instead of an offset from
//! a log that is not the leader's (`ReplicaManager.fetchOffsetForTimestamp`). Both are
//! retried with fresh metadata by the one classifier ([`kmirror_wire::errors`]).

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::messenger::{Messenger, RequestError};

use super::{ClientError, ClusterClient};

/// The first ListOffsets version with a partition's `current_leader_epoch`
/// (ListOffsetsRequest.json).
const FIRST_WITH_LEADER_EPOCH: i16 = 4;

/// `timestamp` -2 = earliest, -1 = latest (the last stable offset: read_committed).
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// The offset for `timestamp` of one partition, asked of `m` (its leader), with the
/// partition's `leader_epoch` as the client knows it (-1: unknown, not checked). Returns
/// the partition's error code and offset.
pub async fn list_offset(
    m: &Messenger,
    topic: &str,
    partition: i32,
    leader_epoch: i32,
    timestamp: i64,
) -> Result<(i16, i64), RequestError> {
    let version = m.versions().pick::<ListOffsetsRequest>()?;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(1)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(if version >= FIRST_WITH_LEADER_EPOCH {
                    leader_epoch
                } else {
                    -1
                })
                .with_timestamp(timestamp)])]);
    let resp = m.send_at(&req, version).await?;
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .cloned()
        .unwrap_or_default();
    Ok((p.error_code, p.offset))
}

impl ClusterClient {
    /// The offset for `timestamp` of `topic`/`partition`, asked of its leader with the
    /// leader epoch of the cached metadata; an error code in the answer is an error.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let m = self.leader(topic, partition).await?;
        let epoch = self.metadata().leader_epoch(topic, partition);
        let (code, offset) = list_offset(&m, topic, partition, epoch, timestamp)
            .await
            .map_err(|source| ClientError::Request {
                cluster: self.name().to_string(),
                source,
            })?;
        let what = format!("ListOffsets of {topic}-{partition}");
        match ClientError::from_code(self.name(), &what, code, None) {
            Some(e) => Err(e),
            None => Ok(offset),
        }
    }

    /// The log start offset of `topic`/`partition`, if the cluster answers; a partition
    /// not in the cached metadata yet (a fresh client) refreshes it once.
    pub async fn log_start(&self, topic: &str, partition: i32) -> Option<i64> {
        match self.list_offset(topic, partition, EARLIEST).await {
            Ok(offset) => Some(offset),
            Err(_) => {
                self.refresh_metadata().await.ok()?;
                self.list_offset(topic, partition, EARLIEST).await.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror_wire::errors::ResponseError;

    #[tokio::test]
    async fn the_leader_epoch_the_client_knows_is_checked_by_the_leader() {
        let (_broker, client) =
            crate::client::local_cluster_with_topic("source", "listed", 1).await;
        let epoch = client.metadata().leader_epoch("listed", 0);
        assert!(epoch >= 0, "the metadata names the leader's epoch");
        let m = client.leader("listed", 0).await.unwrap();

        assert_eq!(
            list_offset(&m, "listed", 0, epoch, LATEST).await.unwrap(),
            (0, 0)
        );
        assert_eq!(
            list_offset(&m, "listed", 0, -1, EARLIEST).await.unwrap(),
            (0, 0)
        );
        let (code, _) = list_offset(&m, "listed", 0, epoch + 1, LATEST)
            .await
            .unwrap();
        assert_eq!(
            code,
            ResponseError::UnknownLeaderEpoch.code(),
            "an epoch newer than the leader's is refused, so it was sent"
        );
    }
}
