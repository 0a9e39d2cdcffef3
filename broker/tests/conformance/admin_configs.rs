//! Admin rules, continued: DescribeConfigs config sources and synonyms (ConfigHelper),
//! committed offsets within `offsets.retention.minutes` (expiry itself runs on the
//! coordinator's test clock in `groups/coordinator_tests.rs`), and DescribeCluster's
//! endpoint types.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;

use crate::admin::{alter_one, check, create_with, row, s};
use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const INVALID_RECORD: i16 = 87;

/// DescribeCluster v1 for `endpoint_type`: the error code, and the endpoint type answered
/// on success.
async fn describe_cluster(ctx: &Ctx, endpoint_type: i8) -> Got {
    let req = DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
    match ctx.m.send_at(&req, 1).await {
        Ok(r) if r.error_code == 0 && r.endpoint_type != endpoint_type => {
            Got::Answer(format!("answered endpoint type {}", r.endpoint_type))
        }
        Ok(r) if r.error_code != 0 && r.error_message.is_none() => {
            Got::Answer(format!("error {} without a message", r.error_code))
        }
        Ok(r) => Got::Code(r.error_code),
        Err(_) => Got::Closed,
    }
}

/// (source, [(synonym, value, source)]) of one key of a resource, with synonyms.
type Described = (i8, Vec<(String, String, i8)>);

/// A broker keeping Kafka's retention (log.retention.hours' 168), not the harness's -1.
fn kafkas_retention(c: &mut kmirror_broker::BrokerConfig) {
    c.log_defaults.retention_ms = 7 * 24 * 3_600_000;
}

async fn describe_key(ctx: &Ctx, resource: (i8, &str), key: &str) -> Result<Described, Got> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource.0)
            .with_resource_name(s(resource.1))
            .with_configuration_keys(Some(vec![s(key)]))]);
    let r = ctx.m.send_at(&req, 4).await.map_err(|_| Got::Closed)?;
    let res = &r.results[0];
    if res.error_code != 0 {
        return Err(Got::Code(res.error_code));
    }
    let Some(c) = res.configs.first() else {
        return Err(Got::Answer(format!("{key} not described")));
    };
    let synonyms = c
        .synonyms
        .iter()
        .map(|x| {
            let value = x.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (x.name.to_string(), value, x.source)
        })
        .collect();
    Ok((c.config_source, synonyms))
}

/// (value, source) of broker 0's `key`.
async fn broker_value(ctx: &Ctx, key: &str) -> Result<(Option<String>, i8), Got> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s("0"))
            .with_configuration_keys(Some(vec![s(key)]))]);
    let r = ctx.m.send_at(&req, 4).await.map_err(|_| Got::Closed)?;
    match r.results[0].configs.first() {
        Some(c) => Ok((c.value.as_ref().map(|v| v.to_string()), c.config_source)),
        None => Err(Got::Answer(format!("{key} not described"))),
    }
}

fn expect_described(got: Result<Described, Got>, want: Described) -> Got {
    match got {
        Ok(d) if d == want => Got::Code(0),
        Ok(d) => Got::Answer(format!("got {d:?}, Kafka answers {want:?}")),
        Err(g) => g,
    }
}

fn syn(name: &str, value: &str, source: i8) -> (String, String, i8) {
    (name.to_string(), value.to_string(), source)
}

/// Keys listed for the broker resource "" (only cluster-wide dynamic defaults).
async fn cluster_default_keys(ctx: &Ctx) -> Result<Vec<String>, Got> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(""))]);
    let r = ctx.m.send_at(&req, 4).await.map_err(|_| Got::Closed)?;
    Ok(r.results[0]
        .configs
        .iter()
        .map(|c| format!("{}={}", c.name.as_str(), c.config_source))
        .collect())
}

/// Sets broker key `key` to `value` on broker resource `name` ("" = the cluster-wide
/// default) with IncrementalAlterConfigs SET.
async fn set_broker_key(ctx: &Ctx, name: &str, key: &str, value: &str) -> Got {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    code_or_closed(ctx.m.send(&req).await, |(r, _)| r.responses[0].error_code)
}

