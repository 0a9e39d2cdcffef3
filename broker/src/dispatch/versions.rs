//! The one list of what the broker implements ([`range_for`]): for each API, the versions
//! `kafka-protocol` can both decode and encode, capped at what Kafka 4.1 advertises; each
//! broker narrows it to the Kafka release it emulates ([`VersionTable`], built from
//! [`crate::versions`]).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, VersionRange};
use kmirror_wire::versions::codec_range;

use crate::versions::KafkaRelease;

/// `codec_range::<R>()` with the minimum lowered to `min` and the maximum capped at `max`.
///
/// Lowering the minimum is deliberate for Produce: librdkafka before 2.11.1 (Debian's kcat
/// is 2.0.2) only enables gzip/snappy/lz4 when the broker's Produce range contains v0.
/// Clients always pick the highest common version, so v0-2 never arrive in practice; if
/// one does, the body cannot be decoded and the connection is closed.
fn adv<R: Request>(min: Option<i16>, max: Option<i16>) -> VersionRange {
    let r = codec_range::<R>();
    VersionRange {
        min: min.unwrap_or(r.min),
        max: max.map_or(r.max, |m| m.min(r.max)),
    }
}

/// The advertised version range of an API key, or `None` if not implemented.
fn range_for(key: ApiKey) -> Option<VersionRange> {
    Some(match key {
        ApiKey::ApiVersions => adv::<ApiVersionsRequest>(None, None),
        ApiKey::Metadata => adv::<MetadataRequest>(None, None),
        ApiKey::Produce => adv::<ProduceRequest>(Some(0), None),
        // Kafka 4.1 advertises Fetch 4-17; the codec's v18 only adds a follower field.
        ApiKey::Fetch => adv::<FetchRequest>(None, Some(17)),
        ApiKey::ListOffsets => adv::<ListOffsetsRequest>(None, None),
        ApiKey::CreateTopics => adv::<CreateTopicsRequest>(None, None),
        ApiKey::DeleteTopics => adv::<DeleteTopicsRequest>(None, None),
        ApiKey::CreatePartitions => adv::<CreatePartitionsRequest>(None, None),
        ApiKey::FindCoordinator => adv::<FindCoordinatorRequest>(None, None),
        ApiKey::JoinGroup => adv::<JoinGroupRequest>(None, None),
        ApiKey::SyncGroup => adv::<SyncGroupRequest>(None, None),
        ApiKey::Heartbeat => adv::<HeartbeatRequest>(None, None),
        ApiKey::LeaveGroup => adv::<LeaveGroupRequest>(None, None),
        ApiKey::OffsetCommit => adv::<OffsetCommitRequest>(None, None),
        ApiKey::OffsetFetch => adv::<OffsetFetchRequest>(None, None),
        ApiKey::OffsetDelete => adv::<OffsetDeleteRequest>(None, None),
        ApiKey::DescribeGroups => adv::<DescribeGroupsRequest>(None, None),
        ApiKey::ListGroups => adv::<ListGroupsRequest>(None, None),
        ApiKey::DeleteGroups => adv::<DeleteGroupsRequest>(None, None),
        ApiKey::InitProducerId => adv::<InitProducerIdRequest>(None, None),
        // The client forms with transaction.version 0/1: AddPartitionsToTxn v4+ is the
        // brokers' batched verification (KIP-890), EndTxn v5 answers TV2 epochs.
        ApiKey::AddPartitionsToTxn => adv::<AddPartitionsToTxnRequest>(None, Some(3)),
        ApiKey::EndTxn => adv::<EndTxnRequest>(None, Some(4)),
        ApiKey::AddOffsetsToTxn => adv::<AddOffsetsToTxnRequest>(None, None),
        ApiKey::DescribeProducers => adv::<DescribeProducersRequest>(None, None),
        ApiKey::DescribeTransactions => adv::<DescribeTransactionsRequest>(None, None),
        // v2 adds KIP-1152's transactional id pattern (a Java regex): not implemented, so
        // 0-1 as Kafka 3.9 and 4.0 advertise.
        ApiKey::ListTransactions => adv::<ListTransactionsRequest>(None, Some(1)),
        // v5 commits with TV2's implicit add.
        ApiKey::TxnOffsetCommit => adv::<TxnOffsetCommitRequest>(None, Some(4)),
        ApiKey::DescribeConfigs => adv::<DescribeConfigsRequest>(None, None),
        ApiKey::AlterConfigs => adv::<AlterConfigsRequest>(None, None),
        ApiKey::IncrementalAlterConfigs => adv::<IncrementalAlterConfigsRequest>(None, None),
        ApiKey::DescribeCluster => adv::<DescribeClusterRequest>(None, None),
        ApiKey::DescribeClientQuotas => adv::<DescribeClientQuotasRequest>(None, None),
        ApiKey::AlterClientQuotas => adv::<AlterClientQuotasRequest>(None, None),
        ApiKey::OffsetForLeaderEpoch => adv::<OffsetForLeaderEpochRequest>(None, None),
        ApiKey::DeleteRecords => adv::<DeleteRecordsRequest>(None, None),
        ApiKey::DescribeLogDirs => adv::<DescribeLogDirsRequest>(None, None),
        ApiKey::DescribeAcls => adv::<DescribeAclsRequest>(None, None),
        ApiKey::CreateAcls => adv::<CreateAclsRequest>(None, None),
        ApiKey::DeleteAcls => adv::<DeleteAclsRequest>(None, None),
        ApiKey::ElectLeaders => adv::<ElectLeadersRequest>(None, None),
        ApiKey::AlterPartitionReassignments => {
            adv::<AlterPartitionReassignmentsRequest>(None, None)
        }
        ApiKey::ListPartitionReassignments => adv::<ListPartitionReassignmentsRequest>(None, None),
        // 0-1 as Kafka advertises (librdkafka needs v0 in the range to use SASL at all);
        // a v0 handshake, followed by unframed tokens (before KIP-152), is refused.
        ApiKey::SaslHandshake => adv::<SaslHandshakeRequest>(None, None),
        ApiKey::SaslAuthenticate => adv::<SaslAuthenticateRequest>(None, None),
        ApiKey::DescribeUserScramCredentials => {
            adv::<DescribeUserScramCredentialsRequest>(None, None)
        }
        ApiKey::AlterUserScramCredentials => adv::<AlterUserScramCredentialsRequest>(None, None),
        // Advertised, as a Kafka 3.9+ broker without the consumer protocol enabled does,
        // and answered UNSUPPORTED_VERSION ([`crate::handlers::consumer_protocol`]).
        ApiKey::ConsumerGroupHeartbeat => adv::<ConsumerGroupHeartbeatRequest>(None, None),
        ApiKey::ConsumerGroupDescribe => adv::<ConsumerGroupDescribeRequest>(None, None),
        _ => return None,
    })
}

