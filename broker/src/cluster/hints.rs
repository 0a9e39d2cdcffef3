//! KIP-951 leader hints: a partition answered with NOT_LEADER_OR_FOLLOWER (Produce v10+)
//! or NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH (Fetch v16+) carries the current
//! leader and epoch, and the response lists that leader's endpoint, so the client can
//! re-route without a Metadata round trip (KafkaApis.handleProduceRequest /
//! handleFetchRequest, getCurrentLeader). Post-processing of finished responses only.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{fetch_response, produce_response, BrokerId};
use kafka_protocol::messages::{FetchResponse, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::NodeEndpoint;
use crate::state::Broker;

/// The current leader of a partition, and its endpoint if it is live
/// (KafkaApis.getCurrentLeader). (-1, -1, None) for an unknown partition.
fn current_leader(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> (i32, i32, Option<NodeEndpoint>) {
    let Some(t) = broker.topics.get(topic) else {
        return (-1, -1, None);
    };
    if t.partition(partition).is_none() {
        return (-1, -1, None);
    }
    let v = broker.cluster.view(&t, partition);
    let node = broker
        .cluster
        .is_live(v.leader)
        .then(|| broker.cluster.endpoint(v.leader).cloned())
        .flatten()
        .map(|n| broker.advertise(n));
    (v.leader, v.leader_epoch, node)
}

/// (leader, epoch) of a partition, collecting the leader's endpoint into `endpoints`. The
/// topic is named by id in responses that use ids (Produce v13, Fetch v13+).
fn hint(
    broker: &Broker,
    topic: &str,
    topic_id: uuid::Uuid,
    partition: i32,
    endpoints: &mut BTreeMap<i32, NodeEndpoint>,
) -> (BrokerId, i32) {
    let by_id = (!topic_id.is_nil())
        .then(|| broker.topics.get_by_id(topic_id))
        .flatten()
        .map(|t| t.name.clone());
    let (leader, epoch, node) =
        current_leader(broker, by_id.as_deref().unwrap_or(topic), partition);
    if let Some(n) = node {
        endpoints.insert(n.node_id, n);
    }
    (BrokerId(leader), epoch)
}

/// Fills `current_leader` and `node_endpoints` of a Produce response at v10+.
pub fn produce(broker: &Broker, resp: &mut ProduceResponse, version: i16) {
    if version < 10 {
        return;
    }
    let mut endpoints = BTreeMap::new();
    for t in &mut resp.responses {
        for p in &mut t.partition_responses {
            if p.error_code != ResponseError::NotLeaderOrFollower.code() {
                continue;
            }
            let (leader, epoch) =
                hint(broker, t.name.as_str(), t.topic_id, p.index, &mut endpoints);
            p.current_leader = produce_response::LeaderIdAndEpoch::default()
                .with_leader_id(leader)
                .with_leader_epoch(epoch);
        }
    }
    resp.node_endpoints = endpoints
        .into_values()
        .map(|n| {
            produce_response::NodeEndpoint::default()
                .with_node_id(BrokerId(n.node_id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
        })
        .collect();
}

/// Fills `current_leader` and `node_endpoints` of a Fetch response at v16+.
pub fn fetch(broker: &Broker, mut resp: FetchResponse, version: i16) -> FetchResponse {
    if version < 16 {
        return resp;
    }
    let hinted = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    let mut endpoints = BTreeMap::new();
    for t in &mut resp.responses {
        for p in &mut t.partitions {
            if !hinted.contains(&p.error_code) {
                continue;
            }
            let (leader, epoch) = hint(
                broker,
                t.topic.as_str(),
                t.topic_id,
                p.partition_index,
                &mut endpoints,
            );
            p.current_leader = fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(leader)
                .with_leader_epoch(epoch);
        }
    }
    resp.node_endpoints = endpoints
        .into_values()
        .map(|n| {
            fetch_response::NodeEndpoint::default()
                .with_node_id(BrokerId(n.node_id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
        })
        .collect();
    resp
}
