//! Request dispatch: frame -> header -> body -> handler -> response frame.
//!
//! Holds the one list of what the broker implements ([`range_for`]): for each API, the
//! versions `kafka-protocol` can both decode and encode, capped at what Kafka 4.1
//! advertises. Each broker narrows it to the Kafka release it emulates ([`VersionTable`],
//! built from [`crate::versions`]). A request for an unknown API key, an API the broker does not implement,
//! a version outside the advertised range, or a body that does not decode closes the
//! connection with a log line, as Kafka does; ApiVersions at an unknown version gets the
//! KIP-511 fallback answer instead. Handlers never see malformed input.

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use kmirror_wire::frame::{self, RequestPrefix};
use kmirror_wire::versions::codec_range;

use crate::acl::Caller;
use crate::authz::{self, Guard};
use crate::handlers;
use crate::state::Broker;
use crate::versions::KafkaRelease;

/// What the connection does with a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0: no response at all.
    NoResponse,
    Close(String),
    /// Send the response, then close (a failed SASL exchange).
    RespondAndClose(Bytes, String),
}

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
        ApiKey::DescribeConfigs => adv::<DescribeConfigsRequest>(None, None),
        ApiKey::AlterConfigs => adv::<AlterConfigsRequest>(None, None),
        ApiKey::IncrementalAlterConfigs => adv::<IncrementalAlterConfigsRequest>(None, None),
        ApiKey::DescribeCluster => adv::<DescribeClusterRequest>(None, None),
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

    /// The advertised range of `key`, or `None` if this broker does not serve it.
    pub fn range(&self, key: ApiKey) -> Option<VersionRange> {
        self.by_key.get(key as usize).copied().flatten()
    }

    /// Every advertised API with its versions, ordered by key (the ApiVersions list).
    pub fn advertised(&self) -> &[ApiVersion] {
        &self.advertised
    }
}

