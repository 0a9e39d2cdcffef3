//! Apache Kafka releases the broker can emulate (`--emulate-kafka`), each with the API
//! version ranges its brokers advertise, and the ApiVersions features a release reports.
//!
//! The tables (`kafka_*.rs`) are data, generated once from Kafka's message JSON history by
//! `scripts/kafka_versions.py`; each file names its source. This module only looks them
//! up. It does not decide what this broker implements: `dispatch` intersects its own
//! ranges with the emulated release's (see `dispatch::VersionTable`).

use std::fmt;
use std::str::FromStr;

use kafka_protocol::protocol::VersionRange;

mod kafka_2_8;
mod kafka_3_0;
mod kafka_3_6;
mod kafka_3_9;
mod kafka_4_0;
mod kafka_4_1;

/// One API of a release: its key, Kafka's name, and the advertised versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub key: i16,
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
}

/// A Kafka release whose advertised versions the broker can take on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum KafkaRelease {
    V2_8,
    V3_0,
    V3_6,
    V3_9,
    V4_0,
    #[default]
    V4_1,
}

impl KafkaRelease {
    pub const ALL: [KafkaRelease; 6] = [
        Self::V2_8,
        Self::V3_0,
        Self::V3_6,
        Self::V3_9,
        Self::V4_0,
        Self::V4_1,
    ];

    /// "2.8", "4.1", ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_8 => "2.8",
            Self::V3_0 => "3.0",
            Self::V3_6 => "3.6",
            Self::V3_9 => "3.9",
            Self::V4_0 => "4.0",
            Self::V4_1 => "4.1",
        }
    }

    /// Every API the release's brokers advertise, ordered by key.
    pub fn apis(self) -> &'static [Api] {
        match self {
            Self::V2_8 => kafka_2_8::APIS,
            Self::V3_0 => kafka_3_0::APIS,
            Self::V3_6 => kafka_3_6::APIS,
            Self::V3_9 => kafka_3_9::APIS,
            Self::V4_0 => kafka_4_0::APIS,
            Self::V4_1 => kafka_4_1::APIS,
        }
    }

    /// The release's advertised range for `api_key`; `None` if it did not have the API.
    pub fn range(self, api_key: i16) -> Option<VersionRange> {
        self.apis()
            .iter()
            .find(|a| a.key == api_key)
            .map(|a| VersionRange {
                min: a.min,
                max: a.max,
            })
    }

    /// `metadata.version` as the release's brokers report it in ApiVersions: the supported
    /// feature levels and the finalized level of a cluster at that release. `None` for
    /// releases whose (ZooKeeper-mode) brokers report no features.
    ///
    /// Kafka: `BrokerFeatures.defaultSupportedFeatures` (min `MINIMUM_KRAFT_VERSION`, 3.0-IV1 =
    /// 1, raised to 3.3-IV3 = 7 in 4.0), `MetadataVersion.LATEST_PRODUCTION` per release:
    /// 3.6-IV2 = 14, 3.9-IV0 = 21, 4.0-IV3 = 25, 4.1-IV1 = 27.
    pub fn metadata_version(self) -> Option<MetadataVersionLevels> {
        let (min, max) = match self {
            Self::V2_8 | Self::V3_0 => return None,
            Self::V3_6 => (1, 14),
            Self::V3_9 => (1, 21),
            Self::V4_0 => (7, 25),
            Self::V4_1 => (7, 27),
        };
        Some(MetadataVersionLevels {
            min,
            max,
            finalized: max,
        })
    }
}

/// Feature levels of `metadata.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataVersionLevels {
    pub min: i16,
    pub max: i16,
    pub finalized: i16,
}

impl fmt::Display for KafkaRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A release name the broker cannot emulate.
#[derive(Debug, thiserror::Error)]
#[error("unknown Kafka release {0:?}; one of 2.8, 3.0, 3.6, 3.9, 4.0, 4.1")]
pub struct UnknownRelease(String);

impl FromStr for KafkaRelease {
    type Err = UnknownRelease;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRelease(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_unique_and_well_formed() {
        for r in KafkaRelease::ALL {
            let apis = r.apis();
            assert!(apis.windows(2).all(|w| w[0].key < w[1].key), "{r}");
            assert!(apis.iter().all(|a| 0 <= a.min && a.min <= a.max), "{r}");
        }
    }

    #[test]
    fn releases_parse_and_print() {
        for r in KafkaRelease::ALL {
            assert_eq!(r.as_str().parse::<KafkaRelease>().unwrap(), r);
        }
        assert!("2.7".parse::<KafkaRelease>().is_err());
        assert_eq!(KafkaRelease::default(), KafkaRelease::V4_1);
    }

    #[test]
    fn known_ranges() {
        let r = |rel: KafkaRelease, key| rel.range(key).map(|v| (v.min, v.max));
        assert_eq!(r(KafkaRelease::V2_8, 0), Some((0, 9))); // Produce
        assert_eq!(r(KafkaRelease::V2_8, 1), Some((0, 12))); // Fetch
        assert_eq!(r(KafkaRelease::V3_6, 1), Some((0, 15)));
        assert_eq!(r(KafkaRelease::V4_0, 1), Some((4, 17)));
        assert_eq!(r(KafkaRelease::V4_1, 3), Some((0, 13))); // Metadata
                                                             // DescribeTopicPartitions (75) arrived in 3.8.
        assert_eq!(r(KafkaRelease::V3_6, 75), None);
        assert!(r(KafkaRelease::V3_9, 75).is_some());
    }
}
