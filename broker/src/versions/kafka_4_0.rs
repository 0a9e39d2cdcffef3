//! Kafka 4.0: the API versions its brokers advertise. Generated once by
//! `scripts/kafka_versions.py --emit broker/src/versions`; do not edit by hand.
//! Source: the message JSON at trunk 1eb7644 (2024-10-25, 4.0-dev; `broker` listener),
//! minimums raised to KIP-896's (= the codec's; Produce stays 0, KAFKA-18659), and the
//! bumps merged for 4.0 after that commit:
//! - key 0: max 12, KIP-890 transactions v2 (Produce v12)
//! - key 15: max 6, KIP-1043 GROUP_ID_NOT_FOUND (DescribeGroups v6)
//! - key 26: max 5, KIP-890 (EndTxn v5)
//! - key 28: max 5, KIP-890 (TxnOffsetCommit v5)
//! - key 60: max 2, KIP-1073 fenced brokers (DescribeCluster v2)
//! - key 68: max 1, KIP-848 regular expressions (ConsumerGroupHeartbeat v1)
//! - key 69: max 1, KIP-848 (ConsumerGroupDescribe v1)

use super::Api;

#[rustfmt::skip]
pub const APIS: &[Api] = &[
    Api { key: 0, name: "Produce", min: 0, max: 12 },
    Api { key: 1, name: "Fetch", min: 4, max: 17 },
    Api { key: 2, name: "ListOffsets", min: 1, max: 10 },
    Api { key: 3, name: "Metadata", min: 0, max: 12 },
    Api { key: 8, name: "OffsetCommit", min: 2, max: 9 },
    Api { key: 9, name: "OffsetFetch", min: 1, max: 9 },
    Api { key: 10, name: "FindCoordinator", min: 0, max: 6 },
    Api { key: 11, name: "JoinGroup", min: 0, max: 9 },
    Api { key: 12, name: "Heartbeat", min: 0, max: 4 },
    Api { key: 13, name: "LeaveGroup", min: 0, max: 5 },
    Api { key: 14, name: "SyncGroup", min: 0, max: 5 },
    Api { key: 15, name: "DescribeGroups", min: 0, max: 6 },
    Api { key: 16, name: "ListGroups", min: 0, max: 5 },
    Api { key: 17, name: "SaslHandshake", min: 0, max: 1 },
    Api { key: 18, name: "ApiVersions", min: 0, max: 4 },
    Api { key: 19, name: "CreateTopics", min: 2, max: 7 },
    Api { key: 20, name: "DeleteTopics", min: 1, max: 6 },
    Api { key: 21, name: "DeleteRecords", min: 0, max: 2 },
    Api { key: 22, name: "InitProducerId", min: 0, max: 5 },
    Api { key: 23, name: "OffsetForLeaderEpoch", min: 2, max: 4 },
    Api { key: 24, name: "AddPartitionsToTxn", min: 0, max: 5 },
    Api { key: 25, name: "AddOffsetsToTxn", min: 0, max: 4 },
    Api { key: 26, name: "EndTxn", min: 0, max: 5 },
    Api { key: 27, name: "WriteTxnMarkers", min: 1, max: 1 },
    Api { key: 28, name: "TxnOffsetCommit", min: 0, max: 5 },
    Api { key: 29, name: "DescribeAcls", min: 1, max: 3 },
    Api { key: 30, name: "CreateAcls", min: 1, max: 3 },
    Api { key: 31, name: "DeleteAcls", min: 1, max: 3 },
    Api { key: 32, name: "DescribeConfigs", min: 1, max: 4 },
    Api { key: 33, name: "AlterConfigs", min: 0, max: 2 },
    Api { key: 34, name: "AlterReplicaLogDirs", min: 1, max: 2 },
    Api { key: 35, name: "DescribeLogDirs", min: 1, max: 4 },
    Api { key: 36, name: "SaslAuthenticate", min: 0, max: 2 },
    Api { key: 37, name: "CreatePartitions", min: 0, max: 3 },
    Api { key: 38, name: "CreateDelegationToken", min: 1, max: 3 },
    Api { key: 39, name: "RenewDelegationToken", min: 1, max: 2 },
    Api { key: 40, name: "ExpireDelegationToken", min: 1, max: 2 },
    Api { key: 41, name: "DescribeDelegationToken", min: 1, max: 3 },
    Api { key: 42, name: "DeleteGroups", min: 0, max: 2 },
    Api { key: 43, name: "ElectLeaders", min: 0, max: 2 },
    Api { key: 44, name: "IncrementalAlterConfigs", min: 0, max: 1 },
    Api { key: 45, name: "AlterPartitionReassignments", min: 0, max: 0 },
    Api { key: 46, name: "ListPartitionReassignments", min: 0, max: 0 },
    Api { key: 47, name: "OffsetDelete", min: 0, max: 0 },
    Api { key: 48, name: "DescribeClientQuotas", min: 0, max: 1 },
    Api { key: 49, name: "AlterClientQuotas", min: 0, max: 1 },
    Api { key: 50, name: "DescribeUserScramCredentials", min: 0, max: 0 },
    Api { key: 51, name: "AlterUserScramCredentials", min: 0, max: 0 },
    Api { key: 55, name: "DescribeQuorum", min: 0, max: 2 },
    Api { key: 57, name: "UpdateFeatures", min: 0, max: 2 },
    Api { key: 60, name: "DescribeCluster", min: 0, max: 2 },
    Api { key: 61, name: "DescribeProducers", min: 0, max: 0 },
    Api { key: 64, name: "UnregisterBroker", min: 0, max: 0 },
    Api { key: 65, name: "DescribeTransactions", min: 0, max: 0 },
    Api { key: 66, name: "ListTransactions", min: 0, max: 1 },
    Api { key: 68, name: "ConsumerGroupHeartbeat", min: 0, max: 1 },
    Api { key: 69, name: "ConsumerGroupDescribe", min: 0, max: 1 },
    Api { key: 71, name: "GetTelemetrySubscriptions", min: 0, max: 0 },
    Api { key: 72, name: "PushTelemetry", min: 0, max: 0 },
    Api { key: 74, name: "ListClientMetricsResources", min: 0, max: 0 },
    Api { key: 75, name: "DescribeTopicPartitions", min: 0, max: 0 },
    Api { key: 80, name: "AddRaftVoter", min: 0, max: 0 },
    Api { key: 81, name: "RemoveRaftVoter", min: 0, max: 0 },
];
