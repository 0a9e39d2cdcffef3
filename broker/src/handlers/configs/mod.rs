//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and the broker.
//!
//! Topic keys are validated against [`crate::topic_config`]: unknown keys and bad values
//! get INVALID_CONFIG, and accepted changes take effect at once (a lower `retention.ms`
//! deletes old segments right away). The broker resource exposes its settings and the
//! broker-wide default of every topic key (`log.cleanup.policy`, `min.insync.replicas`,
//! `compression.type`, ...: Kafka's ServerTopicConfigSynonyms); those log defaults can be
//! changed at run time like Kafka's dynamic broker configs, and topics without a value of
//! their own follow them; the rest are read-only.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::config_sources::{
    broker_chain, broker_key, broker_keys, source_and_synonyms, static_value, topic_chain, Synonym,
    DYNAMIC_DEFAULT_BROKER_CONFIG,
};
use super::message;
use crate::state::{now_ms, Broker};
use crate::topic_config::{self, ConfigType, TopicConfigs, TOPIC_KEYS};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

use super::alter_checks::{self, Failure};

fn is_this_broker(broker: &Broker, name: &str) -> bool {
    name.is_empty() || name.parse::<i32>() == Ok(broker.config.node_id)
}

/// Why a BROKER resource `name` that is not this broker is refused, in Kafka's words: by
/// DescribeConfigs (`describe`, ConfigHelper.resourceNameToBrokerId) or by the alters
/// (ConfigAdminManager.validateResourceNameIsCurrentNodeId). Java's parseInt, as Rust's,
/// takes a sign and leading zeros.
fn other_broker(broker: &Broker, name: &str, describe: bool) -> String {
    let id = broker.config.node_id;
    match (name.parse::<i32>(), describe) {
        (Err(_), true) => format!("Broker id must be an integer, but it is: {name}"),
        // (2.8's ZkAdminManager.getBrokerId says "Broker id".)
        (Err(_), false) if broker.versions.zookeeper() => {
            format!("Broker id must be an integer, but it is: {name}")
        }
        (Err(_), false) => format!("Node id must be an integer, but it is: {name}"),
        (Ok(_), true) => {
            format!("Unexpected broker id, expected {id} or empty string, but received {name}")
        }
        (Ok(_), false) => format!("Unexpected broker id, expected {id}, but received {name}"),
    }
}

mod alter;
mod describe;

pub use alter::{alter, alter_checked, incremental_alter, incremental_alter_checked};
pub use describe::describe;
