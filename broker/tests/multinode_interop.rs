//! confluent-kafka against a 3-node `kmirror-broker --nodes 3` process while partition
//! leaders move: an idempotent producer and a consumer group keep working through ten
//! leadership moves (AlterPartitionReassignments + ElectLeaders, sent by this test) and
//! one node stopped and started through the HTTP node control. Nothing may be lost or
//! duplicated, and order per partition must hold (`tests/interop_multinode/leader_moves.py`).
//!
//! The script and this test take turns through marker files: the script finishes a
//! phase of traffic (messages still in flight) and waits for `phase-K`; the test moves
//! leaders, checks the move in Metadata, then writes the marker. No sleeps, no timing.

use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_testkit::{http_request, python_command, Running, ThreeNodes};
use kmirror_wire::messenger::{Messenger, MessengerConfig};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop_multinode/leader_moves.py"
);
const WAIT: Duration = Duration::from_secs(300);
const TOPIC: &str = "moving";
const PARTITIONS: i32 = 6;
const PHASES: usize = 13;

/// (leader, epoch) per partition, from Metadata.
async fn leaders(m: &Messenger) -> (Vec<(i32, i32)>, Vec<i32>) {
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let md = m.send_at(&req, 12).await.expect("metadata");
    let mut parts: Vec<_> = md.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch))
        .collect();
    parts.sort();
    let brokers = md.brokers.iter().map(|b| b.node_id.0).collect();
    (parts.into_iter().map(|(_, l, e)| (l, e)).collect(), brokers)
}

/// Moves every partition's leader to the next live node: reassign with that node first,
/// then a preferred election. Returns the new (leader, epoch) per partition.
async fn move_leaders(m: &Messenger) -> Vec<(i32, i32)> {
    let (before, live) = leaders(m).await;
    let next = |l: i32| {
        let i = live.iter().position(|&n| n == l).unwrap_or(0);
        live[(i + 1) % live.len()]
    };
    let partitions = before
        .iter()
        .enumerate()
        .map(|(p, &(l, _))| {
            let to = next(l);
            let mut replicas = vec![BrokerId(to)];
            replicas.extend((0..3).filter(|&n| n != to).map(BrokerId));
            ReassignablePartition::default()
                .with_partition_index(p as i32)
                .with_replicas(Some(replicas))
        })
        .collect();
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(partitions),
    ]);
    let resp = m.send_at(&req, 0).await.expect("reassign");
    for p in &resp.responses[0].partitions {
        assert_eq!(
            p.error_code, 0,
            "reassign {}: {:?}",
            p.partition_index, p.error_message
        );
    }
    // The topic's partitions only: with every partition (None) the answer also lists
    // `__consumer_offsets`, whose preferred leaders may be on a stopped node
    // (PREFERRED_LEADER_NOT_AVAILABLE, as Kafka answers them).
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![
            kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions((0..before.len() as i32).collect()),
        ]));
    let resp = m.send_at(&req, 2).await.expect("elect");
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            assert_eq!(
                p.error_code, 0,
                "elect {}: {:?}",
                p.partition_id, p.error_message
            );
        }
    }
    let (after, _) = leaders(m).await;
    for (p, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a.0, next(b.0), "partition {p}: leader after the move");
        assert!(a.1 > b.1, "partition {p}: epoch {} -> {}", b.1, a.1);
    }
    after
}

/// One HTTP request to the node control; returns the status code and body.
fn admin(addr: &str, method: &str, path: &str) -> (u16, String) {
    http_request(addr, method, path).expect("the node control answers")
}

#[test]
fn confluent_producer_and_group_survive_leader_moves_and_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sync = tempfile::tempdir().unwrap();
    let nodes = ThreeNodes::start(dir.path(), &[]);
    let (broker, admin_addr) = (&nodes.broker, &nodes.admin);
    let (status, body) = admin(admin_addr, "GET", "/nodes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("\"live\":true").count(), 3, "{body}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(Messenger::connect(
            &broker.addr(),
            MessengerConfig::default(),
        ))
        .expect("connect to node 0");
    let mut script = Running::spawn(
        python_command()
            .arg(SCRIPT)
            .args(["--bootstrap", &broker.addr(), "--topic", TOPIC])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--phases", &PHASES.to_string()])
            .arg("--sync-dir")
            .arg(sync.path()),
    );
    let mut moves = 0;
    for phase in 1..PHASES {
        script.wait_line(WAIT, |l| l.starts_with(&format!("phase {phase} ")));
        match phase {
            6 => {
                let (status, body) = admin(admin_addr, "POST", "/nodes/1/stop");
                assert_eq!(status, 200, "{body}");
                let (now, live) = rt.block_on(leaders(&m));
                assert_eq!(live, vec![0, 2], "Metadata lists the live nodes");
                assert!(
                    now.iter().all(|&(l, _)| l != 1),
                    "node 1 still leads: {now:?}"
                );
            }
            9 => {
                let (status, body) = admin(admin_addr, "POST", "/nodes/1/start");
                assert_eq!(status, 200, "{body}");
                assert_eq!(rt.block_on(leaders(&m)).1, vec![0, 1, 2]);
            }
            _ => {
                let after = rt.block_on(move_leaders(&m));
                moves += 1;
                eprintln!("move {moves} after phase {phase}: {after:?}");
            }
        }
        std::fs::write(sync.path().join(format!("phase-{phase}")), b"").unwrap();
    }
    assert_eq!(moves, 10);
    let lines = script.finish_ok(WAIT * 2);
    assert!(
        lines.iter().any(|l| l.starts_with("OK: ")),
        "no OK line: {lines:?}"
    );
}
