//! Replica placement on 3 nodes (ReplicationControlManager.createTopic and
//! createPartitions, StripedReplicaPlacer): a topic gets the replication factor it asks
//! for, or `default.replication.factor`; manual assignments are kept as given or refused
//! with INVALID_REPLICA_ASSIGNMENT (INVALID_REQUEST when a count is set beside them); new
//! partitions get as many replicas as the topic's first.

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::*;
use kmirror_broker::BrokerConfig;

use crate::admin::check;
use crate::common;
use crate::harness::{Ctx, Got, Row};
use crate::multinode::{metadata, three_nodes};
use crate::multinode_row;

const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;

fn three_nodes_default_rf_3(c: &mut BrokerConfig) {
    three_nodes(c);
    c.default_replication_factor = 3;
}

/// The topic's partitions as `(leader, replicas, isr)`, in partition order.
async fn replicas(ctx: &Ctx, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let md = metadata(&ctx.m, topic).await;
    let mut parts: Vec<_> = md.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
            (
                p.partition_index,
                (p.leader_id.0, ids(&p.replica_nodes), ids(&p.isr_nodes)),
            )
        })
        .collect();
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, p)| p).collect()
}

/// CreateTopics of one topic (v7); the topic's (error code, replication factor answered).
async fn create(ctx: &Ctx, t: CreatableTopic) -> (i16, i16) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![t]);
    match ctx.m.send_at(&req, 7).await {
        Ok(r) => (r.topics[0].error_code, r.topics[0].replication_factor),
        Err(_) => (-1, -1),
    }
}

fn topic(ctx: &Ctx, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(common::name(&ctx.topic("p")))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

/// A topic with manual `assignments` (partition, brokers), count and factor unset.
fn assigned(ctx: &Ctx, assignments: &[(i32, &[i32])]) -> CreatableTopic {
    topic(ctx, -1, -1).with_assignments(
        assignments
            .iter()
            .map(|(p, ids)| {
                CreatableReplicaAssignment::default()
                    .with_partition_index(*p)
                    .with_broker_ids(ids.iter().map(|&b| BrokerId(b)).collect())
            })
            .collect(),
    )
}

/// Creates a topic at `rf` with 2 partitions, and grows it to 4 with `assignments` (none:
/// placed); the CreatePartitions error code.
async fn grow(ctx: &Ctx, rf: i16, assignments: Option<&[&[i32]]>) -> i16 {
    let (code, _) = create(ctx, topic(ctx, 2, rf)).await;
    assert_eq!(code, 0);
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(common::name(&ctx.topic("p")))
            .with_count(4)
            .with_assignments(assignments.map(|a| {
                a.iter()
                    .map(|ids| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(ids.iter().map(|&b| BrokerId(b)).collect())
                    })
                    .collect()
            }))]);
    match ctx.m.send_at(&req, 3).await {
        Ok(r) => r.results[0].error_code,
        Err(_) => -1,
    }
}

