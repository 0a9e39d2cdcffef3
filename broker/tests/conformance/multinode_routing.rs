//! Multi-node rules (`nodes = 3`) on who may answer (Partition.getLocalLog,
//! ReplicaManager, KafkaApis, GroupCoordinator): partition requests to the leader or to a
//! follower, the leader hints of KIP-951, group requests to the coordinator or to another
//! node. The 3-node set-up and shared requests are in `multinode.rs`.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::*;
use kmirror_wire::messenger::Messenger;

use crate::common;
use crate::harness::{code_or_closed, Ctx, Got, Row};
use crate::multinode::{
    connect_node, fetch_code, list_offsets_code, metadata, move_leader, offset_for_epoch, produce,
    setup, three_nodes, FENCED, NOT_LEADER,
};
use crate::multinode_row;

async fn produce_code(m: &Messenger, topic: &str) -> Got {
    match produce(m, topic, 9).await {
        Ok(r) => Got::Code(r.responses[0].partition_responses[0].error_code),
        Err(g) => g,
    }
}

async fn delete_records_code(m: &Messenger, topic: &str) -> Got {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(common::name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(0)])]);
    code_or_closed(m.send_at(&req, 2).await, |r| {
        r.topics[0].partitions[0].error_code
    })
}

const NOT_COORDINATOR: i16 = 16;

/// A connection to node `node`, found through Metadata.
async fn node(ctx: &Ctx, node: i32) -> Messenger {
    let topic = ctx.topic("g");
    common::create_topic(&ctx.m, &topic, 1).await;
    connect_node(&metadata(&ctx.m, &topic).await, node).await
}

/// The coordinator FindCoordinator names for `group`.
async fn coordinator_of(ctx: &Ctx, group: &str) -> i32 {
    let req = FindCoordinatorRequest::default().with_key(crate::admin::s(group));
    let resp = crate::groups::find_coordinator_at(&ctx.m, &req, 3)
        .await
        .expect("find coordinator");
    resp.node_id.0
}

/// OffsetFetch v8 for one group: the group's error code.
async fn offset_fetch_code(m: &Messenger, group: &str) -> Got {
    let req = OffsetFetchRequest::default().with_groups(vec![
        kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(crate::admin::s(group))),
    ]);
    code_or_closed(m.send_at(&req, 8).await, |r| r.groups[0].error_code)
}

pub(crate) fn coordinator_rows() -> Vec<Row> {
    vec![
        multinode_row!(
            "OffsetFetch on the node FindCoordinator names is answered",
            "GroupCoordinator.handleFetchOffsets",
            Got::Code(0),
            |ctx| {
                let at = coordinator_of(&ctx, "g1").await;
                offset_fetch_code(&node(&ctx, at).await, "g1").await
            }
        ),
        multinode_row!(
            "OffsetFetch on another node: NOT_COORDINATOR",
            "GroupCoordinator.validateGroupStatus (isCoordinatorForGroup)",
            Got::Code(NOT_COORDINATOR),
            |ctx| {
                let at = coordinator_of(&ctx, "g1").await;
                offset_fetch_code(&node(&ctx, (at + 1) % 3).await, "g1").await
            }
        ),
        multinode_row!(
            "OffsetFetch v5 on another node: NOT_COORDINATOR at the top, no partitions",
            "OffsetFetchRequest.getErrorResponse (v2-7: the top-level error only)",
            Got::Code(NOT_COORDINATOR),
            |ctx| {
                use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
                let at = coordinator_of(&ctx, "g1").await;
                let req = OffsetFetchRequest::default()
                    .with_group_id(GroupId(crate::admin::s("g1")))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(common::name("g"))
                        .with_partition_indexes(vec![0])]));
                match node(&ctx, (at + 1) % 3).await.send_at(&req, 5).await {
                    Ok(r) if r.topics.is_empty() => Got::Code(r.error_code),
                    Ok(r) => Got::Answer(format!(
                        "{} topics listed beside the group's error",
                        r.topics.len()
                    )),
                    Err(_) => Got::Closed,
                }
            }
        ),
        multinode_row!(
            "Heartbeat on another node: NOT_COORDINATOR",
            "GroupCoordinator.handleHeartbeat validateGroupStatus",
            Got::Code(NOT_COORDINATOR),
            |ctx| {
                let at = coordinator_of(&ctx, "g1").await;
                let m = node(&ctx, (at + 2) % 3).await;
                let req = HeartbeatRequest::default()
                    .with_group_id(GroupId(crate::admin::s("g1")))
                    .with_generation_id(1)
                    .with_member_id(crate::admin::s("m"));
                code_or_closed(m.send_at(&req, 4).await, |r| r.error_code)
            }
        ),
    ]
}

