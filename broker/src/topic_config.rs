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

/// Why a config value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    // Kafka: LogConfig.validateNames.
    #[error("Unknown topic config name: {0}")]
    UnknownKey(String),
    // Kafka: ConfigException(name, value, message).
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    /// Values that are valid one by one but not together.
    #[error("{0}")]
    Conflict(String),
}

/// Checks one key/value pair and gives the value as Kafka holds it once parsed (Kafka:
/// ConfigDef.parseType trims every value; ConfigHelper.allConfigs describes the parsed value
/// through ConfigDef.convertToString): " 1000 " is 1000, " TRUE" is true, "compact, delete"
/// is "compact,delete".
pub fn validate(name: &str, raw: &str) -> Result<String, ConfigError> {
    let key = lookup(name).ok_or_else(|| ConfigError::UnknownKey(name.to_string()))?;
    let bad = |reason: String| ConfigError::InvalidValue {
        name: name.to_string(),
        value: raw.to_string(),
        reason,
    };
    let value = raw.trim();
    let parsed = match key.kind {
        Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(bad("Expected value to be either true or false".into()));
            }
            value.to_ascii_lowercase()
        }
        Int | Long => {
            // Kafka: ConfigDef.parseType (Integer.parseInt / Long.parseLong).
            let not_a_number = || bad(format!("Not a number of type {}", key.kind.java_name()));
            let n: i64 = value.parse().map_err(|_| not_a_number())?;
            if key.kind == Int && i32::try_from(n).is_err() {
                return Err(not_a_number());
            }
            if let Some(min) = key.min {
                if n < min {
                    return Err(bad(format!("Value must be at least {min}")));
                }
            }
            n.to_string()
        }
        Double => {
            let d: f64 = value
                .parse()
                .map_err(|_| bad("Not a number of type DOUBLE".into()))?;
            // Kafka: ConfigDef.Range.between(0, 1)
            if d < 0.0 {
                return Err(bad("Value must be at least 0".into()));
            }
            if d > 1.0 {
                return Err(bad("Value must be no more than 1".into()));
            }
            java_double(d)
        }
        ConfigType::String | List => {
            // Kafka: ConfigDef.parseType (LIST: split on commas and the blanks around them).
            let items: Vec<&str> = match key.kind {
                List if value.is_empty() => Vec::new(),
                List => value.split(',').map(str::trim).collect(),
                _ => vec![value],
            };
            // Kafka: ConfigDef.ValidString / ValidList (the value named is the item).
            if !key.choices.is_empty() {
                if let Some(item) = items.iter().find(|i| !key.choices.contains(i)) {
                    return Err(ConfigError::InvalidValue {
                        name: name.to_string(),
                        value: item.to_string(),
                        reason: format!("String must be one of: {}", key.choices.join(", ")),
                    });
                }
            }
            items.join(",")
        }
    };
    key_rule(name, value).map_err(bad)?;
    Ok(parsed)
}

/// [`validate`] for a broker of `release`: a key it does not know is unknown, and a
/// message format version must name a metadata version it knows.
pub fn validate_in(name: &str, raw: &str, release: KafkaRelease) -> Result<String, ConfigError> {
    if lookup(name).is_some_and(|k| !k.known_in(release)) {
        return Err(ConfigError::UnknownKey(name.to_string()));
    }
    let parsed = validate(name, raw)?;
    let min = segment_bytes_min(release);
    if name == "segment.bytes" && parsed.parse::<i64>().is_ok_and(|n| n < min) {
        return Err(ConfigError::InvalidValue {
            name: name.to_string(),
            value: raw.to_string(),
            reason: format!("Value must be at least {min}"),
        });
    }
    if name == "message.format.version" && !metadata_version_known(&parsed, release) {
        // Kafka: MetadataVersionValidator.ensureValid (MetadataVersion.fromVersionString)
        return Err(ConfigError::InvalidValue {
            name: name.to_string(),
            value: raw.to_string(),
            // Kafka 2.8 and 3.0 (ApiVersion.apply) quote the value.
            reason: if release <= KafkaRelease::V3_0 {
                format!("Version `{parsed}` is not a valid version")
            } else {
                format!("Version {parsed} is not a valid version")
            },
        });
    }
    Ok(parsed)
}

