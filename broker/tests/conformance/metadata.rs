//! Which topics a Metadata request is answered for (KafkaApis.handleTopicMetadataRequest):
//! with any topic id in it (v12+) only the ids count, each topic once, and an id no topic
//! has is answered apart, with a null name and no authorized operations.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::admin::{check, row};
use crate::common;
use crate::harness::{kafka_2_8, Ctx, Got, Row};

const UNKNOWN_TOPIC_ID: i16 = 100;

fn by_name(topic: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(common::name(topic)))
}

fn by_id(id: uuid::Uuid) -> MetadataRequestTopic {
    MetadataRequestTopic::default()
        .with_name(None)
        .with_topic_id(id)
}

/// Metadata at `version` for `topics` (no auto-creation, authorized operations asked
/// for): every answer as (error, name, operations).
pub(crate) async fn answers(
    ctx: &Ctx,
    topics: Vec<MetadataRequestTopic>,
    version: i16,
) -> Result<Vec<(i16, Option<String>, i32)>, Got> {
    let req = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(true);
    let r = ctx.ask(&req, version).await?;
    Ok(r.topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string());
            (t.error_code, name, t.topic_authorized_operations)
        })
        .collect())
}

/// Two topics, `a` and `b`; `a`'s id.
async fn two_topics(ctx: &Ctx) -> Result<(String, String, uuid::Uuid), Got> {
    let (a, b) = (ctx.topic("a"), ctx.topic("b"));
    common::create_topic(&ctx.m, &a, 1).await;
    common::create_topic(&ctx.m, &b, 1).await;
    let req = MetadataRequest::default().with_topics(Some(vec![by_name(&a)]));
    let r = ctx.m.send_at(&req, 12).await.map_err(|_| Got::Closed)?;
    Ok((a, b, r.topics[0].topic_id))
}

/// A broker of its own: the internal topic made there stays out of the other rows.
fn own_broker(_: &mut kmirror_broker::BrokerConfig) {}

/// `__consumer_offsets`, made by a Metadata request that may create it: whether Metadata
/// marks it internal, and the error of a client's Produce to it.
async fn internal_topic(ctx: Ctx) -> Got {
    const INTERNAL: &str = "__consumer_offsets";
    let req = MetadataRequest::default()
        .with_topics(Some(vec![by_name(INTERNAL)]))
        .with_allow_auto_topic_creation(true);
    let mut internal = None;
    for _ in 0..50 {
        let r = match ctx.ask(&req, 12).await {
            Ok(r) => r,
            Err(g) => return g,
        };
        if r.topics[0].error_code == 0 {
            internal = Some(r.topics[0].is_internal);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let produce = common::produce_request(INTERNAL, 0, common::batch(1, 0), -1);
    let code = match ctx.m.send_at(&produce, 9).await {
        Ok(r) => r.responses[0].partition_responses[0].error_code,
        Err(_) => return Got::Closed,
    };
    check(
        "(is_internal, produce error)",
        (internal, code),
        (Some(true), 17),
    )
}

/// Emulating 2.8, with default.replication.factor 3 on one broker.
fn kafka_2_8_three_replicas(c: &mut kmirror_broker::BrokerConfig) {
    kafka_2_8(c);
    c.default_replication_factor = 3;
}

/// Metadata v9 that may auto-create a topic named `name`, asked twice: the two error codes.
async fn auto_created(ctx: Ctx, name: &str, want: [i16; 2]) -> Got {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![by_name(name)]))
        .with_allow_auto_topic_creation(true);
    let mut codes = [0; 2];
    for code in &mut codes {
        *code = match ctx.ask(&req, 9).await {
            Ok(r) => r.topics[0].error_code,
            Err(g) => return g,
        };
    }
    check("error codes", codes, want)
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("Metadata marks __consumer_offsets internal; a client's Produce to it: INVALID_TOPIC_EXCEPTION",
            "KRaftMetadataCache (Topic.isInternal); ReplicaManager.appendToLocalLog (Cannot append to internal topic)",
            Got::Code(0), Some(own_broker), |ctx| internal_topic(ctx).await),
        row!("Metadata v12 naming one topic by id and another by name: only the id's topic is answered",
            "KafkaApis.handleTopicMetadataRequest (useTopicId: knownTopicNames)", Got::Code(0), |ctx| {
                let (a, b, id) = match two_topics(&ctx).await {
                    Ok(t) => t,
                    Err(g) => return g,
                };
                match answers(&ctx, vec![by_id(id), by_name(&b)], 12).await {
                    Ok(got) => {
                        let names: Vec<_> = got.into_iter().map(|(code, name, _)| (code, name)).collect();
                        check("answers", names, vec![(0, Some(a))])
                    }
                    Err(g) => g,
                }
            }),
        row!("Metadata auto-creating a topic, emulating 2.8: LEADER_NOT_AVAILABLE, then the topic",
            "AutoTopicCreationManager.createTopicsInZk (2.8: created is LEADER_NOT_AVAILABLE)",
            Got::Code(0), Some(kafka_2_8), |ctx| { let t = ctx.topic("auto"); auto_created(ctx, &t, [5, 0]).await }),
        row!("Metadata auto-creating a topic with more replicas than brokers, emulating 2.8: INVALID_REPLICATION_FACTOR",
            "AutoTopicCreationManager.createTopicsInZk (the creation's own error)",
            Got::Code(0), Some(kafka_2_8_three_replicas), |ctx| { let t = ctx.topic("auto"); auto_created(ctx, &t, [38, 38]).await }),
        row!("Metadata v9 naming a topic twice: answered once",
            "KafkaApis.handleTopicMetadataRequest (metadataRequest.topics.toSet)", Got::Code(0), |ctx| {
                let (a, _, _) = match two_topics(&ctx).await {
                    Ok(t) => t,
                    Err(g) => return g,
                };
                match answers(&ctx, vec![by_name(&a), by_name(&a)], 9).await {
                    Ok(got) => check("answers", got.len(), 1),
                    Err(g) => g,
                }
            }),
        row!("Metadata v12 for an id no topic has: UNKNOWN_TOPIC_ID, a null name, no authorized operations",
            "KafkaApis.handleTopicMetadataRequest (unknownTopicIdsTopicMetadata)", Got::Code(0), |ctx| {
                match answers(&ctx, vec![by_id(uuid::Uuid::from_u128(7))], 12).await {
                    Ok(got) => check("answers", got, vec![(UNKNOWN_TOPIC_ID, None, i32::MIN)]),
                    Err(g) => g,
                }
            }),
    ]
}