/// What one broker advertises: every implemented API ([`range_for`]) capped at the
/// emulated Kafka release's range; APIs the release did not have are dropped, and so is an
/// API whose capped range is empty (the codec cannot decode what the release spoke).
#[derive(Debug, Clone)]
pub struct VersionTable {
    release: KafkaRelease,
    /// Indexed by API key, for the per-request lookup.
    by_key: Vec<Option<VersionRange>>,
    /// The ApiVersions list, ordered by key.
    advertised: Vec<ApiVersion>,
}

impl VersionTable {
    pub fn new(release: KafkaRelease) -> Self {
        let mut by_key = Vec::new();
        let mut advertised = Vec::new();
        for key in ApiKey::iter() {
            let Some(own) = range_for(key) else { continue };
            let Some(theirs) = release.range(key as i16) else {
                continue;
            };
            let r = own.intersect(&theirs);
            if r.is_empty() {
                continue;
            }
            let i = key as usize;
            if by_key.len() <= i {
                by_key.resize(i + 1, None);
            }
            by_key[i] = Some(r);
            advertised.push(
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(r.min)
                    .with_max_version(r.max),
            );
        }
        advertised.sort_by_key(|a| a.api_key);
        Self {
            release,
            by_key,
            advertised,
        }
    }

    /// The emulated release.
    pub fn release(&self) -> KafkaRelease {
        self.release
    }

    /// Whether the emulated broker runs in ZooKeeper mode (2.8), whose admin requests
    /// `ZkAdminManager` answers, with its own error codes and messages.
    pub fn zookeeper(&self) -> bool {
        self.release == KafkaRelease::V2_8
    }

    /// The advertised range of `key`, or `None` if this broker does not serve it.
    pub fn range(&self, key: ApiKey) -> Option<VersionRange> {
        self.by_key.get(key as usize).copied().flatten()
    }

    /// Every advertised API with its versions, ordered by key (the ApiVersions list).
    pub fn advertised(&self) -> &[ApiVersion] {
        &self.advertised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(t: &VersionTable, key: ApiKey) -> Option<(i16, i16)> {
        t.range(key).map(|r| (r.min, r.max))
    }

    #[test]
    fn kafka_4_1_gets_the_top_versions_the_codec_has() {
        let t = VersionTable::new(KafkaRelease::V4_1);
        assert_eq!(range(&t, ApiKey::Fetch), Some((4, 17)));
        assert_eq!(range(&t, ApiKey::Metadata), Some((0, 13)));
        assert_eq!(range(&t, ApiKey::ListOffsets), Some((1, 10)));
        assert_eq!(range(&t, ApiKey::ApiVersions), Some((0, 4)));
        // Transactions with transaction.version 0/1: the client forms only.
        assert_eq!(range(&t, ApiKey::EndTxn), Some((0, 4)));
        assert_eq!(range(&t, ApiKey::AddPartitionsToTxn), Some((0, 3)));
        assert_eq!(range(&t, ApiKey::TxnOffsetCommit), Some((0, 4)));
        // Not implemented: never advertised, whatever the release had.
        assert_eq!(range(&t, ApiKey::WriteTxnMarkers), None);
        assert_eq!(t.advertised().len(), t.by_key.iter().flatten().count());
    }

    #[test]
    fn kafka_2_8_caps_every_range_and_keeps_codec_minimums() {
        let t = VersionTable::new(KafkaRelease::V2_8);
        assert_eq!(range(&t, ApiKey::Fetch), Some((4, 12)));
        assert_eq!(range(&t, ApiKey::Produce).map(|r| r.1), Some(9));
        assert_eq!(range(&t, ApiKey::Produce).map(|r| r.0), Some(0));
        assert_eq!(range(&t, ApiKey::Metadata), Some((0, 11)));
        assert_eq!(range(&t, ApiKey::ApiVersions), Some((0, 3)));
        assert_eq!(range(&t, ApiKey::DescribeCluster), Some((0, 0)));
        assert_eq!(
            range(&t, ApiKey::DescribeUserScramCredentials),
            Some((0, 0))
        );
        assert_eq!(range(&t, ApiKey::AlterUserScramCredentials), Some((0, 0)));
        for a in t.advertised() {
            let own = ApiKey::try_from(a.api_key)
                .ok()
                .and_then(range_for)
                .unwrap();
            assert!(a.min_version >= own.min && a.max_version <= own.max);
        }
    }
}