/// Metadata versions by release, with their inter-broker versions (Kafka: MetadataVersion).
const METADATA_VERSIONS: &[(&str, u8)] = &[
    ("0.8.0", 0),
    ("0.8.1", 0),
    ("0.8.2", 0),
    ("0.9.0", 0),
    ("0.10.0", 2),
    ("0.10.1", 3),
    ("0.10.2", 1),
    ("0.11.0", 3),
    ("1.0", 1),
    ("1.1", 1),
    ("2.0", 2),
    ("2.1", 3),
    ("2.2", 2),
    ("2.3", 2),
    ("2.4", 2),
    ("2.5", 1),
    ("2.6", 1),
    ("2.7", 3),
    ("2.8", 2),
    ("3.0", 2),
    ("3.1", 1),
    ("3.2", 1),
    ("3.3", 4),
    ("3.4", 1),
    ("3.5", 3),
    ("3.6", 3),
    ("3.7", 4),
    ("3.8", 1),
    ("3.9", 1),
];

/// Kafka: MetadataVersion.fromVersionString — the first three dot-separated parts of a
/// "0." version, the first two of others, name a release ("2.8") or one of its
/// inter-broker versions ("2.8-IV1"; "0.8.0" to "0.9.0" have none), up to `release`.
fn metadata_version_known(value: &str, release: KafkaRelease) -> bool {
    let parts = if value.starts_with("0.") { 3 } else { 2 };
    let key: Vec<&str> = value.split('.').take(parts).collect();
    let key = key.join(".");
    METADATA_VERSIONS
        .iter()
        .take_while(|(r, _)| version_le(r, release.as_str()))
        .any(|(r, ivs)| key == *r || (0..*ivs).any(|iv| key == format!("{r}-IV{iv}")))
}

/// Whether release number `a` ("2.8", "0.10.2") is at most `b`.
fn version_le(a: &str, b: &str) -> bool {
    let n = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    n(a) <= n(b)
}

/// `d` as Java's Double.toString writes it (ConfigDef.convertToString): "1.0", "0.5",
/// "1.0E-4" below 10^-3 (Kafka's DOUBLE configs here are ratios within [0, 1]).
fn java_double(d: f64) -> String {
    if d == 0.0 || d >= 1e-3 {
        return format!("{d:?}");
    }
    let scientific = format!("{d:e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) if mantissa.contains('.') => format!("{mantissa}E{exponent}"),
        Some((mantissa, exponent)) => format!("{mantissa}.0E{exponent}"),
        None => scientific,
    }
}

/// Stored configs as [`validate`] keeps them (a data directory of a build before it kept
/// them as sent: " 1000 ", "compact , delete"); a value it refuses is kept as it is.
pub fn parsed(configs: TopicConfigs) -> TopicConfigs {
    configs
        .into_iter()
        .map(|(name, value)| match validate(&name, &value) {
            Ok(parsed) => (name, parsed),
            Err(_) => (name, value),
        })
        .collect()
}

/// What Kafka checks of some keys beyond their type and minimum.
fn key_rule(name: &str, value: &str) -> Result<(), String> {
    let level = || value.trim().parse::<i64>().unwrap_or_default();
    match name {
        // Kafka: CompressionType.GZIP.levelValidator (Deflater's 1..9, or -1 for its default)
        "compression.gzip.level" if !(level() == -1 || (1..=9).contains(&level())) => {
            Err("must be between 1 and 9 or equal to -1".into())
        }
        // Kafka: CompressionType.LZ4.levelValidator
        "compression.lz4.level" if !(1..=17).contains(&level()) => {
            Err("must be between 1 and 17".into())
        }
        // Kafka: CompressionType.ZSTD.levelValidator (ZSTD_minCLevel..ZSTD_MAX_CLEVEL)
        "compression.zstd.level" if !(-131_072..=22).contains(&level()) => {
            Err("must be between -131072 and 22".into())
        }
        // Kafka: LogConfig.validateRemoteStorageOnlyIfSystemEnabled (this broker has no
        // tiered storage)
        "remote.storage.enable" if value.trim().eq_ignore_ascii_case("true") => Err(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be \
             configured with remote log storage."
                .into(),
        ),
        // Kafka: ThrottledReplicaListValidator
        "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            let replica = |i: &str| {
                i.is_empty()
                    || i.split_once(':').is_some_and(|(p, b)| {
                        [p, b]
                            .iter()
                            .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                    })
            };
            if items.concat() == "*" || items.iter().all(|i| replica(i)) {
                Ok(())
            } else {
                Err(
                    "must be the literal '*' or a list of replicas in the following format: \
                     [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                        .into(),
                )
            }
        }
        _ => Ok(()),
    }
}

/// Where an effective value comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride,
    BrokerDefault,
    Default,
}

impl ConfigSource {
    /// DescribeConfigs v1+ `config_source` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::TopicOverride => 1,
            ConfigSource::BrokerDefault => 5,
            ConfigSource::Default => 5,
        }
    }
}

