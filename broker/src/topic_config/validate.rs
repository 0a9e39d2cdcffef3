//! Validation of one topic config value as Kafka's ConfigDef and LogConfig check it,
//! and the value as Kafka holds it once parsed.

use super::*;

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
