//! DescribeAcls, CreateAcls and DeleteAcls: with `--authorizer acl`, on the broker's
//! [`crate::acl::Authorizer`] (CLUSTER DESCRIBE to list, CLUSTER ALTER to change); without
//! one, as Kafka answers: SECURITY_DISABLED, for the request (DescribeAcls) or for every
//! creation and filter.
//!
//! Also the authorized-operations bitfields that Metadata, DescribeCluster and
//! DescribeGroups report when asked: with no authorizer, every operation valid for the
//! resource type ([`crate::authz`] computes them with one).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::message;
use crate::acl::{op, resource, supported_operations, AclBinding, AclFilter, Authorizer};
use crate::authz::admin::not_authorized;
use crate::authz::Guard;
use crate::state::Broker;

/// Kafka's `Utils.to32BitField`: bit `code` set for every operation.
const fn bits(ops: &[i8]) -> i32 {
    let mut field = 0;
    let mut i = 0;
    while i < ops.len() {
        field |= 1 << ops[i];
        i += 1;
    }
    field
}

// Kafka: AuthHelper.authorizedOperations (no authorizer: AclEntry.supportedOperations)
/// Every operation on a topic.
pub const TOPIC_OPERATIONS: i32 = bits(supported_operations(resource::TOPIC));
/// Every operation on a group.
pub const GROUP_OPERATIONS: i32 = bits(supported_operations(resource::GROUP));
/// Every operation on a group in `release`: Kafka 4.0 added DESCRIBE_CONFIGS and
/// ALTER_CONFIGS (Kafka: AclEntry.supportedOperations, KAFKA-14510).
pub fn group_operations(release: crate::KafkaRelease) -> i32 {
    if release >= crate::KafkaRelease::V4_0 {
        GROUP_OPERATIONS
    } else {
        bits(&[op::READ, op::DESCRIBE, op::DELETE])
    }
}
/// Every operation on the cluster.
pub const CLUSTER_OPERATIONS: i32 = bits(supported_operations(resource::CLUSTER));

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// The [`AclFilter`] of a DescribeAcls request or a DeleteAcls filter (the same fields,
/// two types in kafka-protocol).
macro_rules! acl_filter {
    ($f:expr) => {
        AclFilter {
            resource_type: $f.resource_type_filter,
            resource_name: text(&$f.resource_name_filter),
            pattern_type: $f.pattern_type_filter,
            principal: text(&$f.principal_filter),
            host: text(&$f.host_filter),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}

/// Kafka: AclApis.handleDescribeAcls (CLUSTER DESCRIBE; no authorizer: SECURITY_DISABLED)
pub fn describe(g: &Guard<'_>, broker: &Broker, req: DescribeAclsRequest) -> DescribeAclsResponse {
    // Kafka validates the filter while parsing, before anything else.
    let filter = acl_filter!(req);
    if let Err(m) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_string(m)));
    }
    let Some(authorizer) = &broker.authorizer else {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::SecurityDisabled.code())
            .with_error_message(message("No Authorizer is configured on the broker"));
    };
    if !g.allows_cluster(op::DESCRIBE) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(not_authorized("DescribeAcls"));
    }
    // One resource per pattern, with its entries (DescribeAclsResponse.aclsResources).
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in authorizer.describe(&filter) {
        resources
            .entry((acl.resource_type, acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(acl.principal))
                    .with_host(StrBytes::from_string(acl.host))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission),
            );
    }
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(
            resources
                .into_iter()
                .map(|((resource_type, name, pattern_type), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(StrBytes::from_string(name))
                        .with_pattern_type(pattern_type)
                        .with_acls(acls)
                })
                .collect(),
        )
}