/// The explicitly set configs of one topic.
pub type TopicConfigs = BTreeMap<String, String>;

/// Broker-wide defaults that override the static ones.
#[derive(Debug, Clone)]
pub struct BrokerDefaults {
    pub log: LogConfig,
    pub max_message_bytes: i32,
    /// `log.message.timestamp.before.max.ms` (Kafka 4 default: Long.MAX_VALUE).
    pub timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms` (Kafka 4 default, KIP-1030: 1 hour).
    pub timestamp_after_max_ms: i64,
    /// The Kafka release the broker emulates: which keys exist.
    pub release: KafkaRelease,
    /// Broker-wide defaults set at run time for the other topic keys, by topic key name
    /// (`cleanup.policy` for `log.cleanup.policy`), as validated values.
    pub dynamic: BTreeMap<String, String>,
}

/// Kafka 4's default for `message.timestamp.before.max.ms`.
pub const DEFAULT_TIMESTAMP_BEFORE_MAX_MS: i64 = i64::MAX;
/// Kafka 4's default for `message.timestamp.after.max.ms` (KIP-1030).
pub const DEFAULT_TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;

impl BrokerDefaults {
    fn default_for(&self, name: &str) -> Option<String> {
        Some(match name {
            "retention.ms" => self.log.retention_ms.to_string(),
            "retention.bytes" => self.log.retention_bytes.to_string(),
            "segment.bytes" => self.log.segment_bytes.to_string(),
            "segment.ms" => self.log.segment_ms.to_string(),
            "index.interval.bytes" => self.log.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            // Kafka 2.8: log.message.format.version defaults to the release's own version.
            "message.format.version" if self.release == KafkaRelease::V2_8 => "2.8-IV1".into(),
            _ => return self.dynamic.get(name).cloned(),
        })
    }

    /// Applies one dynamic broker config (Kafka's broker-level name) given as text: a log
    /// default of a topic key is validated as that key's value (Kafka:
    /// DynamicLogConfig.validateReconfiguration, through LogConfig); else why not.
    pub fn set_broker_value(&mut self, name: &str, value: &str) -> Result<(), String> {
        match crate::handlers::config_sources::topic_key_of(name) {
            Some(topic_key) => {
                let parsed = validate_in(topic_key, value, self.release).map_err(|e| match e {
                    ConfigError::InvalidValue { reason, .. } => reason,
                    e => e.to_string(),
                })?;
                self.dynamic.insert(topic_key.to_string(), parsed);
                Ok(())
            }
            None => {
                let kind = crate::handlers::config_sources::broker_key(name)
                    .map_or("LONG", |k| k.kind.java_name());
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("Not a number of type {kind}"))?;
                self.set_broker_config(name, n)
            }
        }
    }

    /// Applies one dynamic broker config (Kafka's broker-level name) if `value` is in its
    /// range; else why not, as Kafka's ConfigDef says it ("Value must be at least 0").
    pub fn set_broker_config(&mut self, name: &str, value: i64) -> Result<(), String> {
        let at_least = |min: i64| {
            if value < min {
                Err(format!("Value must be at least {min}"))
            } else {
                Ok(())
            }
        };
        let int = || {
            i32::try_from(value)
                .map_err(|_| "Not a number of type INT".to_string())
                .map(|_| ())
        };
        match name {
            "log.retention.ms" => at_least(-1).map(|()| self.log.retention_ms = value),
            // Kafka: ServerLogConfigs (log.retention.bytes has no validator)
            "log.retention.bytes" => {
                self.log.retention_bytes = value;
                Ok(())
            }
            // Kafka: ServerLogConfigs (log.segment.bytes atLeast 1 MiB since 4.0, KIP-1030)
            "log.segment.bytes" => int()
                .and_then(|()| at_least(segment_bytes_min(self.release)))
                .map(|()| self.log.segment_bytes = value as u64),
            "message.max.bytes" => int()
                .and_then(|()| at_least(0))
                .map(|()| self.max_message_bytes = value as i32),
            "log.message.timestamp.before.max.ms" => {
                at_least(0).map(|()| self.timestamp_before_max_ms = value)
            }
            "log.message.timestamp.after.max.ms" => {
                at_least(0).map(|()| self.timestamp_after_max_ms = value)
            }
            _ => Err(format!("Unknown broker config {name}")),
        }
    }

    /// The effective value of `name` for a topic with `set` overrides, and its source.
    pub fn effective(&self, set: &TopicConfigs, name: &str) -> Option<(String, ConfigSource)> {
        if lookup(name).is_some_and(|k| !k.known_in(self.release)) {
            return None;
        }
        self.value_of(set, name)
    }

    /// [`Self::effective`] whether or not the emulated release has the key: the log's rules
    /// read keys by their Kafka 4 names and defaults whatever the release.
    fn value_of(&self, set: &TopicConfigs, name: &str) -> Option<(String, ConfigSource)> {
        if let Some(v) = set.get(name) {
            return Some((v.clone(), ConfigSource::TopicOverride));
        }
        if let Some(v) = self.default_for(name) {
            return Some((v, ConfigSource::BrokerDefault));
        }
        lookup(name).map(|k| (k.default.to_string(), ConfigSource::Default))
    }

    /// Kafka: LogConfig.validateValues — what a topic's configs, its overrides over the
    /// broker's defaults, must satisfy together.
    pub fn validate_values(&self, set: &TopicConfigs) -> Result<(), ConfigError> {
        let min = self.number(set, "min.compaction.lag.ms");
        let max = self.number(set, "max.compaction.lag.ms");
        if min > max {
            return Err(ConfigError::Conflict(format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            )));
        }
        Ok(())
    }

    /// A numeric config's value (-1 when not a number): stored values are already parsed
    /// ([`validate`], [`parsed`]).
    fn number(&self, set: &TopicConfigs, name: &str) -> i64 {
        self.value_of(set, name)
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(-1)
    }

    /// The log settings for a topic.
    pub fn log_config(&self, set: &TopicConfigs) -> LogConfig {
        let compact_only = !self.deletes(set);
        LogConfig {
            segment_bytes: self.number(set, "segment.bytes").max(14) as u64,
            segment_ms: self.number(set, "segment.ms"),
            retention_ms: if compact_only {
                -1
            } else {
                self.number(set, "retention.ms")
            },
            retention_bytes: if compact_only {
                -1
            } else {
                self.number(set, "retention.bytes")
            },
            index_interval_bytes: self.number(set, "index.interval.bytes").max(0) as u32,
        }
    }

    pub fn max_message_bytes(&self, set: &TopicConfigs) -> i64 {
        self.number(set, "max.message.bytes")
    }

    pub fn log_append_time(&self, set: &TopicConfigs) -> bool {
        self.value_of(set, "message.timestamp.type")
            .is_some_and(|(v, _)| v == "LogAppendTime")
    }

    pub fn timestamp_before_max_ms(&self, set: &TopicConfigs) -> i64 {
        self.or_timestamp_difference(set, "message.timestamp.before.max.ms")
    }

    pub fn timestamp_after_max_ms(&self, set: &TopicConfigs) -> i64 {
        self.or_timestamp_difference(set, "message.timestamp.after.max.ms")
    }

    /// `key` (before or after), or the deprecated `message.timestamp.difference.max.ms`
    /// while `key` is Long.MAX_VALUE (Kafka 3.6+: LogConfig.getMessageTimestampBeforeMaxMs
    /// and getMessageTimestampAfterMaxMs); before 3.6 only the difference exists (Kafka 2.8:
    /// LogValidator.validateTimestamp), and `key` is then always Long.MAX_VALUE here.
    fn or_timestamp_difference(&self, set: &TopicConfigs, key: &str) -> i64 {
        match self.number(set, key) {
            i64::MAX => self.number(set, "message.timestamp.difference.max.ms"),
            limit => limit,
        }
    }

    /// `min.insync.replicas`.
    pub fn min_insync_replicas(&self, set: &TopicConfigs) -> i64 {
        self.number(set, "min.insync.replicas")
    }

    /// `cleanup.policy` contains `compact`.
    pub fn compacted(&self, set: &TopicConfigs) -> bool {
        self.cleanup_policy_has(set, "compact")
    }

    /// Whether `cleanup.policy` includes `delete` (Kafka's `LogConfig.delete`).
    pub fn deletes(&self, set: &TopicConfigs) -> bool {
        self.cleanup_policy_has(set, "delete")
    }

    fn cleanup_policy_has(&self, set: &TopicConfigs, policy: &str) -> bool {
        self.value_of(set, "cleanup.policy")
            .is_some_and(|(p, _)| p.split(',').any(|i| i.trim() == policy))
    }

    /// `compression.type`: `producer`, `uncompressed` or a codec name.
    pub fn compression_type(&self, set: &TopicConfigs) -> String {
        self.value_of(set, "compression.type")
            .map_or_else(|| "producer".to_string(), |(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_types_ranges_and_choices() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-5").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        let at = |release, value| validate_in("segment.bytes", value, release).is_ok();
        assert!(at(KafkaRelease::V4_0, "1048576") && !at(KafkaRelease::V4_0, "1048575"));
        assert!(at(KafkaRelease::V3_9, "14") && !at(KafkaRelease::V3_9, "13"));
        assert!(at(KafkaRelease::V2_8, "102400"));
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("preallocate", "yes").is_err());
        assert_eq!(
            validate("no.such.key", "1"),
            Err(ConfigError::UnknownKey("no.such.key".into()))
        );
    }

    #[test]
    fn values_are_kept_as_kafka_parses_them() {
        let parsed = |name: &str, value: &str| validate(name, value).unwrap();
        assert_eq!(parsed("retention.ms", " 0061000 "), "61000");
        assert_eq!(parsed("preallocate", " TRUE"), "true");
        assert_eq!(
            parsed("cleanup.policy", " compact , delete "),
            "compact,delete"
        );
        assert_eq!(parsed("cleanup.policy", " "), "");
        assert_eq!(
            parsed("message.timestamp.type", "LogAppendTime "),
            "LogAppendTime"
        );
        assert_eq!(parsed("min.cleanable.dirty.ratio", " 0.25"), "0.25");
        assert_eq!(parsed("min.cleanable.dirty.ratio", "1"), "1.0");
        assert_eq!(parsed("min.cleanable.dirty.ratio", "0"), "0.0");
        assert_eq!(parsed("min.cleanable.dirty.ratio", "0.0001"), "1.0E-4");
        assert_eq!(parsed("min.cleanable.dirty.ratio", "0.00025"), "2.5E-4");
    }

    #[test]
    fn configs_stored_as_sent_are_read_back_parsed() {
        let stored: TopicConfigs = [
            ("retention.ms".to_string(), " 1000 ".to_string()),
            ("cleanup.policy".to_string(), "compact , delete".to_string()),
            ("no.such.key".to_string(), " x ".to_string()),
        ]
        .into();
        let got = parsed(stored);
        assert_eq!(got["retention.ms"], "1000");
        assert_eq!(got["cleanup.policy"], "compact,delete");
        assert_eq!(got["no.such.key"], " x ");
    }

    #[test]
    fn refusals_read_as_kafkas_config_exceptions() {
        let said = |name: &str, value: &str| validate(name, value).unwrap_err().to_string();
        assert_eq!(
            said("retention.ms", "abc"),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            said("segment.bytes", "99999999999"),
            "Invalid value 99999999999 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            said("cleanup.policy", "compact,shred"),
            "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            said("preallocate", "yes"),
            "Invalid value yes for configuration preallocate: Expected value to be either true or false"
        );
        assert_eq!(
            said("no.such.key", "1"),
            "Unknown topic config name: no.such.key"
        );
    }

    #[test]
    fn effective_values_prefer_topic_then_broker_then_static_default() {
        let mut d = BrokerDefaults {
            log: LogConfig {
                retention_ms: 5000,
                ..LogConfig::default()
            },
            max_message_bytes: 2000,
            timestamp_before_max_ms: DEFAULT_TIMESTAMP_BEFORE_MAX_MS,
            timestamp_after_max_ms: DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            release: KafkaRelease::default(),
            dynamic: BTreeMap::new(),
        };
        assert_eq!(d.timestamp_after_max_ms(&TopicConfigs::new()), 3_600_000);
        assert!(d
            .set_broker_config("log.message.timestamp.after.max.ms", 5)
            .is_ok());
        assert_eq!(
            d.set_broker_config("log.message.timestamp.after.max.ms", -5),
            Err("Value must be at least 0".to_string())
        );
        assert_eq!(d.timestamp_after_max_ms(&TopicConfigs::new()), 5);
        assert_eq!(
            d.effective(&TopicConfigs::new(), "message.timestamp.after.max.ms")
                .unwrap()
                .1,
            ConfigSource::BrokerDefault
        );
        let mut set = TopicConfigs::new();
        assert_eq!(d.log_config(&set).retention_ms, 5000);
        set.insert("retention.ms".into(), "7".into());
        assert_eq!(d.log_config(&set).retention_ms, 7);
        assert_eq!(
            d.effective(&set, "retention.ms").unwrap().1,
            ConfigSource::TopicOverride
        );
        assert_eq!(d.max_message_bytes(&set), 2000);
        assert_eq!(
            d.effective(&set, "min.insync.replicas").unwrap(),
            ("1".to_string(), ConfigSource::Default)
        );
        set.insert("cleanup.policy".into(), "compact".into());
        assert_eq!(d.log_config(&set).retention_ms, -1);
    }
}
