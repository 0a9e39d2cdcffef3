//! The topology file as written: serde structs that reject unknown keys, plus the
//! "skeleton" pass that lists clusters and flows so that each can be deserialized (and
//! fail) on its own.
//!
//! Nothing here checks meaning: regexes, durations, sizes, addresses and names are kept as
//! text for [`super::validate`], so that a bad value there is reported together with all
//! the others. Type errors (a list where a mapping belongs, an unknown key, a misspelt
//! enum value) come from serde with serde_yaml's line, column and path. serde stops at the
//! first such error inside one cluster, flow or `telemetry` block; errors in different
//! blocks are all reported.

use super::interpolate;
use super::{Delivery, PartitionPolicy, SaslMechanism, Secret, StartFrom};
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// Any scalar value, as written (`10s`, `4096`, `007`) with its `${VAR}` references
/// substituted ([`interpolate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar(deserializer, |written| {
            interpolate::substitute(written, true).map(|value| Text(value.into_owned()))
        })
    }
}

/// A mapping key, exactly as written (keys are never substituted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar(deserializer, |written| Ok(Key(written.to_string())))
    }
}

/// A number, boolean or choice that may also be written as `${VAR}`: read as [`Text`],
/// then parsed by YAML's rules, so `true`, `"true"` and `${FLAG}` set to `true` are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Typed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar(deserializer, |written| {
            let value = interpolate::substitute(written, false)?;
            serde_yaml::from_str(&value).map(Typed).map_err(|error| {
                // The message quotes what it could not read: the reference as written,
                // never a value from the environment.
                let message = without_location(&error);
                if value == written {
                    return message;
                }
                message
                    .replace(&format!("\"{value}\""), &format!("\"{written}\""))
                    .replace(&format!("`{value}`"), &format!("`{written}`"))
            })
        })
    }
}

/// Reads one scalar's text and converts it with `convert`. The conversion runs inside the
/// visitor, so serde_yaml gives its error the scalar's own line, column and path.
fn scalar<'de, D, T>(
    deserializer: D,
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ScalarVisitor<F>(F);
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for ScalarVisitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a single value (string or number)")
        }
        fn visit_str<E: de::Error>(self, written: &str) -> Result<T, E> {
            (self.0)(written).map_err(E::custom)
        }
    }
    // serde_yaml hands over the scalar's text for any scalar here.
    deserializer.deserialize_str(ScalarVisitor(convert))
}

/// A serde_yaml error's message without its " at line L column C".
pub fn without_location(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    match error.location() {
        Some(at) => message.replacen(
            &format!(" at line {} column {}", at.line(), at.column()),
            "",
            1,
        ),
        None => message,
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a cluster mapping with `bootstrap` (remote) or `embedded`"
)]
pub struct RawCluster {
    pub bootstrap: Option<Vec<Text>>,
    pub client_id: Option<Text>,
    pub request_timeout_ms: Option<Typed<u64>>,
    pub request_timeout: Option<Text>,
    pub connect_timeout_ms: Option<Typed<u64>>,
    pub connect_timeout: Option<Text>,
    pub replication_factor: Option<Typed<u16>>,
    #[serde(default, deserialize_with = "written")]
    pub tls: Option<Option<RawTls>>,
    #[serde(default, deserialize_with = "written")]
    pub sasl: Option<Option<RawSasl>>,
    pub embedded: Option<RawEmbedded>,
}