/// `Code(0)` when every partition has `rf` distinct replicas, its leader first, all in
/// sync, and partitions do not all share one leader.
fn placed(what: &str, parts: &[(i32, Vec<i32>, Vec<i32>)], rf: usize) -> Got {
    let bad = parts.iter().find(|(leader, replicas, isr)| {
        let mut distinct = replicas.clone();
        distinct.sort();
        distinct.dedup();
        replicas.len() != rf
            || distinct.len() != rf
            || replicas.first() != Some(leader)
            || isr != replicas
    });
    let leaders: std::collections::BTreeSet<i32> = parts.iter().map(|p| p.0).collect();
    match bad {
        Some(p) => Got::Answer(format!("{what}: partition {p:?} is not {rf} replicas")),
        None if parts.len() > 1 && leaders.len() < 2 => {
            Got::Answer(format!("{what}: every partition led by {leaders:?}"))
        }
        None => Got::Code(0),
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        multinode_row!("CreateTopics at replication factor 2 on 3 nodes: 2 replicas per partition, answered as 2",
            "ReplicationControlManager.createTopic; StripedReplicaPlacer.place", Got::Code(0), |ctx| {
            let (code, rf) = create(&ctx, topic(&ctx, 3, 2)).await;
            if (code, rf) != (0, 2) {
                return Got::Answer(format!("created: code {code}, replication factor {rf}"));
            }
            placed("rf 2", &replicas(&ctx, &ctx.topic("p")).await, 2)
        }),
        multinode_row!("CreateTopics at replication factor 1 on 3 nodes: one replica, partitions spread",
            "StripedReplicaPlacer.place", Got::Code(0), |ctx| {
            let (code, _) = create(&ctx, topic(&ctx, 3, 1)).await;
            assert_eq!(code, 0);
            placed("rf 1", &replicas(&ctx, &ctx.topic("p")).await, 1)
        }),
        multinode_row!("CreateTopics at replication factor -1 takes default.replication.factor, 1 unless set",
            "ReplicationControlManager.createTopic (defaultReplicationFactor)", Got::Code(0), |ctx| {
            let (code, rf) = create(&ctx, topic(&ctx, 2, -1)).await;
            if (code, rf) != (0, 1) {
                return Got::Answer(format!("created: code {code}, replication factor {rf}"));
            }
            placed("default", &replicas(&ctx, &ctx.topic("p")).await, 1)
        }),
        Row {
            rule: "CreateTopics at replication factor -1 with default.replication.factor=3: 3 replicas",
            kafka: "ReplicationControlManager.createTopic (defaultReplicationFactor)",
            expect: Got::Code(0),
            config: Some(three_nodes_default_rf_3),
            run: |ctx| Box::pin(async move {
                let (code, rf) = create(&ctx, topic(&ctx, 2, -1)).await;
                if (code, rf) != (0, 3) {
                    return Got::Answer(format!("created: code {code}, replication factor {rf}"));
                }
                placed("default 3", &replicas(&ctx, &ctx.topic("p")).await, 3)
            }),
        },
        multinode_row!("CreateTopics with manual assignments keeps them, the first replica leading",
            "ReplicationControlManager.createTopic (manual assignment)", Got::Code(0), |ctx| {
            let (code, rf) = create(&ctx, assigned(&ctx, &[(1, &[1, 2]), (0, &[2, 0])])).await;
            if (code, rf) != (0, 2) {
                return Got::Answer(format!("created: code {code}, replication factor {rf}"));
            }
            check(
                "replicas",
                replicas(&ctx, &ctx.topic("p")).await,
                vec![(2, vec![2, 0], vec![2, 0]), (1, vec![1, 2], vec![1, 2])],
            )
        }),
        multinode_row!("CreateTopics with manual assignments and a replication factor: INVALID_REQUEST",
            "ReplicationControlManager.createTopic", Got::Code(INVALID_REQUEST), |ctx| {
            let mut t = assigned(&ctx, &[(0, &[0])]);
            t.replication_factor = 1;
            Got::Code(create(&ctx, t).await.0)
        }),
        multinode_row!("CreateTopics with manual assignments and a partition count: INVALID_REQUEST",
            "ReplicationControlManager.createTopic", Got::Code(INVALID_REQUEST), |ctx| {
            let mut t = assigned(&ctx, &[(0, &[0])]);
            t.num_partitions = 1;
            Got::Code(create(&ctx, t).await.0)
        }),
        multinode_row!("CreateTopics assigning an unregistered node: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.validateManualPartitionAssignment", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(create(&ctx, assigned(&ctx, &[(0, &[0, 7])])).await.0)
        }),
        multinode_row!("CreateTopics assigning a node twice to a partition: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.validateManualPartitionAssignment", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(create(&ctx, assigned(&ctx, &[(0, &[1, 1])])).await.0)
        }),
        multinode_row!("CreateTopics assigning partitions different replica counts: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.validateManualPartitionAssignment", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(create(&ctx, assigned(&ctx, &[(0, &[0, 1]), (1, &[2])])).await.0)
        }),
        multinode_row!("CreateTopics assigning partitions 0 and 2 only: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.createTopic (consecutive 0-based)", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(create(&ctx, assigned(&ctx, &[(0, &[0]), (2, &[1])])).await.0)
        }),
        multinode_row!("CreateTopics assigning partition 0 twice: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.createTopic", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(create(&ctx, assigned(&ctx, &[(0, &[0]), (0, &[1])])).await.0)
        }),
        row_one_node(),
        multinode_row!("CreatePartitions of a topic at replication factor 2: new partitions get 2 replicas",
            "ReplicationControlManager.createPartitions", Got::Code(0), |ctx| {
            let code = grow(&ctx, 2, None).await;
            if code != 0 {
                return Got::Code(code);
            }
            let parts = replicas(&ctx, &ctx.topic("p")).await;
            if parts.len() != 4 {
                return Got::Answer(format!("{} partitions", parts.len()));
            }
            placed("grown", &parts, 2)
        }),
        multinode_row!("CreatePartitions with manual assignments keeps them",
            "ReplicationControlManager.createPartitions", Got::Code(0), |ctx| {
            let code = grow(&ctx, 2, Some(&[&[2, 1], &[0, 2]])).await;
            if code != 0 {
                return Got::Code(code);
            }
            let parts = replicas(&ctx, &ctx.topic("p")).await;
            check(
                "new partitions",
                parts[2..].iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
                vec![vec![2, 1], vec![0, 2]],
            )
        }),
        multinode_row!("CreatePartitions with an empty (not null) assignment list: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.createPartitions (assignments().size() != additional)", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(grow(&ctx, 2, Some(&[])).await)
        }),
        multinode_row!("CreatePartitions with fewer assignments than new partitions: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.createPartitions", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(grow(&ctx, 2, Some(&[&[2, 1]])).await)
        }),
        multinode_row!("CreatePartitions assigning 3 replicas to a topic of 2: INVALID_REPLICA_ASSIGNMENT",
            "ReplicationControlManager.validateManualPartitionAssignment", Got::Code(INVALID_REPLICA_ASSIGNMENT), |ctx| {
            Got::Code(grow(&ctx, 2, Some(&[&[0, 1, 2], &[0, 1, 2]])).await)
        }),
    ]
}

/// On one node a manual assignment may name that node only: any other is unregistered.
fn row_one_node() -> Row {
    Row {
        rule: "CreateTopics on one node assigning node 1: INVALID_REPLICA_ASSIGNMENT",
        kafka: "ReplicationControlManager.validateManualPartitionAssignment",
        expect: Got::Code(INVALID_REPLICA_ASSIGNMENT),
        config: None,
        run: |ctx| {
            Box::pin(async move { Got::Code(create(&ctx, assigned(&ctx, &[(0, &[1])])).await.0) })
        },
    }
}
