//! Where a described config value comes from, as Kafka's DescribeConfigs reports it: the
//! config source of each entry and, when asked for, its synonyms (the chain of places the
//! value could come from, highest priority first).
//!
//! Sources, highest first: a topic's own value (TOPIC_CONFIG), this broker's dynamic value
//! (DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default set on the broker resource
//! "" (DYNAMIC_DEFAULT_BROKER_CONFIG), the start-up value (STATIC_BROKER_CONFIG) and
//! Kafka's built-in default (DEFAULT_CONFIG). A start-up value counts as static when it
//! differs from Kafka's default (or Kafka has none): this broker cannot tell a value left at
//! its default from one set explicitly to the default.
//!
//! Not here: documentation strings, and the minutes/hours aliases of Kafka's broker keys
//! (`log.retention.minutes`, `log.roll.hours`), which this broker does not accept.

use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;
use kafka_protocol::protocol::StrBytes;

use crate::state::Broker;
use crate::topic_config::{self, ConfigType, TopicConfigs};

/// DescribeConfigs `config_source` codes (Kafka: DescribeConfigsResponse.ConfigSource).
pub const TOPIC_CONFIG: i8 = 1;
pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;

/// A broker key: name, type, dynamically alterable, Kafka's default (`None` = no default).
pub struct BrokerKey {
    pub name: &'static str,
    pub kind: ConfigType,
    pub dynamic: bool,
    pub kafka_default: Option<&'static str>,
    /// The topic key it is the default of (a log config): it exists in the releases that
    /// have that key, and its values are validated as that key's.
    pub topic_key: Option<&'static str>,
}

const fn bk(
    name: &'static str,
    kind: ConfigType,
    dynamic: bool,
    kafka_default: Option<&'static str>,
) -> BrokerKey {
    BrokerKey {
        name,
        kind,
        dynamic,
        kafka_default,
        topic_key: None,
    }
}

/// The broker keys this broker describes (Kafka: KafkaConfig / ServerLogConfigs defaults).
pub const BROKER_KEYS: &[BrokerKey] = &[
    bk("log.retention.ms", ConfigType::Long, true, None),
    bk("log.retention.bytes", ConfigType::Long, true, Some("-1")),
    bk(
        "log.segment.bytes",
        ConfigType::Int,
        true,
        Some("1073741824"),
    ),
    bk("message.max.bytes", ConfigType::Int, true, Some("1048588")),
    bk(
        "log.message.timestamp.before.max.ms",
        ConfigType::Long,
        true,
        Some("9223372036854775807"),
    ),
    bk(
        "log.message.timestamp.after.max.ms",
        ConfigType::Long,
        true,
        Some("3600000"),
    ),
    bk("broker.id", ConfigType::Int, false, Some("-1")),
    bk("num.partitions", ConfigType::Int, false, Some("1")),
    bk(
        "default.replication.factor",
        ConfigType::Int,
        false,
        Some("1"),
    ),
    bk(
        "auto.create.topics.enable",
        ConfigType::Boolean,
        false,
        Some("true"),
    ),
    bk("log.dirs", ConfigType::String, false, None),
    bk("advertised.listeners", ConfigType::String, false, None),
    bk(
        "group.initial.rebalance.delay.ms",
        ConfigType::Int,
        false,
        Some("3000"),
    ),
    bk(
        "socket.request.max.bytes",
        ConfigType::Int,
        false,
        Some("104857600"),
    ),
    bk(
        "offsets.retention.minutes",
        ConfigType::Int,
        false,
        Some("10080"),
    ),
];

/// Every broker key this broker describes and may alter: [`BROKER_KEYS`], then the broker
/// names of the topic keys (Kafka: ServerTopicConfigSynonyms), dynamic as in Kafka's
/// DynamicLogConfig.ReconfigurableConfigs (all but `log.message.format.version`), with the
/// topic key's default, or none where Kafka's is null.
pub fn broker_keys() -> &'static [BrokerKey] {
    static KEYS: std::sync::LazyLock<Vec<BrokerKey>> = std::sync::LazyLock::new(|| {
        let mut keys: Vec<BrokerKey> = BROKER_KEYS.iter().map(BrokerKey::clone_static).collect();
        for topic_key in topic_config::TOPIC_KEYS {
            let Some(server) = server_synonym(topic_key.name) else {
                continue;
            };
            if keys.iter().any(|k| k.name == server) {
                continue;
            }
            keys.push(BrokerKey {
                name: server,
                kind: topic_key.kind,
                dynamic: true,
                kafka_default: (!NO_KAFKA_DEFAULT.contains(&server)).then_some(topic_key.default),
                topic_key: Some(topic_key.name),
            });
        }
        keys
    });
    &KEYS
}

impl BrokerKey {
    fn clone_static(&self) -> Self {
        Self {
            name: self.name,
            kind: self.kind,
            dynamic: self.dynamic,
            kafka_default: self.kafka_default,
            topic_key: self.topic_key,
        }
    }

    /// Whether a broker of `release` has the key.
    pub fn known_in(&self, release: crate::versions::KafkaRelease) -> bool {
        self.topic_key
            .and_then(topic_config::lookup)
            .is_none_or(|k| k.known_in(release))
    }
}

pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    broker_keys().iter().find(|k| k.name == name)
}

/// The topic key whose broker-wide default `broker_name` is, if any.
pub fn topic_key_of(broker_name: &str) -> Option<&'static str> {
    broker_key(broker_name).and_then(|k| k.topic_key)
}

