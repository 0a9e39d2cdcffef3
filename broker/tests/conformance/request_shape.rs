//! What Kafka refuses in an admin request before it looks anything up: DeleteTopics naming
//! a topic neither or both ways, or twice (ControllerApis.deleteTopics); a null config
//! value in CreateTopics (ReplicationControlManager.computeConfigChanges), AlterConfigs
//! and IncrementalAlterConfigs other than DELETE; a resource or a config key given twice
//! (ConfigAdminManager.preprocess); CreatePartitions naming a topic twice
//! (ControllerApis.createPartitions) or not growing it (ReplicationControlManager
//! .createPartitions). Each refused topic must still exist, or not exist, afterwards as in
//! Kafka, and keep its partitions.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::admin::{check, create_with, row, s};
use crate::common;
use crate::harness::{kafka_2_8, Ctx, Got, Row};

const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TOPIC: i8 = 2;

/// Whether `topic` exists (Metadata without auto-creation).
pub(crate) async fn exists(ctx: &Ctx, topic: &str) -> bool {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    ctx.m
        .send_at(&req, 12)
        .await
        .is_ok_and(|r| r.topics[0].error_code == 0)
}

/// CreatePartitions of a fresh one-partition topic, one entry per count of `counts`:
/// `Code(c)` when it answers the topic once, with `c` and `message`, and the topic still
/// has one partition.
async fn grow(ctx: Ctx, counts: &[i32], message: &str) -> Got {
    let (topic, _) = fresh(&ctx).await;
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(
            counts
                .iter()
                .map(|&c| {
                    CreatePartitionsTopic::default()
                        .with_name(common::name(&topic))
                        .with_count(c)
                        .with_assignments(None)
                })
                .collect(),
        );
    let Ok((r, _)) = ctx.m.send(&req).await else {
        return Got::Closed;
    };
    let answers: Vec<_> = r
        .results
        .iter()
        .map(|t| {
            (
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    let md = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(common::name(&topic)))
    ]));
    let partitions = ctx
        .m
        .send_at(&md, 12)
        .await
        .map_or(0, |m| m.topics[0].partitions.len());
    match answers.as_slice() {
        [(code, Some(m))] if m == message && partitions == 1 => Got::Code(*code),
        _ => Got::Answer(format!("{answers:?}, {partitions} partitions")),
    }
}

/// A fresh topic of this row and its id.
async fn fresh(ctx: &Ctx) -> (String, uuid::Uuid) {
    let topic = ctx.topic("d");
    assert_eq!(create_with(ctx, &topic, &[]).await, 0);
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(common::name(&topic)))
    ]));
    let id = ctx.m.send_at(&req, 12).await.expect("metadata").topics[0].topic_id;
    (topic, id)
}

/// DeleteTopics v6 of `topics`; every answer's code (one code when all agree), and `Answer`
/// if the row's topic is gone afterwards.
async fn delete(ctx: &Ctx, topic: &str, topics: Vec<DeleteTopicState>) -> Got {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(topics);
    let Ok(r) = ctx.m.send_at(&req, 6).await else {
        return Got::Closed;
    };
    if !exists(ctx, topic).await {
        return Got::Answer(format!("{topic} was deleted"));
    }
    let mut codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    codes.dedup();
    match codes[..] {
        [code] => Got::Code(code),
        _ => Got::Answer(format!("codes {codes:?}")),
    }
}

fn by_name(topic: &str) -> DeleteTopicState {
    DeleteTopicState::default()
        .with_name(Some(common::name(topic)))
        .with_topic_id(uuid::Uuid::nil())
}

fn by_id(id: uuid::Uuid) -> DeleteTopicState {
    DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(id)
}

/// CreateTopics of one topic with a null value for `segment.ms`; its code, and `Answer` if
/// the topic exists afterwards.
async fn create_with_null(ctx: Ctx) -> Got {
    let topic = ctx.topic("n");
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(common::name(&topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("segment.ms"))
                .with_value(None)])]);
    let Ok(r) = ctx.m.send_at(&req, 7).await else {
        return Got::Closed;
    };
    if exists(&ctx, &topic).await {
        return Got::Answer(format!("{topic} was created"));
    }
    Got::Code(r.topics[0].error_code)
}

