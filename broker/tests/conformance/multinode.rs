//! Multi-node rules (`nodes = 3`) on leader epochs (Partition.checkCurrentLeaderEpoch,
//! LeaderEpochFileCache.endOffsetFor), elections and reassignments
//! (ReplicationControlManager); and what every multi-node row shares (here, in
//! `multinode_routing.rs` and in `diverging.rs`): the `multinode_row!` macro, which starts
//! a 3-node broker for its row, nodes found through Metadata as a client does, leader
//! moves, and the requests several rows send.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kmirror_broker::BrokerConfig;
use kmirror_wire::messenger::{Messenger, MessengerConfig};

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};
use crate::multinode_routing::{coordinator_rows, routing_rows};

pub(crate) const NOT_LEADER: i16 = 6;
pub(crate) const FENCED: i16 = 74;
const UNKNOWN_EPOCH: i16 = 75;

pub(crate) fn three_nodes(c: &mut BrokerConfig) {
    c.nodes = 3;
}

/// One partition of a fresh topic on all 3 nodes and connections to its leader and to a
/// follower.
pub(crate) struct Setup {
    pub topic: String,
    pub leader: Messenger,
    pub follower: Messenger,
    pub leader_id: i32,
    pub epoch: i32,
}

pub(crate) async fn metadata(m: &Messenger, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(common::name(topic))),
    ]));
    m.send_at(&req, 12).await.expect("metadata")
}

pub(crate) async fn connect_node(md: &MetadataResponse, node: i32) -> Messenger {
    let b = md
        .brokers
        .iter()
        .find(|b| b.node_id.0 == node)
        .expect("node listed");
    let addr = format!("{}:{}", b.host.as_str(), b.port);
    Messenger::connect(&addr, MessengerConfig::default())
        .await
        .expect("connect")
}

pub(crate) async fn setup(ctx: &Ctx) -> Setup {
    let topic = ctx.topic("t");
    let req = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(common::name(&topic))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let (resp, _) = ctx.m.send(&req).await.expect("create");
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
    let md = metadata(&ctx.m, &topic).await;
    let p = &md.topics[0].partitions[0];
    let (leader_id, epoch) = (p.leader_id.0, p.leader_epoch);
    let follower_id = md
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .find(|&n| n != leader_id)
        .expect("a follower");
    Setup {
        leader: connect_node(&md, leader_id).await,
        follower: connect_node(&md, follower_id).await,
        topic,
        leader_id,
        epoch,
    }
}

/// Makes `to` the preferred replica, elects it, and returns (leader, epoch) after.
pub(crate) async fn move_leader(ctx: &Ctx, topic: &str, to: i32) -> (i32, i32) {
    let mut replicas = vec![to];
    replicas.extend((0..3).filter(|&n| n != to));
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(replicas.into_iter().map(BrokerId).collect()))]),
    ]);
    let resp = ctx.m.send_at(&req, 0).await.expect("reassign");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    let code = elect(ctx, topic).await;
    assert!(code == 0 || code == 84, "election: {code}");
    let md = metadata(&ctx.m, topic).await;
    let p = &md.topics[0].partitions[0];
    (p.leader_id.0, p.leader_epoch)
}

async fn elect(ctx: &Ctx, topic: &str) -> i16 {
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(common::name(topic))
            .with_partitions(vec![0])]));
    let resp = ctx.m.send_at(&req, 2).await.expect("elect");
    resp.replica_election_results[0].partition_result[0].error_code
}

/// ElectLeaders of `election_type` naming partitions 0 and 7 of `topic` (0 led by its
/// preferred replica, no 7) and partition 0 of a topic that does not exist: the top-level
/// code and each (partition, code, message), checked against `want`.
async fn elect_answers(
    ctx: &Ctx,
    topic: &str,
    election_type: i8,
    want: (i16, Vec<(i32, i16, String)>),
) -> Got {
    let named = |t: &str, partitions: Vec<i32>| {
        TopicPartitions::default()
            .with_topic(common::name(t))
            .with_partitions(partitions)
    };
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(Some(vec![
            named(topic, vec![0, 7]),
            named(&ctx.topic("nope"), vec![0]),
        ]));
    let resp = match ctx.m.send_at(&req, 2).await {
        Ok(r) => r,
        Err(_) => return Got::Closed,
    };
    let results: Vec<(i32, i16, String)> = resp
        .replica_election_results
        .iter()
        .flat_map(|t| &t.partition_result)
        .map(|p| {
            let message = p.error_message.as_ref().map(|m| m.to_string());
            (p.partition_id, p.error_code, message.unwrap_or_default())
        })
        .collect();
    crate::admin::check("(error, results)", (resp.error_code, results), want)
}