/// The messages DescribeConfigs and IncrementalAlterConfigs answer for BROKER resources
/// that are not this broker (0): "7", "x"; and whether "00" is this broker.
async fn other_broker_messages(ctx: Ctx) -> Got {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let mut got = Vec::new();
    for name in ["7", "x", "00"] {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(s(name))
                .with_configuration_keys(Some(vec![s("log.retention.ms")])),
        ]);
        let Ok(r) = ctx.m.send_at(&req, 4).await else {
            return Got::Closed;
        };
        let res = &r.results[0];
        got.push((
            res.error_code,
            res.error_message.as_ref().map(|m| m.to_string()),
        ));
    }
    for name in ["7", "x"] {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(s(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("log.retention.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(s("1000")))]),
        ]);
        let Ok((r, _)) = ctx.m.send(&req).await else {
            return Got::Closed;
        };
        let res = &r.responses[0];
        got.push((
            res.error_code,
            res.error_message.as_ref().map(|m| m.to_string()),
        ));
    }
    let refused = |m: &str| (INVALID_REQUEST, Some(m.to_string()));
    check(
        "(code, message) of describe 7, x, 00; alter 7, x",
        got,
        vec![
            refused("Unexpected broker id, expected 0 or empty string, but received 7"),
            refused("Broker id must be an integer, but it is: x"),
            // (ErrorMessage's default: DescribeConfigsResponse.json.)
            (0, Some(String::new())),
            refused("Unexpected broker id, expected 0, but received 7"),
            refused("Node id must be an integer, but it is: x"),
        ],
    )
}

/// Sets `message.max.bytes` as a cluster-wide default, then `log.retention.bytes` for
/// broker 0, and checks both sources (rows with a broker of their own).
async fn dynamic_broker_sources(ctx: Ctx) -> Got {
    for (name, key, value) in [
        ("", "message.max.bytes", "2000000"),
        ("0", "log.retention.bytes", "5000000"),
    ] {
        match set_broker_key(&ctx, name, key, value).await {
            Got::Code(0) => {}
            other => return other,
        }
    }
    let listed = match cluster_default_keys(&ctx).await {
        Ok(l) => l,
        Err(g) => return g,
    };
    if listed != ["message.max.bytes=3"] {
        return Got::Answer(format!("broker \"\" lists {listed:?}"));
    }
    let mmb = describe_key(&ctx, (BROKER, "0"), "message.max.bytes").await;
    let want = (
        3,
        vec![
            syn("message.max.bytes", "2000000", 3),
            syn("message.max.bytes", "1048588", 5),
        ],
    );
    if expect_described(mmb, want) != Got::Code(0) {
        return Got::Answer("message.max.bytes is not DYNAMIC_DEFAULT_BROKER_CONFIG".into());
    }
    let lrb = describe_key(&ctx, (BROKER, "0"), "log.retention.bytes").await;
    expect_described(
        lrb,
        (
            2,
            vec![
                syn("log.retention.bytes", "5000000", 2),
                syn("log.retention.bytes", "-1", 5),
            ],
        ),
    )
}

