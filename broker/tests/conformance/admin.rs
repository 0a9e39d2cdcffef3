//! Admin, group and log-management rules: DeleteRecords, OffsetCommit on unknown/Empty
//! groups, config limits, authorized operations, the ACL APIs without an authorizer, and
//! InitProducerId without a transactional id. Config sources and offset expiry
//! ([`crate::admin_configs`]), ListOffsets ([`crate::list_offsets`]) and topic names and
//! config values ([`crate::topics`]) have their own files.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Creates a one-partition topic with `configs`; the topic's error code.
pub async fn create_with(ctx: &Ctx, topic: &str, configs: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(common::name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    match ctx.m.send(&req).await {
        Ok((r, _)) => r.topics[0].error_code,
        Err(_) => -1,
    }
}

/// `Code(0)` when `got == want`, else the difference.
pub fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Got {
    if got == want {
        Got::Code(0)
    } else {
        Got::Answer(format!("{what}: got {got:?}, Kafka answers {want:?}"))
    }
}

// ---- DeleteRecords --------------------------------------------------------------------

/// (error, low watermark) of deleting partition 0 of `topic` before `offset`.
pub async fn delete_records(ctx: &Ctx, topic: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    match ctx.m.send(&req).await {
        Ok((r, _)) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.low_watermark)
        }
        Err(_) => (-1, -1),
    }
}

/// A topic with `configs` holding records 0..5; then DeleteRecords before each offset in
/// turn. The last answer, checked against `want_low_watermark` when it is accepted.
async fn delete_sequence(
    ctx: Ctx,
    configs: &'static [(&'static str, &'static str)],
    offsets: &[i64],
    want_low_watermark: i64,
) -> Got {
    let topic = ctx.topic("dr");
    let code = create_with(&ctx, &topic, configs).await;
    if code != 0 {
        return Got::Code(code);
    }
    common::produce(&ctx.m, &topic, 0, common::batch(5, 1_000)).await;
    let mut last = (0, 0);
    for &o in offsets {
        last = delete_records(&ctx, &topic, o).await;
    }
    match last {
        (0, low) => check("low watermark", low, want_low_watermark),
        (code, _) => Got::Code(code),
    }
}

/// DeleteRecords naming partition 0 of a topic holding records 0..5 twice, in two entries
/// of its topic: before 4, then before 2. The answer's (topic, partition, error, low
/// watermark) results.
async fn delete_named_twice(ctx: Ctx) -> Got {
    let topic = ctx.topic("drtwice");
    common::create_topic(&ctx.m, &topic, 1).await;
    common::produce(&ctx.m, &topic, 0, common::batch(5, 1_000)).await;
    let entry = |offset: i64| {
        DeleteRecordsTopic::default()
            .with_name(common::name(&topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])
    };
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![entry(4), entry(2)]);
    match ctx.m.send(&req).await {
        Ok((r, _)) => {
            let results: Vec<(String, i32, i16, i64)> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.name.to_string(),
                            p.partition_index,
                            p.error_code,
                            p.low_watermark,
                        )
                    })
                })
                .collect();
            check("results", results, vec![(topic, 0, 0, 2)])
        }
        Err(_) => Got::Closed,
    }
}

// ---- OffsetCommit ---------------------------------------------------------------------

/// OffsetCommit of partition 0 of a fresh topic; the partition's error code.
async fn commit(
    ctx: &Ctx,
    group: &str,
    generation: i32,
    member: &str,
    version: i16,
    first: Option<(i32, &str)>,
) -> Got {
    let topic = ctx.topic("oc");
    common::create_topic(&ctx.m, &topic, 1).await;
    let req = |generation: i32, member: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(common::name(&topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(3)])])
    };
    if let Some((g, m)) = first {
        if let Err(e) = ctx.m.send_at(&req(g, m), version).await {
            return Got::Answer(format!("first commit failed: {e}"));
        }
    }
    code_or_closed(
        ctx.m.send_at(&req(generation, member), version).await,
        |r| r.topics[0].partitions[0].error_code,
    )
}