pub(crate) async fn produce(
    m: &Messenger,
    topic: &str,
    version: i16,
) -> Result<ProduceResponse, Got> {
    let req = common::produce_request(topic, 0, common::batch(3, 1_000), -1);
    m.send_at(&req, version).await.map_err(|_| Got::Closed)
}

pub(crate) async fn fetch_code(
    m: &Messenger,
    topic: &str,
    version: i16,
    current_epoch: i32,
) -> Got {
    let mut req = common::fetch_request(topic, 0, 0, 0, 1 << 20);
    req.topics[0].partitions[0].current_leader_epoch = current_epoch;
    code_or_closed(m.send_at(&req, version).await, |r| {
        r.responses[0].partitions[0].error_code
    })
}

pub(crate) async fn list_offsets_code(
    m: &Messenger,
    topic: &str,
    replica_id: i32,
    epoch: i32,
) -> Got {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(epoch)
                .with_timestamp(-1)])]);
    code_or_closed(m.send_at(&req, 8).await, |r| {
        r.topics[0].partitions[0].error_code
    })
}

pub(crate) async fn offset_for_epoch(
    m: &Messenger,
    topic: &str,
    current: i32,
    wanted: i32,
) -> Result<(i16, i32, i64), Got> {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(common::name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(wanted)])]);
    let r = m.send_at(&req, 4).await.map_err(|_| Got::Closed)?;
    let p = &r.topics[0].partitions[0];
    Ok((p.error_code, p.leader_epoch, p.end_offset))
}

#[macro_export]
macro_rules! multinode_row {
    ($rule:expr, $kafka:expr, $expect:expr, |$ctx:ident| $body:expr) => {
        Row {
            rule: $rule,
            kafka: $kafka,
            expect: $expect,
            config: Some(three_nodes),
            run: |$ctx| Box::pin(async move { $body }),
        }
    };
}

pub fn rows() -> Vec<Row> {
    let mut rows = routing_rows();
    rows.extend(epoch_rows());
    rows.extend(coordinator_rows());
    rows
}

/// A ten-minute Fetch long poll at the leader, at the epoch it leads; leadership moves to
/// another node meanwhile. The poll's answer: at once, FENCED_LEADER_EPOCH, not after ten
/// minutes (the row's time limit).
async fn long_poll_across_a_move(ctx: Ctx) -> Got {
    let s = setup(&ctx).await;
    let mut req = common::fetch_request(&s.topic, 0, 0, 600_000, 1 << 20);
    req.topics[0].partitions[0].current_leader_epoch = s.epoch;
    let leader = s.leader;
    let poll = tokio::spawn(async move { leader.send_at(&req, 12).await });
    // Time for the poll to reach the broker and wait; it must still be waiting then.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if poll.is_finished() {
        return Got::Answer("the long poll was answered before the leader moved".into());
    }
    move_leader(&ctx, &s.topic, (s.leader_id + 1) % 3).await;
    match poll.await {
        Ok(answer) => code_or_closed(answer, |r| r.responses[0].partitions[0].error_code),
        Err(_) => Got::Closed,
    }
}

/// A broker's Fetch v15 (its id in the replica state, topics by id) sent to a node that is
/// only a follower of the partition: NOT_LEADER_OR_FOLLOWER, as only consumers may read
/// from followers (FetchParams.fetchOnlyLeader).
async fn replica_fetch_v15_from_a_follower(ctx: Ctx) -> Got {
    let s = setup(&ctx).await;
    let id = metadata(&ctx.m, &s.topic).await.topics[0].topic_id;
    let mut req = common::fetch_request(&s.topic, 0, 0, 0, 1 << 20).with_replica_state(
        kafka_protocol::messages::fetch_request::ReplicaState::default()
            .with_replica_id(BrokerId(s.leader_id)),
    );
    req.topics[0].topic_id = id;
    code_or_closed(s.follower.send_at(&req, 15).await, |r| {
        r.responses[0].partitions[0].error_code
    })
}