/// Commits offset 3 (simple group) and fetches it back at once.
async fn offset_kept(ctx: Ctx, retention_time_ms: i64) -> Got {
    let topic = ctx.topic("keep");
    let group = ctx.topic("g");
    common::create_topic(&ctx.m, &topic, 1).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(retention_time_ms)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(common::name(&topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(3)])]);
    match ctx.m.send_at(&commit, 2).await {
        Ok(r) if r.topics[0].partitions[0].error_code != 0 => {
            return Got::Code(r.topics[0].partitions[0].error_code)
        }
        Ok(_) => {}
        Err(_) => return Got::Closed,
    }
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(common::name(&topic))
            .with_partition_indexes(vec![0])]));
    match ctx.m.send_at(&fetch, 5).await {
        Ok(r) => {
            let offset = r.topics[0].partitions[0].committed_offset;
            if offset == 3 {
                Got::Code(0)
            } else {
                Got::Answer(format!("committed offset {offset}, Kafka keeps 3"))
            }
        }
        Err(_) => Got::Closed,
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("DescribeConfigs: a topic's own value is TOPIC_CONFIG, then its broker synonym",
            "ConfigHelper.createTopicConfigEntry", Got::Code(0), |ctx| {
                let t = ctx.topic("src");
                crate::admin::create_with(&ctx, &t, &[("retention.bytes", "123456")]).await;
                let d = describe_key(&ctx, (TOPIC, &t), "retention.bytes").await;
                expect_described(d, (1, vec![
                    syn("retention.bytes", "123456", 1),
                    syn("log.retention.bytes", "-1", 5),
                ]))
            }),
        row!("DescribeConfigs: an unset topic key is DEFAULT_CONFIG with its broker synonym",
            "ConfigHelper.createTopicConfigEntry / ServerTopicConfigSynonyms", Got::Code(0), |ctx| {
                let t = ctx.topic("src");
                common::create_topic(&ctx.m, &t, 1).await;
                let d = describe_key(&ctx, (TOPIC, &t), "cleanup.policy").await;
                expect_described(d, (5, vec![syn("log.cleanup.policy", "delete", 5)]))
            }),
        row!("DescribeConfigs: a start-up broker value differing from Kafka's default is STATIC_BROKER_CONFIG",
            "ConfigHelper.configSynonyms", Got::Code(0), |ctx| {
                // The harness starts brokers with log.retention.ms = -1 (Kafka: no default).
                let d = describe_key(&ctx, (BROKER, "0"), "log.retention.ms").await;
                expect_described(d, (4, vec![syn("log.retention.ms", "-1", 4)]))
            }),
        row!("DescribeConfigs: log.retention.ms of a broker started without it is null, DEFAULT_CONFIG",
            "ConfigHelper.createBrokerConfigEntry (log.retention.ms has no default: null)",
            Got::Code(0), Some(kafkas_retention), |ctx| match broker_value(&ctx, "log.retention.ms").await {
                Ok(got) => check("(value, source)", got, (None, 5)),
                Err(g) => g,
            }),
        row!("DescribeConfigs: retention.ms of a fresh topic on a broker started without log.retention.ms is DEFAULT_CONFIG, without synonyms",
            "ConfigHelper.configSynonyms (log.retention.ms has no default; dropWhile drops log.retention.hours')",
            Got::Code(0), Some(kafkas_retention), |ctx| {
                let t = ctx.topic("week");
                common::create_topic(&ctx.m, &t, 1).await;
                let d = describe_key(&ctx, (TOPIC, &t), "retention.ms").await;
                expect_described(d, (5, vec![]))
            }),
        Row {
            rule: "DescribeConfigs: dynamic values on \"\" are DYNAMIC_DEFAULT_BROKER_CONFIG, on the broker id DYNAMIC_BROKER_CONFIG",
            kafka: "ConfigHelper.describeConfigs / DynamicBrokerConfig",
            expect: Got::Code(0),
            config: Some(|_| {}),
            run: |ctx| Box::pin(dynamic_broker_sources(ctx)),
        },
        row!("DescribeConfigs: broker \"\" without dynamic defaults lists nothing",
            "ConfigHelper.describeConfigs", Got::Code(0), |ctx| match cluster_default_keys(&ctx).await {
                Ok(l) if l.is_empty() => Got::Code(0),
                Ok(l) => Got::Answer(format!("lists {l:?}")),
                Err(g) => g,
            }),
        row!("DescribeConfigs and IncrementalAlterConfigs of another broker's id, or not an integer: INVALID_REQUEST, in Kafka's words; \"00\" is broker 0",
            "ConfigHelper.describeConfigs (resourceNameToBrokerId) / ConfigAdminManager.validateResourceNameIsCurrentNodeId",
            Got::Code(0), Some(|_| {}), |ctx| other_broker_messages(ctx).await),
        row!("DescribeConfigs: another broker's id is INVALID_REQUEST",
            "ConfigHelper.describeConfigs", Got::Code(INVALID_REQUEST),
            |ctx| describe_key(&ctx, (BROKER, "7"), "log.retention.ms").await.map_or_else(|g| g, |d| Got::Answer(format!("{d:?}")))),
        row!("IncrementalAlterConfigs: broker log.retention.bytes -5 is accepted (any negative: no limit)",
            "ServerLogConfigs (log.retention.bytes: no validator) / DynamicLogConfig.validateLogLocalRetentionBytes",
            Got::Code(0), Some(|_| {}), |ctx| {
                match set_broker_key(&ctx, "0", "log.retention.bytes", "-5").await {
                    Got::Code(0) => {}
                    other => return other,
                }
                let d = describe_key(&ctx, (BROKER, "0"), "log.retention.bytes").await;
                expect_described(d, (2, vec![syn("log.retention.bytes", "-5", 2), syn("log.retention.bytes", "-1", 5)]))
            }),
        row!("DescribeConfigs: the broker lists the log defaults of topic keys, null where Kafka's default is",
            "ConfigHelper.describeConfigs (allConfigs) / ServerTopicConfigSynonyms", Got::Code(0), |ctx| {
                let mut got = Vec::new();
                for key in ["min.insync.replicas", "compression.type", "log.cleanup.policy", "log.roll.ms"] {
                    match broker_value(&ctx, key).await {
                        Ok(v) => got.push(v),
                        Err(g) => return g,
                    }
                }
                let default = |v: Option<&str>| (v.map(str::to_string), 5);
                check("(value, source) of each", got, vec![default(Some("1")), default(Some("producer")), default(Some("delete")), default(None)])
            }),
        row!("IncrementalAlterConfigs: broker log.cleanup.policy is dynamic; a topic without its own value follows it and refuses keyless records",
            "DynamicLogConfig.ReconfigurableConfigs / LogValidator.validateKey", Got::Code(INVALID_RECORD), Some(|_| {}), |ctx| {
                let t = ctx.topic("follows");
                common::create_topic(&ctx.m, &t, 1).await;
                match set_broker_key(&ctx, "0", "log.cleanup.policy", "compact").await {
                    Got::Code(0) => {}
                    other => return other,
                }
                let d = describe_key(&ctx, (TOPIC, &t), "cleanup.policy").await;
                let want = (2, vec![syn("log.cleanup.policy", "compact", 2), syn("log.cleanup.policy", "delete", 5)]);
                if let other @ (Got::Answer(_) | Got::Closed) = expect_described(d, want) {
                    return other;
                }
                let keyless = kmirror_wire::records::record(0, 1_700_000_000_000, None, Some(bytes::Bytes::from_static(b"v")));
                let batch = kmirror_wire::records::encode(&[keyless], kafka_protocol::records::Compression::None).unwrap();
                Got::Code(common::produce(&ctx.m, &t, 0, batch).await.error_code)
            }),
        row!("IncrementalAlterConfigs: a cluster-wide min.insync.replicas is the value of a topic without its own (DYNAMIC_DEFAULT_BROKER_CONFIG)",
            "DynamicLogConfig.ReconfigurableConfigs / ConfigHelper.createTopicConfigEntry", Got::Code(0), Some(|_| {}), |ctx| {
                let t = ctx.topic("isr");
                common::create_topic(&ctx.m, &t, 1).await;
                match set_broker_key(&ctx, "", "min.insync.replicas", "2").await {
                    Got::Code(0) => {}
                    other => return other,
                }
                let d = describe_key(&ctx, (TOPIC, &t), "min.insync.replicas").await;
                expect_described(d, (3, vec![syn("min.insync.replicas", "2", 3), syn("min.insync.replicas", "1", 5)]))
            }),
        row!("IncrementalAlterConfigs: broker log.cleanup.policy \"shred\": INVALID_REQUEST",
            "ConfigAdminManager.validateBrokerConfigChange (ValidList)", Got::Code(INVALID_REQUEST), Some(|_| {}),
            |ctx| set_broker_key(&ctx, "0", "log.cleanup.policy", "shred").await),
        row!("IncrementalAlterConfigs: offsets.retention.minutes is not dynamic (INVALID_REQUEST)",
            "DynamicBrokerConfig.AllDynamicConfigs", Got::Code(INVALID_REQUEST),
            |ctx| alter_one(&ctx, (BROKER, "0"), "offsets.retention.minutes", "5").await),
        row!("CreateTopics min.compaction.lag.ms above max.compaction.lag.ms: INVALID_CONFIG",
            "LogConfig.validateValues", Got::Code(INVALID_CONFIG),
            |ctx| Got::Code(create_with(&ctx, &ctx.topic("lag"), &[("min.compaction.lag.ms", "1000"), ("max.compaction.lag.ms", "10")]).await)),
        row!("CreateTopics min.compaction.lag.ms equal to max.compaction.lag.ms is accepted",
            "LogConfig.validateValues", Got::Code(0),
            |ctx| Got::Code(create_with(&ctx, &ctx.topic("lag"), &[("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", "10")]).await)),
        row!("IncrementalAlterConfigs max.compaction.lag.ms below the topic's min.compaction.lag.ms: INVALID_CONFIG",
            "LogConfig.validateValues (on the topic's configs as they would be)", Got::Code(INVALID_CONFIG), |ctx| {
                let t = ctx.topic("lag");
                match create_with(&ctx, &t, &[("min.compaction.lag.ms", "1000")]).await {
                    0 => alter_one(&ctx, (TOPIC, &t), "max.compaction.lag.ms", "10").await,
                    code => Got::Answer(format!("create: {code}")),
                }
            }),
        row!("CreateTopics parses values trimmed: max.compaction.lag.ms \" 1000 \" is 1000, above min",
            "ConfigDef.parseType (trimmed) / LogConfig.validateValues", Got::Code(0),
            |ctx| Got::Code(create_with(&ctx, &ctx.topic("trim"), &[("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", " 1000 ")]).await)),
        row!("CreateTopics message.timestamp.type \" LogAppendTime\" is accepted and described parsed",
            "ConfigDef.parseType / ConfigHelper.allConfigs", Got::Code(0), |ctx| {
                let t = ctx.topic("trim");
                match create_with(&ctx, &t, &[("message.timestamp.type", " LogAppendTime"), ("cleanup.policy", "compact , delete")]).await {
                    0 => {}
                    code => return Got::Answer(format!("create: {code}")),
                }
                let ts = describe_key(&ctx, (TOPIC, &t), "message.timestamp.type").await;
                let policy = describe_key(&ctx, (TOPIC, &t), "cleanup.policy").await;
                match (ts, policy) {
                    (Ok((1, ts)), Ok((1, policy)))
                        if ts[0].1 == "LogAppendTime" && policy[0].1 == "compact,delete" => Got::Code(0),
                    other => Got::Answer(format!("described {other:?}")),
                }
            }),
        row!("DescribeConfigs of a topic with an illegal name: INVALID_TOPIC_EXCEPTION",
            "ConfigHelper.describeConfigs (Topic.validate)", Got::Code(17),
            |ctx| describe_key(&ctx, (TOPIC, "bad topic!"), "retention.ms").await.map_or_else(|g| g, |d| Got::Answer(format!("{d:?}")))),
        row!("DescribeConfigs of a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION",
            "ConfigHelper.describeConfigs", Got::Code(3),
            |ctx| describe_key(&ctx, (TOPIC, &ctx.topic("absent")), "retention.ms").await.map_or_else(|g| g, |d| Got::Answer(format!("{d:?}")))),
        row!("DescribeCluster for brokers answers with endpoint type BROKER",
            "AuthHelper.computeDescribeClusterResponse", Got::Code(0),
            |ctx| describe_cluster(&ctx, 1).await),
        row!("DescribeCluster for controllers sent to a broker: MISMATCHED_ENDPOINT_TYPE",
            "AuthHelper.computeDescribeClusterResponse", Got::Code(114),
            |ctx| describe_cluster(&ctx, 2).await),
        row!("DescribeCluster for an unknown endpoint type: UNSUPPORTED_ENDPOINT_TYPE",
            "AuthHelper.computeDescribeClusterResponse", Got::Code(115),
            |ctx| describe_cluster(&ctx, 7).await),
        row!("Offsets of an Empty group are kept within offsets.retention.minutes",
            "OffsetExpirationConditionImpl.isOffsetExpired", Got::Code(0),
            |ctx| offset_kept(ctx, -1).await),
        row!("OffsetCommit v2 retention_time_ms: kept until that time has passed",
            "OffsetMetadataManager.expireTimestampMs", Got::Code(0),
            |ctx| offset_kept(ctx, 3_600_000).await),
    ]
}
