//! MirrorMaker 2 compatibility (`mm2_compat: true` on a flow): the flow writes MM2's
//! checkpoints to `<source>.checkpoints.internal` and heartbeats to `heartbeats` on its
//! target, in MM2's byte layouts, so tooling built on `RemoteClusterUtils` /
//! `MirrorClient` (e.g. `translateOffsets`) keeps working after a switch to kmirror.
//!
//! Layouts (Kafka's `connect/mirror-client` `Checkpoint.java` and `Heartbeat.java`, written
//! with Kafka's protocol types: STRING is an INT16 length and UTF-8 bytes, integers are
//! big-endian):
//! - checkpoint key: `group: STRING, topic: STRING, partition: INT32` (the topic is the
//!   target topic); value: `version: INT16 = 0, upstreamOffset: INT64, offset: INT64,
//!   metadata: STRING`;
//! - heartbeat key: `sourceClusterAlias: STRING, targetClusterAlias: STRING`; value:
//!   `version: INT16 = 0, timestamp: INT64` (ms since the epoch).
//!
//! Both topics are created compacted with one partition, as MM2 creates them
//! (`MirrorCheckpointConnector`/`MirrorHeartbeatConnector` use partition 0). Cluster
//! aliases are the topology's cluster names.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::Compression;

use crate::client::{ClientError, ClusterClient};

/// MM2's heartbeats topic.
pub const HEARTBEATS_TOPIC: &str = "heartbeats";
/// How often MM2 emits heartbeats (`emit.heartbeats.interval.seconds`, default 1).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// The version MM2 writes in front of each value.
const VERSION: i16 = 0;

/// MM2's checkpoints topic for checkpoints from cluster `source`.
pub fn checkpoints_topic(source: &str) -> String {
    format!("{source}.checkpoints.internal")
}

fn put_string(out: &mut BytesMut, s: &str) {
    // Kafka's STRING: an INT16 length; names longer than that cannot be topic or group ids.
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(bytes.len() as i16);
    out.put_slice(bytes);
}

/// One MM2 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub group: String,
    /// The target topic.
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub offset: i64,
    pub metadata: String,
}

impl Checkpoint {
    pub fn key(&self) -> Bytes {
        let mut out = BytesMut::new();
        put_string(&mut out, &self.group);
        put_string(&mut out, &self.topic);
        out.put_i32(self.partition);
        out.freeze()
    }

    pub fn value(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(VERSION);
        out.put_i64(self.upstream_offset);
        out.put_i64(self.offset);
        put_string(&mut out, &self.metadata);
        out.freeze()
    }
}

/// An MM2 heartbeat's key and value.
pub fn heartbeat(source: &str, target: &str, timestamp_ms: i64) -> (Bytes, Bytes) {
    let mut key = BytesMut::new();
    put_string(&mut key, source);
    put_string(&mut key, target);
    let mut value = BytesMut::new();
    value.put_i16(VERSION);
    value.put_i64(timestamp_ms);
    (key.freeze(), value.freeze())
}

/// One uncompressed batch of `records` (key, value), base offset 0.
fn batch(records: &[(Bytes, Bytes)], timestamp_ms: i64) -> Bytes {
    let records: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            kmirror_wire::records::record(i as i64, timestamp_ms, Some(k.clone()), Some(v.clone()))
        })
        .collect();
    kmirror_wire::records::encode(&records, Compression::None).expect("uncompressed records encode")
}

/// Writes one flow's MM2 records to its target.
pub struct Mm2Writer {
    target: Arc<ClusterClient>,
    source_alias: String,
    target_alias: String,
}

impl Mm2Writer {
    pub fn new(target: Arc<ClusterClient>, source_alias: &str, target_alias: &str) -> Self {
        Self {
            target,
            source_alias: source_alias.to_string(),
            target_alias: target_alias.to_string(),
        }
    }

    /// Creates `topic` (one partition, compacted) unless it exists.
    async fn ensure(&self, topic: &str) -> Result<(), ClientError> {
        if self.target.metadata().topics.contains_key(topic) {
            return Ok(());
        }
        let md = self.target.refresh_metadata().await?;
        if md.topics.contains_key(topic) {
            return Ok(());
        }
        self.target
            .create_topic(topic, 1, &[("cleanup.policy".into(), "compact".into())])
            .await
            .map(|_| ())
    }

    /// Writes `checkpoints` to `<source>.checkpoints.internal`.
    pub async fn checkpoints(&self, checkpoints: &[Checkpoint]) -> Result<(), ClientError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let topic = checkpoints_topic(&self.source_alias);
        self.ensure(&topic).await?;
        let records: Vec<_> = checkpoints.iter().map(|c| (c.key(), c.value())).collect();
        let now = crate::telemetry::stats::now_ms();
        self.target
            .produce_batch(&topic, 0, batch(&records, now), "writing MM2 checkpoints")
            .await
    }

    /// Writes one heartbeat to `heartbeats`.
    pub async fn heartbeat(&self) -> Result<(), ClientError> {
        self.ensure(HEARTBEATS_TOPIC).await?;
        let now = crate::telemetry::stats::now_ms();
        let record = heartbeat(&self.source_alias, &self.target_alias, now);
        self.target
            .produce_batch(
                HEARTBEATS_TOPIC,
                0,
                batch(&[record], now),
                "writing an MM2 heartbeat",
            )
            .await
    }

    /// Emits a heartbeat every [`HEARTBEAT_INTERVAL`] until dropped; failures are logged
    /// once until the next success.
    pub async fn run_heartbeats(self: Arc<Self>) {
        let mut failing = false;
        loop {
            match self.heartbeat().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(cluster = %self.target_alias, error = %e, "Cannot write the MirrorMaker 2 heartbeat; retrying every second.");
                }
                Err(_) => {}
            }
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes Kafka's `Checkpoint.recordKey()`/`recordValue()` produce for
    /// `new Checkpoint("g", new TopicPartition("east.t", 3), 7, 9, "m")`.
    #[test]
    fn checkpoint_bytes_follow_mm2s_schema() {
        let c = Checkpoint {
            group: "g".into(),
            topic: "east.t".into(),
            partition: 3,
            upstream_offset: 7,
            offset: 9,
            metadata: "m".into(),
        };
        let mut key = vec![0, 1, b'g', 0, 6];
        key.extend_from_slice(b"east.t");
        key.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(&c.key()[..], &key[..]);
        let mut value = vec![0, 0];
        value.extend_from_slice(&7i64.to_be_bytes());
        value.extend_from_slice(&9i64.to_be_bytes());
        value.extend_from_slice(&[0, 1, b'm']);
        assert_eq!(&c.value()[..], &value[..]);
        let (k, v) = heartbeat("east", "west", 1_700_000_000_000);
        assert_eq!(&k[..], b"\x00\x04east\x00\x04west");
        let mut want = vec![0, 0];
        want.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&v[..], &want[..]);
        assert_eq!(checkpoints_topic("east"), "east.checkpoints.internal");
    }
}
