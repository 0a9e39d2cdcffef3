//! How much a partition asks for in a Fetch: whole batches when they are large, the
//! rest of its share when they are small, and its limit per Fetch.

use super::*;

/// Batches of at least this size are asked for one per Fetch from a near leader
/// ([`ask_bytes`]).
const ONE_BATCH_FROM_BYTES: usize = PARTITION_FETCH_BYTES as usize / 4;

/// What a partition asks for: `room`, what is left of its share, unless its batches are
/// large (`batch_bytes`, its next batch's size, exact when a cut response told it). Kafka
/// cuts a response at the limit, inside a batch, and the cut batch is read again by the
/// next Fetch (and held meanwhile, in the response's memory); with large batches that is up
/// to a batch per Fetch. So a partition with large batches asks for a whole number of them,
/// at least one: its next batch, exactly when its size is known, and as many more as fit
/// of that size (a little more, for batches a little larger) in its `limit`
/// ([`partition_limit`]). From a `near` leader, a batch of a quarter of Kafka's default
/// partition limit or more is asked for alone, by its exact size and the 12 bytes that tell
/// the next one's: nothing is held that is not mirrored, and each batch's memory is
/// released when that batch is acknowledged, not with the others of its response.
pub(super) fn ask_bytes(
    room: usize,
    batch_bytes: usize,
    exact: bool,
    near: bool,
    limit: usize,
) -> usize {
    if batch_bytes < MIN_FETCH_BYTES {
        return room.min(limit);
    }
    if exact && near && batch_bytes >= ONE_BATCH_FROM_BYTES {
        return batch_bytes + LOG_OVERHEAD;
    }
    let per = batch_bytes + batch_bytes / 64;
    let first = if exact { batch_bytes } else { per };
    let more = room.min(limit).saturating_sub(first) / per;
    first + more * per
}

/// The most one partition asks for in a Fetch (its `partition_max_bytes`): Kafka's
/// consumer default, 1 MiB ([`PARTITION_FETCH_BYTES`]), but from a distant leader, for a
/// partition fetched alone, up to a response's part of the pool (`per_response`). A
/// partition is in one Fetch at a time, so its limit per round trip is its rate: 1 MiB
/// per 50 ms is 21 MB/s (MirrorMaker 2's users raise `max.partition.fetch.bytes` for
/// the same reason). Near, a larger limit buys nothing and holds memory in larger lumps.
pub(super) fn partition_limit(kind: Kind, near: bool, per_response: usize) -> usize {
    let default = PARTITION_FETCH_BYTES as usize;
    match kind {
        Kind::Alone if !near => per_response.max(default),
        _ => default,
    }
}
