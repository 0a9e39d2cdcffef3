//! kmirror-broker: a single-node Kafka-compatible broker.
//!
//! Unmodified Kafka clients (librdkafka, kafka-python, the Java client) work against it
//! with their default settings. It exists so that both sides of a kmirror topology can run
//! on a laptop and in CI; it is not a replacement for a Kafka cluster.

pub mod groups;
pub mod log;