/// A key that is written, possibly with no value (`tls:` with its settings commented out):
/// `Some(None)`, told apart from a key not written at all (`None`, the field's default), so
/// that an empty security setting is refused instead of read as "off".
fn written<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a `tls` mapping with optional `ca`, `cert`, `key`, `server_name`"
)]
pub struct RawTls {
    pub ca: Option<Text>,
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub server_name: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a `sasl` mapping with `mechanism`, `username`, and `password` or `password_file`"
)]
pub struct RawSasl {
    pub mechanism: Typed<SaslMechanism>,
    pub username: Text,
    pub password: Option<Secret>,
    pub password_file: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an `embedded` mapping with `listen` and `data_dir`"
)]
pub struct RawEmbedded {
    pub listen: Text,
    pub data_dir: Text,
    pub partitions: Option<Typed<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a flow mapping with `name`, `source`, `target`, `topics`"
)]
pub struct RawFlow {
    pub name: Text,
    pub source: Text,
    pub target: Text,
    pub topics: RawTopics,
    pub rename: Option<Text>,
    pub partitions: Option<Typed<PartitionPolicy>>,
    pub create_topics: Option<Typed<bool>>,
    pub sync_configs: Option<RawSyncConfigs>,
    pub start_from: Option<Typed<StartFrom>>,
    pub discovery_interval: Option<Text>,
    pub delivery: Option<Typed<Delivery>>,
    pub limits: Option<RawLimits>,
    pub groups: Option<RawGroups>,
    pub mm2_compat: Option<Typed<bool>>,
    pub sync_acls: Option<Typed<bool>>,
    pub exclusive: Option<Typed<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a `topics` mapping with `include` and optional `exclude` regex lists"
)]
pub struct RawTopics {
    #[serde(default)]
    pub include: Vec<Text>,
    #[serde(default)]
    pub exclude: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a `sync_configs` mapping")]
pub struct RawSyncConfigs {
    pub enabled: Option<Typed<bool>>,
    #[serde(default)]
    pub exclude: Vec<Text>,
    pub default_exclude: Option<Typed<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a `limits` mapping")]
pub struct RawLimits {
    pub bytes_per_sec: Option<Text>,
    pub records_per_sec: Option<Typed<u64>>,
    pub max_in_flight_bytes: Option<Text>,
    pub batch_bytes: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a `groups` mapping")]
pub struct RawGroups {
    pub include: Option<Vec<Text>>,
    #[serde(default)]
    pub exclude: Vec<Text>,
    pub default_exclude: Option<Typed<bool>>,
    pub sync_offsets: Option<Typed<bool>>,
    pub interval: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a `telemetry` mapping with `listen` and/or `log_interval`"
)]
pub struct RawTelemetry {
    pub listen: Option<Text>,
    pub log_interval: Option<Text>,
    pub otlp: Option<RawOtlp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an `otlp` mapping with `endpoint`")]
pub struct RawOtlp {
    pub endpoint: Text,
    pub interval: Option<Text>,
}

/// The top-level keys allowed in a topology file.
pub const TOP_LEVEL_KEYS: &[&str] = &["clusters", "flows", "telemetry"];

/// The outline of a document: its top-level keys, cluster names and number of flows,
/// read without looking inside clusters and flows.
#[derive(Debug, Default)]
pub struct Skeleton {
    /// Top-level keys in order (repeats included).
    pub keys: Vec<String>,
    /// Cluster names in order (repeats included); `None` if `clusters` is missing.
    pub cluster_names: Option<Vec<String>>,
    /// Number of flow items; `None` if `flows` is missing.
    pub flow_count: Option<usize>,
}

impl<'de> Deserialize<'de> for Skeleton {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkeletonVisitor)
    }
}

struct SkeletonVisitor;

impl<'de> Visitor<'de> for SkeletonVisitor {
    type Value = Skeleton;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topology mapping with `clusters` and `flows`")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skeleton, A::Error> {
        let mut skeleton = Skeleton::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "clusters" if skeleton.cluster_names.is_none() => {
                    skeleton.cluster_names = Some(map.next_value::<KeyList>()?.0);
                }
                "flows" if skeleton.flow_count.is_none() => {
                    skeleton.flow_count = Some(map.next_value::<SeqLength>()?.0);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            skeleton.keys.push(key.0);
        }
        Ok(skeleton)
    }
}

/// The keys of a mapping (an empty value counts as an empty mapping).
struct KeyList(Vec<String>);

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyListVisitor;
        impl<'de> Visitor<'de> for KeyListVisitor {
            type Value = KeyList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from cluster name to cluster")
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyList, E> {
                Ok(KeyList(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<KeyList, E> {
                Ok(KeyList(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key.0);
                }
                Ok(KeyList(keys))
            }
        }
        deserializer.deserialize_any(KeyListVisitor)
    }
}

/// The length of a sequence (an empty value counts as an empty sequence).
struct SeqLength(usize);

impl<'de> Deserialize<'de> for SeqLength {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqLengthVisitor;
        impl<'de> Visitor<'de> for SeqLengthVisitor {
            type Value = SeqLength;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of flows")
            }
            fn visit_unit<E: de::Error>(self) -> Result<SeqLength, E> {
                Ok(SeqLength(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<SeqLength, E> {
                Ok(SeqLength(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeqLength, A::Error> {
                let mut length = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    length += 1;
                }
                Ok(SeqLength(length))
            }
        }
        deserializer.deserialize_any(SeqLengthVisitor)
    }
}