/// The start-up value of a broker key.
pub fn static_value(broker: &Broker, name: &str) -> Option<String> {
    let c = &broker.config;
    Some(match name {
        "log.retention.ms" => c.log_defaults.retention_ms.to_string(),
        "log.retention.bytes" => c.log_defaults.retention_bytes.to_string(),
        "log.segment.bytes" => c.log_defaults.segment_bytes.to_string(),
        "message.max.bytes" => c.max_message_bytes.to_string(),
        "log.message.timestamp.before.max.ms" => c.timestamp_before_max_ms.to_string(),
        "log.message.timestamp.after.max.ms" => {
            c.topic_defaults().timestamp_after_max_ms.to_string()
        }
        "broker.id" => c.node_id.to_string(),
        "num.partitions" => c.default_partitions.to_string(),
        "default.replication.factor" => c.default_replication_factor.to_string(),
        "auto.create.topics.enable" => c.auto_create_topics.to_string(),
        "log.dirs" => c
            .data_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        "advertised.listeners" => broker.advertised_listeners(),
        "group.initial.rebalance.delay.ms" => {
            c.group_initial_rebalance_delay.as_millis().to_string()
        }
        "socket.request.max.bytes" => c.max_frame_bytes.to_string(),
        "offsets.retention.minutes" => (c.offsets_retention.as_secs() / 60).to_string(),
        _ => return None,
    })
}

/// One link of a synonym chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: i8,
}

fn syn(name: &str, value: String, source: i8) -> Synonym {
    Synonym {
        name: name.to_string(),
        value,
        source,
    }
}

/// The chain of broker key `name`, highest priority first.
// Kafka: ConfigHelper.configSynonyms (dynamic broker, dynamic default, static, default)
pub fn broker_chain(broker: &Broker, name: &str) -> Vec<Synonym> {
    let mut chain = Vec::new();
    if let Some(v) = broker.broker_overrides(false).get(name) {
        chain.push(syn(name, v.clone(), DYNAMIC_BROKER_CONFIG));
    }
    if let Some(v) = broker.broker_overrides(true).get(name) {
        chain.push(syn(name, v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG));
    }
    let kafka_default = broker_key(name).and_then(|k| k.kafka_default);
    // A key with no default of its own is static only when set: log.retention.ms unset
    // is what log.retention.hours' default (168) gives, and its chain is empty then.
    let unset = kafka_default.or(match name {
        "log.retention.ms" => Some("604800000"),
        _ => None,
    });
    if let Some(v) = static_value(broker, name) {
        if Some(v.as_str()) != unset && !v.is_empty() {
            chain.push(syn(name, v, STATIC_BROKER_CONFIG));
        }
    }
    if let Some(v) = kafka_default {
        chain.push(syn(name, v.to_string(), DEFAULT_CONFIG));
    }
    chain
}

/// The broker key a topic key falls back to (Kafka: ServerTopicConfigSynonyms
/// TOPIC_CONFIG_SYNONYMS, the highest-priority name only).
fn server_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "segment.jitter.ms" => "log.roll.jitter.ms",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "max.message.bytes" => "message.max.bytes",
        "index.interval.bytes" => "log.index.interval.bytes",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "cleanup.policy" => "log.cleanup.policy",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        "min.insync.replicas" => "min.insync.replicas",
        "compression.type" => "compression.type",
        "compression.gzip.level" => "compression.gzip.level",
        "compression.lz4.level" => "compression.lz4.level",
        "compression.zstd.level" => "compression.zstd.level",
        "preallocate" => "log.preallocate",
        "message.timestamp.type" => "log.message.timestamp.type",
        "message.timestamp.difference.max.ms" => "log.message.timestamp.difference.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.downconversion.enable" => "log.message.downconversion.enable",
        "local.retention.ms" => "log.local.retention.ms",
        "local.retention.bytes" => "log.local.retention.bytes",
        _ => return None,
    })
}

/// Broker keys whose Kafka default is null (only their hours/minutes aliases have one), so
/// an unset key has no synonym at all.
const NO_KAFKA_DEFAULT: &[&str] = &["log.roll.ms", "log.roll.jitter.ms", "log.flush.interval.ms"];

/// The chain of topic key `name` for a topic with its own `set` values.
// Kafka: ConfigHelper.createTopicConfigEntry
pub fn topic_chain(broker: &Broker, set: &TopicConfigs, name: &str) -> Vec<Synonym> {
    let mut chain = Vec::new();
    if let Some(v) = set.get(name) {
        chain.push(syn(name, v.clone(), TOPIC_CONFIG));
    }
    let Some(server) = server_synonym(name) else {
        return chain;
    };
    chain.extend(broker_chain(broker, server));
    chain
}

/// The entry's source (the chain's head, DEFAULT_CONFIG for an empty chain) and the
/// synonyms to send (`include`: v1+ `include_synonyms`).
pub fn source_and_synonyms(
    chain: Vec<Synonym>,
    include: bool,
) -> (i8, Vec<DescribeConfigsSynonym>) {
    let source = chain.first().map_or(DEFAULT_CONFIG, |s| s.source);
    let synonyms = if include {
        chain
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(Some(StrBytes::from_string(s.value)))
                    .with_source(s.source)
            })
            .collect()
    } else {
        Vec::new()
    };
    (source, synonyms)
}
