//! kmirror-broker: a Kafka-compatible broker, one node or several from one process.
//!
//! Unmodified Kafka clients (librdkafka, kafka-python, the Java client) work against it
//! with their default settings. It exists so that both sides of a kmirror topology can run
//! on a laptop and in CI; it is not a replacement for a Kafka cluster.

pub mod acl;
pub mod authz;
mod buffers;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod dispatch;
pub mod fetch_waiters;
mod fsutil;
pub mod groups;
pub mod handlers;
pub mod internal_topics;
pub mod log;
pub mod meta;
pub mod partition;
pub mod producers;
pub mod quotas;
pub mod response_memory;
pub mod sasl;
pub mod server;
pub mod state;
pub mod topic_config;
pub mod topics;
pub mod transactions;
pub mod versions;

pub use config::BrokerConfig;
pub use server::{start, RunningBroker, ServerError};
pub use state::Broker;
pub use versions::KafkaRelease;
