//! Version rules: Fetch by topic id (v13+), zstd below Fetch v10, ListOffsets special
//! timestamps per version, and the advertised versions and features of an emulated
//! release (`BrokerConfig::emulate_kafka`).

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use kmirror_broker::{BrokerConfig, KafkaRelease};
use kmirror_wire::messenger::Messenger;
use uuid::Uuid;

use crate::common;
use crate::harness::{Ctx, Got, Row};

const UNKNOWN_TOPIC_ID: i16 = 100;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const UNSUPPORTED_VERSION: i16 = 35;

/// Creates a one-partition topic with `configs` and returns its id.
async fn create(ctx: &Ctx, topic: &str, configs: &[(&str, &str)]) -> Uuid {
    let configs = common::topic_configs(configs);
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(common::name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs)]);
    let resp = ctx.m.send_at(&req, 7).await.expect("CreateTopics v7");
    assert_eq!(resp.topics[0].error_code, 0, "create {topic}");
    resp.topics[0].topic_id
}

/// Three records, timestamps 1000, 1001, 1002, in one batch with `compression`.
fn batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..3).map(|i| common::record(i, 1_000 + i)).collect();
    kmirror_wire::records::encode(&records, compression).unwrap()
}

/// Fetches partition 0 from offset 0 at `version`, naming the topic by id at v13+ (the name
/// field does not exist there). Error code, or the number of records returned.
async fn fetch_at(m: &Messenger, topic: &str, id: Uuid, version: i16) -> Got {
    let mut req = common::fetch_request(topic, 0, 0, 0, 1 << 20);
    if version >= 13 {
        req.topics[0].topic = TopicName::default();
        req.topics[0].topic_id = id;
    }
    let resp = match m.send_at(&req, version).await {
        Ok(r) => r,
        Err(_) => return Got::Closed,
    };
    let t = &resp.responses[0];
    let p = &t.partitions[0];
    if p.error_code != 0 {
        return Got::Code(p.error_code);
    }
    // The answer names the topic as the request did.
    let named_back = if version >= 13 {
        t.topic_id == id
    } else {
        t.topic.as_str() == topic
    };
    if !named_back {
        return Got::Code(i16::MIN);
    }
    Got::Value(common::records_of(p).len() as i64)
}

/// A fresh topic with three records (uncompressed), fetched at `version` by name or id.
async fn fetch_known(ctx: Ctx, version: i16) -> Got {
    let topic = ctx.topic("t");
    let id = create(&ctx, &topic, &[]).await;
    common::produce(&ctx.m, &topic, 0, batch(Compression::None)).await;
    fetch_at(&ctx.m, &topic, id, version).await
}

/// Emulating 2.8: Fetch v13 closes the connection; a new connection is then served at v12.
async fn fetch_v13_then_v12(ctx: Ctx) -> Got {
    let topic = ctx.topic("t");
    let id = create(&ctx, &topic, &[]).await;
    common::produce(&ctx.m, &topic, 0, batch(Compression::None)).await;
    let got = fetch_at(&ctx.m, &topic, id, 13).await;
    if got != Got::Closed {
        return got;
    }
    fetch_at(&ctx.connect().await, &topic, id, 12).await
}

/// A topic with `compression.type` = `codec`, holding one zstd batch, fetched at `version`.
async fn fetch_zstd(ctx: Ctx, codec: &str, version: i16) -> Got {
    let topic = ctx.topic("z");
    let id = create(&ctx, &topic, &[("compression.type", codec)]).await;
    let p = common::produce(&ctx.m, &topic, 0, batch(Compression::Zstd)).await;
    assert_eq!(p.error_code, 0, "zstd produce");
    fetch_at(&ctx.m, &topic, id, version).await
}

