//! One module per Kafka API. Each handler takes a decoded request and its version and
//! returns the response; partition-level problems become per-partition error codes.
//! Handlers never close connections — only [`crate::dispatch`] does, for protocol
//! violations.

pub mod acls;
pub mod alter_checks;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster;
pub mod config_sources;
pub mod configs;
pub mod consumer_protocol;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod fetch;
pub mod leaders;
pub mod list_offsets;
pub mod metadata;
pub mod not_coordinator;
pub mod produce;
pub mod replica_assignments;
pub mod transactions;
pub mod txn_admin;
pub mod user_scram;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

use crate::log::LogError;
use crate::topics::TopicError;

/// The Kafka error code for a topic-level failure.
pub fn topic_error_code(e: &TopicError) -> ResponseError {
    match e {
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Collides { .. } => ResponseError::InvalidTopicException,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        TopicError::TooManyNewPartitions { .. } => ResponseError::UnknownServerError,
        TopicError::Log(e) => log_error_code(e),
        TopicError::Persist { .. } => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error code for a log failure.
pub fn log_error_code(e: &LogError) -> ResponseError {
    match e {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Corrupt(_) => ResponseError::CorruptMessage,
        LogError::Io { .. } => ResponseError::KafkaStorageError,
    }
}

/// An owned `StrBytes` for an error message.
pub fn message(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}
