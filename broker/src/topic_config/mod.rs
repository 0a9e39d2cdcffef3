//! Topic configuration keys: which ones exist, their types, defaults and validation.
//!
//! Kafka clients and MirrorMaker-style tools set and describe these keys by name. The
//! broker accepts every key a Kafka topic accepts so that configs synced from a real
//! cluster are not rejected, but only some change behaviour here (retention, segments,
//! message size, timestamp type and limits, compaction's key rule, compression type); the
//! rest are stored and described. Compaction is not
//! implemented: `cleanup.policy=compact` is accepted and stored, and such a topic keeps
//! every record (no time or size retention applies to it).

use std::collections::BTreeMap;

use crate::versions::KafkaRelease;

use crate::log::LogConfig;

/// The value type of a config key, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    /// The DescribeConfigs v3+ `config_type` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }

    /// Kafka's name of the type (ConfigDef.Type), as its messages show it.
    pub fn java_name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
        }
    }
}

/// One known key.
#[derive(Debug)]
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Default when neither topic nor broker sets it (broker-derived keys are filled in by
    /// [`BrokerDefaults::effective`]).
    pub default: &'static str,
    /// Smallest allowed value for numbers.
    pub min: Option<i64>,
    /// Allowed values for enumerations (comma-separated lists check each item).
    pub choices: &'static [&'static str],
    /// The first release that has the key, and the first that no longer has it.
    pub since: KafkaRelease,
    pub until: Option<KafkaRelease>,
}

impl ConfigKey {
    /// Whether a broker of `release` knows the key.
    pub fn known_in(&self, release: KafkaRelease) -> bool {
        release >= self.since && self.until.is_none_or(|until| release < until)
    }

    const fn since(mut self, release: KafkaRelease) -> Self {
        self.since = release;
        self
    }

    const fn until(mut self, release: KafkaRelease) -> Self {
        self.until = Some(release);
        self
    }
}

const fn key(name: &'static str, kind: ConfigType, default: &'static str) -> ConfigKey {
    ConfigKey {
        name,
        kind,
        default,
        min: None,
        choices: &[],
        since: KafkaRelease::V2_8,
        until: None,
    }
}
const fn num(name: &'static str, kind: ConfigType, default: &'static str, min: i64) -> ConfigKey {
    ConfigKey {
        name,
        kind,
        default,
        min: Some(min),
        choices: &[],
        since: KafkaRelease::V2_8,
        until: None,
    }
}
const fn one_of(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    choices: &'static [&'static str],
) -> ConfigKey {
    ConfigKey {
        name,
        kind,
        default,
        min: None,
        choices,
        since: KafkaRelease::V2_8,
        until: None,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long};
use KafkaRelease::{V3_0, V3_6, V3_9, V4_0};

/// Smallest `segment.bytes` / `log.segment.bytes` Kafka 4.0 accepts (KIP-1030).
pub const SEGMENT_BYTES_MIN: i64 = 1024 * 1024;
/// Smallest `segment.bytes` / `log.segment.bytes` before 4.0: a v0 record's overhead
/// (Kafka 2.8-3.9: LogConfig / KafkaConfig, atLeast(LegacyRecord.RECORD_OVERHEAD_V0)).
const SEGMENT_BYTES_MIN_BEFORE_4_0: i64 = 14;

/// The smallest `segment.bytes` / `log.segment.bytes` `release` accepts.
pub fn segment_bytes_min(release: KafkaRelease) -> i64 {
    if release >= V4_0 {
        SEGMENT_BYTES_MIN
    } else {
        SEGMENT_BYTES_MIN_BEFORE_4_0
    }
}

/// Every topic-level key of Kafka 2.8 to 4.x, each with the releases that know it (Kafka:
/// TopicConfig, LogConfig.CONFIG; tiered storage's keys came with 3.0 (KAFKA-12816),
/// message.timestamp.before/after.max.ms with 3.6 (KIP-937), the compression levels with 3.8
/// (KIP-390), remote.log.copy.disable and remote.log.delete.on.disable with 3.9 (KIP-950);
/// message.format.version went with 4.0 (KIP-724, KAFKA-17393)).
pub static TOPIC_KEYS: &[ConfigKey] = &[
    // Choices in Kafka's order, as its refusals list them (LogConfig.CONFIG).
    one_of("cleanup.policy", List, "delete", &["compact", "delete"]),
    one_of(
        "compression.type",
        ConfigType::String,
        "producer",
        &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
    ),
    num("compression.gzip.level", Int, "-1", -1).since(V3_9),
    num("compression.lz4.level", Int, "9", 1).since(V3_9),
    num("compression.zstd.level", Int, "3", -131072).since(V3_9),
    num("delete.retention.ms", Long, "86400000", 0),
    num("file.delete.delay.ms", Long, "60000", 0),
    num("flush.messages", Long, "9223372036854775807", 1),
    num("flush.ms", Long, "9223372036854775807", 0),
    key("follower.replication.throttled.replicas", List, ""),
    num("index.interval.bytes", Int, "4096", 0),
    key("leader.replication.throttled.replicas", List, ""),
    num("local.retention.bytes", Long, "-2", -2).since(V3_0),
    num("local.retention.ms", Long, "-2", -2).since(V3_0),
    num("max.compaction.lag.ms", Long, "9223372036854775807", 1),
    num("max.message.bytes", Int, "1048588", 0),
    key("message.downconversion.enable", Boolean, "true"),
    key("message.format.version", ConfigType::String, "3.0-IV1").until(V4_0),
    num("message.timestamp.after.max.ms", Long, "3600000", 0).since(V3_6),
    num(
        "message.timestamp.before.max.ms",
        Long,
        "9223372036854775807",
        0,
    )
    .since(V3_6),
    num(
        "message.timestamp.difference.max.ms",
        Long,
        "9223372036854775807",
        0,
    ),
    one_of(
        "message.timestamp.type",
        ConfigType::String,
        "CreateTime",
        &["CreateTime", "LogAppendTime"],
    ),
    key("min.cleanable.dirty.ratio", Double, "0.5"),
    num("min.compaction.lag.ms", Long, "0", 0),
    num("min.insync.replicas", Int, "1", 1),
    key("preallocate", Boolean, "false"),
    key("remote.log.copy.disable", Boolean, "false").since(V3_9),
    key("remote.log.delete.on.disable", Boolean, "false").since(V3_9),
    key("remote.storage.enable", Boolean, "false").since(V3_0),
    // Kafka: LogConfig.CONFIG (retention.bytes has no validator: any negative is no limit)
    key("retention.bytes", Long, "-1"),
    num("retention.ms", Long, "604800000", -1),
    // Kafka: LogConfig.CONFIG (segment.bytes atLeast 1 MiB since 4.0, KIP-1030; 14 before,
    // checked by release in validate_in)
    num(
        "segment.bytes",
        Int,
        "1073741824",
        SEGMENT_BYTES_MIN_BEFORE_4_0,
    ),
    num("segment.index.bytes", Int, "10485760", 4),
    num("segment.jitter.ms", Long, "0", 0),
    num("segment.ms", Long, "604800000", 1),
    key("unclean.leader.election.enable", Boolean, "false"),
];

/// Looks up a known key.
pub fn lookup(name: &str) -> Option<&'static ConfigKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

mod defaults;
mod validate;

pub use defaults::*;
pub use validate::*;

#[cfg(test)]
mod tests;