/// ListOffsets for `timestamp` at `version` on three records with timestamps 1000-1002:
/// the error code, or the offset found.
async fn list_offsets_at(ctx: Ctx, timestamp: i64, version: i16) -> Got {
    let topic = ctx.topic("lo");
    create(&ctx, &topic, &[]).await;
    common::produce(&ctx.m, &topic, 0, batch(Compression::None)).await;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(&topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    match ctx.m.send_at(&req, version).await {
        Ok(r) => {
            let p = &r.topics[0].partitions[0];
            match p.error_code {
                0 => Got::Value(p.offset),
                code => Got::Code(code),
            }
        }
        Err(_) => Got::Closed,
    }
}

/// The highest version the broker advertised for `api_key`.
fn max_of(ctx: &Ctx, api_key: i16) -> Got {
    ctx.m
        .versions()
        .range(api_key)
        .map_or(Got::Code(i16::MIN), |r| Got::Value(i64::from(r.max)))
}

/// ApiVersions at `version` from a client naming itself `name` `software_version`: the
/// response's error code (0 when served).
async fn api_versions_named(ctx: Ctx, version: i16, (name, software_version): (&str, &str)) -> Got {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_string(name.to_string()))
        .with_client_software_version(StrBytes::from_string(software_version.to_string()));
    match ctx.m.send_at(&req, version).await {
        Ok(r) => Got::Code(r.error_code),
        Err(_) => Got::Closed,
    }
}

