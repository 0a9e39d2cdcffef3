//! DescribeAcls, CreateAcls and DeleteAcls as Kafka answers them without an authorizer:
//! SECURITY_DISABLED, for the request (DescribeAcls) or for every creation and filter.
//!
//! Also the authorized-operations bitfields that Metadata, DescribeCluster and
//! DescribeGroups report when asked: with no authorizer, every operation valid for the
//! resource type.
//!
//! Not here: ACL storage or enforcement. This broker has no authorizer, so every client is
//! allowed everything; the APIs exist so that tools which sync or list ACLs (MirrorMaker 2's
//! `sync.topic.acls.enabled`, kafka-acls.sh) get Kafka's answer instead of a closed
//! connection.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

use super::message;

// AclOperation codes (Kafka: AclOperation.java).
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// Kafka's `Utils.to32BitField`: bit `code` set for every operation.
const fn bits(ops: &[u8]) -> i32 {
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
pub const TOPIC_OPERATIONS: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DESCRIBE,
    DELETE,
    ALTER,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);
/// Every operation on a group.
pub const GROUP_OPERATIONS: i32 = bits(&[READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS]);
/// Every operation on the cluster.
pub const CLUSTER_OPERATIONS: i32 = bits(&[
    CREATE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    ALTER,
    DESCRIBE,
]);

/// Kafka: AclApis.handleDescribeAcls (no authorizer: SECURITY_DISABLED with this message)
pub fn describe(req: DescribeAclsRequest) -> DescribeAclsResponse {
    tracing::debug!(
        resource_type = req.resource_type_filter,
        "DescribeAcls without an authorizer."
    );
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(message("No Authorizer is configured on the broker"))
}

/// Kafka: AclApis.handleCreateAcls → CreateAclsRequest.getErrorResponse (one
/// SECURITY_DISABLED result per creation)
pub fn create(req: CreateAclsRequest) -> CreateAclsResponse {
    let result = AclCreationResult::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(message("No Authorizer is configured."));
    CreateAclsResponse::default().with_results(vec![result; req.creations.len()])
}

/// Kafka: AclApis.handleDeleteAcls → DeleteAclsRequest.getErrorResponse (one
/// SECURITY_DISABLED result per filter)
pub fn delete(req: DeleteAclsRequest) -> DeleteAclsResponse {
    let result = DeleteAclsFilterResult::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(message("No Authorizer is configured."));
    DeleteAclsResponse::default().with_filter_results(vec![result; req.filters.len()])
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