/// Whether ACLs may be changed: the authorizer, or the error code and message every
/// creation or filter gets (Kafka: AclApis, no authorizer or no CLUSTER ALTER).
fn alterable<'b>(
    g: &Guard<'_>,
    broker: &'b Broker,
    api: &str,
) -> Result<&'b Authorizer, (i16, Option<StrBytes>)> {
    let Some(authorizer) = &broker.authorizer else {
        return Err((
            ResponseError::SecurityDisabled.code(),
            message("No Authorizer is configured."),
        ));
    };
    if !g.allows_cluster(op::ALTER) {
        return Err((
            ResponseError::ClusterAuthorizationFailed.code(),
            not_authorized(api),
        ));
    }
    Ok(authorizer)
}

/// Kafka: AclApis.handleCreateAcls (CLUSTER ALTER; each binding validated as
/// AclControlManager.validateNewAcl; no authorizer: SECURITY_DISABLED)
pub fn create(g: &Guard<'_>, broker: &Broker, req: CreateAclsRequest) -> CreateAclsResponse {
    let authorizer = match alterable(g, broker, "CreateAcls") {
        Ok(a) => a,
        Err((code, text)) => {
            let result = AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(text);
            return CreateAclsResponse::default().with_results(vec![result; req.creations.len()]);
        }
    };
    let bindings: Vec<AclBinding> = req
        .creations
        .iter()
        .map(|c| AclBinding {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let checked: Vec<Result<(), String>> = bindings.iter().map(AclBinding::validate).collect();
    let valid: Vec<AclBinding> = bindings
        .iter()
        .zip(&checked)
        .filter(|(_, c)| c.is_ok())
        .map(|(b, _)| b.clone())
        .collect();
    let stored = authorizer.create(&valid);
    if let Err(e) = &stored {
        tracing::error!(error = %e, "Cannot persist ACLs.");
    }
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(m), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(m))),
            (Ok(()), Err(e)) => AclCreationResult::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
            (Ok(()), Ok(())) => AclCreationResult::default().with_error_message(None),
        })
        .collect();
    for b in &valid {
        tracing::info!(principal = %g.caller.principal, acl = ?b, "ACL created.");
    }
    CreateAclsResponse::default().with_results(results)
}

/// Kafka: AclApis.handleDeleteAcls (CLUSTER ALTER; every filter's matches removed at once;
/// no authorizer: SECURITY_DISABLED)
pub fn delete(g: &Guard<'_>, broker: &Broker, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let refuse = |code: i16, text: Option<StrBytes>| {
        let result = DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(text);
        DeleteAclsResponse::default().with_filter_results(vec![result; req.filters.len()])
    };
    // Kafka validates the filters while parsing, before anything else.
    let filters: Vec<AclFilter> = req.filters.iter().map(|f| acl_filter!(f)).collect();
    if let Some(m) = filters.iter().find_map(|f| f.validate().err()) {
        return refuse(
            ResponseError::InvalidRequest.code(),
            Some(StrBytes::from_string(m)),
        );
    }
    let authorizer = match alterable(g, broker, "DeleteAcls") {
        Ok(a) => a,
        Err((code, text)) => return refuse(code, text),
    };
    let matched = match authorizer.delete(&filters) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "Cannot persist ACLs.");
            return refuse(
                ResponseError::UnknownServerError.code(),
                Some(StrBytes::from_string(e.to_string())),
            );
        }
    };
    let results = matched
        .into_iter()
        .map(|acls| {
            for b in &acls {
                tracing::info!(principal = %g.caller.principal, acl = ?b, "ACL deleted.");
            }
            DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(
                    acls.into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_error_message(None)
                                .with_resource_type(a.resource_type)
                                .with_resource_name(StrBytes::from_string(a.resource_name))
                                .with_pattern_type(a.pattern_type)
                                .with_principal(StrBytes::from_string(a.principal))
                                .with_host(StrBytes::from_string(a.host))
                                .with_operation(a.operation)
                                .with_permission_type(a.permission)
                        })
                        .collect(),
                )
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_match_kafkas_supported_operations() {
        assert_eq!(TOPIC_OPERATIONS, 0b1101_1111_1000);
        assert_eq!(GROUP_OPERATIONS, 0b1101_0100_1000);
        assert_eq!(CLUSTER_OPERATIONS, 0b1_1111_1010_0000);
    }
}
