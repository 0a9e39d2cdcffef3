//! Version selection for Kafka APIs.
//!
//! The server side advertises, per implemented API, exactly the versions `kafka-protocol`
//! can decode (request) *and* encode (response): `Req::VERSIONS ∩ Resp::VERSIONS`. The
//! crate's `ApiKey::valid_versions()` is wider than the request structs for OffsetCommit,
//! OffsetFetch and InitProducerId, so it is never used for advertising. The client side
//! intersects the broker's advertised range with what the crate supports and picks the
//! highest common version.

use std::collections::HashMap;

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::{Message, Request, VersionRange};

/// The versions of request `R` that can be decoded and answered: request ∩ response.
pub fn codec_range<R: Request>() -> VersionRange {
    R::VERSIONS.intersect(&<R::Response as Message>::VERSIONS)
}

/// What a broker advertised in ApiVersions, keyed by API key.
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, VersionRange>,
}

/// A request the broker cannot take at any version this client speaks.
#[derive(Debug, thiserror::Error)]
#[error("broker supports API key {api_key} at {broker}, this client at {client}")]
pub struct NoCommonVersion {
    pub api_key: i16,
    pub broker: String,
    pub client: VersionRange,
}

impl BrokerVersions {
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        let ranges = resp
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Self { ranges }
    }

    /// The broker's range for `api_key`, if it advertised one.
    pub fn range(&self, api_key: i16) -> Option<VersionRange> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version of `R` that both this client and the broker support.
    pub fn pick<R: Request>(&self) -> Result<i16, NoCommonVersion> {
        self.pick_within::<R>(codec_range::<R>())
    }

    /// For a request that names its topics by id (Fetch v13+, Produce v13+): the highest
    /// version both sides speak when `by_id` (every topic in it has a known id), else at
    /// most `last_by_name`, the last version that names topics.
    pub fn pick_by_id_or_name<R: Request>(
        &self,
        by_id: bool,
        last_by_name: i16,
    ) -> Result<i16, NoCommonVersion> {
        if by_id {
            return self.pick::<R>();
        }
        self.pick_within::<R>(VersionRange {
            min: codec_range::<R>().min,
            max: last_by_name,
        })
    }

    /// Like [`Self::pick`], limited to `client` (for callers that need a feature window).
    pub fn pick_within<R: Request>(&self, client: VersionRange) -> Result<i16, NoCommonVersion> {
        let err = |broker: String| NoCommonVersion {
            api_key: R::KEY,
            broker,
            client,
        };
        let broker = self.range(R::KEY).ok_or_else(|| err("none".into()))?;
        let common = broker.intersect(&client);
        if common.is_empty() {
            return Err(err(broker.to_string()));
        }
        Ok(common.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        FetchRequest, InitProducerIdRequest, MetadataRequest, OffsetCommitRequest,
    };

    #[test]
    fn codec_range_is_narrower_than_api_key_table_where_the_crate_says_so() {
        assert_eq!(codec_range::<OffsetCommitRequest>().max, 9);
        assert_eq!(codec_range::<InitProducerIdRequest>().max, 5);
    }

    #[test]
    fn pick_takes_highest_common_version() {
        let resp = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(3)
            .with_min_version(0)
            .with_max_version(9)]);
        let v = BrokerVersions::from_response(&resp);
        assert_eq!(v.pick::<MetadataRequest>().unwrap(), 9);
        assert!(v.pick::<OffsetCommitRequest>().is_err());
    }

    #[test]
    fn a_request_by_name_stays_at_the_last_version_that_names_topics() {
        let resp = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(1)
            .with_min_version(4)
            .with_max_version(17)]);
        let v = BrokerVersions::from_response(&resp);
        assert_eq!(v.pick_by_id_or_name::<FetchRequest>(true, 12).unwrap(), 17);
        assert_eq!(v.pick_by_id_or_name::<FetchRequest>(false, 12).unwrap(), 12);
        assert!(v.pick_by_id_or_name::<FetchRequest>(false, 3).is_err());
    }
}
