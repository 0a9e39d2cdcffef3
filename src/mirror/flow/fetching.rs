//! The fetch loop: one Fetch per source leader for the partitions with room (in rotating
//! order, memory reserved first), and each partition's answer sliced and handed to its
//! pipeline.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use kmirror_wire::errors::ResponseError;

use super::{
    FlowRunner, Running, FETCH_WAIT_MS, MIN_FETCH_BYTES, MIN_PARTITION_FETCH_BYTES,
    PARTITION_FETCH_BYTES,
};
use crate::client::fetch::{self, FetchWant};
use crate::client::ClientError;
use crate::mirror::memory::Reservation;
use crate::mirror::pipeline::Chunk;
use crate::mirror::progress::SourcePartition;

/// A Fetch response asks for at most this fraction of the fetch pool: while it is split, it
/// and the copies of its partitions' batches are both allocated, and that moment's extra
/// memory must stay well inside the headroom the pool leaves ([`crate::mirror::memory`]).
const RESPONSES_PER_POOL: usize = 4;

impl FlowRunner {
    /// One Fetch per source leader for every partition with room in its queue.
    pub(super) async fn fetch_round(&mut self) {
        let md = self.source.metadata();
        let mut by_leader: HashMap<i32, Vec<FetchWant>> = HashMap::new();
        let mut refresh = false;
        let ready: Vec<(&SourcePartition, &Running)> = self
            .partitions
            .iter()
            .filter(|(_, r)| r.wants_data())
            .collect();
        // A partition fetches only while it holds less than its share of the memory, and
        // asks for no more than the rest of its share; one that holds it waits for its
        // acks, and the others go on.
        let share = (self.memory.fetch_pool_bytes() / ready.len().max(1))
            .max(PARTITION_FETCH_BYTES as usize);
        let ready: Vec<_> = ready
            .into_iter()
            .filter(|(_, r)| r.held.bytes() + MIN_PARTITION_FETCH_BYTES <= share)
            .collect();
        self.round = self.round.wrapping_add(1);
        let skip = if ready.is_empty() {
            0
        } else {
            self.round % ready.len()
        };
        for (sp, r) in ready.iter().skip(skip).chain(ready.iter().take(skip)) {
            match md.leader(&sp.topic, sp.partition) {
                Some(leader) => by_leader.entry(leader).or_default().push(FetchWant {
                    topic: sp.topic.clone(),
                    topic_id: self
                        .topic_ids
                        .get(&sp.topic)
                        .copied()
                        .filter(|id| !id.is_nil()),
                    partition: sp.partition,
                    offset: r.next_fetch_offset,
                    max_bytes: i32::try_from(share - r.held.bytes()).ok(),
                }),
                None => refresh = true,
            }
        }
        if by_leader.is_empty() {
            if refresh {
                let _ = self.source.refresh_metadata().await;
            }
            // Every partition is full or holds its share: wait for an acknowledgement to
            // release memory (a queue slot frees with it), at most a moment.
            let _ = tokio::time::timeout(Duration::from_millis(100), self.memory.released()).await;
            return;
        }
        // Each response's max_bytes is reserved before it is asked for, so responses
        // count against max_in_flight_bytes; a leader gets no fetch when memory is short.
        // What a response brings beyond the partitions' needs is released when it is sliced.
        let per_response = (self.memory.fetch_pool_bytes() / RESPONSES_PER_POOL)
            .max(PARTITION_FETCH_BYTES as usize);
        let mut requests = Vec::new();
        for (leader, wants) in by_leader {
            // No more than the partitions asked for can come back (but for one batch
            // larger than its partition's limit, counted when it arrives).
            let asked: usize = wants
                .iter()
                .map(|w| {
                    w.max_bytes
                        .map_or(PARTITION_FETCH_BYTES, |m| m.min(PARTITION_FETCH_BYTES))
                        as usize
                })
                .sum();
            let bytes = per_response.min(asked).min(self.memory.fetch_available());
            if bytes < MIN_FETCH_BYTES {
                continue;
            }
            if let Some(r) = self.memory.try_reserve_fetch(bytes) {
                requests.push((leader, wants, r));
            }
        }
        if requests.is_empty() {
            // Everything is held by batches on their way to the target: wait for acks.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                self.memory.wait_fetch(PARTITION_FETCH_BYTES as usize),
            )
            .await;
            return;
        }
        tracing::trace!(flow = %self.flow.name, requests = requests.len(), "Fetching.");
        let source = self.source.clone();
        let results = join_all(requests.into_iter().map(|(leader, wants, reservation)| {
            let source = source.clone();
            async move {
                let max_bytes = i32::try_from(reservation.bytes()).unwrap_or(i32::MAX);
                let partition_max = PARTITION_FETCH_BYTES.min(max_bytes);
                let got = async {
                    let m = source.broker(leader).await?;
                    fetch::fetch(&m, &wants, FETCH_WAIT_MS, max_bytes, partition_max)
                        .await
                        .map_err(|e| ClientError::Request {
                            cluster: source.name().to_string(),
                            source: e,
                        })
                }
                .await;
                got.map(|g| (g, reservation))
            }
        }))
        .await;
        let mut throttle_ms = 0;
        for result in results {
            let (got, mut reservation) = match result {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(flow = %self.flow.name, error = %e, "Fetch failed; retrying.");
                    refresh = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            tracing::trace!(flow = %self.flow.name, partitions = got.len(), reserved_bytes = reservation.bytes(), "Fetch response.");
            throttle_ms = throttle_ms.max(got.first().map_or(0, |g| g.throttle_time_ms));
            for g in got {
                refresh |= self.deliver(g, &mut reservation).await;
            }
        }
        if refresh {
            let _ = self.source.refresh_metadata().await;
            // Kafka answers at once for partitions in error; do not spin on them.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if throttle_ms > 0 {
            // KIP-219: the source broker asked for a pause before the next fetch.
            tracing::debug!(flow = %self.flow.name, throttle_ms, "Source throttled the fetch.");
            tokio::time::sleep(crate::client::throttle_wait(throttle_ms)).await;
        }
    }

