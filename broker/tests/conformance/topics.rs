//! Replication factors (up to the number of nodes), topic names (a name given twice, the
//! metadata log's) and topic config values: names that collide with an existing topic's on '.'
//! against '_', IncrementalAlterConfigs APPEND and SUBTRACT only on LIST keys, and the
//! value rules Kafka checks beyond a key's type (compression levels, tiered storage,
//! throttled replica lists, message format versions), and which keys a release knows.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::admin::{create_with, row, s};
use crate::harness::{code_or_closed, Ctx, Got, Row};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;

/// Creates `first`, then `second` (both with this row's prefix); the second's error code.
async fn create_after(ctx: Ctx, first: &str, second: &str) -> Got {
    let code = create_with(&ctx, &ctx.topic(first), &[]).await;
    if code != 0 {
        return Got::Answer(format!("creating {first} failed with {code}"));
    }
    Got::Code(create_with(&ctx, &ctx.topic(second), &[]).await)
}

/// Creates `first`, then asks Metadata (auto-creation allowed) for `second`: its error code,
/// and whether `second` exists afterwards (it must not).
async fn auto_create_after(ctx: Ctx, first: &str, second: &str) -> Got {
    let code = create_with(&ctx, &ctx.topic(first), &[]).await;
    if code != 0 {
        return Got::Answer(format!("creating {first} failed with {code}"));
    }
    let metadata = |allow| {
        MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(crate::common::name(&ctx.topic(second))))]))
            .with_allow_auto_topic_creation(allow)
    };
    let got = code_or_closed(ctx.m.send_at(&metadata(true), 12).await, |r| {
        r.topics[0].error_code
    });
    match ctx.m.send_at(&metadata(false), 12).await {
        Ok(r) if r.topics[0].error_code == 0 => {
            Got::Answer(format!("{second} was created (first answer {got:?})"))
        }
        Ok(_) => got,
        Err(_) => Got::Closed,
    }
}

/// Metadata v12 for `topic` (not prefixed): its error code.
async fn metadata_code(ctx: Ctx, topic: &str, allow_create: bool) -> Got {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(crate::common::name(topic)))
        ]))
        .with_allow_auto_topic_creation(allow_create);
    code_or_closed(ctx.m.send_at(&req, 12).await, |r| r.topics[0].error_code)
}

/// Metadata v12 auto-creating a topic: the first answer is UNKNOWN_TOPIC_OR_PARTITION with
/// no partitions and no id; asked again (until it shows), the topic with its partition.
async fn auto_create_then_found(ctx: Ctx) -> Got {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(crate::common::name(&ctx.topic("auto"))))]))
        .with_allow_auto_topic_creation(true);
    let first = match ctx.m.send_at(&req, 12).await {
        Ok(r) => r.topics[0].clone(),
        Err(_) => return Got::Closed,
    };
    let want = (UNKNOWN_TOPIC_OR_PARTITION, 0, true);
    let got = (
        first.error_code,
        first.partitions.len(),
        first.topic_id.is_nil(),
    );
    if got != want {
        return crate::admin::check("first answer (error, partitions, id is nil)", got, want);
    }
    for _ in 0..50 {
        match ctx.m.send_at(&req, 12).await {
            Ok(r) if r.topics[0].error_code == 0 => {
                let t = &r.topics[0];
                return crate::admin::check(
                    "later answer (partitions, id is nil)",
                    (t.partitions.len(), t.topic_id.is_nil()),
                    (1, false),
                );
            }
            Ok(r) if r.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Ok(r) => return Got::Code(r.topics[0].error_code),
            Err(_) => return Got::Closed,
        }
    }
    Got::Answer("the auto-created topic never showed".into())
}

/// IncrementalAlterConfigs (validate only) of one operation (0 SET, 2 APPEND, 3 SUBTRACT)
/// on a fresh topic; its error code.
async fn alter_op(ctx: Ctx, key: &str, op: i8, value: &str) -> Got {
    let topic = ctx.topic("op");
    let code = create_with(&ctx, &topic, &[]).await;
    if code != 0 {
        return Got::Answer(format!("creating the topic failed with {code}"));
    }
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(true)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(&topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(op)
                .with_value(Some(s(value)))])]);
    code_or_closed(ctx.m.send(&req).await, |(r, _)| r.responses[0].error_code)
}

