//! Everything the progress code says to the target cluster: creating and checking
//! `__kmirror_progress`, ListOffsets and Fetch to read it, and the one Produce call that
//! writes it ([`send_batch`]).

use std::time::Duration;

use bytes::Bytes;

use super::load::{ProgressLog, Read};
use super::{ProgressError, PROGRESS_TOPIC};
use crate::client::fetch::{self, FetchWant};
use crate::client::{list_offsets, ClientError, ClusterClient};

/// Kafka's default `max.message.bytes`, used when the broker does not report the topic's.
pub(super) const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;
/// Most bytes one Fetch of the progress topic returns.
const READ_BYTES: i32 = 8 << 20;

fn request(
    target: &ClusterClient,
) -> impl Fn(kmirror_wire::messenger::RequestError) -> ClientError + '_ {
    |source| ClientError::Request {
        cluster: target.name().to_string(),
        source,
    }
}

/// Creates the progress topic (one partition, compacted) unless it exists, checks that it
/// is compacted, and returns the largest batch it accepts (`max.message.bytes`). Retriable
/// errors are retried until `deadline` (the daemon: for ever; a command gives up).
pub(super) async fn ensure_topic(
    target: &ClusterClient,
    deadline: Option<Duration>,
) -> Result<usize, ProgressError> {
    target
        .retry("creating the progress topic", deadline, || async {
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
                .map(|_| ())
        })
        .await?;
    let described = target
        .retry("describing the progress topic", deadline, || {
            target.effective_topic_configs(PROGRESS_TOPIC, &["cleanup.policy", "max.message.bytes"])
        })
        .await;
    let configs = match described {
        Ok(c) => c,
        Err(e) => {
            // Not allowed to describe configs: write with Kafka's default limit.
            tracing::warn!(cluster = %target.name(), topic = PROGRESS_TOPIC, error = %e, "Cannot check the progress topic's configs; assuming cleanup.policy=compact and the default max.message.bytes.");
            Vec::new()
        }
    };
    let value = |name: &str| {
        configs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(policy) = value("cleanup.policy") {
        if !policy.split(',').any(|p| p.trim() == "compact") {
            return Err(ProgressError::NotCompacted {
                cluster: target.name().to_string(),
                policy: policy.to_string(),
            });
        }
    }
    Ok(value("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES))
}

/// Produces one progress batch (acks=all) to the progress partition's leader.
pub(super) async fn send_batch(target: &ClusterClient, batch: Bytes) -> Result<(), ClientError> {
    target
        .produce_batch(PROGRESS_TOPIC, 0, batch, "writing progress")
        .await
}

/// The progress topic's partition on the target cluster, reached through its leader.
pub(super) struct TargetLog<'a> {
    pub target: &'a ClusterClient,
}

impl TargetLog<'_> {
    async fn list_offset(&self, timestamp: i64) -> Result<i64, ClientError> {
        let offset = self
            .target
            .list_offset(PROGRESS_TOPIC, 0, timestamp)
            .await?;
        if offset < 0 {
            return Err(ClientError::Incomplete {
                cluster: self.target.name().to_string(),
                what: format!("ListOffsets on the progress topic answered offset {offset}"),
            });
        }
        Ok(offset)
    }
}

impl ProgressLog for TargetLog<'_> {
    async fn bounds(&self) -> Result<(i64, i64), ClientError> {
        let start = self.list_offset(list_offsets::EARLIEST).await?;
        let end = self.list_offset(list_offsets::LATEST).await?;
        Ok((start, end))
    }

    async fn read(&self, offset: i64) -> Result<Option<Read>, ClientError> {
        let m = self.target.leader(PROGRESS_TOPIC, 0).await?;
        let want = [FetchWant {
            topic: PROGRESS_TOPIC.to_string(),
            topic_id: self.target.metadata().topic_id(PROGRESS_TOPIC),
            partition: 0,
            offset,
            max_bytes: None,
            leader_epoch: self.target.metadata().leader_epoch(PROGRESS_TOPIC, 0),
            last_fetched_epoch: -1,
        }];
        let got = fetch::fetch(&m, &want, 100, READ_BYTES, READ_BYTES)
            .await
            .map_err(request(self.target))?;
        // One partition was asked for; match by index only (names are not echoed in
        // topic-ID versions of Fetch).
        Ok(got.into_iter().find(|g| g.partition == 0).map(|g| Read {
            error_code: g.error_code,
            high_watermark: g.high_watermark,
            records: g.records,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fixtures, Progress};
    use super::*;
    use kmirror_broker::KafkaRelease;

    async fn cluster() -> (kmirror_broker::RunningBroker, ClusterClient) {
        crate::client::local_cluster("target").await
    }

    /// Positions of many partitions, written in several records and requests (a small
    /// `max.message.bytes`), read back whole by a new load: at Kafka 4.1 versions (Fetch and
    /// Produce by topic id) and emulating Kafka 2.8 (by name).
    #[tokio::test]
    async fn positions_are_written_and_loaded_back_at_4_1_and_2_8() {
        for release in [KafkaRelease::V4_1, KafkaRelease::V2_8] {
            let (broker, client) = crate::client::local_cluster_at("target", release).await;
            client.refresh_metadata().await.unwrap();
            client
                .create_topic(
                    PROGRESS_TOPIC,
                    1,
                    &[
                        ("cleanup.policy".into(), "compact".into()),
                        ("max.message.bytes".into(), "4096".into()),
                    ],
                )
                .await
                .unwrap();
            let written = Progress::load("f", &client).await.unwrap();
            for p in 0..500 {
                written.advance(&fixtures::sp(p), fixtures::pos(1_000 + i64::from(p)));
            }
            written.mark_initialised();
            written.write(&client).await.unwrap();
            let read = Progress::load("f", &client).await.unwrap();
            assert!(read.is_initialised(), "{release:?}");
            for p in 0..500 {
                assert_eq!(
                    read.get(&fixtures::sp(p)),
                    Some(fixtures::pos(1_000 + i64::from(p))),
                    "{release:?} partition {p}"
                );
            }
            let _ = broker.shutdown().await;
        }
    }

    /// The progress topic is created compacted, and its limit is read from the broker: at
    /// Kafka 4.1 versions and emulating 2.8.
    #[tokio::test]
    async fn the_progress_topic_is_created_compacted() {
        for release in [KafkaRelease::V4_1, KafkaRelease::V2_8] {
            let (broker, client) = crate::client::local_cluster_at("target", release).await;
            let limit = ensure_topic(&client, None).await.unwrap();
            let configs = client
                .effective_topic_configs(PROGRESS_TOPIC, &["cleanup.policy", "max.message.bytes"])
                .await
                .unwrap();
            assert!(
                configs.contains(&("cleanup.policy".into(), "compact".into())),
                "{release:?}: {configs:?}"
            );
            let reported: usize = configs
                .iter()
                .find(|(k, _)| k == "max.message.bytes")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap();
            assert_eq!(limit, reported, "{release:?}");
            let _ = broker.shutdown().await;
        }
    }

    /// Finding 23g: a pre-created progress topic that deletes old segments would lose the
    /// progress of idle partitions; the flow refuses it instead.
    #[tokio::test]
    async fn a_progress_topic_that_is_not_compacted_is_refused() {
        let (broker, client) = cluster().await;
        client.refresh_metadata().await.unwrap();
        client
            .create_topic(
                PROGRESS_TOPIC,
                1,
                &[("cleanup.policy".into(), "delete".into())],
            )
            .await
            .unwrap();
        let e = ensure_topic(&client, None).await.unwrap_err();
        assert!(
            matches!(&e, ProgressError::NotCompacted { policy, .. } if policy == "delete"),
            "{e}"
        );
        let _ = broker.shutdown().await;
    }
}
