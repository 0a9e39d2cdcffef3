//! Authorization rules (`--authorizer acl`): each row runs on its own broker whose only
//! ACL lets User:ANONYMOUS (these rows' plaintext principal) READ group `granted`; nothing
//! else is allowed, and no row's principal is a super user. Kafka answers a denied
//! resource with its *_AUTHORIZATION_FAILED code before looking for it.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kmirror_broker::BrokerConfig;
use kmirror_wire::messenger::{Messenger, MessengerConfig};
use uuid::Uuid;

use crate::admin::s;
use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const NOT_COORDINATOR: i16 = 16;

/// An authorizer whose ACLs let `User:ANONYMOUS` READ group `granted`, and CREATE and
/// DELETE (but not DESCRIBE) topics named `deletable*` (in the data directory's
/// `acls.json`, as CreateAcls would have stored them).
fn authorizer(c: &mut BrokerConfig) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let acls = r#"[{"resource_type":3,"resource_name":"granted","pattern_type":3,
        "principal":"User:ANONYMOUS","host":"*","operation":3,"permission":3},
        {"resource_type":2,"resource_name":"deletable","pattern_type":4,
        "principal":"User:ANONYMOUS","host":"*","operation":5,"permission":3},
        {"resource_type":2,"resource_name":"deletable","pattern_type":4,
        "principal":"User:ANONYMOUS","host":"*","operation":6,"permission":3},
        {"resource_type":2,"resource_name":"deletable","pattern_type":4,
        "principal":"User:ANONYMOUS","host":"*","operation":8,"permission":2}]"#;
    std::fs::write(dir.join("acls.json"), acls).expect("acls.json");
    c.data_dir = Some(dir);
    c.acl_super_users = Some(vec!["User:admin".into()]);
}

/// [`authorizer`] with one more ACL for `User:ANONYMOUS` (allowed, any host) on
/// `resource_name` of `resource_type` with `pattern_type`, for `operation`.
fn authorizer_and(
    c: &mut BrokerConfig,
    (resource_type, resource_name, pattern_type): (i8, &str, i8),
    operation: i8,
) {
    authorizer(c);
    let acls = c.data_dir.as_ref().expect("data dir").join("acls.json");
    let mut all: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&acls).expect("acls")).expect("json");
    all.push(
        serde_json::json!({"resource_type":resource_type,"resource_name":resource_name,
        "pattern_type":pattern_type,"principal":"User:ANONYMOUS","host":"*",
        "operation":operation,"permission":3}),
    );
    std::fs::write(&acls, serde_json::to_string(&all).expect("json")).expect("acls.json");
}

/// [`authorizer`] on a broker emulating Kafka 2.8.
fn authorizer_2_8(c: &mut BrokerConfig) {
    authorizer(c);
    c.emulate_kafka = kmirror_broker::KafkaRelease::V2_8;
}

/// OffsetFetch (v0-7) of partitions 0 and 1 of topic "t" for group "denied".
fn denied_offset_fetch() -> OffsetFetchRequest {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s("denied")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(common::name("t"))
            .with_partition_indexes(vec![0, 1])]))
}

/// [`denied_offset_fetch`] at v1: the code of its first partition, or how many partitions
/// it answered when none.
async fn offset_fetch_v1_denied(ctx: Ctx) -> Got {
    match ctx.m.send_at(&denied_offset_fetch(), 1).await {
        Ok(r) => match r.topics.first().and_then(|t| t.partitions.first()) {
            Some(p) => Got::Code(p.error_code),
            None => Got::Value(0),
        },
        Err(_) => Got::Closed,
    }
}

/// [`authorizer`], and CLUSTER_ACTION on the cluster (what a follower broker has).
fn authorizer_with_cluster_action(c: &mut BrokerConfig) {
    authorizer_and(c, (4, "kafka-cluster", 3), 9);
}

/// [`authorizer`], and DESCRIBE on topics named `desc*`.
fn authorizer_describing(c: &mut BrokerConfig) {
    authorizer_and(c, (2, "desc", 4), 8);
}

/// [`crate::metadata::answers`] without the names: each answer's (error, operations).
async fn metadata_answers(
    ctx: &Ctx,
    topics: Vec<MetadataRequestTopic>,
    version: i16,
) -> Result<Vec<(i16, i32)>, Got> {
    let got = crate::metadata::answers(ctx, topics, version).await?;
    Ok(got.into_iter().map(|(code, _, ops)| (code, ops)).collect())
}