/// IncrementalAlterConfigs of a fresh topic: one resource per entry of `resources`, each
/// a list of (key, operation, value); the first resource's code.
async fn incremental(ctx: Ctx, resources: &[&[(&str, i8, Option<&str>)]]) -> Got {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let (topic, _) = fresh(&ctx).await;
    let req = IncrementalAlterConfigsRequest::default().with_resources(
        resources
            .iter()
            .map(|configs| {
                AlterConfigsResource::default()
                    .with_resource_type(TOPIC)
                    .with_resource_name(s(&topic))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, op, v)| {
                                AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_config_operation(*op)
                                    .with_value(v.map(s))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    match ctx.m.send_at(&req, 1).await {
        Ok(r) => Got::Code(r.responses[0].error_code),
        Err(_) => Got::Closed,
    }
}

/// AlterConfigs (legacy) of a fresh topic setting `segment.ms` to `value`; the code.
async fn legacy(ctx: Ctx, value: Option<&str>) -> Got {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let (topic, _) = fresh(&ctx).await;
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(&topic))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s("segment.ms"))
            .with_value(value.map(s))])]);
    match ctx.m.send_at(&req, 2).await {
        Ok(r) => Got::Code(r.responses[0].error_code),
        Err(_) => Got::Closed,
    }
}