/// CreateTopics of a fresh one-partition topic at replication factor `rf`; its error code.
async fn create_rf(ctx: Ctx, rf: i16) -> Got {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(crate::common::name(&ctx.topic("rf")))
            .with_num_partitions(1)
            .with_replication_factor(rf)]);
    code_or_closed(ctx.m.send(&req).await, |(r, _)| r.topics[0].error_code)
}

/// CreateTopics naming `names` (this row's prefix added unless `raw`): each answer as
/// `name=code`, in answer order, and which of them exist afterwards.
async fn create_names(ctx: Ctx, names: &[&str], raw: bool) -> Got {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let full = |n: &str| if raw { n.to_string() } else { ctx.topic(n) };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(crate::common::name(&full(n)))
                        .with_num_partitions(1)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    let Ok((r, _)) = ctx.m.send(&req).await else {
        return Got::Closed;
    };
    let short = |n: &str| {
        n.strip_prefix(&format!("{}-", ctx.prefix))
            .unwrap_or(n)
            .to_string()
    };
    let answers: Vec<String> = r
        .topics
        .iter()
        .map(|t| format!("{}={}", short(t.name.as_str()), t.error_code))
        .collect();
    let mut exist = Vec::new();
    for n in names {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(crate::common::name(&full(n))))
            ]))
            .with_allow_auto_topic_creation(false);
        match ctx.m.send_at(&req, 12).await {
            Ok(m) if m.topics[0].error_code == 0 => exist.push(n.to_string()),
            Ok(_) => {}
            Err(_) => return Got::Closed,
        }
    }
    exist.dedup();
    Got::Answer(format!(
        "answers [{}], existing [{}]",
        answers.join(", "),
        exist.join(", ")
    ))
}

/// A row on a 3-node broker.
macro_rules! three_node_row {
    ($rule:expr, $kafka:expr, $expect:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: $kafka,
            expect: $expect,
            config: Some(crate::multinode::three_nodes),
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}

/// A row creating a topic with `key` = `value`: `accepted`, or `refused` with INVALID_CONFIG.
macro_rules! config_row {
    ($key:literal = $value:literal accepted, $kafka:literal) => {
        row!(
            concat!("CreateTopics ", $key, "=", $value, ": accepted"),
            $kafka,
            Got::Code(0),
            |ctx| create_config(ctx, $key, $value).await
        )
    };
    ($key:literal = $value:literal refused, $kafka:literal) => {
        row!(
            concat!("CreateTopics ", $key, "=", $value, ": INVALID_CONFIG"),
            $kafka,
            Got::Code(INVALID_CONFIG),
            |ctx| create_config(ctx, $key, $value).await
        )
    };
}

/// A row creating a topic with `key` = `value` on a broker emulating an older release
/// (`$emulate`: a `fn(&mut BrokerConfig)`).
macro_rules! release_config_row {
    ($emulate:ident, $release:literal, $key:literal = $value:literal accepted, $kafka:literal) => {
        row!(
            concat!(
                "Kafka ",
                $release,
                ": CreateTopics ",
                $key,
                "=",
                $value,
                ": accepted"
            ),
            $kafka,
            Got::Code(0),
            Some($emulate),
            |ctx| create_config(ctx, $key, $value).await
        )
    };
    ($emulate:ident, $release:literal, $key:literal = $value:literal refused, $kafka:literal) => {
        row!(
            concat!(
                "Kafka ",
                $release,
                ": CreateTopics ",
                $key,
                "=",
                $value,
                ": INVALID_CONFIG"
            ),
            $kafka,
            Got::Code(INVALID_CONFIG),
            Some($emulate),
            |ctx| create_config(ctx, $key, $value).await
        )
    };
}

fn emulate_2_8(c: &mut kmirror_broker::BrokerConfig) {
    c.emulate_kafka = kmirror_broker::KafkaRelease::V2_8;
}

fn emulate_3_6(c: &mut kmirror_broker::BrokerConfig) {
    c.emulate_kafka = kmirror_broker::KafkaRelease::V3_6;
}

/// DescribeConfigs of a fresh topic on a broker of this row: whether it lists
/// message.format.version (1) or not (0).
async fn lists_message_format_version(ctx: Ctx) -> Got {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let topic = ctx.topic("mfv");
    let code = create_with(&ctx, &topic, &[]).await;
    if code != 0 {
        return Got::Answer(format!("creating {topic} failed with {code}"));
    }
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(&topic))]);
    match ctx.m.send_at(&req, 4).await {
        Ok(r) if r.results[0].error_code != 0 => Got::Code(r.results[0].error_code),
        Ok(r) => Got::Value(i64::from(
            r.results[0]
                .configs
                .iter()
                .any(|c| c.name.as_str() == "message.format.version"),
        )),
        Err(_) => Got::Closed,
    }
}

