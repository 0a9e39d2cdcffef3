//! Where a topic's effective config values come from: its own overrides, the broker's
//! defaults (static and set at run time) and Kafka's.

use super::*;

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
