//! Kafka error-code classification: the one place that decides what a client does about a
//! broker's error code.
//!
//! Every retry decision in kmirror goes through [`classify`], so "NOT_LEADER means refresh
//! metadata and retry" is written once. The broker side uses the named codes from
//! `kafka_protocol::error::ResponseError` directly.

pub use kafka_protocol::error::ResponseError;

/// What a client should do about an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// No error.
    Ok,
    /// Retry after backoff; the cached metadata (leader, coordinator) is stale.
    RetryRefreshMetadata,
    /// Retry after backoff with the same metadata.
    Retry,
    /// Retry is pointless; stop and report.
    Fatal,
}

/// Classifies a Kafka error code.
pub fn classify(code: i16) -> ErrorClass {
    use ResponseError as E;
    let Some(err) = ResponseError::try_from_code(code) else {
        return ErrorClass::Ok;
    };
    match err {
        E::NotLeaderOrFollower
        | E::LeaderNotAvailable
        | E::UnknownTopicOrPartition
        | E::NotCoordinator
        | E::CoordinatorNotAvailable
        | E::FencedLeaderEpoch
        | E::UnknownLeaderEpoch
        | E::NotController
        | E::BrokerNotAvailable
        | E::ReplicaNotAvailable
        | E::KafkaStorageError
        | E::UnknownTopicId => ErrorClass::RetryRefreshMetadata,
        E::RequestTimedOut
        | E::NetworkException
        | E::CoordinatorLoadInProgress
        | E::NotEnoughReplicas
        | E::NotEnoughReplicasAfterAppend
        | E::ThrottlingQuotaExceeded
        | E::ConcurrentTransactions
        | E::RebalanceInProgress
        | E::CorruptMessage => ErrorClass::Retry,
        other if other.is_retriable() => ErrorClass::Retry,
        _ => ErrorClass::Fatal,
    }
}

/// What a classic group member does about a coordinator's refusal of its JoinGroup,
/// SyncGroup, Heartbeat or OffsetCommit (Kafka's AbstractCoordinator). Codes that say
/// nothing about membership are `None`: the caller then goes by [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A rebalance is under way: join again as the same member.
    Rejoin,
    /// The member's generation is over: it owns nothing now; join again.
    Fenced,
    /// The coordinator does not know the member: join again as a new one.
    FencedAsNew,
}

/// Classifies a group coordinator's error code for a member (see [`Membership`]).
pub fn membership(code: i16) -> Option<Membership> {
    use ResponseError as E;
    match ResponseError::try_from_code(code)? {
        E::RebalanceInProgress => Some(Membership::Rejoin),
        E::IllegalGeneration => Some(Membership::Fenced),
        E::UnknownMemberId | E::FencedInstanceId => Some(Membership::FencedAsNew),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_follows_kafkas_coordinator() {
        let of = |e: ResponseError| membership(e.code());
        assert_eq!(
            of(ResponseError::RebalanceInProgress),
            Some(Membership::Rejoin)
        );
        assert_eq!(
            of(ResponseError::IllegalGeneration),
            Some(Membership::Fenced)
        );
        // KIP-848's commit error, retried with the latest epoch: not a classic member's.
        assert_eq!(of(ResponseError::StaleMemberEpoch), None);
        assert_eq!(
            of(ResponseError::UnknownMemberId),
            Some(Membership::FencedAsNew)
        );
        assert_eq!(
            of(ResponseError::FencedInstanceId),
            Some(Membership::FencedAsNew)
        );
        assert_eq!(of(ResponseError::NotCoordinator), None);
        assert_eq!(membership(0), None);
    }

    #[test]
    fn classifies_common_codes() {
        assert_eq!(classify(0), ErrorClass::Ok);
        assert_eq!(
            classify(ResponseError::NotLeaderOrFollower.code()),
            ErrorClass::RetryRefreshMetadata
        );
        assert_eq!(
            classify(ResponseError::RequestTimedOut.code()),
            ErrorClass::Retry
        );
        assert_eq!(
            classify(ResponseError::MessageTooLarge.code()),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify(ResponseError::TopicAuthorizationFailed.code()),
            ErrorClass::Fatal
        );
        // A topic id the broker does not know (deleted, or re-created under a new id):
        // the metadata is read again, which tells which.
        assert_eq!(
            classify(ResponseError::UnknownTopicId.code()),
            ErrorClass::RetryRefreshMetadata
        );
        assert_eq!(classify(9999), ErrorClass::Fatal);
    }
}
