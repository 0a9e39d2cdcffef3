//! Authorization of the admin APIs: configs (per resource: the cluster's, a topic's or a
//! group's DESCRIBE_CONFIGS or ALTER_CONFIGS); log dirs, leader elections, partition
//! reassignments and SCRAM credentials (CLUSTER DESCRIBE or ALTER); client quotas (CLUSTER
//! DESCRIBE_CONFIGS or ALTER_CONFIGS); the
//! authorized-operations bitfield of DescribeCluster.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{default_message, Guard, CLUSTER_DENIED, GROUP_DENIED, TOPIC_DENIED};
use crate::acl::{op, resource, CLUSTER_NAME};
use crate::handlers::{self, alter_checks};
use crate::state::Broker;

// Kafka: ConfigResource.Type
const CONFIG_TOPIC: i8 = 2;
const CONFIG_GROUP: i8 = 32;

/// Whether the caller may `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) the config
/// resource, and the error code when not (Kafka: ConfigHelper.handleDescribeConfigsRequest,
/// ControllerApis.authorizeAlterResource).
fn config_access(g: &Guard<'_>, operation: i8, resource_type: i8, name: &str) -> Result<(), i16> {
    match resource_type {
        CONFIG_TOPIC => g
            .allows_topic(operation, name)
            .then_some(())
            .ok_or(TOPIC_DENIED),
        CONFIG_GROUP => g
            .allows_group(operation, name)
            .then_some(())
            .ok_or(GROUP_DENIED),
        // BROKER, BROKER_LOGGER, CLIENT_METRICS: the cluster's.
        _ => g
            .allows_cluster(operation)
            .then_some(())
            .ok_or(CLUSTER_DENIED),
    }
}

/// Splits config resources into those the caller may `operation` and the refused ones
/// with their error codes.
fn split_configs<R>(
    g: &Guard<'_>,
    operation: i8,
    resources: Vec<R>,
    key: impl Fn(&R) -> (i8, &str),
) -> (Vec<R>, Vec<(R, i16)>) {
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for r in resources {
        let (resource_type, name) = key(&r);
        match config_access(g, operation, resource_type, name) {
            Ok(()) => kept.push(r),
            Err(code) => refused.push((r, code)),
        }
    }
    (kept, refused)
}

/// Kafka: ConfigHelper.handleDescribeConfigsRequest
pub fn describe_configs(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let (kept, refused) = split_configs(g, op::DESCRIBE_CONFIGS, req.resources, |r| {
        (r.resource_type, &r.resource_name)
    });
    req.resources = kept;
    let mut resp = handlers::configs::describe(broker, req, version);
    resp.results.extend(refused.into_iter().map(|(r, code)| {
        describe_configs_response::DescribeConfigsResult::default()
            .with_error_code(code)
            .with_error_message(default_message(code))
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name)
    }));
    resp
}

/// Kafka: ControllerApis.handleLegacyAlterConfigs (authorizeAlterResource), after
/// ConfigAdminManager.preprocess
pub fn alter_configs(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: AlterConfigsRequest,
    version: i16,
) -> AlterConfigsResponse {
    let invalid = alter_checks::take_refused_legacy(&mut req);
    let (kept, denied) = split_configs(g, op::ALTER_CONFIGS, req.resources, |r| {
        (r.resource_type, &r.resource_name)
    });
    req.resources = kept;
    let mut resp = handlers::configs::alter_checked(broker, req, version);
    resp.responses.extend(alter_checks::legacy_answers(invalid));
    resp.responses.extend(
        denied
            .into_iter()
            .map(|(r, code)| alter_checks::legacy_answer(r, code, default_message(code))),
    );
    resp
}

/// Kafka: KafkaApis.handleIncrementalAlterConfigsRequest, ControllerApis
/// .handleIncrementalAlterConfigs (authorizeAlterResource), after
/// ConfigAdminManager.preprocess
pub fn incremental_alter_configs(
    g: &Guard<'_>,
    broker: &Broker,
    mut req: IncrementalAlterConfigsRequest,
    version: i16,
) -> IncrementalAlterConfigsResponse {
    let invalid = alter_checks::take_refused_incremental(&mut req);
    let (kept, denied) = split_configs(g, op::ALTER_CONFIGS, req.resources, |r| {
        (r.resource_type, &r.resource_name)
    });
    req.resources = kept;
    let mut resp = handlers::configs::incremental_alter_checked(broker, req, version);
    resp.responses
        .extend(alter_checks::incremental_answers(invalid));
    resp.responses.extend(
        denied
            .into_iter()
            .map(|(r, code)| alter_checks::incremental_answer(r, code, default_message(code))),
    );
    resp
}

/// Kafka: KafkaApis.handleDescribeCluster (the bitfield needs CLUSTER DESCRIBE)
pub fn describe_cluster(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut resp = handlers::cluster::describe_cluster(broker, req, version);
    if !g.open() && resp.cluster_authorized_operations != i32::MIN {
        resp.cluster_authorized_operations =
            if g.quietly_allows(op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
                g.operations(
                    resource::CLUSTER,
                    CLUSTER_NAME,
                    handlers::acls::CLUSTER_OPERATIONS,
                )
            } else {
                0
            };
    }
    resp
}

