//! Kafka's internal topics as a cluster makes them on first use: `__consumer_offsets` and
//! `__transaction_state`, created by the first FindCoordinator of their kind (or a Metadata
//! request naming them), with Kafka's partition counts and configs
//! (AutoTopicCreationManager.creatableTopic). This broker keeps group and transaction
//! state in files of its own: the topics are there for what clients see of them (topic
//! listings, Metadata, DescribeConfigs), and stay empty.

use crate::topic_config::TopicConfigs;

/// The topic of consumer groups' offsets (Kafka: GROUP_METADATA_TOPIC_NAME).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The topic of transactions' state (Kafka: TRANSACTION_STATE_TOPIC_NAME).
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

/// `offsets.topic.num.partitions` and `transaction.state.log.num.partitions`, Kafka's
/// defaults.
pub const INTERNAL_TOPIC_PARTITIONS: i32 = 50;

/// `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes`, Kafka's
/// defaults.
const INTERNAL_SEGMENT_BYTES: &str = "104857600";

/// `transaction.state.log.min.isr`, Kafka's default.
const TRANSACTION_MIN_ISR: usize = 2;

/// The internal topic FindCoordinator's `key_type` looks in (0: groups, 1: transactions).
pub fn of_key_type(key_type: i8) -> Option<&'static str> {
    match key_type {
        0 => Some(OFFSETS_TOPIC),
        1 => Some(TRANSACTION_TOPIC),
        _ => None,
    }
}

/// The partitions and configs a topic named `name` is auto-created with: Kafka's for its
/// internal topics (`replication_factor` bounds the transaction topic's
/// `min.insync.replicas`, as an operator of a smaller cluster sets it), else
/// `default_partitions` and no configs of its own.
pub fn creatable(
    name: &str,
    default_partitions: i32,
    replication_factor: usize,
) -> (i32, TopicConfigs) {
    let configs = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<TopicConfigs>()
    };
    match name {
        // Kafka: GroupCoordinatorService.groupMetadataTopicConfigs
        OFFSETS_TOPIC => (
            INTERNAL_TOPIC_PARTITIONS,
            configs(&[
                ("cleanup.policy", "compact".into()),
                ("compression.type", "producer".into()),
                ("segment.bytes", INTERNAL_SEGMENT_BYTES.into()),
            ]),
        ),
        // Kafka: TransactionStateManager.transactionTopicConfigs
        TRANSACTION_TOPIC => (
            INTERNAL_TOPIC_PARTITIONS,
            configs(&[
                ("unclean.leader.election.enable", "false".into()),
                ("compression.type", "uncompressed".into()),
                ("cleanup.policy", "compact".into()),
                (
                    "min.insync.replicas",
                    TRANSACTION_MIN_ISR
                        .min(replication_factor.max(1))
                        .to_string(),
                ),
                ("segment.bytes", INTERNAL_SEGMENT_BYTES.into()),
            ]),
        ),
        _ => (default_partitions, TopicConfigs::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_get_kafkas_partitions_and_configs() {
        let (partitions, configs) = creatable(OFFSETS_TOPIC, 1, 1);
        assert_eq!(partitions, 50);
        assert_eq!(configs["cleanup.policy"], "compact");
        assert_eq!(configs["compression.type"], "producer");
        let (partitions, configs) = creatable(TRANSACTION_TOPIC, 1, 3);
        assert_eq!(partitions, 50);
        assert_eq!(configs["min.insync.replicas"], "2");
        assert_eq!(
            creatable(TRANSACTION_TOPIC, 1, 1).1["min.insync.replicas"],
            "1"
        );
        assert_eq!(creatable("orders", 3, 1), (3, TopicConfigs::new()));
    }
}
