//! What the admin APIs' answers carry beside their error codes, as Kafka's controller
//! writes them (ReplicationControlManager, ControllerApis): a null message where nothing
//! failed, no message on an unknown topic's CreatePartitions refusal, and a topic id for a
//! CreateTopics v7 that only validates; and the order of a topic config change's checks
//! (ConfigurationControlManager: the name, the values, then whether the topic exists).

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;

use crate::admin::{check, row, s};
use crate::common;
use crate::harness::{kafka_2_8, Ctx, Got, Row};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn creatable(topic: &str) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(common::name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
}

/// CreateTopics v7 of a new topic, created or only validated: (error, message is null,
/// topic id is set), and whether the topic exists afterwards.
async fn create_v7(ctx: Ctx, validate_only: bool) -> Got {
    let topic = ctx.topic("v7");
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(vec![creatable(&topic)]);
    let r = match ctx.m.send_at(&req, 7).await {
        Ok(r) => r,
        Err(_) => return Got::Closed,
    };
    let t = &r.topics[0];
    let exists = crate::request_shape::exists(&ctx, &topic).await;
    check(
        "(error, message null, topic id set, topic exists)",
        (
            t.error_code,
            t.error_message.is_none(),
            !t.topic_id.is_nil(),
            exists,
        ),
        (0, true, true, !validate_only),
    )
}

/// IncrementalAlterConfigs v1 that succeeds: (error, message is null).
async fn altered_message(ctx: Ctx) -> Got {
    let topic = ctx.topic("alt");
    common::create_topic(&ctx.m, &topic, 1).await;
    match alter_with(&ctx, (2, &topic), ("retention.ms", 0, "1000")).await {
        Ok((code, message)) => check(
            "(error, message null)",
            (code, message.is_none()),
            (0, true),
        ),
        Err(g) => g,
    }
}

/// IncrementalAlterConfigs v1 of `retention.ms` = `value` on topic `name`: its error code,
/// or, when `message` is given, whether the answer carries it.
async fn alter_topic(ctx: Ctx, name: &str, value: &str, message: Option<&str>) -> Got {
    match alter_with(&ctx, (2, name), ("retention.ms", 0, value)).await {
        Ok((_, got)) if message.is_some_and(|m| got.as_deref() != Some(m)) => {
            Got::Answer(format!("message {got:?}, Kafka's is {message:?}"))
        }
        Ok((code, _)) => Got::Code(code),
        Err(g) => g,
    }
}

/// IncrementalAlterConfigs v1 of one config of `resource` with `operation`: (error,
/// message).
async fn alter_with(
    ctx: &Ctx,
    resource: (i8, &str),
    (key, operation, value): (&str, i8, &str),
) -> Result<(i16, Option<String>), Got> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource.0)
            .with_resource_name(s(resource.1))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(operation)
                .with_value(Some(s(value)))]),
    ]);
    match ctx.m.send_at(&req, 1).await {
        Ok(r) => Ok((
            r.responses[0].error_code,
            r.responses[0].error_message.as_ref().map(|m| m.to_string()),
        )),
        Err(_) => Err(Got::Closed),
    }
}

/// DescribeConfigs v4 of a topic without `include_documentation`: the count of entries
/// that carry documentation (Kafka: none, null).
async fn documentation_unasked(ctx: Ctx) -> Got {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let topic = ctx.topic("doc");
    common::create_topic(&ctx.m, &topic, 1).await;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(&topic))]);
    match ctx.m.send_at(&req, 4).await {
        Ok(r) => Got::Value(
            r.results[0]
                .configs
                .iter()
                .filter(|c| c.documentation.is_some())
                .count() as i64,
        ),
        Err(_) => Got::Closed,
    }
}

/// CreatePartitions v3 of a topic that does not exist: (error, message is null).
async fn partitions_of_unknown(ctx: Ctx) -> Got {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(common::name(&ctx.topic("none")))
            .with_count(2)]);
    match ctx.m.send_at(&req, 3).await {
        Ok(r) => check(
            "(error, message null)",
            (
                r.results[0].error_code,
                r.results[0].error_message.is_none(),
            ),
            (3, true),
        ),
        Err(_) => Got::Closed,
    }
}

/// IncrementalAlterConfigs of `key` on `topic` (created first when `create`): the error
/// code, and whether the message starts with `prefix`.
async fn alter_topic_answer(
    ctx: Ctx,
    create: bool,
    (key, operation, value): (&str, i8, &str),
    (code, prefix): (i16, &str),
) -> Got {
    let topic = ctx.topic("zk");
    if create {
        common::create_topic(&ctx.m, &topic, 1).await;
    }
    match alter_with(&ctx, (2, &topic), (key, operation, value)).await {
        Ok((got, message)) => check(
            "(error, message prefix)",
            (got, message.unwrap_or_default().starts_with(prefix)),
            (code, true),
        ),
        Err(g) => g,
    }
}

