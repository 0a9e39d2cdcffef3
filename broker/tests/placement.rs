//! Replica placement through the binary, as kcat (librdkafka) sees it on a 3-node
//! `kmirror-broker`: a topic keeps the replication factor it was created with, an
//! auto-created one gets `--default-replication-factor`, a partition whose only replica
//! is on a stopped node has no leader until the node is back (Kafka: an offline
//! partition), a topic created while a node is stopped is led by live nodes, and every
//! placement survives a restart of the process. With a node stopped, acks=all produces
//! to a partition whose in-sync replicas fall below `min.insync.replicas` fail as Kafka
//! fails them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_testkit::{kcat, run_ok, ThreeNodes};
use kmirror_wire::messenger::{Messenger, MessengerConfig};

/// A partition as kcat lists it: (leader, replicas, in-sync replicas).
type Listed = (i64, Vec<i64>, Vec<i64>);

/// `kcat -L` of `topic`: its partitions by index.
fn listed(bootstrap: &str, topic: &str) -> BTreeMap<i64, Listed> {
    let out = run_ok(
        kcat().args(["-L", "-J", "-b", bootstrap, "-t", topic]),
        None,
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kcat -J prints JSON");
    let ids = |p: &serde_json::Value, key: &str| -> Vec<i64> {
        p[key]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    v["topics"][0]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let index = p["partition"].as_i64().expect("index");
            let leader = p["leader"].as_i64().expect("leader");
            (index, (leader, ids(p, "replicas"), ids(p, "isrs")))
        })
        .collect()
}

async fn create(m: &Messenger, topic: &str, partitions: i32, rf: i16) {
    create_with(m, topic, partitions, rf, &[]).await;
}

async fn create_with(
    m: &Messenger,
    topic: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) {
    let configs = common::topic_configs(configs);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(configs)]);
    let r = m.send_at(&req, 7).await.expect("CreateTopics");
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

#[test]
fn replicas_follow_the_replication_factor_and_a_stopped_node_takes_its_partitions_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = ThreeNodes::start(dir.path(), &["--default-replication-factor", "2"]);
    let addr = nodes.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(Messenger::connect(&addr, MessengerConfig::default()))
        .expect("connect");
    rt.block_on(create(&m, "single", 3, 1));
    // Auto-created by kcat's produce: --default-replication-factor, not every node.
    run_ok(
        kcat().args(["-P", "-b", &addr, "-t", "auto"]),
        Some(b"x\n".to_vec()),
        Duration::from_secs(30),
    );
    let single = listed(&addr, "single");
    assert_eq!(single.len(), 3);
    for (leader, replicas, isr) in single.values() {
        assert_eq!(
            (replicas, isr),
            (&vec![*leader], &vec![*leader]),
            "{single:?}"
        );
    }
    let leaders: Vec<i64> = single.values().map(|p| p.0).collect();
    let mut spread = leaders.clone();
    spread.sort();
    spread.dedup();
    assert_eq!(
        spread.len(),
        3,
        "3 partitions at rf 1 on 3 nodes: {leaders:?}"
    );
    let auto = listed(&addr, "auto");
    assert_eq!(auto[&0].1.len(), 2, "{auto:?}");

    // Stop a node holding a partition of `single` (not node 0, which kcat bootstraps
    // from): that partition has no leader; the others keep theirs.
    let down = leaders
        .iter()
        .position(|&l| l != 0)
        .expect("a partition off node 0");
    let stopped = leaders[down];
    nodes.node(stopped as i32, "stop");
    let offline = listed(&addr, "single");
    for (p, (leader, _, _)) in &offline {
        let want = if *p == down as i64 {
            -1
        } else {
            leaders[*p as usize]
        };
        assert_eq!(*leader, want, "{offline:?}");
    }
    // A topic created now is led by live nodes only; the stopped node still counts as
    // registered for the replication factor (Kafka: StripedReplicaPlacer).
    rt.block_on(create(&m, "while-down", 3, 3));
    let while_down = listed(&addr, "while-down");
    for (leader, replicas, _) in while_down.values() {
        assert_ne!(*leader, stopped, "{while_down:?}");
        assert_eq!(replicas.len(), 3);
        assert_eq!(
            replicas[2], stopped,
            "the stopped node comes last: {while_down:?}"
        );
    }
    nodes.node(stopped as i32, "start");
    assert_eq!(listed(&addr, "single")[&(down as i64)].0, stopped);

    // Every placement survives a restart.
    let before: Vec<_> = ["single", "auto", "while-down"]
        .iter()
        .map(|t| replicas_of(&listed(&addr, t)))
        .collect();
    drop(m);
    nodes.broker.terminate_ok();
    nodes.broker.restart();
    let after: Vec<_> = ["single", "auto", "while-down"]
        .iter()
        .map(|t| replicas_of(&listed(&addr, t)))
        .collect();
    assert_eq!(before, after);
}

