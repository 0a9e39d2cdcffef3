//! Request dispatch: frame -> header -> body -> authorization -> handler -> response frame.
//!
//! What the broker implements, at which versions, is [`versions`]'. A request for an
//! unknown API key, an API the broker does not implement,
//! a version outside the advertised range, or a body that does not decode closes the
//! connection with a log line, as Kafka does; ApiVersions at an unknown version gets the
//! KIP-511 fallback answer instead. Handlers never see malformed input.

mod groups;
mod nulls;
mod throttling;
mod versions;

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kmirror_wire::frame::{self, RequestPrefix};

use crate::acl::Caller;
use crate::authz::{self, Guard};
use crate::handlers;
use crate::state::Broker;

pub use versions::VersionTable;

/// What the connection does with a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0: no response at all.
    NoResponse,
    Close(String),
    /// Send the response, then close (a failed SASL exchange).
    RespondAndClose(Bytes, String),
    /// A client over its quota ([`crate::quotas`]): the response (none for acks=0), and
    /// how long the connection then reads nothing.
    Throttled {
        response: Option<Bytes>,
        throttle: std::time::Duration,
    },
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
        // Kafka: RequestContext.isUnsupportedApiVersionsRequest (any version outside the
        // range, negative ones included, is answered at v0)
        if key == ApiKey::ApiVersions {
            return api_versions_fallback(prefix.correlation_id, range.max);
        }
        return Outcome::Close(format!(
            "{key:?} v{version} is outside the supported range {range}"
        ));
    }
    // Header and body, as Kafka counts a request against producer_byte_rate.
    let request_bytes = frame.len();
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
    tracing::trace!(api = ?key, api_version = version, correlation_id = corr, client_id, "Request.");
    let g = &Guard::new(broker, caller);
    if let Some(code) = groups::is_group_api(key)
        .then(|| groups::refusal(broker))
        .flatten()
    {
        return groups::refused(broker, g, (&mut frame, corr, version), key, code).await;
    }
    let at = || throttling::At {
        broker,
        g,
        caller,
        client_id,
        corr,
        version,
        request_bytes,
    };
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
            route_checked(&mut frame, corr, version, nulls::metadata, |r| {
                authz::topics::metadata(g, broker, r, version)
            })
            .await
        }
        ApiKey::Produce => throttling::produce(at(), frame).await,
        ApiKey::Fetch => throttling::fetch(at(), frame).await,
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
            route(&mut frame, corr, version, |r| {
                authz::topics::init_producer_id(g, broker, r, version)
            })
            .await
        }
        ApiKey::AddPartitionsToTxn => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::add_partitions_to_txn(g, broker, r, version)
            })
            .await
        }
        ApiKey::AddOffsetsToTxn => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::add_offsets_to_txn(g, broker, r, version)
            })
            .await
        }
        ApiKey::TxnOffsetCommit => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::txn_offset_commit(g, broker, r, version)
            })
            .await
        }
        ApiKey::EndTxn => {
            route(&mut frame, corr, version, |r| {
                authz::transactions::end_txn(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeProducers => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::describe_producers(g, broker, r, version)
            })
            .await
        }
        ApiKey::ListTransactions => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::list_transactions(g, broker, r, version)
            })
            .await
        }
        ApiKey::DescribeTransactions => {
            sync(&mut frame, corr, version, |r| {
                authz::transactions::describe_transactions(g, broker, r, version)
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
        ApiKey::DescribeClientQuotas => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::describe_client_quotas(g, broker, r)
            })
            .await
        }
        ApiKey::AlterClientQuotas => {
            sync(&mut frame, corr, version, |r| {
                authz::admin::alter_client_quotas(g, broker, r)
            })
            .await
        }
        ApiKey::JoinGroup => {
            let host = java_inet_address(caller.host);
            route(&mut frame, corr, version, |r: JoinGroupRequest| async {
                let resp = match authz::groups::may_join(g, &r) {
                    Some(denied) => denied,
                    None => {
                        broker
                            .groups
                            .join_group_from(r, version, client_id, &host)
                            .await
                    }
                };
                groups::join_answer(resp, version)
            })
            .await
        }
        ApiKey::SyncGroup => {
            route(&mut frame, corr, version, |r: SyncGroupRequest| async {
                let refused = groups::sync_without_protocol(&r, version)
                    .or_else(|| authz::groups::may_sync(g, &r));
                match refused {
                    Some(refused) => refused,
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
            route_checked(&mut frame, corr, version, nulls::offset_fetch, |r| {
                std::future::ready(authz::groups::offset_fetch(g, r, version, |r| {
                    broker.groups.offset_fetch(r, version)
                }))
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
            sync(&mut frame, corr, version, |mut r| {
                groups::distinct_groups(&mut r);
                authz::groups::delete_groups(g, r, |r| broker.groups.delete_groups(r, version))
            })
            .await
        }
        ApiKey::ConsumerGroupHeartbeat => {
            sync(
                &mut frame,
                corr,
                version,
                handlers::consumer_protocol::heartbeat,
            )
            .await
        }
        ApiKey::ConsumerGroupDescribe => {
            sync(
                &mut frame,
                corr,
                version,
                handlers::consumer_protocol::describe,
            )
            .await
        }
        _ => Outcome::Close(format!("API {key:?} is not supported by this broker")),
    }
}

async fn route<R, F, Fut>(frame: &mut Bytes, corr: i32, version: i16, f: F) -> Outcome
where
    R: Request,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = R::Response>,
{
    route_checked(frame, corr, version, |_, _| None, f).await
}

/// [`route`] for a request whose schema forbids a null kafka-protocol reads ([`nulls`]):
/// `forbidden` names the field, and the request is refused as one that does not parse.
async fn route_checked<R, F, Fut>(
    frame: &mut Bytes,
    corr: i32,
    version: i16,
    forbidden: fn(&R, i16) -> Option<&'static str>,
    f: F,
) -> Outcome
where
    R: Request,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = R::Response>,
{
    let req: R = match frame::decode_body(frame, version, "request body") {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("API key {} v{version}: {e}", R::KEY)),
    };
    if let Some(field) = forbidden(&req, version) {
        return Outcome::Close(format!(
            "API key {} v{version}: non-nullable field {field} was serialized as null",
            R::KEY
        ));
    }
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

pub(crate) fn respond<
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
>(
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

/// KIP-511: ApiVersions at a version we do not support (above our range or negative)
/// gets a v0 response with UNSUPPORTED_VERSION and our ApiVersions range, so the client
/// retries lower. Kafka: ApiVersionsRequest.getErrorResponse.
fn api_versions_fallback(corr: i32, max: i16) -> Outcome {
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(0)
            .with_max_version(max)]);
    respond(corr, 0, &resp)
}

/// A client's address as Kafka shows it (Java's InetAddress.toString of an address without
/// a host name): "/127.0.0.1", and IPv6 in full, "/0:0:0:0:0:0:0:1".
fn java_inet_address(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("/{v4}"),
        std::net::IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("/{}", groups.join(":"))
        }
    }
}

#[cfg(test)]
mod address_tests {
    #[test]
    fn client_addresses_read_as_javas() {
        let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(super::java_inet_address(v4), "/127.0.0.1");
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        assert_eq!(super::java_inet_address(v6), "/0:0:0:0:0:0:0:1");
        let v6: std::net::IpAddr = "fe80::a:1".parse().unwrap();
        assert_eq!(super::java_inet_address(v6), "/fe80:0:0:0:0:0:a:1");
    }
}