fn named(topic: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(common::name(topic)))
}

fn two_nodes_with_authorizer(c: &mut BrokerConfig) {
    authorizer(c);
    c.nodes = 2;
}

macro_rules! row {
    ($rule:expr, $kafka:expr, $expect:expr, $config:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: $kafka,
            expect: $expect,
            config: Some($config),
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}

async fn metadata_code(ctx: Ctx, topic: &str) -> Got {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    code_or_closed(ctx.m.send_at(&req, 12).await, |r| r.topics[0].error_code)
}

/// Produce naming partition 0 of a denied topic in two topic entries: its one answer.
async fn produce_twice_code(ctx: Ctx) -> Got {
    let mut req = common::produce_request(&ctx.topic("t"), 0, common::batch(1, 1_000), -1);
    req.topic_data.push(req.topic_data[0].clone());
    match ctx.m.send_at(&req, 9).await {
        Ok(r) => match &r.responses[..] {
            [t] if t.partition_responses.len() == 1 => {
                Got::Code(t.partition_responses[0].error_code)
            }
            answers => Got::Answer(format!("{answers:?}")),
        },
        Err(_) => Got::Closed,
    }
}

async fn produce_code(ctx: Ctx) -> Got {
    let req = common::produce_request(&ctx.topic("t"), 0, common::batch(1, 1_000), -1);
    code_or_closed(ctx.m.send_at(&req, 9).await, |r| {
        r.responses[0].partition_responses[0].error_code
    })
}

async fn fetch_code(ctx: Ctx) -> Got {
    let req = common::fetch_request(&ctx.topic("t"), 0, 0, 0, 1 << 20);
    code_or_closed(ctx.m.send_at(&req, 12).await, |r| {
        r.responses[0].partitions[0].error_code
    })
}

/// A ten-minute long poll of a topic the client may not READ: refused at once.
async fn fetch_denied_waiting(ctx: Ctx) -> Got {
    let req = common::fetch_request(&ctx.topic("t"), 0, 0, 600_000, 1 << 20);
    code_or_closed(ctx.m.send_at(&req, 12).await, |r| {
        r.responses[0].partitions[0].error_code
    })
}

async fn join_code(m: &Messenger, group: &str) -> Got {
    let req = crate::groups::join_request(group, 10_000);
    code_or_closed(m.send_at(&req, 5).await, |r| r.error_code)
}

/// A connection to the node that does not coordinate groups (of two).
pub(crate) async fn other_node(ctx: &Ctx) -> Messenger {
    let find = FindCoordinatorRequest::default().with_key(s("granted"));
    let coordinator = crate::groups::find_coordinator_at(&ctx.m, &find, 3)
        .await
        .expect("find")
        .node_id
        .0;
    let md = ctx
        .m
        .send_at(&MetadataRequest::default().with_topics(Some(vec![])), 12)
        .await
        .expect("metadata");
    let b = md
        .brokers
        .iter()
        .find(|b| b.node_id.0 != coordinator)
        .expect("two nodes");
    Messenger::connect(
        &format!("{}:{}", b.host.as_str(), b.port),
        MessengerConfig::default(),
    )
    .await
    .expect("connect")
}

async fn commit_code(ctx: Ctx) -> Got {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("granted")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(common::name(&ctx.topic("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    code_or_closed(ctx.m.send_at(&req, 8).await, |r| {
        r.topics[0].partitions[0].error_code
    })
}

async fn describe_configs_code(ctx: Ctx, resource_type: i8, name: &str) -> Got {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))]);
    code_or_closed(ctx.m.send_at(&req, 4).await, |r| r.results[0].error_code)
}

/// IncrementalAlterConfigs SET `segment.ms` = `value` on topic `t`; the answer's code.
async fn incremental_alter_code(ctx: Ctx, value: Option<&str>) -> Got {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("segment.ms"))
                .with_config_operation(0)
                .with_value(value.map(s))]),
    ]);
    code_or_closed(ctx.m.send_at(&req, 1).await, |r| r.responses[0].error_code)
}