fn epoch_rows() -> Vec<Row> {
    vec![
        multinode_row!("Fetch v15 from a broker (replica id in the replica state) at a follower: NOT_LEADER_OR_FOLLOWER",
            "FetchRequest.replicaId (v15: replicaState) / FetchParams.fetchOnlyLeader",
            Got::Code(NOT_LEADER), |ctx| replica_fetch_v15_from_a_follower(ctx).await),
        multinode_row!("Fetch long poll at a leader whose leadership moves away: answered at once, FENCED_LEADER_EPOCH",
            "ReplicaManager.completeDelayedOperationsWhenNotPartitionLeader / DelayedFetch.tryComplete (case E)",
            Got::Code(FENCED), |ctx| long_poll_across_a_move(ctx).await),
        multinode_row!("Fetch with an older current_leader_epoch: FENCED_LEADER_EPOCH",
            "Partition.checkCurrentLeaderEpoch", Got::Code(FENCED), |ctx| {
            let s = setup(&ctx).await;
            let other = (s.leader_id + 1) % 3;
            let (_, epoch) = move_leader(&ctx, &s.topic, other).await;
            fetch_code(&ctx.connect().await, &s.topic, 12, epoch - 1).await
        }),
        multinode_row!("Fetch with a newer current_leader_epoch: UNKNOWN_LEADER_EPOCH",
            "Partition.checkCurrentLeaderEpoch", Got::Code(UNKNOWN_EPOCH), |ctx| {
            let s = setup(&ctx).await;
            fetch_code(&s.leader, &s.topic, 12, s.epoch + 1).await
        }),
        multinode_row!("Fetch with the current epoch on the leader is served",
            "Partition.checkCurrentLeaderEpoch", Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            fetch_code(&s.leader, &s.topic, 12, s.epoch).await
        }),
        multinode_row!("ListOffsets with an older current_leader_epoch: FENCED_LEADER_EPOCH",
            "Partition.fetchOffsetForTimestamp localLogWithEpochOrThrow", Got::Code(FENCED), |ctx| {
            let s = setup(&ctx).await;
            let other = (s.leader_id + 1) % 3;
            let (leader, epoch) = move_leader(&ctx, &s.topic, other).await;
            let md = metadata(&ctx.m, &s.topic).await;
            list_offsets_code(&connect_node(&md, leader).await, &s.topic, -1, epoch - 1).await
        }),
        multinode_row!("OffsetForLeaderEpoch with a newer current_leader_epoch: UNKNOWN_LEADER_EPOCH",
            "Partition.lastOffsetForLeaderEpoch getLocalLog", Got::Code(UNKNOWN_EPOCH), |ctx| {
            let s = setup(&ctx).await;
            match offset_for_epoch(&s.leader, &s.topic, s.epoch + 1, 0).await {
                Ok((code, _, _)) => Got::Code(code),
                Err(g) => g,
            }
        }),
        multinode_row!("ElectLeaders after a reassignment moves the leader with epoch+1; the old leader is fenced",
            "ReplicationControlManager.electLeader; PartitionChangeBuilder", Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            let other = (s.leader_id + 1) % 3;
            let (leader, epoch) = move_leader(&ctx, &s.topic, other).await;
            let old = produce(&s.leader, &s.topic, 9).await;
            let old_code = old.map(|r| r.responses[0].partition_responses[0].error_code);
            let ok = leader == other && epoch == s.epoch + 1 && old_code == Ok(NOT_LEADER);
            Got::Code(if ok { 0 } else { -1 })
        }),
        multinode_row!("ElectLeaders when the preferred replica leads: ELECTION_NOT_NEEDED",
            "ReplicationControlManager.electLeader", Got::Code(84), |ctx| {
            let s = setup(&ctx).await;
            Got::Code(elect(&ctx, &s.topic).await)
        }),
        multinode_row!("ElectLeaders' messages: the error's own for a partition needing no election, the topic's and partition's names for unknown ones",
            "ReplicationControlManager.electLeader (ApiError(ELECTION_NOT_NEEDED); \"No such topic as\", \"No such partition as\")",
            Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            let want = vec![
                (0, 84, "Leader election not needed for topic partition.".to_string()),
                (7, 3, format!("No such partition as {}-7", s.topic)),
                (0, 3, format!("No such topic as {}", ctx.topic("nope"))),
            ];
            elect_answers(&ctx, &s.topic, 0, (0, want)).await
        }),
        multinode_row!("ElectLeaders of an unknown election type: INVALID_REQUEST, and for every partition named",
            "ReplicationControlManager.electionType; ElectLeadersRequest.getErrorResponse",
            Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            let unknown = |p| (p, 42, "Unknown election type 5".to_string());
            elect_answers(&ctx, &s.topic, 5, (42, vec![unknown(0), unknown(7), unknown(0)])).await
        }),
        multinode_row!("OffsetForLeaderEpoch after DeleteRecords: the history starts at the new log start",
            "LeaderEpochFileCache.truncateFromStart; UnifiedLog.maybeIncrementLogStartOffset", Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            let _ = produce(&s.leader, &s.topic, 9).await; // offsets 0-2 at the first epoch
            let other = (s.leader_id + 1) % 3;
            let (leader, epoch) = move_leader(&ctx, &s.topic, other).await;
            let md = metadata(&ctx.m, &s.topic).await;
            let new_leader = connect_node(&md, leader).await;
            let _ = produce(&new_leader, &s.topic, 9).await; // offsets 3-5 at the new one
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(common::name(&s.topic))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(4)])]);
            let deleted = new_leader.send_at(&req, 2).await.map(|r| r.topics[0].partitions[0].low_watermark);
            match offset_for_epoch(&new_leader, &s.topic, epoch, s.epoch).await {
                // Kafka: (first epoch, 4); an untrimmed history would say (first epoch, 3).
                Ok((0, e, 4)) if e == s.epoch && deleted.as_ref().ok() == Some(&4) => Got::Code(0),
                Ok((code, e, end)) => {
                    eprintln!("after DeleteRecords to 4 ({deleted:?}): epoch {e} ends at {end}, code {code}");
                    Got::Code(-1)
                }
                Err(g) => g,
            }
        }),
        multinode_row!("OffsetForLeaderEpoch answers from the epoch history; new batches carry the new epoch",
            "LeaderEpochFileCache.endOffsetFor; Partition.makeLeader", Got::Code(0), |ctx| {
            let s = setup(&ctx).await;
            let first = produce(&s.leader, &s.topic, 9).await.ok();
            let other = (s.leader_id + 1) % 3;
            let (leader, epoch) = move_leader(&ctx, &s.topic, other).await;
            let md = metadata(&ctx.m, &s.topic).await;
            let new_leader = connect_node(&md, leader).await;
            let second = produce(&new_leader, &s.topic, 9).await.ok();
            let old_epoch = offset_for_epoch(&new_leader, &s.topic, epoch, s.epoch).await;
            let latest = offset_for_epoch(&new_leader, &s.topic, epoch, epoch).await;
            let fetched = common::fetch(&new_leader, &s.topic, 0, 3).await;
            let batch = fetched.records.as_ref().and_then(|b| {
                kmirror_wire::batch::BatchView::parse(b, 0).ok().map(|v| v.partition_leader_epoch())
            });
            let ok = first.is_some()
                && second.is_some()
                && old_epoch == Ok((0, s.epoch, 3))
                && latest == Ok((0, epoch, 6))
                && batch == Some(epoch);
            Got::Code(if ok { 0 } else { -1 })
        }),
        multinode_row!("AlterPartitionReassignments to an unregistered node: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.validateManualPartitionAssignment", Got::Code(39), |ctx| {
            let s = setup(&ctx).await;
            let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
                ReassignableTopic::default()
                    .with_name(common::name(&s.topic))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![BrokerId(0), BrokerId(7)]))]),
            ]);
            code_or_closed(ctx.m.send_at(&req, 0).await, |r| {
                r.responses[0].partitions[0].error_code
            })
        }),
        multinode_row!("Cancelling a reassignment when none is in progress: NO_REASSIGNMENT_IN_PROGRESS",
            "ReplicationControlManager.cancelPartitionReassignment", Got::Code(85), |ctx| {
            let s = setup(&ctx).await;
            let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
                ReassignableTopic::default()
                    .with_name(common::name(&s.topic))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(None)]),
            ]);
            code_or_closed(ctx.m.send_at(&req, 0).await, |r| {
                r.responses[0].partitions[0].error_code
            })
        }),
    ]
}