/// ApiVersions at `version`: the finalized `metadata.version` level, or 0 if there is none;
/// `Code(i16::MIN)` if any other feature is finalized (this broker has none of them).
async fn finalized_metadata_version(ctx: Ctx, version: i16) -> Got {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("conformance"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    match ctx.m.send_at(&req, version).await {
        Ok(r) if r.error_code != 0 => Got::Code(r.error_code),
        Ok(r) => {
            if r.finalized_features
                .iter()
                .any(|f| f.name.as_str() != "metadata.version")
            {
                return Got::Code(i16::MIN);
            }
            Got::Value(
                r.finalized_features
                    .first()
                    .map_or(0, |f| i64::from(f.max_version_level)),
            )
        }
        Err(_) => Got::Closed,
    }
}

fn emulate_2_8(c: &mut BrokerConfig) {
    c.emulate_kafka = KafkaRelease::V2_8;
}

fn emulate_4_0(c: &mut BrokerConfig) {
    c.emulate_kafka = KafkaRelease::V4_0;
}

pub fn rows() -> Vec<Row> {
    let mut rows = fetch_rows();
    rows.extend(list_offsets_rows());
    rows.extend(api_versions_rows());
    rows
}

fn fetch_rows() -> Vec<Row> {
    vec![
        Row {
            rule: "Fetch v13: a topic named by its id answers with data and the id",
            kafka: "KafkaApis.handleFetchRequest (topicIdsToNames)",
            expect: Got::Value(3),
            config: None,
            run: |ctx| Box::pin(fetch_known(ctx, 13)),
        },
        Row {
            rule: "Fetch v17: a topic named by its id answers with data and the id",
            kafka: "KafkaApis.handleFetchRequest (topicIdsToNames)",
            expect: Got::Value(3),
            config: None,
            run: |ctx| Box::pin(fetch_known(ctx, 17)),
        },
        Row {
            rule: "Fetch v13: an id no topic has gets UNKNOWN_TOPIC_ID",
            kafka: "KafkaApis.handleFetchRequest (topicIdPartition.topic == null)",
            expect: Got::Code(UNKNOWN_TOPIC_ID),
            config: None,
            run: |ctx| {
                Box::pin(async move {
                    let topic = ctx.topic("t");
                    create(&ctx, &topic, &[]).await;
                    fetch_at(&ctx.m, &topic, Uuid::from_u128(7), 13).await
                })
            },
        },
        Row {
            rule: "Fetch v12: topics are still named by name",
            kafka: "KafkaApis.handleFetchRequest (version < 13)",
            expect: Got::Value(3),
            config: None,
            run: |ctx| Box::pin(fetch_known(ctx, 12)),
        },
        Row {
            rule: "Fetch v9 from a compression.type=zstd topic: UNSUPPORTED_COMPRESSION_TYPE",
            kafka: "KafkaApis.handleFetchRequest (maybeConvertFetchedData)",
            expect: Got::Code(UNSUPPORTED_COMPRESSION_TYPE),
            config: None,
            run: |ctx| Box::pin(fetch_zstd(ctx, "zstd", 9)),
        },
        Row {
            rule: "Fetch v10 from a compression.type=zstd topic is served",
            kafka: "KafkaApis.handleFetchRequest (maybeConvertFetchedData)",
            expect: Got::Value(3),
            config: None,
            run: |ctx| Box::pin(fetch_zstd(ctx, "zstd", 10)),
        },
        Row {
            rule: "Fetch v9: zstd batches on a compression.type=producer topic are served (the rule reads the topic config)",
            kafka: "KafkaApis.handleFetchRequest (logConfig.compressionType == ZSTD)",
            expect: Got::Value(3),
            config: None,
            run: |ctx| Box::pin(fetch_zstd(ctx, "producer", 9)),
        },
    ]
}

fn list_offsets_rows() -> Vec<Row> {
    let row = |rule, expect, run: fn(Ctx) -> crate::harness::RowFuture| Row {
        rule,
        kafka:
            "ReplicaManager.isListOffsetsTimestampUnsupported, UnifiedLog.fetchOffsetByTimestamp",
        expect,
        config: None,
        run,
    };
    vec![
        row(
            "ListOffsets v7: max timestamp (-3) finds the record with the largest timestamp",
            Got::Value(2),
            |ctx| Box::pin(list_offsets_at(ctx, -3, 7)),
        ),
        row(
            "ListOffsets v6: max timestamp (-3) is UNSUPPORTED_VERSION",
            Got::Code(UNSUPPORTED_VERSION),
            |ctx| Box::pin(list_offsets_at(ctx, -3, 6)),
        ),
        row(
            "ListOffsets v8: earliest local (-4) is the log start without tiered storage",
            Got::Value(0),
            |ctx| Box::pin(list_offsets_at(ctx, -4, 8)),
        ),
        row(
            "ListOffsets v7: earliest local (-4) is UNSUPPORTED_VERSION",
            Got::Code(UNSUPPORTED_VERSION),
            |ctx| Box::pin(list_offsets_at(ctx, -4, 7)),
        ),
        row(
            "ListOffsets v9: latest tiered (-5) without tiered storage is offset -1",
            Got::Value(-1),
            |ctx| Box::pin(list_offsets_at(ctx, -5, 9)),
        ),
        row(
            "ListOffsets v8: latest tiered (-5) is UNSUPPORTED_VERSION",
            Got::Code(UNSUPPORTED_VERSION),
            |ctx| Box::pin(list_offsets_at(ctx, -5, 8)),
        ),
        row(
            "ListOffsets v10: an unknown special timestamp (-6) is UNSUPPORTED_VERSION",
            Got::Code(UNSUPPORTED_VERSION),
            |ctx| Box::pin(list_offsets_at(ctx, -6, 10)),
        ),
        row(
            "ListOffsets v10: by timestamp finds the first record at or after it",
            Got::Value(1),
            |ctx| Box::pin(list_offsets_at(ctx, 1_001, 10)),
        ),
    ]
}

fn api_versions_rows() -> Vec<Row> {
    let row = |rule, kafka, expect, config, run: fn(Ctx) -> crate::harness::RowFuture| Row {
        rule,
        kafka,
        expect,
        config,
        run,
    };
    let json_2_8 = "FetchRequest.json / ProduceRequest.json / MetadataRequest.json at 2.8.0";
    let e28: Option<fn(&mut BrokerConfig)> = Some(emulate_2_8);
    vec![
        row(
            "Kafka 4.1: Fetch up to v17",
            "FetchRequest.json (4.1)",
            Got::Value(17),
            None,
            |ctx| Box::pin(async move { max_of(&ctx, 1) }),
        ),
        row(
            "Kafka 4.1: Metadata up to v13",
            "MetadataRequest.json (4.1)",
            Got::Value(13),
            None,
            |ctx| Box::pin(async move { max_of(&ctx, 3) }),
        ),
        row(
            "Kafka 4.1: ListOffsets up to v10",
            "ListOffsetsRequest.json",
            Got::Value(10),
            None,
            |ctx| Box::pin(async move { max_of(&ctx, 2) }),
        ),
        row(
            "Kafka 4.1: Fetch v17 is served",
            "KafkaApis.handleFetchRequest",
            Got::Value(3),
            None,
            |ctx| Box::pin(fetch_known(ctx, 17)),
        ),
        row(
            "Kafka 4.1: Fetch v18 (not advertised) closes the connection",
            "SocketServer (unsupported version)",
            Got::Closed,
            None,
            |ctx| Box::pin(fetch_known(ctx, 18)),
        ),
        row(
            "Kafka 2.8: Fetch up to v12",
            json_2_8,
            Got::Value(12),
            e28,
            |ctx| Box::pin(async move { max_of(&ctx, 1) }),
        ),
        row(
            "Kafka 2.8: Produce up to v9",
            json_2_8,
            Got::Value(9),
            e28,
            |ctx| Box::pin(async move { max_of(&ctx, 0) }),
        ),
        row(
            "Kafka 2.8: Metadata up to v11",
            json_2_8,
            Got::Value(11),
            e28,
            |ctx| Box::pin(async move { max_of(&ctx, 3) }),
        ),
        row(
            "Kafka 2.8: Fetch v12 by name is served",
            json_2_8,
            Got::Value(3),
            e28,
            |ctx| Box::pin(fetch_known(ctx, 12)),
        ),
        row(
            "Kafka 2.8: Fetch v13 (topic ids, 3.1+) closes the connection",
            json_2_8,
            Got::Closed,
            e28,
            |ctx| Box::pin(fetch_known(ctx, 13)),
        ),
        row(
            "Kafka 2.8: after a refused Fetch v13, a new connection is served at v12",
            json_2_8,
            Got::Value(3),
            e28,
            |ctx| Box::pin(fetch_v13_then_v12(ctx)),
        ),
        row(
            "ApiVersions v3, Kafka 4.1: metadata.version 27 (4.1-IV1) finalized, nothing else",
            "ApiVersionsResponse.createFinalizedFeatureKeys, MetadataVersion",
            Got::Value(27),
            None,
            |ctx| Box::pin(finalized_metadata_version(ctx, 3)),
        ),
        row(
            "ApiVersions v4, Kafka 4.0: metadata.version 25 (4.0-IV3) finalized",
            "ApiVersionsResponse.createFinalizedFeatureKeys, MetadataVersion",
            Got::Value(25),
            Some(emulate_4_0),
            |ctx| Box::pin(finalized_metadata_version(ctx, 4)),
        ),
        row(
            "ApiVersions v3 from a client with no software name: INVALID_REQUEST",
            "KafkaApis.handleApiVersionsRequest, ApiVersionsRequest.isValid",
            Got::Code(42),
            None,
            |ctx| Box::pin(api_versions_named(ctx, 3, ("", ""))),
        ),
        row(
            "ApiVersions v3 with a software version ending in '-': INVALID_REQUEST",
            "ApiVersionsRequest.isValid (SOFTWARE_NAME_VERSION_PATTERN)",
            Got::Code(42),
            None,
            |ctx| Box::pin(api_versions_named(ctx, 3, ("librdkafka", "2.0.2-"))),
        ),
        row(
            "ApiVersions v3 named as librdkafka names itself: served",
            "ApiVersionsRequest.isValid (SOFTWARE_NAME_VERSION_PATTERN)",
            Got::Code(0),
            None,
            |ctx| {
                Box::pin(api_versions_named(
                    ctx,
                    3,
                    ("confluent-kafka-python", "2.16.1-rdkafka-2.16.0"),
                ))
            },
        ),
        row(
            "ApiVersions v2 has no software name to check: served",
            "ApiVersionsRequest.isValid (version < 3)",
            Got::Code(0),
            None,
            |ctx| Box::pin(api_versions_named(ctx, 2, ("", ""))),
        ),
        row(
            "ApiVersions v3, Kafka 2.8 (ZooKeeper broker): no finalized features",
            "ApiVersionsResponse (2.8)",
            Got::Value(0),
            e28,
            |ctx| Box::pin(finalized_metadata_version(ctx, 3)),
        ),
    ]
}
