//! Hands one partition's share of a Fetch response to its pipeline: errors (offset out of
//! range, a diverged source log, a corrupt batch fetched again in vain: [`super::refetch`])
//! stop the partition with an ERROR; data is sliced from the fetch offset, charged to the
//! flow's memory and queued as a [`Chunk`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use kmirror_wire::errors::ResponseError;

use super::fetching::ALONE_FROM_BYTES;
use super::{FlowRunner, PARTITION_FETCH_BYTES};
use crate::client::{fetch, list_offsets, ClusterClient};
use crate::mirror::memory::Reservation;
use crate::mirror::pipeline::Chunk;
use crate::mirror::progress::SourcePartition;
use crate::telemetry::stats::{PartitionState, PartitionStats};

/// Why `offset` of `sp` is out of range on the source, from its leader's log start and end
/// (ListOffsets): logged at ERROR and kept as the partition's error; the end also makes
/// the failed partition's lag known.
async fn report_out_of_range(
    flow: String,
    source: Arc<ClusterClient>,
    sp: SourcePartition,
    offset: i64,
    stats: Arc<PartitionStats>,
) {
    let ends = async {
        let start = source.list_offset(&sp.topic, sp.partition, list_offsets::EARLIEST);
        let end = source.list_offset(&sp.topic, sp.partition, list_offsets::LATEST);
        Some([start.await.ok()?, end.await.ok()?])
    };
    // The partition's error is set before the ERROR is logged: whoever reads the log
    // finds it in /status.
    let failed = |why: String| stats.set_state(PartitionState::Failed, Some(why));
    match ends.await {
        Some([start, end]) if offset < start => {
            stats.listed(end);
            failed(format!("offset {offset} out of range: the source log starts at {start}, so offsets {offset} to {} were deleted before they were mirrored", start - 1));
            tracing::error!(%flow, topic = %sp.topic, partition = sp.partition, offset, log_start_offset = start, log_end_offset = end, deleted_records = start - offset, "Source offset out of range: records were deleted before they were mirrored. The partition is stopped; nothing is skipped silently.");
        }
        Some([start, end]) => {
            stats.listed(end);
            failed(format!("offset {offset} out of range: the source log ends at {end}, before the mirrored position"));
            tracing::error!(%flow, topic = %sp.topic, partition = sp.partition, offset, log_start_offset = start, log_end_offset = end, "Source offset out of range: the source log ends before the mirrored position (it lost records the mirror holds: an unclean leader election, or a log truncated by hand). The partition is stopped; nothing is skipped silently.");
        }
        None => {
            tracing::error!(%flow, topic = %sp.topic, partition = sp.partition, offset, "Source offset out of range (the source's log start and end could not be read). The partition is stopped; nothing is skipped silently.");
        }
    }
}

/// A partition the source answered with an error is asked again after this (Kafka
/// answers at once for partitions in error: do not spin on them).
const PARTITION_RETRY: Duration = Duration::from_millis(100);

