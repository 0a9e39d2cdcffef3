//! ApiVersions: the APIs and versions this broker advertises (its
//! [`crate::dispatch::VersionTable`]) and, from v3 on, the features a broker of the
//! emulated Kafka release reports. Default-valued tagged fields are not sent, which older
//! librdkafka (Debian's kcat) needs.
//!
//! Features are what clients act on, so only what is true here is reported:
//! - `metadata.version`: supported and finalized at the emulated release's level (what
//!   a broker of that release reports; tools such as `kafka-features.sh describe` read it).
//! - `transaction.version` is absent: Kafka 4 finalizes 2, which makes clients use KIP-890
//!   transactions (Produce v12 with TV2 semantics, no AddPartitionsToTxn); this broker has
//!   the transactions of level 0/1 (AddPartitionsToTxn, EndTxn v4 and below), as a cluster
//!   upgraded from 3.x that never raised the level.
//! - `group.version` is absent: Kafka 4 finalizes 1 (KIP-848 consumer groups); this broker
//!   only has classic groups (no ConsumerGroupHeartbeat).
//! - `kraft.version`, `eligible.leader.replicas.version`, `share.version`,
//!   `streams.version` are absent: there is no KRaft quorum, no replication, no share or
//!   streams groups.
//!
//! Absent is how Kafka says "level 0": `BrokerFeatures.defaultSupportedFeatures` leaves out
//! a feature whose highest supported level is 0, and `ApiVersionsResponse` leaves out
//! finalized level 0.

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::errors::ResponseError;

use crate::state::Broker;

/// The epoch of the finalized features. Kafka uses the metadata log offset; here the
/// features never change, so any fixed non-negative value (clients keep the highest seen,
/// starting from -1) is right.
const FINALIZED_FEATURES_EPOCH: i64 = 0;

pub fn handle(broker: &Broker, req: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    // Kafka: KafkaApis.handleApiVersionsRequest -> ApiVersionsRequest.isValid: from v3 the
    // client software name and version must match [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?
    if version >= 3
        && !(software_id(&req.client_software_name) && software_id(&req.client_software_version))
    {
        return ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let mut resp =
        ApiVersionsResponse::default().with_api_keys(broker.versions.advertised().to_vec());
    if version < 3 {
        return resp; // The feature fields are v3+ tagged fields.
    }
    let Some(mv) = broker.versions.release().metadata_version() else {
        return resp;
    };
    let name = StrBytes::from_static_str("metadata.version");
    // Kafka: ApiVersionsResponse.maybeFilterSupportedFeatureKeys (KAFKA-17492) drops
    // features with minimum level 0 below v4; metadata.version's minimum is never 0.
    resp.supported_features = vec![SupportedFeatureKey::default()
        .with_name(name.clone())
        .with_min_version(mv.min)
        .with_max_version(mv.max)];
    resp.finalized_features = vec![FinalizedFeatureKey::default()
        .with_name(name)
        .with_min_version_level(mv.finalized)
        .with_max_version_level(mv.finalized)];
    resp.finalized_features_epoch = FINALIZED_FEATURES_EPOCH;
    resp
}

/// Kafka's SOFTWARE_NAME_VERSION_PATTERN: letters, digits, '-' and '.', starting and ending
/// with a letter or digit.
fn software_id(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() && b.iter().all(inner)
        }
        _ => false,
    }
}