/// CreateTopics of a fresh topic with `key` = `value`; its error code.
async fn create_config(ctx: Ctx, key: &str, value: &str) -> Got {
    Got::Code(create_with(&ctx, &ctx.topic("cfg"), &[(key, value)]).await)
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("CreateTopics at replication factor 0: INVALID_REPLICATION_FACTOR",
            "ReplicationControlManager.createTopic", Got::Code(INVALID_REPLICATION_FACTOR),
            |ctx| create_rf(ctx, 0).await),
        three_node_row!("CreateTopics on 3 nodes at replication factor 3 is accepted",
            "StripedReplicaPlacer.place", Got::Code(0), |ctx| create_rf(ctx, 3).await),
        three_node_row!("CreateTopics on 3 nodes at replication factor 2 is accepted",
            "StripedReplicaPlacer.place", Got::Code(0), |ctx| create_rf(ctx, 2).await),
        three_node_row!("CreateTopics on 3 nodes at replication factor 4: INVALID_REPLICATION_FACTOR",
            "StripedReplicaPlacer.place", Got::Code(INVALID_REPLICATION_FACTOR),
            |ctx| create_rf(ctx, 4).await),
        row!("CreateTopics of a name differing from an existing topic's only in '.' against '_': INVALID_TOPIC_EXCEPTION",
            "ReplicationControlManager.validateNewTopicNames", Got::Code(INVALID_TOPIC_EXCEPTION),
            |ctx| create_after(ctx, "c.x", "c_x").await),
        row!("CreateTopics collision the other way ('_' existing, '.' new): INVALID_TOPIC_EXCEPTION",
            "ReplicationControlManager.validateNewTopicNames", Got::Code(INVALID_TOPIC_EXCEPTION),
            |ctx| create_after(ctx, "d_y", "d.y").await),
        row!("CreateTopics of a name differing in '-' against '.' is no collision",
            "Topic.hasCollisionChars / unifyCollisionChars", Got::Code(0),
            |ctx| create_after(ctx, "e.z", "e-z").await),
        row!("CreateTopics of an existing name with '.': TOPIC_ALREADY_EXISTS, not a collision",
            "ReplicationControlManager.createTopics", Got::Code(TOPIC_ALREADY_EXISTS),
            |ctx| create_after(ctx, "f.w", "f.w").await),
        row!("CreateTopics of two names colliding with each other in one request: both created",
            "ReplicationControlManager.validateNewTopicNames (existing topics only)",
            Got::Answer("answers [h.u=0, h_u=0], existing [h.u, h_u]".into()),
            |ctx| create_names(ctx, &["h.u", "h_u"], false).await),
        row!("CreateTopics naming a topic twice: one INVALID_REQUEST after the rest, neither created",
            "ControllerApis.createTopics (duplicateTopicNames)",
            Got::Answer("answers [other=0, twice=42], existing [other]".into()),
            |ctx| create_names(ctx, &["twice", "other", "twice"], false).await),
        row!("CreateTopics of __cluster_metadata: INVALID_REQUEST",
            "ControllerApis.createTopics (CLUSTER_METADATA_TOPIC_NAME)",
            Got::Answer("answers [__cluster_metadata=42], existing []".into()),
            |ctx| create_names(ctx, &["__cluster_metadata"], true).await),
        row!("Metadata auto-creation of a colliding name: UNKNOWN_TOPIC_OR_PARTITION (the controller refuses it later), nothing created",
            "AutoTopicCreationManager.sendCreateTopicRequest / ReplicationControlManager.validateNewTopicNames",
            Got::Code(UNKNOWN_TOPIC_OR_PARTITION), |ctx| auto_create_after(ctx, "g.v", "g_v").await),
        row!("Metadata auto-creating a topic: UNKNOWN_TOPIC_OR_PARTITION without partitions, then the topic",
            "AutoTopicCreationManager.sendCreateTopicRequest", Got::Code(0),
            |ctx| auto_create_then_found(ctx).await),
        row!("Metadata for an invalid name without auto-creation: INVALID_TOPIC_EXCEPTION, not UNKNOWN_TOPIC_OR_PARTITION",
            "KafkaApis.getTopicMetadata (Topic.validate)", Got::Code(INVALID_TOPIC_EXCEPTION),
            |ctx| metadata_code(ctx, "bad name!", false).await),
        row!("Metadata for an invalid name with auto-creation: INVALID_TOPIC_EXCEPTION",
            "AutoTopicCreationManager.filterCreatableTopics (isValidTopicName)", Got::Code(INVALID_TOPIC_EXCEPTION),
            |ctx| metadata_code(ctx, &"x".repeat(250), true).await),
        row!("IncrementalAlterConfigs SUBTRACT on a non-LIST key: INVALID_CONFIG",
            "ConfigurationControlManager.incrementalAlterConfigResource (isSplittable)", Got::Code(INVALID_CONFIG),
            |ctx| alter_op(ctx, "segment.ms", 3, "5").await),
        row!("IncrementalAlterConfigs APPEND on a non-LIST key: INVALID_CONFIG",
            "ConfigurationControlManager.incrementalAlterConfigResource (isSplittable)", Got::Code(INVALID_CONFIG),
            |ctx| alter_op(ctx, "segment.ms", 2, "604800000").await),
        row!("IncrementalAlterConfigs APPEND on a LIST key is accepted",
            "ConfigurationControlManager.incrementalAlterConfigResource", Got::Code(0),
            |ctx| alter_op(ctx, "cleanup.policy", 2, "compact").await),
        row!("IncrementalAlterConfigs SET compression.lz4.level 18: INVALID_CONFIG",
            "CompressionType.LZ4.levelValidator", Got::Code(INVALID_CONFIG),
            |ctx| alter_op(ctx, "compression.lz4.level", 0, "18").await),
        config_row!("compression.gzip.level" = "0" refused, "CompressionType.GZIP.levelValidator"),
        config_row!("compression.gzip.level" = "10" refused, "CompressionType.GZIP.levelValidator"),
        config_row!("compression.gzip.level" = "-1" accepted, "CompressionType.GZIP.levelValidator"),
        config_row!("compression.gzip.level" = "9" accepted, "CompressionType.GZIP.levelValidator"),
        config_row!("compression.lz4.level" = "18" refused, "CompressionType.LZ4.levelValidator"),
        config_row!("compression.lz4.level" = "17" accepted, "CompressionType.LZ4.levelValidator"),
        config_row!("compression.zstd.level" = "23" refused, "CompressionType.ZSTD.levelValidator"),
        config_row!("compression.zstd.level" = "-131072" accepted, "CompressionType.ZSTD.levelValidator"),
        config_row!("remote.storage.enable" = "true" refused, "LogConfig.validateRemoteStorageOnlyIfSystemEnabled"),
        config_row!("remote.storage.enable" = "false" accepted, "LogConfig.validateRemoteStorageOnlyIfSystemEnabled"),
        config_row!("leader.replication.throttled.replicas" = "xyz" refused, "ThrottledReplicaListValidator"),
        config_row!("follower.replication.throttled.replicas" = "0:1,x" refused, "ThrottledReplicaListValidator"),
        config_row!("leader.replication.throttled.replicas" = "0:1,1:2" accepted, "ThrottledReplicaListValidator"),
        config_row!("remote.log.copy.disable" = "true" accepted, "LogConfig.CONFIG (KIP-950, 3.9)"),
        config_row!("retention.bytes" = "-2" accepted, "LogConfig.CONFIG (retention.bytes: no validator)"),
        config_row!("retention.ms" = "-2" refused, "LogConfig.CONFIG (retention.ms atLeast(-1))"),
        release_config_row!(emulate_3_6, "3.6", "remote.log.delete.on.disable" = "true" refused, "LogConfig.validateNames (came with 3.9, KIP-950)"),
        config_row!("message.format.version" = "3.0-IV1" refused, "LogConfig.validateNames (removed in 4.0: KIP-724, KAFKA-17393)"),
        release_config_row!(emulate_2_8, "2.8", "segment.bytes" = "102400" accepted, "LogConfig (segment.bytes atLeast RECORD_OVERHEAD_V0 before 4.0)"),
        release_config_row!(emulate_3_6, "3.6", "segment.bytes" = "14" accepted, "LogConfig.CONFIG (atLeast LegacyRecord.RECORD_OVERHEAD_V0)"),
        release_config_row!(emulate_3_6, "3.6", "segment.bytes" = "13" refused, "LogConfig.CONFIG (atLeast LegacyRecord.RECORD_OVERHEAD_V0)"),
        row!("Kafka 3.6: IncrementalAlterConfigs broker log.segment.bytes 102400 is accepted",
            "KafkaConfig (log.segment.bytes atLeast RECORD_OVERHEAD_V0 before 4.0)", Got::Code(0), Some(emulate_3_6),
            |ctx| crate::admin::alter_one(&ctx, (4, "0"), "log.segment.bytes", "102400").await),
        release_config_row!(emulate_3_6, "3.6", "message.format.version" = "3.0-IV1" accepted, "MetadataVersionValidator.ensureValid"),
        release_config_row!(emulate_3_6, "3.6", "message.format.version" = "2.8.1" accepted, "MetadataVersion.fromVersionString (first two parts)"),
        release_config_row!(emulate_3_6, "3.6", "message.format.version" = "3.9-IV0" refused, "MetadataVersion.fromVersionString (not a version of 3.6)"),
        release_config_row!(emulate_3_6, "3.6", "message.format.version" = "0.10.2-IV0" accepted, "MetadataVersion.fromVersionString (first three parts of 0.x)"),
        release_config_row!(emulate_3_6, "3.6", "compression.zstd.level" = "5" refused, "LogConfig.validateNames (compression levels came with 3.8, KIP-390)"),
        release_config_row!(emulate_2_8, "2.8", "message.timestamp.after.max.ms" = "1000" refused, "LogConfig.validateNames (came with 3.6, KIP-937)"),
        release_config_row!(emulate_2_8, "2.8", "remote.storage.enable" = "false" refused, "LogConfig.validateNames (came with 3.0, KAFKA-12816)"),
        row!("Kafka 3.6: DescribeConfigs of a topic lists message.format.version",
            "LogConfig.CONFIG (until 4.0)", Got::Value(1), Some(emulate_3_6),
            |ctx| lists_message_format_version(ctx).await),
        row!("Kafka 4.1: DescribeConfigs of a topic does not list message.format.version",
            "LogConfig.CONFIG (removed in 4.0, KAFKA-17393)", Got::Value(0),
            |ctx| lists_message_format_version(ctx).await),
        config_row!("follower.replication.throttled.replicas" = "*" accepted, "ThrottledReplicaListValidator"),
    ]
}