/// Handles one request frame.
pub async fn handle(broker: &Broker, caller: &Caller, mut frame: Bytes) -> Outcome {
    let prefix = match RequestPrefix::peek(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let Ok(key) = ApiKey::try_from(prefix.api_key) else {
        return Outcome::Close(format!("unknown API key {}", prefix.api_key));
    };
    let Some(range) = broker.versions.range(key) else {
        return Outcome::Close(format!("API {key:?} is not supported by this broker"));
    };
    let version = prefix.api_version;
    if version < range.min || version > range.max {
        if key == ApiKey::ApiVersions && version > range.max {
            return api_versions_fallback(prefix.correlation_id, range.max);
        }
        return Outcome::Close(format!(
            "{key:?} v{version} is outside the supported range {range}"
        ));
    }
    let header = match frame::decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let corr = header.correlation_id;
    let client_id = header
        .client_id
        .as_ref()
        .map(|s| s.as_str())
        .unwrap_or("")
        .to_string();
    let client_id = client_id.as_str();
    let g = &Guard::new(broker, caller);
    if is_group_api(key) && broker.config.node_id != broker.cluster.coordinator().node_id {
        return not_coordinator(g, &mut frame, corr, version, key).await;
    }
    match key {
        // Outside a SASL exchange (a listener without SASL, or after authentication):
        // KafkaApis.handleSaslHandshakeRequest / handleSaslAuthenticateRequest.
        ApiKey::SaslHandshake => {
            sync(&mut frame, corr, version, |_: SaslHandshakeRequest| {
                SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
            })
            .await
        }
        ApiKey::SaslAuthenticate => {
            sync(&mut frame, corr, version, |_: SaslAuthenticateRequest| {
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate request received after successful authentication",
                    )))
            })
            .await
        }
        ApiKey::ApiVersions => {
            sync(&mut frame, corr, version, |r| {
                handlers::api_versions::handle(broker, r, version)
            })
            .await
        }
        ApiKey::Metadata => {
            route(&mut frame, corr, version, |r| {
                authz::topics::metadata(g, broker, r, version)
            })
            .await
        }
        ApiKey::Produce => {
            let req: ProduceRequest = match frame::decode_body(&mut frame, version, "Produce") {
                Ok(r) => r,
                Err(e) => return Outcome::Close(e.to_string()),
            };
            let acks = req.acks;
            let resp = authz::topics::produce(g, broker, req, version).await;
            if acks == 0 {
                // Kafka: KafkaApis.handleProduceRequest closes the connection when an
                // acks=0 request fails, so the producer refreshes its metadata.
                if handlers::produce::has_error(&resp) {
                    return Outcome::Close("Produce with acks=0 failed".into());
                }
                return Outcome::NoResponse;
            }
            respond(corr, version, &resp)
        }
        ApiKey::Fetch => {
            route(&mut frame, corr, version, |r| {
                authz::topics::fetch(g, broker, r, version)
            })
            .await
        }
        ApiKey::ListOffsets => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::list_offsets(g, broker, r, version)
            })
            .await
        }
        ApiKey::CreateTopics => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::create_topics(g, broker, r, version)
            })
            .await
        }
        ApiKey::DeleteTopics => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::delete_topics(g, broker, r, version)
            })
            .await
        }
        ApiKey::CreatePartitions => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::create_partitions(g, broker, r, version)
            })
            .await
        }
        ApiKey::FindCoordinator => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::find_coordinator(g, broker, r, version)
            })
            .await
        }
        ApiKey::InitProducerId => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::init_producer_id(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeConfigs => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::describe_configs(g, broker, r, version)
            })
            .await
        }
        ApiKey::AlterConfigs => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::alter_configs(g, broker, r, version)
            })
            .await
        }
        ApiKey::IncrementalAlterConfigs => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::incremental_alter_configs(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeCluster => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::describe_cluster(g, broker, r, version)
            })
            .await
        }
        ApiKey::OffsetForLeaderEpoch => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::offset_for_leader_epoch(g, broker, r, version)
            })
            .await
        }
        ApiKey::DeleteRecords => {
            sync(&mut frame, corr, version, |r| {
                authz::topics::delete_records(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeLogDirs => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::describe_log_dirs(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeAcls => {
            sync(&mut frame, corr, version, |r| {
                handlers::acls::describe(g, broker, r)
            })
            .await
        }
        ApiKey::CreateAcls => {
            sync(&mut frame, corr, version, |r| {
                handlers::acls::create(g, broker, r)
            })
            .await
        }
        ApiKey::DeleteAcls => {
            sync(&mut frame, corr, version, |r| {
                handlers::acls::delete(g, broker, r)
            })
            .await
        }
        ApiKey::ElectLeaders => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::elect_leaders(g, broker, r, version)
            })
            .await
        }
        ApiKey::AlterPartitionReassignments => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::alter_partition_reassignments(g, broker, r, version)
            })
            .await
        }
        ApiKey::ListPartitionReassignments => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::list_partition_reassignments(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeUserScramCredentials => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::describe_user_scram_credentials(g, broker, r)
            })
            .await
        }
        ApiKey::AlterUserScramCredentials => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::alter_user_scram_credentials(g, broker, r)
            })
            .await
        }
        ApiKey::JoinGroup => {
            let host = caller.host.to_string();
            route(&mut frame, corr, version, |r: JoinGroupRequest| async {
                match authz::groups::may_join(g, &r) {
                    Some(denied) => denied,
                    None => {
                        broker
                            .groups
                            .join_group_from(r, version, client_id, &host)
                            .await
                    }
                }
            })
            .await
        }
        ApiKey::SyncGroup => {
            route(&mut frame, corr, version, |r: SyncGroupRequest| async {
                match authz::groups::may_sync(g, &r) {
                    Some(denied) => denied,
                    None => broker.groups.sync_group(r, version).await,
                }
            })
            .await
        }
        ApiKey::Heartbeat => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::may_heartbeat(g, &r)
                    .unwrap_or_else(|| broker.groups.heartbeat(r, version))
            })
            .await
        }
        ApiKey::LeaveGroup => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::may_leave(g, &r)
                    .unwrap_or_else(|| broker.groups.leave_group(r, version))
            })
            .await
        }
        ApiKey::OffsetCommit => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::offset_commit(g, r, |r| broker.groups.offset_commit(r, version))
            })
            .await
        }
        ApiKey::OffsetFetch => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::offset_fetch(g, r, version, |r| {
                    broker.groups.offset_fetch(r, version)
                })
            })
            .await
        }
        ApiKey::OffsetDelete => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::offset_delete(g, r, |r| broker.groups.offset_delete(r, version))
            })
            .await
        }
        ApiKey::DescribeGroups => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::describe_groups(g, r, |r| broker.groups.describe_groups(r, version))
            })
            .await
        }
        ApiKey::ListGroups => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::list_groups(g, r, |r| broker.groups.list_groups(r, version))
            })
            .await
        }
        ApiKey::DeleteGroups => {
            sync(&mut frame, corr, version, |r| {
                authz::groups::delete_groups(g, r, |r| broker.groups.delete_groups(r, version))
            })
            .await
        }
        _ => Outcome::Close(format!("API {key:?} is not supported by this broker")),
    }
}

