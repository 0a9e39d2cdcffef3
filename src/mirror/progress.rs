//! Mirror progress: for each source partition, the next source offset to mirror, kept in
//! an internal compacted topic on the *target* cluster (`__kmirror_progress`), so a
//! daemon on any host resumes where the last one stopped and keeps no local state.
//!
//! A position only moves after the target acknowledged every record below it. Records
//! are keyed `flow/topic/partition` with a small JSON value, written by one task per flow
//! at most every `interval` and once more at shutdown. They are encoded and decoded with
//! kafka-protocol's record codec (uncompressed), since this is the daemon's own data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use serde::{Deserialize, Serialize};

use crate::client::fetch::{self, FetchWant};
use crate::client::{produce, ClientError, ClusterClient};

/// The internal topic holding progress.
pub const PROGRESS_TOPIC: &str = "__kmirror_progress";

/// What is stored per source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Every source offset below this has been acknowledged by the target.
    pub next_source_offset: i64,
    /// The target offset after the last mirrored record (for offset translation).
    pub next_target_offset: i64,
}

/// A source partition of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePartition {
    pub topic: String,
    pub partition: i32,
}

fn key(flow: &str, sp: &SourcePartition) -> String {
    format!("{flow}/{}/{}", sp.topic, sp.partition)
}