/// Creates `deletable-<row>` (CREATE without DESCRIBE_CONFIGS) with CreateTopics v7: its
/// (error, topic config error, configs null, configs listed, partitions).
async fn created_without_configs(ctx: Ctx) -> Got {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(common::name(&format!("deletable-{}", ctx.prefix)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let Ok(created) = ctx.m.send_at(&create, 7).await else {
        return Got::Closed;
    };
    let t = &created.topics[0];
    crate::admin::check(
        "(error, topic config error, configs null, configs listed, partitions)",
        (
            t.error_code,
            t.topic_config_error_code,
            t.configs.is_none(),
            t.configs.as_ref().map_or(0, Vec::len),
            t.num_partitions,
        ),
        (0, TOPIC_DENIED, false, 0, -1),
    )
}

/// Creates `deletable-<row>` and deletes it by id (DeleteTopics v6).
async fn delete_by_id_code(ctx: Ctx) -> Got {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let name = format!("deletable-{}", ctx.prefix);
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(common::name(&name))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let Ok(created) = ctx.m.send_at(&create, 7).await else {
        return Got::Closed;
    };
    let id = created.topics[0].topic_id;
    if created.topics[0].error_code != 0 || id.is_nil() {
        return Got::Answer(format!("create: {:?}", created.topics[0]));
    }
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteTopicState::default()
            .with_name(None)
            .with_topic_id(id)]);
    code_or_closed(ctx.m.send_at(&delete, 6).await, |r| {
        r.responses[0].error_code
    })
}