fn is_group_api(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::OffsetDelete
            | ApiKey::DescribeGroups
            | ApiKey::ListGroups
            | ApiKey::DeleteGroups
    )
}

/// A group request on a node that does not coordinate groups: authorized first, as
/// KafkaApis does, then NOT_COORDINATOR.
async fn not_coordinator(
    g: &Guard<'_>,
    frame: &mut Bytes,
    corr: i32,
    version: i16,
    key: ApiKey,
) -> Outcome {
    use authz::groups as az;
    use handlers::not_coordinator as nc;
    match key {
        ApiKey::JoinGroup => {
            sync(frame, corr, version, |r| {
                az::may_join(g, &r).unwrap_or_else(|| nc::join_group(r))
            })
            .await
        }
        ApiKey::SyncGroup => {
            sync(frame, corr, version, |r| {
                az::may_sync(g, &r).unwrap_or_else(|| nc::sync_group(r))
            })
            .await
        }
        ApiKey::Heartbeat => {
            sync(frame, corr, version, |r| {
                az::may_heartbeat(g, &r).unwrap_or_else(|| nc::heartbeat(r))
            })
            .await
        }
        ApiKey::LeaveGroup => {
            sync(frame, corr, version, |r| {
                az::may_leave(g, &r).unwrap_or_else(|| nc::leave_group(r))
            })
            .await
        }
        ApiKey::OffsetCommit => {
            sync(frame, corr, version, |r| {
                az::offset_commit(g, r, nc::offset_commit)
            })
            .await
        }
        ApiKey::OffsetFetch => {
            sync(frame, corr, version, |r| {
                az::offset_fetch(g, r, version, |r| nc::offset_fetch(r, version))
            })
            .await
        }
        ApiKey::OffsetDelete => {
            sync(frame, corr, version, |r| {
                az::offset_delete(g, r, nc::offset_delete)
            })
            .await
        }
        ApiKey::DescribeGroups => {
            sync(frame, corr, version, |r| {
                az::describe_groups(g, r, nc::describe_groups)
            })
            .await
        }
        ApiKey::ListGroups => {
            sync(frame, corr, version, |r| {
                az::list_groups(g, r, nc::list_groups)
            })
            .await
        }
        ApiKey::DeleteGroups => {
            sync(frame, corr, version, |r| {
                az::delete_groups(g, r, nc::delete_groups)
            })
            .await
        }
        other => Outcome::Close(format!("{other:?} is not a group API")),
    }
}

async fn route<R, F, Fut>(frame: &mut Bytes, corr: i32, version: i16, f: F) -> Outcome
where
    R: Request,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = R::Response>,
{
    let req: R = match frame::decode_body(frame, version, "request body") {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("API key {} v{version}: {e}", R::KEY)),
    };
    let resp = f(req).await;
    respond(corr, version, &resp)
}

/// [`route`] for handlers that do not wait.
pub(crate) async fn sync<R: Request>(
    frame: &mut Bytes,
    corr: i32,
    version: i16,
    f: impl FnOnce(R) -> R::Response,
) -> Outcome {
    route(frame, corr, version, |r| std::future::ready(f(r))).await
}

/// Room for a response header: correlation id and an empty tagged-fields section.
const RESPONSE_HEADER_BYTES: usize = 8;

fn respond<R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion>(
    corr: i32,
    version: i16,
    resp: &R,
) -> Outcome {
    // Into a buffer reused across responses: a multi-MiB Fetch response no longer costs a
    // freshly allocated, zeroed and faulted-in buffer each time.
    let size = resp.compute_size(version).unwrap_or(0) + RESPONSE_HEADER_BYTES;
    match crate::buffers::encode(size, |buf| {
        frame::encode_response_into(buf, corr, version, resp)
    }) {
        Ok(b) => Outcome::Respond(b),
        Err(e) => {
            // A response the codec refuses is a broker bug; say so loudly, keep running.
            tracing::error!(error = %e, version, "Cannot encode response; closing connection.");
            Outcome::Close(e.to_string())
        }
    }
}

/// KIP-511: ApiVersions at a version we do not know gets a v0 response with
/// UNSUPPORTED_VERSION and our ApiVersions range, so the client retries lower.
fn api_versions_fallback(corr: i32, max: i16) -> Outcome {
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(0)
            .with_max_version(max)]);
    respond(corr, 0, &resp)
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
        // Not implemented: never advertised, whatever the release had.
        assert_eq!(range(&t, ApiKey::EndTxn), None);
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
