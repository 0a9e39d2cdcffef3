//! A partition's lifecycle: where it starts (its progress, or `start_from` for a partition
//! seen for the first time) and the pipeline task that produces it to the target.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{FlowRunner, Running, QUEUE_CHUNKS};
use crate::client::fetch;
use crate::client::produce::ProducerSession;
use crate::client::ClientError;
use crate::config::StartFrom;
use crate::mirror::memory::Held;
use crate::mirror::pipeline::{Ended, Pipeline};
use crate::mirror::progress::{Position, Progress, SourcePartition};

impl FlowRunner {
    pub(super) async fn start_partition(
        &mut self,
        sp: SourcePartition,
        target_topic: &str,
        progress: &Arc<Progress>,
        session: ProducerSession,
    ) {
        let (start, target_offset) = match progress.get(&sp) {
            Some(p) => (p.next_source_offset, p.next_target_offset),
            None => {
                // `start_from` applies at the flow's first start only (stored, see
                // `discover`); partitions found later, even while the daemon was
                // stopped, are new: mirrored from their start, so nothing is lost.
                let timestamp = match (progress.is_initialised(), self.flow.start_from) {
                    (false, StartFrom::Latest) => -1,
                    _ => -2,
                };
                let source = self.source.clone();
                let got = source
                    .retry("ListOffsets", Some(Duration::from_secs(30)), || async {
                        let m = source.leader(&sp.topic, sp.partition).await?;
                        let (code, offset) =
                            fetch::list_offset(&m, &sp.topic, sp.partition, timestamp)
                                .await
                                .map_err(|e| ClientError::Request {
                                    cluster: source.name().to_string(),
                                    source: e,
                                })?;
                        match ClientError::from_code(source.name(), "ListOffsets", code, None) {
                            Some(e) => Err(e),
                            None => Ok(offset),
                        }
                    })
                    .await;
                match got {
                    Ok(offset) => {
                        // Record the chosen start at once: a partition that receives
                        // nothing before a restart would otherwise have no progress, and
                        // the restart would choose again (start_from: latest skipping
                        // what was written while the daemon was stopped).
                        progress.advance(
                            &sp,
                            Position {
                                next_source_offset: offset,
                                next_target_offset: -1,
                            },
                        );
                        (offset, -1)
                    }
                    Err(e) => {
                        tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, error = %e, "Cannot find the start offset; will retry.");
                        return;
                    }
                }
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let pipeline = Pipeline {
            flow: self.flow.name.clone(),
            source: sp.clone(),
            target_topic: target_topic.to_string(),
            target: self.target.clone(),
            throttle: self.throttle.clone(),
            progress: progress.clone(),
            session,
            next_sequence: 0,
            next_target_offset: target_offset,
            batch_bytes: usize::try_from(self.flow.limits.batch_bytes).unwrap_or(usize::MAX),
            start_offset: start,
            round_trip_us: Default::default(),
        };
        tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = start, "Partition started.");
        let (flow, topic, partition) = (self.flow.name.clone(), sp.topic.clone(), sp.partition);
        let task = tokio::spawn(async move {
            let ended = pipeline.run(rx).await;
            match &ended {
                Ended::Failed(e) => {
                    tracing::error!(%flow, %topic, partition, error = %e, "Partition stopped: it needs operator action. Its progress is kept; nothing after it is mirrored.");
                }
                Ended::Corrupt { offset, error } => {
                    report_bad_source_batch(&flow, &topic, partition, *offset, error);
                }
                Ended::Drained => {}
            }
            ended
        });
        self.partitions.insert(
            sp,
            Running {
                next_fetch_offset: start,
                held: Held::default(),
                tx: Some(tx),
                task,
            },
        );
    }
}

/// The ERROR for a source batch that cannot be mirrored (corrupt, or an old format), once.
pub(super) fn report_bad_source_batch(
    flow: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    error: &dyn std::fmt::Display,
) {
    tracing::error!(%flow, %topic, partition, offset, %error, "Partition stopped: the source returned a batch that cannot be mirrored (corrupt, or an old message format). Progress is kept; nothing after it is mirrored.");
}
