//! How many partitions one admin request may create: CreateTopics at most 10000 partitions
//! and 10000 metadata records (one per topic, config and partition), else the whole
//! request is refused with POLICY_VIOLATION; CreatePartitions at most 10000 new
//! partitions, else UNKNOWN_SERVER_ERROR from the topic that would go past them on.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::admin::{create_with, row};
use crate::common::name;
use crate::harness::{Ctx, Got, Row};

const UNKNOWN_SERVER_ERROR: i16 = -1;
const POLICY_VIOLATION: i16 = 44;
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";
const TOO_MANY_RECORDS: &str = "Unable to perform excessively large batch operation.";

/// The partition count of `topic` (0 if it does not exist).
async fn partition_count(ctx: &Ctx, topic: &str) -> Option<usize> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let r = ctx.m.send_at(&req, 12).await.ok()?;
    let t = &r.topics[0];
    Some(if t.error_code == 0 {
        t.partitions.len()
    } else {
        0
    })
}

/// One request entry per topic name and partition count.
fn per_topic<T>(names: &[String], counts: &[i32], entry: impl Fn(TopicName, i32) -> T) -> Vec<T> {
    names
        .iter()
        .zip(counts)
        .map(|(n, &c)| entry(name(n), c))
        .collect()
}

/// CreateTopics of fresh topics with these partition counts: `Code(c)` when every topic
/// answers `c` with `message` (none for success) and no topic exists unless all succeeded.
async fn create_many(ctx: Ctx, counts: &[i32], validate_only: bool, message: &str) -> Got {
    let names: Vec<String> = (0..counts.len())
        .map(|i| ctx.topic(&format!("many{i}")))
        .collect();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(per_topic(&names, counts, |n, count| {
            CreatableTopic::default()
                .with_name(n)
                .with_num_partitions(count)
                .with_replication_factor(1)
        }));
    let Ok((r, _)) = ctx.m.send(&req).await else {
        return Got::Closed;
    };
    let code = r.topics[0].error_code;
    for t in &r.topics {
        let msg = t.error_message.as_ref().map(|m| m.to_string());
        let want = (code != 0).then(|| message.to_string());
        if t.error_code != code || msg.filter(|m| !m.is_empty()) != want {
            return Got::Answer(format!("topic answers differ: {:?}", r.topics));
        }
    }
    for n in &names {
        let count = partition_count(&ctx, n).await;
        if code != 0 && count != Some(0) {
            return Got::Answer(format!("{n} was created: {count:?} partitions"));
        }
    }
    Got::Code(code)
}

/// Grows one-partition topics to `counts` in one CreatePartitions; each topic's error
/// code, and whether the error codes carry a message, as `Answer` unless `want` matches.
async fn grow(ctx: Ctx, counts: &[i32], validate_only: bool, want: &[i16]) -> Got {
    let names: Vec<String> = (0..counts.len())
        .map(|i| ctx.topic(&format!("grow{i}")))
        .collect();
    for n in &names {
        let code = create_with(&ctx, n, &[]).await;
        if code != 0 {
            return Got::Answer(format!("creating {n} failed with {code}"));
        }
    }
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(per_topic(&names, counts, |n, count| {
            CreatePartitionsTopic::default()
                .with_name(n)
                .with_count(count)
                .with_assignments(None)
        }));
    let Ok((r, _)) = ctx.m.send(&req).await else {
        return Got::Closed;
    };
    let got: Vec<(i16, bool)> = r
        .results
        .iter()
        .map(|t| (t.error_code, t.error_message.is_some()))
        .collect();
    let expected: Vec<(i16, bool)> = want.iter().map(|&c| (c, false)).collect();
    if got != expected {
        return Got::Answer(format!("(code, has message) per topic: {got:?}"));
    }
    for (n, &code) in names.iter().zip(want) {
        let count = partition_count(&ctx, n).await;
        if code != 0 && count != Some(1) {
            return Got::Answer(format!("{n} grew to {count:?} partitions"));
        }
    }
    Got::Code(0)
}

pub fn rows() -> Vec<Row> {
    let policy = Got::Code(POLICY_VIOLATION);
    vec![
        row!("CreateTopics of 5000 + 5001 partitions: POLICY_VIOLATION on every topic, none created",
            "ReplicationControlManager.validateTotalNumberOfPartitions", policy.clone(),
            |ctx| create_many(ctx, &[5000, 5001], false, TOO_MANY_PARTITIONS).await),
        row!("CreateTopics (validate only) of 20000 partitions: POLICY_VIOLATION",
            "ReplicationControlManager.validateTotalNumberOfPartitions", policy.clone(),
            |ctx| create_many(ctx, &[20000], true, TOO_MANY_PARTITIONS).await),
        row!("CreateTopics (validate only) of one topic of 9999 partitions (10000 records) is accepted",
            "QuorumController.MAX_RECORDS_PER_USER_OP", Got::Code(0),
            |ctx| create_many(ctx, &[9999], true, "").await),
        row!("CreateTopics (validate only) of one topic of 10000 partitions (10001 records): POLICY_VIOLATION",
            "ReplicationControlManager.createTopics (BoundedList), EventHandlerExceptionInfo", policy.clone(),
            |ctx| create_many(ctx, &[10000], true, TOO_MANY_RECORDS).await),
        row!("CreateTopics of 5000 + 4999 partitions (10001 records): POLICY_VIOLATION, none created",
            "ReplicationControlManager.createTopics (BoundedList), EventHandlerExceptionInfo", policy,
            |ctx| create_many(ctx, &[5000, 4999], false, TOO_MANY_RECORDS).await),
        row!("CreatePartitions adding 10001 partitions: UNKNOWN_SERVER_ERROR without a message, none added",
            "ReplicationControlManager.createPartitions (BoundedList of MAX_RECORDS_PER_USER_OP)", Got::Code(0),
            |ctx| grow(ctx, &[10002], false, &[UNKNOWN_SERVER_ERROR]).await),
        row!("CreatePartitions (validate only) adding 10000 partitions is accepted",
            "ReplicationControlManager.createPartitions (BoundedList of MAX_RECORDS_PER_USER_OP)", Got::Code(0),
            |ctx| grow(ctx, &[10001], true, &[0]).await),
        row!("CreatePartitions adding 6000 + 6000 + 1: the second and third UNKNOWN_SERVER_ERROR",
            "ReplicationControlManager.createPartitions (BoundedList of MAX_RECORDS_PER_USER_OP)", Got::Code(0),
            |ctx| grow(ctx, &[6001, 6001, 2], true, &[0, UNKNOWN_SERVER_ERROR, UNKNOWN_SERVER_ERROR]).await),
    ]
}