// ---- Config limits --------------------------------------------------------------------

/// IncrementalAlterConfigs (validate only) of one key on `resource`; its error code.
pub async fn alter_one(ctx: &Ctx, resource: (i8, &str), key: &str, value: &str) -> Got {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(true)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource.0)
            .with_resource_name(s(resource.1))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))])]);
    code_or_closed(ctx.m.send(&req).await, |(r, _)| r.responses[0].error_code)
}

// ---- Authorized operations ------------------------------------------------------------

const TOPIC_OPS: i32 = 0b1101_1111_1000;
const GROUP_OPS: i32 = 0b1101_0100_1000;
const CLUSTER_OPS: i32 = 0b1_1111_1010_0000;

/// (topic, cluster) authorized operations of Metadata at `version`.
async fn metadata_ops(ctx: Ctx, version: i16, include: bool, want: (i32, i32)) -> Got {
    let topic = ctx.topic("ops");
    common::create_topic(&ctx.m, &topic, 1).await;
    let mut req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::name(&topic)))
        ]))
        .with_include_topic_authorized_operations(include);
    if version <= 10 {
        req.include_cluster_authorized_operations = include;
    }
    match ctx.m.send_at(&req, version).await {
        Ok(r) => check(
            "(topic, cluster) authorized operations",
            (
                r.topics[0].topic_authorized_operations,
                r.cluster_authorized_operations,
            ),
            want,
        ),
        Err(_) => Got::Closed,
    }
}

async fn describe_cluster_ops(ctx: Ctx, include: bool, want: i32) -> Got {
    let req = DescribeClusterRequest::default().with_include_cluster_authorized_operations(include);
    match ctx.m.send(&req).await {
        Ok((r, _)) => check(
            "cluster authorized operations",
            r.cluster_authorized_operations,
            want,
        ),
        Err(_) => Got::Closed,
    }
}

async fn describe_group_ops(ctx: Ctx, version: i16, want: i32) -> Got {
    let group = ctx.topic("g");
    if let Got::Code(c @ 1..) = commit(&ctx, &group, -1, "", 8, None).await {
        return Got::Code(c);
    }
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(s(&group))])
        .with_include_authorized_operations(version >= 3);
    match ctx.m.send_at(&req, version).await {
        Ok(r) if r.groups[0].error_code != 0 => Got::Code(r.groups[0].error_code),
        Ok(r) => check(
            "group authorized operations",
            r.groups[0].authorized_operations,
            want,
        ),
        Err(_) => Got::Closed,
    }
}

// ---- InitProducerId -------------------------------------------------------------------

async fn init_producer_id(ctx: Ctx, epoch_of_second: Option<i16>) -> Got {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let first = match ctx.m.send_at(&req, 4).await {
        Ok(r) if r.error_code == 0 => r,
        Ok(r) => return Got::Code(r.error_code),
        Err(_) => return Got::Closed,
    };
    let again = req
        .with_producer_id(first.producer_id)
        .with_producer_epoch(epoch_of_second.unwrap_or(first.producer_epoch));
    match ctx.m.send_at(&again, 4).await {
        Ok(r) if r.error_code == 0 => check(
            "(new id?, epoch)",
            (r.producer_id != first.producer_id, r.producer_epoch),
            (true, 0),
        ),
        Ok(r) => Got::Code(r.error_code),
        Err(_) => Got::Closed,
    }
}

// ---- ACLs -----------------------------------------------------------------------------

async fn acl_codes(ctx: Ctx, version: i16) -> Got {
    let describe = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let d = match ctx.m.send_at(&describe, version).await {
        Ok(r) => r.error_code,
        Err(_) => return Got::Closed,
    };
    let create = CreateAclsRequest::default().with_creations(vec![
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        2
    ]);
    let c: Vec<i16> = match ctx.m.send_at(&create, version).await {
        Ok(r) => r.results.iter().map(|x| x.error_code).collect(),
        Err(_) => return Got::Closed,
    };
    let delete = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)]);
    let del: Vec<i16> = match ctx.m.send_at(&delete, version).await {
        Ok(r) => r.filter_results.iter().map(|x| x.error_code).collect(),
        Err(_) => return Got::Closed,
    };
    if c == [d, d] && del == [d] {
        Got::Code(d)
    } else {
        Got::Answer(format!("describe {d}, create {c:?}, delete {del:?}"))
    }
}

