//! Multi-node helpers for end-to-end tests on `ThreeNodes` (the test kit's): leader moves
//! through Kafka's own requests (AlterPartitionReassignments then a preferred
//! ElectLeaders), and the high watermarks of a topic.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kmirror::client::{fetch, list_offsets, ClientConfig, ClusterClient};
use kmirror_wire::backoff::BackoffConfig;
use kmirror_wire::messenger::{Messenger, MessengerConfig};

/// Moves the leader of every partition of `topics` to the next live node (that node
/// first in the replica list, then a preferred election); returns how many moved.
pub async fn move_leaders(bootstrap: &str, topics: &[&str]) -> usize {
    let m = Messenger::connect(bootstrap, MessengerConfig::default())
        .await
        .expect("connect");
    let names: Vec<MetadataRequestTopic> = topics
        .iter()
        .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
        .collect();
    // Topics named (v12 and below), at the version the broker offers (11 at Kafka 2.8).
    let (md, _) = m
        .send(&MetadataRequest::default().with_topics(Some(names)))
        .await
        .expect("metadata");
    let mut live: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    live.sort();
    let next = |l: i32| {
        let i = live.iter().position(|&n| n == l).unwrap_or(0);
        live[(i + 1) % live.len()]
    };
    let mut reassign = Vec::new();
    for t in &md.topics {
        let partitions: Vec<ReassignablePartition> = t
            .partitions
            .iter()
            .map(|p| {
                let to = next(p.leader_id.0);
                let mut replicas = vec![BrokerId(to)];
                replicas.extend(live.iter().filter(|&&n| n != to).map(|&n| BrokerId(n)));
                ReassignablePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_replicas(Some(replicas))
            })
            .collect();
        reassign.push(
            ReassignableTopic::default()
                .with_name(t.name.clone().expect("topic name"))
                .with_partitions(partitions),
        );
    }
    let moved = reassign.iter().map(|t| t.partitions.len()).sum();
    let resp = m
        .send_at(
            &AlterPartitionReassignmentsRequest::default().with_topics(reassign),
            0,
        )
        .await
        .expect("reassign");
    for t in &resp.responses {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0, "reassign: {:?}", p.error_message);
        }
    }
    let resp = elect_preferred(&m).await;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            assert_eq!(p.error_code, 0, "elect: {:?}", p.error_message);
        }
    }
    moved
}

/// Gives partition `partition` of `topic` exactly `replicas` (the first preferred) and
/// elects the preferred leader.
pub async fn reassign(bootstrap: &str, topic: &str, partition: i32, replicas: &[i32]) {
    let m = Messenger::connect(bootstrap, MessengerConfig::default())
        .await
        .expect("connect");
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(Some(replicas.iter().map(|&n| BrokerId(n)).collect()))]),
    ]);
    let resp = m.send_at(&req, 0).await.expect("reassign");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "reassign");
    let resp = elect_preferred(&m).await;
    assert_eq!(resp.error_code, 0, "elect");
}

/// A client of the cluster at `bootstrap`, for checks.
pub fn check_client(bootstrap: &str) -> ClusterClient {
    ClusterClient::new(ClientConfig {
        cluster: "check".into(),
        bootstrap: vec![bootstrap.to_string()],
        messenger: MessengerConfig::default(),
        backoff: BackoffConfig::default(),
        replication_factor: None,
    })
}

/// The sum of the high watermarks of `topic`'s partitions (0 when it does not exist yet).
pub async fn high_watermarks(bootstrap: &str, topic: &str) -> i64 {
    let client = check_client(bootstrap);
    let Ok(md) = client.refresh_metadata().await else {
        return 0;
    };
    let count = md.partition_count(topic).unwrap_or(0);
    let mut total = 0;
    for p in 0..count {
        let Ok(m) = client.leader(topic, p).await else {
            continue;
        };
        if let Ok((0, hw)) = list_offsets::list_offset(
            &m,
            topic,
            p,
            md.leader_epoch(topic, p),
            list_offsets::LATEST,
        )
        .await
        {
            total += hw.max(0);
        }
    }
    total
}

/// The record batches `topic` holds, over all partitions (read from offset 0 to the high
/// watermark): a mirror writes one batch per acknowledged Produce.
pub async fn count_batches(bootstrap: &str, topic: &str) -> usize {
    let client = check_client(bootstrap);
    let md = client.refresh_metadata().await.expect("metadata");
    let mut batches = 0;
    for p in 0..md.partition_count(topic).unwrap_or(0) {
        let m = client.leader(topic, p).await.expect("leader");
        let (_, hw) = list_offsets::list_offset(
            &m,
            topic,
            p,
            md.leader_epoch(topic, p),
            list_offsets::LATEST,
        )
        .await
        .expect("offsets");
        let mut offset = 0;
        while offset < hw {
            let want = fetch::FetchWant {
                topic: topic.to_string(),
                topic_id: None,
                partition: p,
                offset,
                max_bytes: None,
                leader_epoch: md.leader_epoch(topic, p),
                last_fetched_epoch: -1,
            };
            let got = fetch::fetch(&m, &[want], 0, 8 << 20, 8 << 20)
                .await
                .expect("fetch");
            let before = offset;
            for b in kmirror_wire::batch::Batches::new(&got[0].records) {
                let b = b.expect("a whole batch");
                if b.base_offset() >= offset {
                    batches += 1;
                    offset = b.next_offset();
                }
            }
            assert!(
                offset > before,
                "{topic}-{p}: no batch at offset {offset} below {hw}"
            );
        }
    }
    batches
}

/// The replica count of each partition of `topic`, in partition order.
pub async fn replica_counts(bootstrap: &str, topic: &str) -> Vec<usize> {
    let m = Messenger::connect(bootstrap, MessengerConfig::default())
        .await
        .expect("connect");
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let md = m.send_at(&req, 12).await.expect("metadata");
    let mut parts: Vec<(i32, usize)> = md.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.replica_nodes.len()))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, n)| n).collect()
}

/// A preferred-leader election for every partition that needs one.
async fn elect_preferred(m: &Messenger) -> kafka_protocol::messages::ElectLeadersResponse {
    m.send_at(
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(None),
        2,
    )
    .await
    .expect("elect")
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Waits until `topic` on `target` holds at least `want` records; panics with the daemon's
/// log after 120 s.
pub fn wait_for_records(
    rt: &tokio::runtime::Runtime,
    target: &str,
    topic: &str,
    want: i64,
    daemon: &kmirror_testkit::DaemonProcess,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let got = rt.block_on(high_watermarks(target, topic));
        if got >= want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: {got} of {want} records on the target after 120 s:\n{}",
            daemon.log.tail(60)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
