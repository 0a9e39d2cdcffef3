//! Nulls a request's schema forbids at its version. kafka-protocol reads a null array or
//! string as `None` at every version; Kafka's generated `read` refuses one where the field
//! is not nullable ("non-nullable field topics was serialized as null"), so the request
//! does not parse and the connection closes (SocketServer, on RequestContext.parseRequest's
//! InvalidRequestException). Only fields nullable from a later version than the broker
//! accepts need this: Metadata's topics (v1+) and their names (v10+), OffsetFetch's topics
//! (v2+).

use kafka_protocol::messages::{MetadataRequest, OffsetFetchRequest};

/// The field of a Metadata request that is null where its schema forbids it.
pub(super) fn metadata(req: &MetadataRequest, version: i16) -> Option<&'static str> {
    match &req.topics {
        None if version < 1 => Some("topics"),
        Some(topics) if version < 10 && topics.iter().any(|t| t.name.is_none()) => {
            Some("topics.name")
        }
        _ => None,
    }
}

/// The field of an OffsetFetch request that is null where its schema forbids it.
pub(super) fn offset_fetch(req: &OffsetFetchRequest, version: i16) -> Option<&'static str> {
    (version < 2 && req.topics.is_none()).then_some("topics")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;

    #[test]
    fn nulls_are_refused_only_below_the_version_that_allows_them() {
        let all = MetadataRequest::default().with_topics(None);
        assert_eq!(metadata(&all, 0), Some("topics"));
        assert_eq!(metadata(&all, 1), None);
        let unnamed = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(None)]));
        assert_eq!(metadata(&unnamed, 9), Some("topics.name"));
        assert_eq!(metadata(&unnamed, 10), None);
        let groups = OffsetFetchRequest::default().with_topics(None);
        assert_eq!(offset_fetch(&groups, 1), Some("topics"));
        assert_eq!(offset_fetch(&groups, 2), None);
    }
}