/// `(key, min, max)` of the APIs `keys` in ApiVersions, asked on a fresh connection as a
/// client's first request.
async fn advertised(ctx: &Ctx, keys: &[i16]) -> Option<Vec<(i16, i16, i16)>> {
    let m = ctx.connect().await;
    let r = m
        .send_at(&kmirror_wire::messenger::api_versions_request(), 3)
        .await
        .ok()?;
    Some(
        r.api_keys
            .iter()
            .filter(|k| keys.contains(&k.api_key))
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect(),
    )
}

async fn acl_apis_advertised(ctx: Ctx) -> Got {
    match advertised(&ctx, &[29, 30, 31]).await {
        Some(ranges) => check(
            "ACL API ranges",
            ranges,
            vec![(29, 1, 3), (30, 1, 3), (31, 1, 3)],
        ),
        None => Got::Closed,
    }
}

// ---- SASL outside an exchange --------------------------------------------------------

async fn sasl_outside_exchange(ctx: Ctx) -> Got {
    let handshake = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
    let h = match ctx.m.send_at(&handshake, 1).await {
        Ok(r) => r.error_code,
        Err(_) => return Got::Closed,
    };
    let auth =
        SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(b"\0u\0p"));
    let a = match ctx.m.send_at(&auth, 2).await {
        Ok(r) => r.error_code,
        Err(_) => return Got::Closed,
    };
    if h == a {
        Got::Code(h)
    } else {
        Got::Answer(format!("handshake {h}, authenticate {a}"))
    }
}

async fn sasl_apis_advertised(ctx: Ctx) -> Got {
    match advertised(&ctx, &[17, 36]).await {
        Some(ranges) => check("SASL API ranges", ranges, vec![(17, 0, 1), (36, 0, 2)]),
        None => Got::Closed,
    }
}

const ILLEGAL_SASL_STATE: i16 = 34;
const SECURITY_DISABLED: i16 = 54;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const ILLEGAL_GENERATION: i16 = 22;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
const GROUP_ID_NOT_FOUND: i16 = 69;

