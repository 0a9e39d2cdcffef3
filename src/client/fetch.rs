//! Fetching raw record batches from source partition leaders and slicing the payload:
//! whole batches only (a truncated tail is dropped, and reported when it is all there is),
//! batches below the wanted offset skipped, control batches and aborted transactional data
//! removed (`read_committed`). Nothing is decompressed.
//!
//! CRCs: a batch left out here is verified first, so a corrupt header never drops data
//! silently. A batch forwarded as it is is not read here: its CRC is patched when it is
//! stamped, which keeps a wrong CRC wrong, and the target verifies every produced batch
//! as Kafka does (`UnifiedLog.analyzeAndValidateRecords`, CORRUPT_MESSAGE); the pipeline
//! then names the source offset. Batches whose records are rebuilt are verified by
//! [`kmirror_wire::rebuild`]. Each byte is thus checked once, not twice. Topics are
//! named by id (Fetch v13+) when the cluster reported ids for all of them, else by name
//! at v12 at most.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::batch::{BatchError, Batches, LOG_OVERHEAD};
use kmirror_wire::messenger::{Messenger, RequestError};
use uuid::Uuid;

/// What one partition's part of a Fetch response yielded.
#[derive(Debug, Clone, Default)]
pub struct Sliced {
    /// Whole batches to forward, in offset order.
    pub batches: Vec<Bytes>,
    /// Records in `batches`.
    pub records: i64,
    /// The offset to fetch next: after the last whole batch seen (forwarded or dropped).
    pub next_offset: Option<i64>,
    /// The partition leader epoch of that last whole batch: the next Fetch's
    /// `last_fetched_epoch`.
    pub last_epoch: Option<i32>,
    /// When the payload held no whole batch but the start of one: its base offset and
    /// size, i.e. a batch larger than this fetch could return.
    pub cut_batch: Option<(i64, usize)>,
    /// The size of the batch after the last whole one, when the payload ends with its
    /// header (Kafka cuts a response at its byte limits, not at batch boundaries).
    pub next_batch_bytes: Option<usize>,
}

impl Sliced {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }

    /// The batches copied into one buffer of their own, so the Fetch response they were
    /// sliced from is freed now and not held by whichever partition is slowest.
    pub fn contiguous(&self) -> bytes::BytesMut {
        let mut out = bytes::BytesMut::with_capacity(self.bytes());
        for b in &self.batches {
            out.extend_from_slice(b);
        }
        out
    }

    /// Whether the batches lie end to end in `records` (nothing between them was left out),
    /// so that [`Self::into_owned`] can hand over `records` itself.
    pub fn is_span_of(&self, records: &Bytes) -> bool {
        self.span(records).is_some()
    }

    /// Where the batches lie in `records`, when they lie end to end in it.
    fn span(&self, records: &Bytes) -> Option<std::ops::Range<usize>> {
        let base = records.as_ptr() as usize;
        let start = (self.batches.first()?.as_ptr() as usize).checked_sub(base)?;
        let mut end = start;
        for b in &self.batches {
            if b.as_ptr() as usize != base + end {
                return None;
            }
            end += b.len();
        }
        (end <= records.len()).then_some(start..end)
    }

    /// The batches in a buffer of their own, and whether it is `records`' own memory: when
    /// they lie end to end in `records` and nothing else refers to its memory (a Fetch
    /// response that carried only this partition), that memory is handed over without a
    /// copy; the whole of it stays allocated until the buffer is dropped. Else a copy.
    pub fn into_owned(self, records: Bytes) -> (bytes::BytesMut, bool) {
        let Some(span) = self.span(&records) else {
            return (self.contiguous(), false);
        };
        drop(self);
        match records.try_into_mut() {
            Ok(mut own) => {
                own.truncate(span.end);
                let _ = own.split_to(span.start);
                (own, true)
            }
            Err(shared) => (bytes::BytesMut::from(&shared[span]), false),
        }
    }
}