/// CreateTopics with a config whose value is null: the topic's error code.
async fn create_with_null_config(ctx: Ctx) -> Got {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(common::name(&ctx.topic("null")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(None)])]);
    match ctx.m.send(&req).await {
        Ok((r, _)) => Got::Code(r.topics[0].error_code),
        Err(_) => Got::Closed,
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!(
            "IncrementalAlterConfigs of topic \"\": INVALID_REQUEST",
            "ControllerConfigurationValidator.validateTopicName (Default topic resources are not allowed.)",
            Got::Code(INVALID_REQUEST),
            |ctx| alter_topic(ctx, "", "1000", None).await
        ),
        row!(
            "IncrementalAlterConfigs APPEND to a non-LIST key of topic \"\": INVALID_CONFIG (the operation before the name)",
            "ConfigurationControlManager.incrementalAlterConfigResource",
            Got::Code(INVALID_CONFIG),
            |ctx| match alter_with(&ctx, (2, ""), ("retention.ms", 2, "1")).await {
                Ok((code, _)) => Got::Code(code),
                Err(g) => g,
            }
        ),
        row!(
            "IncrementalAlterConfigs retention.ms \"abc\", emulating 2.8: INVALID_REQUEST naming the resource",
            "ZkAdminManager.incrementalAlterConfigs (ConfigException wrapped in InvalidRequestException)",
            Got::Code(0), Some(kafka_2_8),
            |ctx| alter_topic_answer(ctx, true, ("retention.ms", 0, "abc"), (INVALID_REQUEST, "Invalid config value for resource ConfigResource(type=TOPIC, name=")).await
        ),
        row!(
            "IncrementalAlterConfigs retention.ms \"abc\": INVALID_CONFIG",
            "ConfigurationControlManager.validateAlterConfig (ConfigException)",
            Got::Code(0),
            |ctx| alter_topic_answer(ctx, true, ("retention.ms", 0, "abc"), (INVALID_CONFIG, "Invalid value abc")).await
        ),
        row!(
            "IncrementalAlterConfigs APPEND to a non-LIST key, emulating 2.8: INVALID_REQUEST",
            "ZkAdminManager.prepareIncrementalConfigs",
            Got::Code(0), Some(kafka_2_8),
            |ctx| alter_topic_answer(ctx, true, ("retention.ms", 2, "1"), (INVALID_REQUEST, "Config value append is not allowed for config key: retention.ms")).await
        ),
        row!(
            "IncrementalAlterConfigs of a missing topic with a bad value, emulating 2.8: UNKNOWN_TOPIC_OR_PARTITION (the topic before the values)",
            "ZkAdminManager.alterTopicConfigs",
            Got::Code(0), Some(kafka_2_8),
            |ctx| alter_topic_answer(ctx, false, ("retention.ms", 0, "abc"), (UNKNOWN_TOPIC_OR_PARTITION, "")).await
        ),
        row!(
            "CreateTopics with a null config value, emulating 2.8: INVALID_REQUEST",
            "ZkAdminManager.createTopics (Null value not supported for topic configs)",
            Got::Code(INVALID_REQUEST), Some(kafka_2_8),
            |ctx| create_with_null_config(ctx).await
        ),
        row!(
            "CreateTopics with a null config value: INVALID_CONFIG",
            "ReplicationControlManager.createTopics (Null value not supported for topic configs)",
            Got::Code(INVALID_CONFIG),
            |ctx| create_with_null_config(ctx).await
        ),
        row!(
            "IncrementalAlterConfigs broker log.segment.bytes below 1 MiB: ConfigDef's message",
            "ConfigDef.Range.ensureValid (Value must be at least 1048576)",
            Got::Code(0),
            |ctx| match alter_with(&ctx, (4, "0"), ("log.segment.bytes", 0, "1000")).await {
                Ok(got) => check(
                    "(error, message)",
                    got,
                    (
                        INVALID_REQUEST,
                        Some("Invalid value 1000 for configuration log.segment.bytes: Value must be at least 1048576".to_string()),
                    ),
                ),
                Err(g) => g,
            }
        ),
        row!(
            "IncrementalAlterConfigs of an invalid topic name: INVALID_TOPIC_EXCEPTION",
            "ControllerConfigurationValidator.validateTopicName (Topic.validate)",
            Got::Code(INVALID_TOPIC_EXCEPTION),
            |ctx| alter_topic(ctx, "bad name!", "1000", None).await
        ),
        row!(
            "IncrementalAlterConfigs of a missing topic with a bad value: INVALID_CONFIG (values before existence)",
            "ConfigurationControlManager.validateAlterConfig (validator, then existenceChecker)",
            Got::Code(INVALID_CONFIG),
            |ctx| {
                let missing = ctx.topic("missing");
                alter_topic(ctx, &missing, "abc", None).await
            }
        ),
        row!(
            "IncrementalAlterConfigs of a missing topic: UNKNOWN_TOPIC_OR_PARTITION, Kafka's message",
            "QuorumController.ConfigResourceExistenceChecker",
            Got::Code(UNKNOWN_TOPIC_OR_PARTITION),
            |ctx| {
                let missing = ctx.topic("missing");
                let message = format!("The topic '{missing}' does not exist.");
                alter_topic(ctx, &missing, "1000", Some(&message)).await
            }
        ),
        row!(
            "DescribeConfigs v4 without include_documentation: documentation null",
            "ConfigHelper.createTopicConfigEntry (if (includeDocumentation) ... else null)",
            Got::Value(0),
            |ctx| documentation_unasked(ctx).await
        ),
        row!(
            "CreateTopics v7 of a new topic: a null message and its topic id",
            "ReplicationControlManager.createTopic (setErrorMessage(null))",
            Got::Code(0),
            |ctx| create_v7(ctx, false).await
        ),
        row!(
            "CreateTopics v7 with validate_only: a topic id all the same, and no topic",
            "ReplicationControlManager.createTopic (the id is picked before validateOnly)",
            Got::Code(0),
            |ctx| create_v7(ctx, true).await
        ),
        row!(
            "IncrementalAlterConfigs that succeeds: a null message",
            "ControllerApis.incrementalAlterConfigs (ApiError.NONE.message() is null)",
            Got::Code(0),
            |ctx| altered_message(ctx).await
        ),
        row!(
            "CreatePartitions of an unknown topic: UNKNOWN_TOPIC_OR_PARTITION without a message",
            "ReplicationControlManager.createPartitions (new UnknownTopicOrPartitionException())",
            Got::Code(0),
            |ctx| partitions_of_unknown(ctx).await
        ),
    ]
}