macro_rules! row {
    ($rule:expr, $kafka:expr, $expect:expr, |$ctx:ident| $body:expr) => {
        row!($rule, $kafka, $expect, None, |$ctx| $body)
    };
    ($rule:expr, $kafka:expr, $expect:expr, $config:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: $kafka,
            expect: $expect,
            config: $config,
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}
pub(crate) use row;

pub fn rows() -> Vec<Row> {
    let mut rows = vec![
        row!(
            "SaslHandshake and SaslAuthenticate on a listener without SASL: ILLEGAL_SASL_STATE",
            "KafkaApis.handleSaslHandshakeRequest / handleSaslAuthenticateRequest",
            Got::Code(ILLEGAL_SASL_STATE),
            |ctx| sasl_outside_exchange(ctx).await
        ),
        row!(
            "ApiVersions advertises SaslHandshake 0-1 and SaslAuthenticate 0-2, as Kafka 4.1",
            "ApiVersionsResponse (SaslHandshakeRequest.json, SaslAuthenticateRequest.json)",
            Got::Code(0),
            |ctx| sasl_apis_advertised(ctx).await
        ),
        row!(
            "DeleteRecords below the log start is a no-op success, low watermark = log start",
            "Partition.deleteRecordsOnLeader / UnifiedLog.maybeIncrementLogStartOffset",
            Got::Code(0),
            |ctx| delete_sequence(ctx, &[], &[3, 1], 3).await
        ),
        row!(
            "DeleteRecords naming a partition twice: deleted up to the last offset named, answered once",
            "KafkaApis.handleDeleteRecordsRequest (keyed by partition)",
            Got::Code(0),
            |ctx| delete_named_twice(ctx).await
        ),
        row!(
            "DeleteRecords past the high watermark: OFFSET_OUT_OF_RANGE",
            "UnifiedLog.maybeIncrementLogStartOffset",
            Got::Code(OFFSET_OUT_OF_RANGE),
            |ctx| delete_sequence(ctx, &[], &[6], 0).await
        ),
        row!(
            "DeleteRecords at a negative offset other than -1: OFFSET_OUT_OF_RANGE",
            "Partition.deleteRecordsOnLeader",
            Got::Code(OFFSET_OUT_OF_RANGE),
            |ctx| delete_sequence(ctx, &[], &[-2], 0).await
        ),
        row!(
            "DeleteRecords on a compact-only topic: POLICY_VIOLATION",
            "Partition.deleteRecordsOnLeader",
            Got::Code(POLICY_VIOLATION),
            |ctx| delete_sequence(ctx, &[("cleanup.policy", "compact")], &[2], 0).await
        ),
        row!(
            "DeleteRecords on a compact,delete topic is allowed",
            "Partition.deleteRecordsOnLeader",
            Got::Code(0),
            |ctx| delete_sequence(ctx, &[("cleanup.policy", "compact,delete")], &[2], 2).await
        ),
        row!(
            "OffsetCommit v9, unknown group, generation >= 0: GROUP_ID_NOT_FOUND",
            "OffsetMetadataManager.validateOffsetCommit",
            Got::Code(GROUP_ID_NOT_FOUND),
            |ctx| commit(&ctx, &ctx.topic("g"), 1, "m", 9, None).await
        ),
        row!(
            "OffsetCommit v8, unknown group, generation >= 0: ILLEGAL_GENERATION",
            "OffsetMetadataManager.validateOffsetCommit",
            Got::Code(ILLEGAL_GENERATION),
            |ctx| commit(&ctx, &ctx.topic("g"), 1, "m", 8, None).await
        ),
        row!(
            "OffsetCommit, generation -1 with a stale member id on an Empty group is accepted",
            "ClassicGroup.validateOffsetCommit",
            Got::Code(0),
            |ctx| commit(&ctx, &ctx.topic("g"), -1, "stale", 9, Some((-1, ""))).await
        ),
        row!(
            "CreateTopics segment.bytes below 1 MiB: INVALID_CONFIG",
            "LogConfig (KIP-1030)",
            Got::Code(INVALID_CONFIG),
            |ctx| Got::Code(
                create_with(&ctx, &ctx.topic("seg"), &[("segment.bytes", "1048575")]).await
            )
        ),
        row!(
            "CreateTopics segment.bytes of 1 MiB is accepted",
            "LogConfig (KIP-1030)",
            Got::Code(0),
            |ctx| Got::Code(
                create_with(&ctx, &ctx.topic("seg"), &[("segment.bytes", "1048576")]).await
            )
        ),
        row!(
            "IncrementalAlterConfigs topic segment.bytes below 1 MiB: INVALID_CONFIG",
            "LogConfig (KIP-1030)",
            Got::Code(INVALID_CONFIG),
            |ctx| {
                let t = ctx.topic("seg");
                common::create_topic(&ctx.m, &t, 1).await;
                alter_one(&ctx, (2, &t), "segment.bytes", "16384").await
            }
        ),
        row!(
            "IncrementalAlterConfigs broker log.segment.bytes below 1 MiB: INVALID_REQUEST",
            "ServerLogConfigs (KIP-1030); ConfigAdminManager.validateBrokerConfigChange (KAFKA-13609)",
            Got::Code(INVALID_REQUEST),
            |ctx| alter_one(&ctx, (4, "0"), "log.segment.bytes", "1000").await
        ),
        row!(
            "IncrementalAlterConfigs broker log.retention.ms=abc: INVALID_REQUEST",
            "ConfigAdminManager.validateBrokerConfigChange (KAFKA-13609)",
            Got::Code(INVALID_REQUEST),
            |ctx| alter_one(&ctx, (4, "0"), "log.retention.ms", "abc").await
        ),
        row!(
            "IncrementalAlterConfigs broker log.segment.bytes of 1 MiB is accepted",
            "ServerLogConfigs (KIP-1030)",
            Got::Code(0),
            |ctx| alter_one(&ctx, (4, "0"), "log.segment.bytes", "1048576").await
        ),
        row!(
            "Metadata v9 asked for authorized operations: all topic and cluster operations",
            "KafkaApis.handleTopicMetadataRequest / AuthHelper.authorizedOperations",
            Got::Code(0),
            |ctx| metadata_ops(ctx, 9, true, (TOPIC_OPS, CLUSTER_OPS)).await
        ),
        row!(
            "Metadata v9 not asked: authorized operations not provided (INT32_MIN)",
            "KafkaApis.handleTopicMetadataRequest",
            Got::Code(0),
            |ctx| metadata_ops(ctx, 9, false, (i32::MIN, i32::MIN)).await
        ),
        row!(
            "Metadata v12 asked: topic operations; no cluster field at v11+",
            "KafkaApis.handleTopicMetadataRequest",
            Got::Code(0),
            |ctx| metadata_ops(ctx, 12, true, (TOPIC_OPS, i32::MIN)).await
        ),
        row!(
            "DescribeCluster asked for authorized operations: all cluster operations",
            "KafkaApis.handleDescribeCluster",
            Got::Code(0),
            |ctx| describe_cluster_ops(ctx, true, CLUSTER_OPS).await
        ),
        row!(
            "DescribeCluster not asked: INT32_MIN",
            "KafkaApis.handleDescribeCluster",
            Got::Code(0),
            |ctx| describe_cluster_ops(ctx, false, i32::MIN).await
        ),
        row!(
            "DescribeGroups v5 asked for authorized operations: all group operations",
            "KafkaApis.handleDescribeGroupsRequest",
            Got::Code(0),
            |ctx| describe_group_ops(ctx, 5, GROUP_OPS).await
        ),
        row!(
            "Kafka 3.0: DescribeGroups v5 authorized operations are READ, DESCRIBE and DELETE",
            "AclEntry.supportedOperations (group configs came with 4.0, KAFKA-14510)",
            Got::Code(0),
            Some(crate::transactions::emulate_3_0),
            |ctx| describe_group_ops(ctx, 5, 1 << 3 | 1 << 6 | 1 << 8).await // READ, DELETE, DESCRIBE
        ),
        row!(
            "DescribeGroups v2 (no such field): INT32_MIN",
            "KafkaApis.handleDescribeGroupsRequest",
            Got::Code(0),
            |ctx| describe_group_ops(ctx, 2, i32::MIN).await
        ),
        row!(
            "DescribeAcls/CreateAcls/DeleteAcls are advertised at v1-3",
            "ApiKeys (KIP-896 minimums)",
            Got::Code(0),
            |ctx| acl_apis_advertised(ctx).await
        ),
        row!(
            "DescribeAcls/CreateAcls/DeleteAcls without an authorizer: SECURITY_DISABLED",
            "AclApis.handleDescribeAcls / handleCreateAcls / handleDeleteAcls",
            Got::Code(SECURITY_DISABLED),
            |ctx| acl_codes(ctx, 3).await
        ),
        row!(
            "InitProducerId with the producer's id and epoch, no transactional id: new id, epoch 0",
            "TransactionCoordinator.handleInitProducerId",
            Got::Code(0),
            |ctx| init_producer_id(ctx, None).await
        ),
        row!(
            "InitProducerId with a producer id but epoch -1: INVALID_REQUEST",
            "KafkaApis.handleInitProducerIdRequest",
            Got::Code(INVALID_REQUEST),
            |ctx| init_producer_id(ctx, Some(-1)).await
        ),
    ];
    rows.extend(crate::admin_configs::rows());
    rows
}