impl FlowRunner {
    /// Hands one partition's fetched data to its pipeline; returns whether metadata is stale.
    /// `alone`: the response carried only this partition, so its payload can be handed over
    /// as it is ([`fetch::Sliced::into_owned`]); the partition is then charged for all of
    /// it, since all of it stays allocated until its batches are acknowledged.
    pub(super) fn deliver(
        &mut self,
        g: fetch::FetchGot,
        alone: bool,
        reservation: &mut Reservation,
    ) -> bool {
        self.stats.read_from_source(g.records.len() as u64);
        let sp = SourcePartition {
            topic: g.topic,
            partition: g.partition,
        };
        let Some(r) = self.partitions.get_mut(&sp) else {
            return false;
        };
        // A Fetch under way when the partition stopped (a re-created topic, a diverged
        // log) is answered after it, as late as the broker's max_wait: its answer is no
        // longer this partition's, and must not replace the reason it stopped.
        if r.stopped() {
            return false;
        }
        if g.error_code != 0 {
            let error = ResponseError::try_from_code(g.error_code)
                .unwrap_or(ResponseError::UnknownServerError);
            if error == ResponseError::OffsetOutOfRange {
                // The Fetch answer carries -1 for both ends with an error: the source's
                // leader is asked for them, and the ERROR names them.
                let offset = r.next_fetch_offset;
                r.stop();
                self.stats.failed("offset_out_of_range", &error);
                r.stats.set_state(
                    PartitionState::Failed,
                    Some(format!("offset {offset} out of range on the source")),
                );
                tokio::spawn(report_out_of_range(
                    self.flow.name.clone(),
                    self.source.clone(),
                    sp,
                    offset,
                    r.stats.clone(),
                ));
                return false;
            }
            tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, %error, "Fetch error for partition.");
            r.stats.error(format!("fetch: {error}"));
            r.not_before = Some(Instant::now() + PARTITION_RETRY);
            return true;
        }
        if let Some((epoch, end_offset)) = g.diverging_epoch {
            tracing::error!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset = r.next_fetch_offset, last_fetched_epoch = r.last_fetched_epoch, diverging_epoch = epoch, end_offset, "Source log diverged (an unclean leader election): the source leader's log ends the epoch of the last records read at end_offset, before the offset the mirror reached. The target holds records from end_offset on that the source no longer has, and the source's records there are not mirrored. The partition is stopped for an operator; nothing is skipped silently.");
            r.stop();
            self.stats.failed(
                "log_diverged",
                &format!("epoch {epoch} ends at {end_offset}"),
            );
            r.stats.set_state(
                PartitionState::Failed,
                Some(format!(
                    "source log diverged: its epoch {epoch} ends at offset {end_offset}, but offsets {end_offset} to {} were mirrored from it (unclean leader election)",
                    r.next_fetch_offset - 1
                )),
            );
            return false;
        }
        if g.log_start_offset > r.log_start {
            r.log_start = g.log_start_offset;
            r.progress.source_log_start(&sp, g.log_start_offset);
        }
        let sliced = match fetch::slice(&g.records, r.next_fetch_offset, &g.aborted) {
            Ok(s) => s,
            Err(e) => {
                let offset = r.next_fetch_offset;
                if let Some(wait) = self.refetch_or_stop(&sp, offset, &e) {
                    if let Some(r) = self.partitions.get_mut(&sp) {
                        r.not_before = Some(Instant::now() + wait);
                    }
                }
                return false;
            }
        };
        r.stats.fetched(g.high_watermark, g.last_stable_offset);
        if let Some(n) = sliced.next_batch_bytes {
            r.batch_bytes = n;
            r.batch_bytes_exact = true;
        } else if let Some(last) = sliced.batches.last() {
            r.batch_bytes = last.len();
            r.batch_bytes_exact = false;
        }
        // Nothing (but a cut batch) means caught up: its next Fetch is a long poll.
        r.caught_up = sliced.next_offset.is_none() && sliced.cut_batch.is_none();
        // Fetched alone also when its next batch is large (a response cut at its head).
        r.alone = sliced.bytes().max(r.batch_bytes) >= ALONE_FROM_BYTES;
        let Some(next) = sliced.next_offset else {
            // Nothing to wait for memory for.
            r.needs = None;
            if let Some((offset, size_bytes)) = sliced.cut_batch {
                if self.reported_cut.insert(sp.clone(), offset) != Some(offset) {
                    tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset, size_bytes, partition_fetch_bytes = PARTITION_FETCH_BYTES, "Source batch is larger than one partition's share of a fetch; it is fetched whole when the partition comes first in a fetch.");
                }
            }
            return false;
        };
        // A batch larger than the whole budget is still mirrored (it takes all of the
        // fetch pool, and memory goes over max_in_flight_bytes by the rest): said once.
        let pool = self.memory.fetch_pool_bytes();
        if let Some(large) = sliced.batches.iter().find(|b| b.len() > pool) {
            let size_bytes = large.len();
            // Its base offset, the first field of a batch.
            let offset = large
                .first_chunk::<8>()
                .map_or(r.next_fetch_offset, |o| i64::from_be_bytes(*o));
            if self.reported_large.insert(sp.clone(), offset) != Some(offset) {
                tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, offset, size_bytes, max_in_flight_bytes = pool, "Source batch is larger than the flow's max_in_flight_bytes: it is mirrored with the whole budget, other partitions wait meanwhile, and memory exceeds the budget by the difference. Raise max_in_flight_bytes above the source's largest batches (max.message.bytes).");
            }
        }
        let handed_over = alone && sliced.is_span_of(&g.records);
        let bytes = if handed_over {
            g.records.len()
        } else {
            sliced.bytes()
        };
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
                    // Read again from the first batch on, whose size is known.
                    if let Some(first) = sliced.batches.first() {
                        r.batch_bytes = first.len();
                        r.batch_bytes_exact = true;
                    }
                    let needs = bytes.min(self.memory.fetch_pool_bytes());
                    tracing::debug!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, bytes, needs_bytes = needs, "No memory for a batch larger than the fetch; it is fetched again once that much is free.");
                    let since = r.needs.map_or_else(Instant::now, |(_, since)| since);
                    r.needs = Some((needs, since));
                    return false;
                }
            }
        }
        r.needs = None;
        let permit = if bytes > 0 {
            reservation.take(bytes, &r.held, &self.memory)
        } else {
            None
        };
        let records = sliced.records;
        let last_epoch = sliced.last_epoch;
        let data = if handed_over {
            sliced.into_owned(g.records).0
        } else {
            sliced.contiguous()
        };
        let chunk = Chunk {
            records,
            data,
            next_source_offset: next,
            last_epoch,
            permit,
        };
        let Some(tx) = &r.tx else {
            return false;
        };
        // There is room: the partition was fetched only with room in its queue, and only
        // this loop fills it. Were there none, the chunk would be dropped and fetched again.
        if tx.try_send(chunk).is_ok() {
            r.next_fetch_offset = next;
            r.last_fetched_epoch = last_epoch.unwrap_or(r.last_fetched_epoch);
        }
        false
    }
}