/// FindCoordinator v3 for the denied group `denied`, then for `granted`: the second's code,
/// once the first was GROUP_AUTHORIZATION_FAILED.
async fn denied_then_granted_coordinator(ctx: Ctx) -> Got {
    let find = |group: &str| FindCoordinatorRequest::default().with_key(s(group));
    match ctx.m.send_at(&find("denied"), 3).await {
        Ok(r) if r.error_code == GROUP_DENIED => {}
        Ok(r) => {
            return Got::Answer(format!(
                "the denied group's lookup answered {}",
                r.error_code
            ))
        }
        Err(_) => return Got::Closed,
    }
    code_or_closed(ctx.m.send_at(&find("granted"), 3).await, |r| r.error_code)
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("Produce with a transactional id without WRITE on it: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleProduceRequest (hasTransactionalRecords)", Got::Code(53), authorizer,
            |ctx| {
                let req = common::produce_request(&ctx.topic("t"), 0, common::batch(1, 1_000), -1)
                    .with_transactional_id(Some(TransactionalId(s("tx-1"))));
                code_or_closed(ctx.m.send_at(&req, 9).await, |r| {
                    r.responses[0].partition_responses[0].error_code
                })
            }),
        row!("Kafka 2.8: OffsetFetch v1 for a group without DESCRIBE: GROUP_AUTHORIZATION_FAILED on every partition",
            "OffsetFetchRequest.getErrorResponse (v0-1: partition errors)", Got::Code(GROUP_DENIED), authorizer_2_8,
            |ctx| offset_fetch_v1_denied(ctx).await),
        row!("OffsetFetch v1 for a group without DESCRIBE (Kafka 3.5+): no partitions at all",
            "KafkaApis.handleOffsetFetchRequestFromCoordinator; OffsetFetchResponse(groups, version)", Got::Value(0), authorizer,
            |ctx| offset_fetch_v1_denied(ctx).await),
        row!("OffsetFetch v3 for a group without DESCRIBE: GROUP_AUTHORIZATION_FAILED at the top, no partitions",
            "OffsetFetchRequest.getErrorResponse (v2-7: the top-level error only)", Got::Code(GROUP_DENIED), authorizer,
            |ctx| {
                match ctx.m.send_at(&denied_offset_fetch(), 3).await {
                    Ok(r) if r.topics.is_empty() => Got::Code(r.error_code),
                    Ok(r) => Got::Answer(format!("{} topics listed beside the group's error", r.topics.len())),
                    Err(_) => Got::Closed,
                }
            }),
        row!("CreateTopics v7 without DESCRIBE_CONFIGS: created, TOPIC_AUTHORIZATION_FAILED for its configs, which are empty, not null",
            "ReplicationControlManager.createTopic (authorizedToReturnConfigs)", Got::Code(0), authorizer,
            |ctx| created_without_configs(ctx).await),
        row!("DeleteTopics by id needs DELETE only (DESCRIBE only shows the name)",
            "ControllerApis.deleteTopics", Got::Code(0), authorizer, |ctx| delete_by_id_code(ctx).await),
        row!("DeleteAcls with an UNKNOWN element, before authorization: INVALID_REQUEST",
            "DeleteAclsRequest.normalizeAndValidate", Got::Code(42), authorizer,
            |ctx| {
                use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
                let req = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                    .with_resource_type_filter(0)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1)]);
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.filter_results[0].error_code)
            }),
        row!("Metadata for a topic without DESCRIBE, even one that does not exist: TOPIC_AUTHORIZATION_FAILED",
            "KafkaApis.getTopicMetadata (unauthorizedForDescribeTopics)", Got::Code(TOPIC_DENIED), authorizer,
            |ctx| metadata_code(ctx, "no-such-topic").await),
        row!("Metadata v12 with an id no topic has beside a denied name: only the id is answered, UNKNOWN_TOPIC_ID",
            "KafkaApis.handleTopicMetadataRequest (useTopicId: the names are not authorized)", Got::Code(0),
            authorizer, |ctx| {
                let by_id = MetadataRequestTopic::default().with_name(None).with_topic_id(Uuid::from_u128(7));
                match metadata_answers(&ctx, vec![by_id, named("secret")], 12).await {
                    Ok(got) => crate::admin::check("(error, operations)", got, vec![(100, i32::MIN)]),
                    Err(g) => g,
                }
            }),
        row!("Metadata v9 naming a denied topic twice: one TOPIC_AUTHORIZATION_FAILED",
            "KafkaApis.handleTopicMetadataRequest (unauthorizedForDescribeTopics is a set)", Got::Code(0),
            authorizer, |ctx| {
                match metadata_answers(&ctx, vec![named("secret"), named("secret")], 9).await {
                    Ok(got) => crate::admin::check("(error, operations)", got, vec![(TOPIC_DENIED, i32::MIN)]),
                    Err(g) => g,
                }
            }),
        row!("Metadata for an invalid name the caller may DESCRIBE: INVALID_TOPIC_EXCEPTION with the caller's operations (DESCRIBE), not all",
            "KafkaApis.handleTopicMetadataRequest (setTopicAuthorizedOperations on every topic answered)", Got::Code(0),
            authorizer_describing, |ctx| {
                match metadata_answers(&ctx, vec![named("desc bad!")], 12).await {
                    Ok(got) => crate::admin::check("(error, operations)", got, vec![(17, 1 << 8)]),
                    Err(g) => g,
                }
            }),
        row!("Produce without WRITE: TOPIC_AUTHORIZATION_FAILED", "KafkaApis.handleProduceRequest",
            Got::Code(TOPIC_DENIED), authorizer, |ctx| produce_code(ctx).await),
        row!("Produce without WRITE naming a partition twice: one TOPIC_AUTHORIZATION_FAILED",
            "KafkaApis.handleProduceRequest (unauthorizedTopicResponses keyed by TopicPartition)",
            Got::Code(TOPIC_DENIED), authorizer, |ctx| produce_twice_code(ctx).await),
        row!("Fetch without READ: TOPIC_AUTHORIZATION_FAILED", "KafkaApis.handleFetchRequest",
            Got::Code(TOPIC_DENIED), authorizer, |ctx| fetch_code(ctx).await),
        row!("Fetch from a follower (replica id 1) with CLUSTER_ACTION: no topic READ needed (an unknown topic is UNKNOWN_TOPIC_OR_PARTITION)",
            "KafkaApis.handleFetchRequest (isFromFollower: CLUSTER_ACTION only)",
            Got::Code(3), authorizer_with_cluster_action, |ctx| {
                let req = common::fetch_request(&ctx.topic("t"), 0, 0, 0, 1 << 20)
                    .with_replica_id(BrokerId(1));
                code_or_closed(ctx.m.send_at(&req, 12).await, |r| {
                    r.responses[0].partitions[0].error_code
                })
            }),
        row!("Fetch long poll of nothing but denied topics: TOPIC_AUTHORIZATION_FAILED at once",
            "KafkaApis.handleFetchRequest (interesting.isEmpty)",
            Got::Code(TOPIC_DENIED), authorizer, |ctx| fetch_denied_waiting(ctx).await),
        row!("CreateTopics without CLUSTER or TOPIC CREATE: TOPIC_AUTHORIZATION_FAILED",
            "ControllerApis.createTopics", Got::Code(TOPIC_DENIED), authorizer,
            |ctx| Got::Code(crate::admin::create_with(&ctx, &ctx.topic("t"), &[]).await)),
        row!("CreateTopics without CREATE naming a topic twice and __cluster_metadata: INVALID_REQUEST, each once",
            "ControllerApis.createTopics (duplicates and the metadata log set apart before authorization)",
            Got::Code(0), authorizer,
            |ctx| {
                use kafka_protocol::messages::create_topics_request::CreatableTopic;
                let topic = |name: &str| CreatableTopic::default()
                    .with_name(common::name(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1);
                let twice = ctx.topic("twice");
                let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
                    topic(&twice), topic(&twice), topic("__cluster_metadata"),
                ]);
                match ctx.m.send_at(&req, 7).await {
                    Ok(r) => {
                        let mut got: Vec<(String, i16)> = r.topics.iter()
                            .map(|t| (t.name.to_string(), t.error_code)).collect();
                        got.sort();
                        crate::admin::check("(topic, error)", got,
                            vec![("__cluster_metadata".to_string(), 42), (twice, 42)])
                    }
                    Err(_) => Got::Closed,
                }
            }),
        row!("JoinGroup without READ on the group: GROUP_AUTHORIZATION_FAILED",
            "KafkaApis.handleJoinGroupRequest", Got::Code(GROUP_DENIED), authorizer,
            |ctx| join_code(&ctx.m, "denied").await),
        row!("JoinGroup v5 without READ on the group: GROUP_AUTHORIZATION_FAILED, its protocol name \"\" (not nullable below v7)",
            "JoinGroupRequest.getErrorResponse / JoinGroupResponse (version < 7)", Got::Code(0), authorizer,
            |ctx| {
                let req = JoinGroupRequest::default()
                    .with_group_id(GroupId(s("denied")))
                    .with_session_timeout_ms(10_000)
                    .with_protocol_type(s("consumer"));
                match ctx.m.send_at(&req, 5).await {
                    Ok(r) => crate::admin::check(
                        "(error, protocol name)",
                        (r.error_code, r.protocol_name.map(|n| n.to_string())),
                        (GROUP_DENIED, Some(String::new())),
                    ),
                    Err(_) => Got::Closed,
                }
            }),
        row!("JoinGroup on a node that is not the coordinator, group denied: GROUP_AUTHORIZATION_FAILED first",
            "KafkaApis.handleJoinGroupRequest (before the coordinator)", Got::Code(GROUP_DENIED),
            two_nodes_with_authorizer, |ctx| join_code(&other_node(&ctx).await, "denied").await),
        row!("JoinGroup on a node that is not the coordinator, group allowed: NOT_COORDINATOR",
            "GroupCoordinator.handleJoinGroup (isCoordinatorForGroup)", Got::Code(NOT_COORDINATOR),
            two_nodes_with_authorizer, |ctx| join_code(&other_node(&ctx).await, "granted").await),
        row!("OffsetCommit with READ on the group but not on the topic: TOPIC_AUTHORIZATION_FAILED",
            "KafkaApis.handleOffsetCommitRequest", Got::Code(TOPIC_DENIED), authorizer,
            |ctx| commit_code(ctx).await),
        row!("InitProducerId without IDEMPOTENT_WRITE or WRITE on any topic: CLUSTER_AUTHORIZATION_FAILED",
            "KafkaApis.handleInitProducerIdRequest", Got::Code(CLUSTER_DENIED), authorizer,
            |ctx| {
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000);
                code_or_closed(ctx.m.send_at(&req, 4).await, |r| r.error_code)
            }),
        row!("InitProducerId with a transactional id without WRITE on it: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleInitProducerIdRequest", Got::Code(53), authorizer,
            |ctx| {
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("tx-1"))))
                    .with_transaction_timeout_ms(60_000);
                code_or_closed(ctx.m.send_at(&req, 4).await, |r| r.error_code)
            }),
        row!("FindCoordinator for a group without DESCRIBE creates no __consumer_offsets: a granted group's first lookup after it still answers COORDINATOR_NOT_AVAILABLE",
            "KafkaApis.getCoordinator (authorize before autoTopicCreationManager.createTopics)", Got::Code(15), authorizer,
            |ctx| denied_then_granted_coordinator(ctx).await),
        row!("FindCoordinator v3 for a transactional id without DESCRIBE on it: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.getCoordinator", Got::Code(53), authorizer,
            |ctx| {
                let req = FindCoordinatorRequest::default().with_key_type(1).with_key(s("tx-1"));
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.error_code)
            }),
        row!("AddPartitionsToTxn without WRITE on the transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleAddPartitionsToTxnRequest", Got::Code(53), authorizer,
            |ctx| {
                use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
                let req = AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s("tx-1")))
                    .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(common::name("t"))
                        .with_partitions(vec![0])]);
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| {
                    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
                })
            }),
        row!("AddOffsetsToTxn without WRITE on the transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleAddOffsetsToTxnRequest", Got::Code(53), authorizer,
            |ctx| {
                let req = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s("tx-1")))
                    .with_group_id(GroupId(s("g")));
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.error_code)
            }),
        row!("TxnOffsetCommit without WRITE on the transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleTxnOffsetCommitRequest", Got::Code(53), authorizer,
            |ctx| {
                use kafka_protocol::messages::txn_offset_commit_request::{
                    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
                };
                let req = TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(s("tx-1")))
                    .with_group_id(GroupId(s("g")))
                    .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                        .with_name(common::name("t"))
                        .with_partitions(vec![TxnOffsetCommitRequestPartition::default()])]);
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.topics[0].partitions[0].error_code)
            }),
        row!("EndTxn without WRITE on the transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            "KafkaApis.handleEndTxnRequest", Got::Code(53), authorizer,
            |ctx| {
                let req = EndTxnRequest::default().with_transactional_id(TransactionalId(s("tx-1")));
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.error_code)
            }),
        row!("DescribeConfigs of the broker without CLUSTER DESCRIBE_CONFIGS: CLUSTER_AUTHORIZATION_FAILED",
            "ConfigHelper.handleDescribeConfigsRequest", Got::Code(CLUSTER_DENIED), authorizer,
            |ctx| describe_configs_code(ctx, 4, "0").await),
        row!("DescribeConfigs of a topic without DESCRIBE_CONFIGS: TOPIC_AUTHORIZATION_FAILED",
            "ConfigHelper.handleDescribeConfigsRequest", Got::Code(TOPIC_DENIED), authorizer,
            |ctx| describe_configs_code(ctx, 2, "t").await),
        row!("IncrementalAlterConfigs of a denied topic with a null SET value: INVALID_REQUEST (checked before authorization)",
            "KafkaApis.handleIncrementalAlterConfigsRequest (ConfigAdminManager.preprocess first)", Got::Code(42), authorizer,
            |ctx| incremental_alter_code(ctx, None).await),
        row!("IncrementalAlterConfigs of a denied topic: TOPIC_AUTHORIZATION_FAILED",
            "KafkaApis.handleIncrementalAlterConfigsRequest (authorizeAlterResource)", Got::Code(TOPIC_DENIED), authorizer,
            |ctx| incremental_alter_code(ctx, Some("100000")).await),
        row!("DescribeAcls without CLUSTER DESCRIBE: CLUSTER_AUTHORIZATION_FAILED",
            "AclApis.handleDescribeAcls (authorizeClusterOperation)", Got::Code(CLUSTER_DENIED), authorizer,
            |ctx| {
                let req = DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1);
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.error_code)
            }),
        row!("CreateAcls without CLUSTER ALTER: CLUSTER_AUTHORIZATION_FAILED per creation",
            "AclApis.handleCreateAcls (authorizeClusterOperation)", Got::Code(CLUSTER_DENIED), authorizer,
            |ctx| {
                let req = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:ANONYMOUS"))
                    .with_host(s("*"))
                    .with_operation(2)
                    .with_permission_type(3)]);
                code_or_closed(ctx.m.send_at(&req, 3).await, |r| r.results[0].error_code)
            }),
    ]
}