    /// Hands one partition's fetched data to its pipeline; returns whether metadata is stale.
    async fn deliver(&mut self, g: fetch::FetchGot, reservation: &mut Reservation) -> bool {
        let sp = SourcePartition {
            topic: g.topic,
            partition: g.partition,
        };
        let Some(r) = self.partitions.get_mut(&sp) else {
            return false;
        };
        if g.error_code != 0 {
            let error = ResponseError::try_from_code(g.error_code)
                .unwrap_or(ResponseError::UnknownServerError);
            if error == ResponseError::OffsetOutOfRange {
                tracing::error!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = r.next_fetch_offset, log_start_offset = g.log_start_offset, high_watermark = g.high_watermark, "Source offset out of range: records were deleted before they were mirrored. The partition is paused; nothing is skipped silently.");
                r.stop();
                return false;
            }
            tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, %error, "Fetch error for partition.");
            return true;
        }
        let sliced = match fetch::slice(&g.records, r.next_fetch_offset, &g.aborted) {
            Ok(s) => s,
            Err(e) => {
                super::partitions::report_bad_source_batch(
                    &self.flow.name,
                    &sp.topic,
                    sp.partition,
                    r.next_fetch_offset,
                    &e,
                );
                r.stop();
                return false;
            }
        };
        let Some(next) = sliced.next_offset else {
            if let Some((offset, size_bytes)) = sliced.cut_batch {
                if self.reported_cut.insert(sp.clone(), offset) != Some(offset) {
                    tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset, size_bytes, partition_fetch_bytes = PARTITION_FETCH_BYTES, "Source batch is larger than one partition's share of a fetch; it is fetched whole when the partition comes first in a fetch.");
                }
            }
            return false;
        };
        let bytes = sliced.bytes();
        if bytes > reservation.bytes() {
            // Kafka returns the first batch whole even beyond max_bytes (KIP-74). Count it
            // if the memory is free; otherwise leave it and fetch it again later, never
            // waiting here (that would stall every partition behind this one).
            // A batch larger than the whole pool takes all of it.
            let more = (bytes - reservation.bytes()).min(
                self.memory
                    .fetch_pool_bytes()
                    .saturating_sub(reservation.bytes()),
            );
            match self.memory.try_reserve_fetch(more) {
                Some(r) => reservation.merge(r),
                None => {
                    tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, bytes, "No memory for a batch larger than the fetch; fetching it again later.");
                    return false;
                }
            }
        }
        let permit = if bytes > 0 {
            reservation.take(bytes, &r.held, &self.memory)
        } else {
            None
        };
        let chunk = Chunk {
            records: sliced.records,
            data: sliced.contiguous(),
            next_source_offset: next,
            permit,
        };
        let Some(tx) = &r.tx else {
            return false;
        };
        if tx.send(chunk).await.is_ok() {
            r.next_fetch_offset = next;
        }
        false
    }
}