/// An aborted transaction reported by the broker for `read_committed`.
#[derive(Debug, Clone, Copy)]
pub struct Aborted {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// Slices a Fetch `records` payload (see the module docs).
pub fn slice(records: &Bytes, wanted: i64, aborted: &[Aborted]) -> Result<Sliced, BatchError> {
    let mut aborted: Vec<Aborted> = aborted.to_vec();
    aborted.sort_by_key(|a| a.first_offset);
    let mut pending = aborted.into_iter().peekable();
    let mut active: HashSet<i64> = HashSet::new();
    let mut out = Sliced::default();
    let mut position = 0;
    let mut batches = Batches::new(records);
    for b in batches.by_ref() {
        // A bad batch after good ones: forward the good ones; the next fetch starts at the
        // bad one, whose error then names its own offset.
        let b = match b {
            Ok(b) => b,
            Err(_) if out.next_offset.is_some() => return Ok(out),
            Err(e) => return Err(e),
        };
        let start = position;
        position += b.size_bytes();
        if b.next_offset() <= wanted {
            continue;
        }
        while let Some(a) = pending.next_if(|a| a.first_offset <= b.last_offset()) {
            active.insert(a.producer_id);
        }
        let aborted = b.is_transactional() && active.contains(&b.producer_id());
        if b.is_control() || aborted {
            if let Err(e) = b.verify_crc() {
                if out.next_offset.is_some() {
                    return Ok(out);
                }
                return Err(e);
            }
        }
        out.next_offset = Some(b.next_offset());
        out.last_epoch = Some(b.partition_leader_epoch());
        if b.is_control() {
            // The marker ends the producer's transaction; an aborted one stops here.
            active.remove(&b.producer_id());
            continue;
        }
        if aborted {
            continue;
        }
        out.records += i64::from(b.record_count());
        out.batches.push(records.slice(start..position));
    }
    let tail = &records[batches.position()..];
    if batches.truncated_tail() && tail.len() >= LOG_OVERHEAD {
        let base = i64::from_be_bytes(tail[..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(tail[8..12].try_into().expect("4 bytes"));
        let size_bytes = LOG_OVERHEAD + length.max(0) as usize;
        out.next_batch_bytes = Some(size_bytes);
        if out.next_offset.is_none() {
            out.cut_batch = Some((base, size_bytes));
        }
    }
    Ok(out)
}

/// One partition to fetch.
#[derive(Debug, Clone)]
pub struct FetchWant {
    pub topic: String,
    /// The topic's id, when the cluster reported one.
    pub topic_id: Option<Uuid>,
    pub partition: i32,
    pub offset: i64,
    /// This partition's own `partition_max_bytes`, below the request's.
    pub max_bytes: Option<i32>,
    /// The leader epoch the cached metadata gives the partition (-1 when unknown). Fetch
    /// v9+ carries it, as Kafka's consumer does (KIP-320): a broker not at that epoch
    /// answers FENCED_LEADER_EPOCH (ours is older) or UNKNOWN_LEADER_EPOCH (ours is newer)
    /// instead of serving the records, and the caller refreshes its metadata.
    pub leader_epoch: i32,
    /// The leader epoch of the last batch fetched before `offset` (-1 when none was). Fetch
    /// v12+ carries it (KIP-320): a leader whose log diverged from what was read, after an
    /// unclean election, answers with [`FetchGot::diverging_epoch`] instead of records.
    pub last_fetched_epoch: i32,
}

/// One partition's answer.
#[derive(Debug, Clone)]
pub struct FetchGot {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    /// What a read_committed read can reach (the first offset of the oldest open
    /// transaction, else the high watermark); the high watermark where the broker does not
    /// say (Fetch below v4).
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
    pub aborted: Vec<Aborted>,
    /// The leader's end of the `last_fetched_epoch` asked for, as (epoch, end offset), when
    /// that end lies before the fetch offset: the source log diverged from what was read.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// A Fetch response: its partitions, and its `throttle_time_ms`, the time the broker asks
/// to be left alone for (KIP-219). A Fetch over a quota is answered with no partitions at
/// all (Kafka: FetchContext.getThrottledResponse).
#[derive(Debug, Default)]
pub struct Fetched {
    pub partitions: Vec<FetchGot>,
    pub throttle_time_ms: i32,
}

/// The first Fetch version whose client waits out `throttle_time_ms` itself (Kafka:
/// FetchResponse.shouldClientThrottle; older brokers held the response back instead).
const FIRST_FETCH_CLIENT_THROTTLES: i16 = 8;

/// The last Fetch version that names topics (v13 uses topic ids only).
const LAST_FETCH_BY_NAME: i16 = 12;

/// The first Fetch versions with a partition's `current_leader_epoch` and its
/// `last_fetched_epoch` (FetchRequest.json).
const FIRST_FETCH_WITH_LEADER_EPOCH: i16 = 9;
const FIRST_FETCH_WITH_LAST_FETCHED_EPOCH: i16 = 12;

/// [`fetch_answer`]'s partitions.
pub async fn fetch(
    m: &Messenger,
    wants: &[FetchWant],
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Result<Vec<FetchGot>, RequestError> {
    fetch_answer(m, wants, max_wait_ms, max_bytes, partition_max_bytes)
        .await
        .map(|f| f.partitions)
}

/// Sends one read_committed Fetch for `wants` to `m` (their leader).
pub async fn fetch_answer(
    m: &Messenger,
    wants: &[FetchWant],
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Result<Fetched, RequestError> {
    let by_id = wants.iter().all(|w| w.topic_id.is_some());
    let version = m
        .versions()
        .pick_by_id_or_name::<FetchRequest>(by_id, LAST_FETCH_BY_NAME)?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for w in wants {
        let part = FetchPartition::default()
            .with_partition(w.partition)
            .with_fetch_offset(w.offset)
            .with_partition_max_bytes(
                w.max_bytes
                    .map_or(partition_max_bytes, |m| m.min(partition_max_bytes)),
            )
            .with_current_leader_epoch(if version >= FIRST_FETCH_WITH_LEADER_EPOCH {
                w.leader_epoch
            } else {
                -1
            })
            .with_last_fetched_epoch(if version >= FIRST_FETCH_WITH_LAST_FETCHED_EPOCH {
                w.last_fetched_epoch
            } else {
                -1
            })
            .with_log_start_offset(-1);
        match topics.iter_mut().find(|t| t.topic.as_str() == w.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(w.topic.clone())))
                    .with_topic_id(w.topic_id.unwrap_or_default())
                    .with_partitions(vec![part]),
            ),
        }
    }
    let by_id = version > LAST_FETCH_BY_NAME;
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(topics);
    let resp = m.send_at(&req, version).await?;
    if resp.throttle_time_ms > 0 && version >= FIRST_FETCH_CLIENT_THROTTLES {
        // KIP-219: nothing more on this connection until then (a Fetch over the quota is
        // answered at once, and the broker reads nothing from it meanwhile).
        m.throttle(crate::client::throttle_wait(resp.throttle_time_ms));
    }
    let mut out = Vec::new();
    for t in resp.responses {
        // At v13+ the response names topics by id only.
        let topic = if by_id {
            match wants.iter().find(|w| w.topic_id == Some(t.topic_id)) {
                Some(w) => w.topic.clone(),
                None => continue,
            }
        } else {
            t.topic.to_string()
        };
        for p in t.partitions {
            out.push(FetchGot {
                topic: topic.clone(),
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: if p.last_stable_offset >= 0 {
                    p.last_stable_offset
                } else {
                    p.high_watermark
                },
                log_start_offset: p.log_start_offset,
                records: p.records.unwrap_or_default(),
                diverging_epoch: (p.diverging_epoch.end_offset >= 0)
                    .then_some((p.diverging_epoch.epoch, p.diverging_epoch.end_offset)),
                aborted: p
                    .aborted_transactions
                    .unwrap_or_default()
                    .iter()
                    .map(|a| Aborted {
                        producer_id: a.producer_id.0,
                        first_offset: a.first_offset,
                    })
                    .collect(),
            });
        }
    }
    Ok(Fetched {
        partitions: out,
        throttle_time_ms: resp.throttle_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record};

    fn batch(base: i64, count: i64, pid: i64, transactional: bool, control: bool) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control,
                producer_id: pid,
                producer_epoch: 0,
                sequence: i as i32,
                ..kmirror_wire::records::record(base + i, 1, None, Some(Bytes::from_static(b"v")))
            })
            .collect();
        kmirror_wire::records::encode(&records, Compression::None).unwrap()
    }

    fn join(parts: &[Bytes]) -> Bytes {
        parts.concat().into()
    }

    #[test]
    fn skips_batches_below_the_wanted_offset_and_drops_a_truncated_tail() {
        let all = join(&[
            batch(0, 3, -1, false, false),
            batch(3, 2, -1, false, false),
            batch(5, 4, -1, false, false),
        ]);
        let cut = all.slice(..all.len() - 5);
        let s = slice(&cut, 3, &[]).unwrap();
        assert_eq!(s.batches.len(), 1);
        assert_eq!(s.records, 2);
        assert_eq!(s.next_offset, Some(5));
    }

    /// A payload cut inside a batch tells that batch's size, so the next Fetch can ask for
    /// all of it; when nothing whole is left past the wanted offset, the cut batch is named
    /// by its own base offset, not by a batch before it.
    #[test]
    fn a_truncated_tail_tells_the_size_of_the_next_batch() {
        let third = batch(5, 4, -1, false, false);
        let all = join(&[
            batch(0, 3, -1, false, false),
            batch(3, 2, -1, false, false),
            third.clone(),
        ]);
        let cut = all.slice(..all.len() - 5);
        let s = slice(&cut, 0, &[]).unwrap();
        assert_eq!(s.next_batch_bytes, Some(third.len()));
        assert_eq!(s.cut_batch, None, "whole batches came before it");
        let s = slice(&cut, 5, &[]).unwrap();
        assert_eq!(s.next_offset, None);
        assert_eq!(s.cut_batch, Some((5, third.len())));
        assert_eq!(slice(&all, 0, &[]).unwrap().next_batch_bytes, None);
    }

    #[test]
    fn the_last_whole_batch_gives_the_last_fetched_epoch() {
        let with_epoch = |b: Bytes, epoch: i32| {
            let mut b = b.to_vec();
            kmirror_wire::batch::set_partition_leader_epoch(&mut b, epoch);
            kmirror_wire::batch::update_crc(&mut b);
            Bytes::from(b)
        };
        let all = join(&[
            with_epoch(batch(0, 3, -1, false, false), 4),
            with_epoch(batch(3, 2, -1, false, false), 5),
            with_epoch(batch(5, 4, -1, false, false), 6),
        ]);
        assert_eq!(slice(&all, 0, &[]).unwrap().last_epoch, Some(6));
        // The cut last batch was not read: the epoch is the one before it.
        let cut = all.slice(..all.len() - 5);
        assert_eq!(slice(&cut, 0, &[]).unwrap().last_epoch, Some(5));
        assert_eq!(slice(&Bytes::new(), 0, &[]).unwrap().last_epoch, None);
    }

    #[test]
    fn batches_end_to_end_in_an_unshared_payload_are_handed_over_without_a_copy() {
        let all = join(&[
            batch(0, 3, -1, false, false),
            batch(3, 2, -1, false, false),
            batch(5, 4, -1, false, false),
        ]);
        let first = batch(0, 3, -1, false, false).len();
        let expected = all.slice(first..).to_vec();
        let base = all.as_ptr() as usize;
        let s = slice(&all, 3, &[]).unwrap();
        assert!(s.is_span_of(&all));
        let (owned, own) = s.into_owned(all);
        assert!(own, "nothing else referred to the payload");
        assert_eq!(
            owned.as_ptr() as usize,
            base + first,
            "the payload's own memory"
        );
        assert_eq!(&owned[..], &expected[..]);

        // Shared with another reference: copied, same bytes.
        let all = join(&[batch(0, 3, -1, false, false), batch(3, 2, -1, false, false)]);
        let other = all.clone();
        let s = slice(&all, 0, &[]).unwrap();
        let (owned, own) = s.into_owned(all);
        assert!(!own);
        assert_eq!(&owned[..], &other[..]);
    }

    #[test]
    fn batches_with_a_gap_are_copied_end_to_end() {
        let all = join(&[
            batch(0, 2, 7, true, false), // aborted: left out
            batch(2, 1, 8, false, false),
            batch(3, 1, 7, true, true), // marker: left out
            batch(4, 2, 8, false, false),
        ]);
        let aborted = [Aborted {
            producer_id: 7,
            first_offset: 0,
        }];
        let s = slice(&all, 0, &aborted).unwrap();
        assert!(!s.is_span_of(&all));
        let expected = s.contiguous();
        let (owned, own) = s.into_owned(all);
        assert!(!own);
        assert_eq!(owned, expected);
    }

    #[test]
    fn removes_aborted_transactions_and_control_batches() {
        let all = join(&[
            batch(0, 2, 7, true, false),  // aborted
            batch(2, 1, 8, false, false), // plain
            batch(3, 1, 7, true, true),   // abort marker
            batch(4, 2, 7, true, false),  // committed later
            batch(6, 1, 7, true, true),   // commit marker
        ]);
        let s = slice(
            &all,
            0,
            &[Aborted {
                producer_id: 7,
                first_offset: 0,
            }],
        )
        .unwrap();
        let bases: Vec<i64> = s
            .batches
            .iter()
            .map(|b| i64::from_be_bytes(b[..8].try_into().unwrap()))
            .collect();
        assert_eq!(bases, vec![2, 4]);
        assert_eq!(s.next_offset, Some(7));
    }

    #[test]
    fn a_corrupt_batch_that_would_be_left_out_is_an_error() {
        for (transactional, control) in [(true, true), (true, false)] {
            let mut raw = batch(0, 2, 7, transactional, control).to_vec();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            let aborted = [Aborted {
                producer_id: 7,
                first_offset: 0,
            }];
            assert!(matches!(
                slice(&raw.into(), 0, &aborted),
                Err(BatchError::CrcMismatch { .. })
            ));
        }
    }

    #[test]
    fn a_corrupt_batch_to_forward_keeps_its_wrong_crc_for_the_target_to_refuse() {
        let good = batch(0, 2, -1, false, false);
        let mut bad = batch(2, 3, -1, false, false).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let all = join(&[good, Bytes::from(bad.clone())]);
        let s = slice(&all, 0, &[]).unwrap();
        assert_eq!((s.batches.len(), s.next_offset), (2, Some(5)));
        assert_eq!(&s.batches[1][..], &bad[..], "forwarded byte for byte");
    }

    #[test]
    fn good_batches_before_a_corrupt_marker_are_forwarded_and_the_marker_is_next() {
        let good = batch(0, 2, -1, false, false);
        let mut bad = batch(2, 1, 7, true, true).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let all = join(&[good, Bytes::from(bad)]);
        let s = slice(&all, 0, &[]).unwrap();
        assert_eq!((s.batches.len(), s.next_offset), (1, Some(2)));
        assert!(matches!(
            slice(&all, 2, &[]),
            Err(BatchError::CrcMismatch { base_offset: 2, .. })
        ));
    }

    /// A pre-v2 message (magic 1, as a source with an old `message.format.version` keeps
    /// it) is an error naming its magic, never skipped: the v2 batches before it are
    /// forwarded, and the next Fetch, starting at it, gets the error (which stops the
    /// partition with an ERROR naming its offset, as a corrupt batch does).
    #[test]
    fn a_pre_v2_message_is_an_error_not_skipped() {
        let good = batch(0, 2, -1, false, false);
        // offset 2 | size | crc | magic 1 | attributes | timestamp | key -1 | value "old"
        let mut body = vec![1u8, 0];
        body.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"old");
        let mut old = 2i64.to_be_bytes().to_vec();
        old.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        old.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        old.extend_from_slice(&body);
        let all = join(&[good, Bytes::from(old.clone())]);
        let s = slice(&all, 0, &[]).unwrap();
        assert_eq!((s.batches.len(), s.next_offset), (1, Some(2)));
        let alone = Bytes::from(old);
        let e = slice(&alone, 2, &[]).unwrap_err();
        assert!(
            matches!(e, BatchError::UnsupportedMagic { magic: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("magic 1"), "{e}");
    }
}