fn parse_key<'a>(flow: &str, key: &'a str) -> Option<(&'a str, i32)> {
    let rest = key.strip_prefix(flow)?.strip_prefix('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

/// The positions of one flow: the latest acknowledged ones and which changed since the
/// last write.
#[derive(Debug, Default)]
pub struct Progress {
    flow: String,
    positions: Mutex<HashMap<SourcePartition, Position>>,
    dirty: Mutex<HashMap<SourcePartition, Position>>,
}

impl Progress {
    pub fn get(&self, sp: &SourcePartition) -> Option<Position> {
        self.positions
            .lock()
            .expect("progress lock")
            .get(sp)
            .copied()
    }

    /// Records that everything below `position.next_source_offset` is on the target.
    pub fn advance(&self, sp: &SourcePartition, position: Position) {
        self.positions
            .lock()
            .expect("progress lock")
            .insert(sp.clone(), position);
        self.dirty
            .lock()
            .expect("progress lock")
            .insert(sp.clone(), position);
    }

    /// Reads the flow's positions from the target cluster.
    pub async fn load(flow: &str, target: &ClusterClient) -> Result<Arc<Self>, ClientError> {
        ensure_topic(target).await?;
        let progress = Progress {
            flow: flow.to_string(),
            ..Progress::default()
        };
        let m = target
            .retry("locating the progress topic", None, || async {
                target.refresh_metadata().await?;
                target.leader(PROGRESS_TOPIC, 0).await
            })
            .await?;
        let request = |e| ClientError::Request {
            cluster: target.name().to_string(),
            source: e,
        };
        let (_, end) = fetch::list_offset(&m, PROGRESS_TOPIC, 0, -1)
            .await
            .map_err(request)?;
        let (_, mut offset) = fetch::list_offset(&m, PROGRESS_TOPIC, 0, -2)
            .await
            .map_err(request)?;
        let mut positions = HashMap::new();
        while offset < end {
            let want = [FetchWant {
                topic: PROGRESS_TOPIC.to_string(),
                topic_id: target.metadata().topic_id(PROGRESS_TOPIC),
                partition: 0,
                offset,
            }];
            let got = fetch::fetch(&m, &want, 100, 8 << 20, 8 << 20)
                .await
                .map_err(request)?;
            let Some(p) = got.into_iter().next() else {
                break;
            };
            if let Some(e) =
                ClientError::from_code(target.name(), "reading progress", p.error_code, None)
            {
                return Err(e);
            }
            let sliced =
                fetch::slice(&p.records, offset, &[]).map_err(|e| ClientError::Broker {
                    cluster: target.name().to_string(),
                    what: format!("reading progress: {e}"),
                    error: kmirror_wire::errors::ResponseError::CorruptMessage,
                    message: None,
                })?;
            let Some(next) = sliced.next_offset else {
                break;
            };
            for batch in sliced.batches {
                let mut b = batch.clone();
                let Ok(set) = RecordBatchDecoder::decode(&mut b) else {
                    continue;
                };
                for r in set.records {
                    let (Some(k), Some(v)) = (r.key, r.value) else {
                        continue;
                    };
                    let Ok(k) = std::str::from_utf8(&k) else {
                        continue;
                    };
                    let Some((topic, partition)) = parse_key(flow, k) else {
                        continue;
                    };
                    if let Ok(pos) = serde_json::from_slice::<Position>(&v) {
                        positions.insert(
                            SourcePartition {
                                topic: topic.to_string(),
                                partition,
                            },
                            pos,
                        );
                    }
                }
            }
            offset = next;
        }
        tracing::info!(
            flow,
            partitions = positions.len(),
            "Loaded mirror progress."
        );
        *progress.positions.lock().expect("progress lock") = positions;
        Ok(Arc::new(progress))
    }

    /// Writes the positions changed since the last write. On failure they stay dirty.
    pub async fn write(&self, target: &ClusterClient) -> Result<usize, ClientError> {
        let changed: Vec<(SourcePartition, Position)> =
            self.dirty.lock().expect("progress lock").drain().collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let records: Vec<Record> = changed
            .iter()
            .enumerate()
            .map(|(i, (sp, pos))| {
                let value = serde_json::to_vec(pos).expect("position serialises");
                kmirror_wire::records::record(
                    i as i64,
                    now,
                    Some(Bytes::from(key(&self.flow, sp))),
                    Some(Bytes::from(value)),
                )
            })
            .collect();
        let buf = kmirror_wire::records::encode(&records, Compression::None)
            .expect("progress records encode");
        let result = async {
            let m = target.leader(PROGRESS_TOPIC, 0).await?;
            let to = produce::ProduceTarget {
                topic: PROGRESS_TOPIC.to_string(),
                topic_id: target.metadata().topic_id(PROGRESS_TOPIC),
                partition: 0,
            };
            let answer =
                produce::produce(&m, &to, buf, 30_000)
                    .await
                    .map_err(|e| ClientError::Request {
                        cluster: target.name().to_string(),
                        source: e,
                    })?;
            produce::settle(target.name(), "writing progress", &to, answer.as_ref()).map(|_| ())
        }
        .await;
        if let Err(e) = result {
            // Put them back unless a newer position arrived meanwhile.
            let mut dirty = self.dirty.lock().expect("progress lock");
            for (sp, pos) in changed {
                dirty.entry(sp).or_insert(pos);
            }
            return Err(e);
        }
        Ok(changed.len())
    }

    /// Writes every `interval` until `stop`, then once more.
    pub async fn run_writer(
        self: Arc<Self>,
        target: Arc<ClusterClient>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(interval) => false,
            };
            if let Err(e) = self.write(&target).await {
                tracing::warn!(flow = %self.flow, error = %e, "Cannot write mirror progress; will retry.");
                if target.refresh_metadata().await.is_err() {
                    tracing::debug!(flow = %self.flow, "Target metadata refresh failed.");
                }
            }
            if stopping {
                return;
            }
        }
    }
}

async fn ensure_topic(target: &ClusterClient) -> Result<(), ClientError> {
    target
        .retry("creating the progress topic", None, || async {
            let md = target.refresh_metadata().await?;
            if md.topics.contains_key(PROGRESS_TOPIC) {
                return Ok(());
            }
            target
                .create_topic(
                    PROGRESS_TOPIC,
                    1,
                    &[("cleanup.policy".into(), "compact".into())],
                )
                .await
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_slashes_and_dots_in_names() {
        let sp = SourcePartition {
            topic: "orders.v1".into(),
            partition: 12,
        };
        let k = key("east-to-west", &sp);
        assert_eq!(parse_key("east-to-west", &k), Some(("orders.v1", 12)));
        assert_eq!(parse_key("east", &k), None);
    }
}