/// DeleteTopics v6 of an unknown name and an unknown id, checked against `expected`
/// (code, message) of each.
async fn unknown_deleted(ctx: &Ctx, expected: Vec<(i16, Option<String>)>) -> Got {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            by_name(&ctx.topic("nosuch")),
            by_id(uuid::Uuid::new_v4()),
        ]);
    let Ok(r) = ctx.m.send_at(&req, 6).await else {
        return Got::Closed;
    };
    let got: Vec<_> = r
        .responses
        .iter()
        .map(|t| {
            (
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    check("(code, message) of each", got, expected)
}

pub fn rows() -> Vec<Row> {
    vec![
        row!(
            "DeleteTopics v6 with neither a name nor an id: INVALID_REQUEST",
            "ControllerApis.deleteTopics",
            Got::Code(INVALID_REQUEST),
            |ctx| {
                let (topic, _) = fresh(&ctx).await;
                delete(&ctx, &topic, vec![by_id(uuid::Uuid::nil())]).await
            }
        ),
        row!(
            "DeleteTopics v6 with both a name and an id: INVALID_REQUEST, nothing deleted",
            "ControllerApis.deleteTopics",
            Got::Code(INVALID_REQUEST),
            |ctx| {
                let (topic, id) = fresh(&ctx).await;
                delete(&ctx, &topic, vec![by_name(&topic).with_topic_id(id)]).await
            }
        ),
        row!(
            "DeleteTopics v6 naming a topic twice: INVALID_REQUEST, nothing deleted",
            "ControllerApis.deleteTopics",
            Got::Code(INVALID_REQUEST),
            |ctx| {
                let (topic, _) = fresh(&ctx).await;
                delete(&ctx, &topic, vec![by_name(&topic), by_name(&topic)]).await
            }
        ),
        row!(
            "DeleteTopics v6 of an unknown name and an unknown id: UNKNOWN_TOPIC_OR_PARTITION and UNKNOWN_TOPIC_ID, with their messages",
            "ControllerApis.deleteTopics (ApiError of the code)",
            Got::Code(0),
            |ctx| {
                let text = |m: &str| Some(m.to_string());
                unknown_deleted(
                    &ctx,
                    vec![
                        (3, text("This server does not host this topic-partition.")),
                        (100, text("This server does not host this topic ID.")),
                    ],
                )
                .await
            }
        ),
        row!(
            "Kafka 2.8: DeleteTopics v6 of an unknown name and an unknown id: the same codes, no messages",
            "KafkaApis.handleDeleteTopicsRequest (2.8: DeletableTopicResult without a message)",
            Got::Code(0),
            Some(kafka_2_8),
            |ctx| unknown_deleted(&ctx, vec![(3, None), (100, None)]).await
        ),
        row!(
            "DeleteTopics v6 giving an id twice: INVALID_REQUEST, nothing deleted",
            "ControllerApis.deleteTopics",
            Got::Code(INVALID_REQUEST),
            |ctx| {
                let (topic, id) = fresh(&ctx).await;
                delete(&ctx, &topic, vec![by_id(id), by_id(id)]).await
            }
        ),
        row!(
            "DeleteTopics v6 naming a topic by name and by its id: INVALID_REQUEST, nothing deleted",
            "ControllerApis.deleteTopics",
            Got::Code(INVALID_REQUEST),
            |ctx| {
                let (topic, id) = fresh(&ctx).await;
                delete(&ctx, &topic, vec![by_name(&topic), by_id(id)]).await
            }
        ),
        row!(
            "DeleteTopics v6 by id deletes the topic",
            "ControllerApis.deleteTopics",
            Got::Answer("deleted".into()),
            |ctx| {
                let (topic, id) = fresh(&ctx).await;
                match delete(&ctx, &topic, vec![by_id(id)]).await {
                    Got::Answer(a) if a.ends_with("was deleted") => Got::Answer("deleted".into()),
                    other => other,
                }
            }
        ),
        row!(
            "CreateTopics with a null config value: INVALID_CONFIG, not created",
            "ReplicationControlManager.computeConfigChanges",
            Got::Code(INVALID_CONFIG),
            |ctx| create_with_null(ctx).await
        ),
        row!(
            "IncrementalAlterConfigs SET with a null value: INVALID_REQUEST",
            "ConfigAdminManager.preprocess (nullUpdates)",
            Got::Code(INVALID_REQUEST),
            |ctx| incremental(ctx, &[&[("segment.ms", 0, None)]]).await
        ),
        row!(
            "IncrementalAlterConfigs DELETE with a null value is accepted",
            "ConfigAdminManager.preprocess (nullUpdates)",
            Got::Code(0),
            |ctx| incremental(ctx, &[&[("segment.ms", 1, None)]]).await
        ),
        row!(
            "IncrementalAlterConfigs giving a key twice: INVALID_REQUEST",
            "ConfigAdminManager.preprocess (containsDuplicates)",
            Got::Code(INVALID_REQUEST),
            |ctx| incremental(
                ctx,
                &[&[
                    ("segment.ms", 0, Some("100000")),
                    ("segment.ms", 0, Some("200000"))
                ]]
            )
            .await
        ),
        row!(
            "IncrementalAlterConfigs naming a resource twice: INVALID_REQUEST",
            "ConfigAdminManager.preprocess",
            Got::Code(INVALID_REQUEST),
            |ctx| incremental(
                ctx,
                &[
                    &[("segment.ms", 0, Some("100000"))],
                    &[("retention.ms", 0, Some("100000"))]
                ]
            )
            .await
        ),
        row!(
            "AlterConfigs with a null value: INVALID_REQUEST",
            "ConfigAdminManager.preprocess (AlterConfigs)",
            Got::Code(INVALID_REQUEST),
            |ctx| legacy(ctx, None).await
        ),
        row!(
            "CreatePartitions naming a topic twice: one INVALID_REQUEST, no partitions added",
            "ControllerApis.createPartitions",
            Got::Code(INVALID_REQUEST),
            |ctx| grow(ctx, &[3, 4], "Duplicate topic name.").await
        ),
        row!(
            "CreatePartitions to the topic's count: INVALID_PARTITIONS, Kafka's message",
            "ReplicationControlManager.createPartitions",
            Got::Code(INVALID_PARTITIONS),
            |ctx| grow(ctx, &[1], "Topic already has 1 partition(s).").await
        ),
        row!(
            "CreatePartitions below the topic's count: INVALID_PARTITIONS, Kafka's message",
            "ReplicationControlManager.createPartitions",
            Got::Code(INVALID_PARTITIONS),
            |ctx| {
                let topic = ctx.topic("d");
                let message = format!(
                    "The topic {topic} currently has 1 partition(s); 0 would not be an increase."
                );
                grow(ctx, &[0], &message).await
            }
        ),
        row!(
            "AlterConfigs with a value is accepted",
            "ConfigAdminManager.preprocess (AlterConfigs)",
            Got::Code(0),
            |ctx| legacy(ctx, Some("100000")).await
        ),
    ]
}