fn replicas_of(parts: &BTreeMap<i64, Listed>) -> Vec<Vec<i64>> {
    parts.values().map(|p| p.1.clone()).collect()
}

/// Creates 40 topics assigned to [2, 1] while another connection polls Metadata for every
/// topic: none may ever be listed with other replicas or another leader (Kafka creates a
/// topic and its placement in one batch of records: ReplicationControlManager.createTopics).
#[test]
fn a_created_topic_is_never_seen_before_its_replicas_are_placed() {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    let dir = tempfile::tempdir().unwrap();
    let nodes = ThreeNodes::start(dir.path(), &[]);
    let addr = nodes.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wrong = rt.block_on(async {
        let m = Messenger::connect(&addr, MessengerConfig::default())
            .await
            .expect("connect");
        let poller = Messenger::connect(&addr, MessengerConfig::default())
            .await
            .expect("connect");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watch = {
            let done = done.clone();
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let req = MetadataRequest::default().with_topics(None);
                    let md = poller.send_at(&req, 12).await.expect("metadata");
                    for t in &md.topics {
                        for p in &t.partitions {
                            let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
                            if replicas != [2, 1] || p.leader_id.0 != 2 {
                                wrong.push(format!(
                                    "{:?}: leader {} replicas {replicas:?}",
                                    t.name, p.leader_id.0
                                ));
                            }
                        }
                    }
                }
                wrong
            })
        };
        for i in 0..40 {
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(format!("race-{i}"))))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(2), BrokerId(1)])])]);
            let r = m.send_at(&req, 7).await.expect("CreateTopics");
            assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        watch.await.expect("poller")
    });
    assert!(
        wrong.is_empty(),
        "{} sightings before placement: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// kcat (librdkafka) produces one record to `topic` with `acks`; what it printed on a
/// failed delivery, or `None` when the record was delivered.
fn produce_failure(addr: &str, topic: &str, acks: &str) -> Option<String> {
    let out = kmirror_testkit::run(
        kcat().args([
            "-P",
            "-b",
            addr,
            "-t",
            topic,
            "-p",
            "0",
            "-X",
            &format!("acks={acks}"),
            "-X",
            "message.timeout.ms=3000",
            // The broker's error, not librdkafka's timeout after retrying it.
            "-X",
            "retries=0",
        ]),
        Some(b"x\n".to_vec()),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (!out.status.success() || stderr.contains("Delivery failed")).then_some(stderr)
}

#[test]
fn acks_all_needs_min_insync_replicas_in_sync_as_kafka_requires() {
    // Kafka: Partition.appendRecordsToLeader refuses an acks=all append with
    // NOT_ENOUGH_REPLICAS while the ISR is smaller than min(min.insync.replicas, rf).
    let dir = tempfile::tempdir().unwrap();
    let nodes = ThreeNodes::start(dir.path(), &[]);
    let addr = nodes.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(Messenger::connect(&addr, MessengerConfig::default()))
        .expect("connect");
    rt.block_on(create_with(
        &m,
        "strict",
        1,
        3,
        &[("min.insync.replicas", "3")],
    ));
    rt.block_on(create_with(
        &m,
        "two",
        1,
        3,
        &[("min.insync.replicas", "2")],
    ));
    // Replication factor 1 caps the requirement at 1 (effectiveMinIsr).
    rt.block_on(create_with(
        &m,
        "single",
        1,
        1,
        &[("min.insync.replicas", "3")],
    ));
    for topic in ["strict", "two", "single"] {
        assert_eq!(produce_failure(&addr, topic, "all"), None, "{topic}");
    }
    // Stop a follower of `strict` (kcat bootstraps from node 0, so not node 0).
    let (leader, replicas, _) = listed(&addr, "strict")[&0].clone();
    let follower = *replicas
        .iter()
        .find(|&&r| r != leader && r != 0)
        .expect("a follower off node 0");
    nodes.node(follower as i32, "stop");
    assert_eq!(listed(&addr, "strict")[&0].2.len(), 2);
    let refused = produce_failure(&addr, "strict", "all").expect("acks=all refused");
    assert!(refused.contains("Not enough in-sync replicas"), "{refused}");
    // acks=1 does not wait for replicas; min.insync.replicas=2 is still met.
    assert_eq!(produce_failure(&addr, "strict", "1"), None);
    assert_eq!(produce_failure(&addr, "two", "all"), None);
    nodes.node(follower as i32, "start");
    assert_eq!(produce_failure(&addr, "strict", "all"), None);
}