/// Kafka: KafkaApis.handleDescribeLogDirsRequest (CLUSTER DESCRIBE)
pub fn describe_log_dirs(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    if !g.allows_cluster(op::DESCRIBE) {
        return DescribeLogDirsResponse::default().with_error_code(CLUSTER_DENIED);
    }
    handlers::cluster::describe_log_dirs(broker, req, version)
}

/// Kafka: ControllerApis.handleElectLeaders (CLUSTER ALTER; ElectLeadersRequest
/// .getErrorResponse)
pub fn elect_leaders(
    g: &Guard<'_>,
    broker: &Broker,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    if g.allows_cluster(op::ALTER) {
        return handlers::leaders::elect_leaders(broker, req, version);
    }
    handlers::leaders::error_response(req, CLUSTER_DENIED, default_message(CLUSTER_DENIED))
}

/// Kafka: ControllerApis.handleAlterPartitionReassignments (CLUSTER ALTER)
pub fn alter_partition_reassignments(
    g: &Guard<'_>,
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    if g.allows_cluster(op::ALTER) {
        return handlers::leaders::alter_partition_reassignments(broker, req, version);
    }
    let message = default_message(CLUSTER_DENIED);
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(message.clone())
                })
                .collect();
            alter_partition_reassignments_response::ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_error_code(CLUSTER_DENIED)
        .with_error_message(message)
        .with_responses(responses)
}

/// Kafka: ControllerApis.handleListPartitionReassignments (CLUSTER DESCRIBE)
pub fn list_partition_reassignments(
    g: &Guard<'_>,
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
    version: i16,
) -> ListPartitionReassignmentsResponse {
    if g.allows_cluster(op::DESCRIBE) {
        return handlers::leaders::list_partition_reassignments(broker, req, version);
    }
    ListPartitionReassignmentsResponse::default()
        .with_error_code(CLUSTER_DENIED)
        .with_error_message(default_message(CLUSTER_DENIED))
}

/// An error message for a whole request (Kafka: AuthHelper.authorizeClusterOperation).
pub fn not_authorized(api: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(format!(
        "Request {api} is not authorized."
    )))
}

/// Kafka: KafkaApis.handleDescribeUserScramCredentialsRequest (CLUSTER DESCRIBE; else
/// the request's error and each named user's)
pub fn describe_user_scram_credentials(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if g.allows_cluster(op::DESCRIBE) {
        return handlers::user_scram::describe(broker, req);
    }
    let results = req
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                .with_user(u.name)
                .with_error_code(CLUSTER_DENIED)
                .with_error_message(default_message(CLUSTER_DENIED))
        })
        .collect();
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(CLUSTER_DENIED)
        .with_error_message(default_message(CLUSTER_DENIED))
        .with_results(results)
}

/// Kafka: ControllerApis.handleAlterUserScramCredentials (CLUSTER ALTER; else every
/// distinct user, sorted, CLUSTER_AUTHORIZATION_FAILED)
pub fn alter_user_scram_credentials(
    g: &Guard<'_>,
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if g.allows_cluster(op::ALTER) {
        return handlers::user_scram::alter(broker, req);
    }
    let users: std::collections::BTreeSet<StrBytes> = req
        .deletions
        .into_iter()
        .map(|d| d.name)
        .chain(req.upsertions.into_iter().map(|u| u.name))
        .collect();
    let results = users
        .into_iter()
        .map(|user| {
            alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(user)
                .with_error_code(CLUSTER_DENIED)
                .with_error_message(default_message(CLUSTER_DENIED))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Kafka: KafkaApis.handleDescribeClientQuotasRequest (CLUSTER DESCRIBE_CONFIGS; else the
/// request's error)
pub fn describe_client_quotas(
    g: &Guard<'_>,
    broker: &Broker,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if g.allows_cluster(op::DESCRIBE_CONFIGS) {
        return handlers::client_quotas::describe(broker, req);
    }
    DescribeClientQuotasResponse::default()
        .with_error_code(CLUSTER_DENIED)
        .with_error_message(default_message(CLUSTER_DENIED))
}

/// Kafka: ControllerApis.handleAlterClientQuotas (CLUSTER ALTER_CONFIGS; else every entry
/// CLUSTER_AUTHORIZATION_FAILED: AlterClientQuotasRequest.getErrorResponse)
pub fn alter_client_quotas(
    g: &Guard<'_>,
    broker: &Broker,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    if g.allows_cluster(op::ALTER_CONFIGS) {
        return handlers::client_quotas::alter(broker, req);
    }
    let entries = req
        .entries
        .into_iter()
        .map(|entry| {
            let entity = entry
                .entity
                .into_iter()
                .map(|e| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(e.entity_type)
                        .with_entity_name(e.entity_name)
                })
                .collect();
            alter_client_quotas_response::EntryData::default()
                .with_entity(entity)
                .with_error_code(CLUSTER_DENIED)
                .with_error_message(default_message(CLUSTER_DENIED))
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
