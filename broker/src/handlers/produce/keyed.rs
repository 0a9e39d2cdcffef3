//! A Produce request keyed by partition, as Kafka keys it: KafkaApis.handleProduceRequest
//! files every entry into maps keyed by topic and partition, so a partition listed several
//! times (in one topic entry or in several entries for one topic) is appended once and
//! answered once, and the answer names each topic once. Which entry is appended and which
//! answer wins is the caller's ([`super::handle`]); this only groups.

use std::collections::HashMap;

use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use uuid::Uuid;

/// One partition of the request and the entries naming it.
pub struct KeyedPartition {
    /// The first topic entry naming its topic.
    pub topic: usize,
    pub index: i32,
    /// (topic entry, partition entry) of every entry for this partition, in request order.
    pub entries: Vec<(usize, usize)>,
}

/// The request's partitions in the order they first appear.
pub fn by_partition(topics: &[TopicProduceData]) -> Vec<KeyedPartition> {
    // Topics by name (v3-12) or by id (v13): the other field is empty.
    let mut first_topic: HashMap<(&str, Uuid), usize> = HashMap::new();
    let mut slots: HashMap<(usize, i32), usize> = HashMap::new();
    let mut partitions: Vec<KeyedPartition> = Vec::new();
    for (ti, t) in topics.iter().enumerate() {
        let topic = *first_topic
            .entry((t.name.as_str(), t.topic_id))
            .or_insert(ti);
        for (pi, p) in t.partition_data.iter().enumerate() {
            let slot = *slots.entry((topic, p.index)).or_insert_with(|| {
                partitions.push(KeyedPartition {
                    topic,
                    index: p.index,
                    entries: Vec::new(),
                });
                partitions.len() - 1
            });
            partitions[slot].entries.push((ti, pi));
        }
    }
    partitions
}

/// The response's topics: one per topic of `topics`, named as its first entry, holding
/// `answers` (keyed by that first entry, as [`KeyedPartition::topic`]) in order.
pub fn respond(
    topics: &[TopicProduceData],
    answers: impl IntoIterator<Item = (usize, PartitionProduceResponse)>,
) -> Vec<TopicProduceResponse> {
    let mut out: Vec<TopicProduceResponse> = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    for (topic, answer) in answers {
        let at = *position.entry(topic).or_insert_with(|| {
            out.push(
                TopicProduceResponse::default()
                    .with_name(topics[topic].name.clone())
                    .with_topic_id(topics[topic].topic_id),
            );
            out.len() - 1
        });
        out[at].partition_responses.push(answer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::PartitionProduceData;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn topic(name: &str, indexes: &[i32]) -> TopicProduceData {
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_partition_data(
                indexes
                    .iter()
                    .map(|&i| PartitionProduceData::default().with_index(i))
                    .collect(),
            )
    }

    #[test]
    fn partitions_listed_again_are_grouped_under_their_first_topic_entry() {
        let topics = [
            topic("a", &[0, 0, 1]),
            topic("b", &[0]),
            topic("a", &[0, 2]),
        ];
        let keyed = by_partition(&topics);
        let got: Vec<_> = keyed
            .iter()
            .map(|p| (p.topic, p.index, p.entries.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, vec![(0, 0), (0, 1), (2, 0)]),
                (0, 1, vec![(0, 2)]),
                (1, 0, vec![(1, 0)]),
                (0, 2, vec![(2, 1)]),
            ]
        );
        let answers = keyed.iter().map(|p| {
            (
                p.topic,
                PartitionProduceResponse::default().with_index(p.index),
            )
        });
        let resp = respond(&topics, answers);
        let shape: Vec<(String, Vec<i32>)> = resp
            .iter()
            .map(|t| {
                let indexes = t.partition_responses.iter().map(|p| p.index).collect();
                (t.name.as_str().to_string(), indexes)
            })
            .collect();
        assert_eq!(
            shape,
            [("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![0])]
        );
    }
}