pub(crate) fn routing_rows() -> Vec<Row> {
    vec![
        multinode_row!(
            "Multi-node: Metadata lists 3 nodes and spreads 3 partitions over 3 leaders",
            "AdminUtils/StripedReplicaPlacer; MetadataCache",
            Got::Code(0),
            |ctx| {
                let topic = ctx.topic("spread");
                common::create_topic(&ctx.m, &topic, 3).await;
                let md = metadata(&ctx.m, &topic).await;
                let leaders: std::collections::BTreeSet<i32> = md.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.leader_id.0)
                    .collect();
                Got::Code(if md.brokers.len() == 3 && leaders.len() == 3 {
                    0
                } else {
                    -1
                })
            }
        ),
        multinode_row!(
            "Produce to the leader is accepted",
            "Partition.appendRecordsToLeader",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                produce_code(&s.leader, &s.topic).await
            }
        ),
        multinode_row!(
            "Produce to a follower: NOT_LEADER_OR_FOLLOWER",
            "Partition.appendRecordsToLeader",
            Got::Code(NOT_LEADER),
            |ctx| {
                let s = setup(&ctx).await;
                produce_code(&s.follower, &s.topic).await
            }
        ),
        multinode_row!(
            "Produce v10+ to a follower carries the leader and its endpoint (KIP-951)",
            "KafkaApis.handleProduceRequest getCurrentLeader",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                match produce(&s.follower, &s.topic, 11).await {
                    Ok(r) => {
                        let p = &r.responses[0].partition_responses[0];
                        let hinted = p.error_code == NOT_LEADER
                            && p.current_leader.leader_id.0 == s.leader_id
                            && p.current_leader.leader_epoch == s.epoch
                            && r.node_endpoints.iter().any(|n| n.node_id.0 == s.leader_id);
                        Got::Code(if hinted { 0 } else { -1 })
                    }
                    Err(g) => g,
                }
            }
        ),
        multinode_row!(
            "Fetch v17 with an old leader epoch: FENCED_LEADER_EPOCH with the leader and its endpoint (KIP-951)",
            "KafkaApis.handleFetchRequest getCurrentLeader",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                let other = (s.leader_id + 1) % 3;
                let (leader, epoch) = move_leader(&ctx, &s.topic, other).await;
                let md = metadata(&ctx.m, &s.topic).await;
                let mut req = common::fetch_request(&s.topic, 0, 0, 0, 1 << 20);
                req.topics[0].topic_id = md.topics[0].topic_id;
                req.topics[0].partitions[0].current_leader_epoch = s.epoch;
                match s.leader.send_at(&req, 17).await {
                    Ok(r) => {
                        let p = &r.responses[0].partitions[0];
                        let hinted = p.error_code == FENCED
                            && p.current_leader.leader_id.0 == leader
                            && p.current_leader.leader_epoch == epoch
                            && r.node_endpoints.iter().any(|n| n.node_id.0 == leader);
                        Got::Code(if hinted { 0 } else { -1 })
                    }
                    Err(_) => Got::Closed,
                }
            }
        ),
        multinode_row!(
            "Fetch v10 (consumer) from a follower: NOT_LEADER_OR_FOLLOWER",
            "FetchParams.fetchOnlyLeader (no client metadata before v11)",
            Got::Code(NOT_LEADER),
            |ctx| {
                let s = setup(&ctx).await;
                fetch_code(&s.follower, &s.topic, 10, -1).await
            }
        ),
        multinode_row!(
            "Fetch v11+ (consumer) from a follower is served",
            "FetchParams.fetchOnlyLeader (KIP-392 client metadata)",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                fetch_code(&s.follower, &s.topic, 12, s.epoch).await
            }
        ),
        multinode_row!(
            "ListOffsets (consumer) to a follower: NOT_LEADER_OR_FOLLOWER",
            "KafkaApis.handleListOffsetRequest fetchOnlyFromLeader",
            Got::Code(NOT_LEADER),
            |ctx| {
                let s = setup(&ctx).await;
                list_offsets_code(&s.follower, &s.topic, -1, -1).await
            }
        ),
        multinode_row!(
            "ListOffsets from the debugging replica id to a follower is served",
            "KafkaApis.handleListOffsetRequest DEBUGGING_REPLICA_ID",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                list_offsets_code(&s.follower, &s.topic, -2, -1).await
            }
        ),
        multinode_row!(
            "DeleteRecords to a follower: NOT_LEADER_OR_FOLLOWER",
            "Partition.deleteRecordsOnLeader",
            Got::Code(NOT_LEADER),
            |ctx| {
                let s = setup(&ctx).await;
                delete_records_code(&s.follower, &s.topic).await
            }
        ),
        multinode_row!(
            "DeleteRecords on the leader is accepted",
            "Partition.deleteRecordsOnLeader",
            Got::Code(0),
            |ctx| {
                let s = setup(&ctx).await;
                delete_records_code(&s.leader, &s.topic).await
            }
        ),
        multinode_row!(
            "OffsetForLeaderEpoch to a follower: NOT_LEADER_OR_FOLLOWER",
            "ReplicaManager.lastOffsetForLeaderEpoch fetchOnlyFromLeader",
            Got::Code(NOT_LEADER),
            |ctx| {
                let s = setup(&ctx).await;
                match offset_for_epoch(&s.follower, &s.topic, -1, 0).await {
                    Ok((code, _, _)) => Got::Code(code),
                    Err(g) => g,
                }
            }
        ),
    ]
}
