//! kmirror-wire: everything the kmirror daemon and kmirror-broker both say on the wire.
//!
//! Frames and headers ([`frame`]), version selection ([`versions`]), the v2 record-batch
//! view used to forward batches without decompressing them ([`batch`]), Kafka error-code
//! classification ([`errors`]), backoff ([`backoff`]), the client connection
//! ([`messenger`]), TLS for both sides ([`tls`]) and SCRAM ([`scram`]). Message bodies are always encoded by the `kafka-protocol` crate; this
//! crate never hand-encodes a message that crate provides.

pub mod acl;
pub mod backoff;
pub mod batch;
pub mod codec;
pub mod crc_shift;
pub mod errors;
pub mod frame;
pub mod frame_reader;
pub mod frame_writer;
pub mod log_writer;
pub mod messenger;
pub mod parts;
pub mod rebuild;
pub mod records;
pub mod scram;
pub mod tls;
pub mod versions;
pub mod walk;

pub use kafka_protocol;
