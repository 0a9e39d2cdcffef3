//! The progress records: keys, values, and how a set of them becomes Produce-ready
//! batches and how fetched batches become positions again.
//!
//! A position is keyed `flow/topic/partition` with the JSON [`Position`] as value; the
//! flow's marker, keyed by the flow name alone, says that the flow's first start (where
//! `start_from` applies) is done. Each batch is one uncompressed v2 batch with base offset
//! 0 (Kafka refuses a client batch with any other) no larger than the topic's
//! `max.message.bytes`; a write needs as many batches as that limit requires.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use serde::{Deserialize, Serialize};

use super::{Position, SourcePartition};
use crate::offsets::map::Chunk;

/// Bytes of a v2 batch before its first record.
const BATCH_OVERHEAD: usize = 61;
/// An upper bound on a record's bytes besides its key and value: length, attributes,
/// timestamp and offset deltas, key and value lengths and header count, as varints.
const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;

pub(super) fn key(flow: &str, sp: &SourcePartition) -> String {
    format!("{flow}/{}/{}", sp.topic, sp.partition)
}

/// The key of chunk `index` of a partition's offset map. Daemons that predate the map
/// skip it: its last segment is not a partition number.
fn map_key(flow: &str, sp: &SourcePartition, index: u64) -> String {
    format!("{}#map{index}", key(flow, sp))
}

fn parse_key<'a>(flow: &str, key: &'a str) -> Option<(&'a str, i32)> {
    let rest = key.strip_prefix(flow)?.strip_prefix('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

/// The key of the id a source topic had when the flow first mirrored it.
pub(super) fn source_topic_key(flow: &str, topic: &str) -> String {
    format!("{flow}#topic:{topic}")
}

/// The key of the cluster id of a flow's source.
fn source_cluster_key(flow: &str) -> String {
    format!("{flow}#source")
}

/// The value of a [`source_cluster_key`].
#[derive(Debug, Serialize, Deserialize)]
struct SourceCluster {
    cluster_id: String,
}

/// The value of a [`source_topic_key`].
#[derive(Debug, Serialize, Deserialize)]
struct SourceTopic {
    topic_id: uuid::Uuid,
}

/// The key of the source offsets a flow last read for `group` (see [`SyncedGroup`]).
fn group_key(flow: &str, group: &str) -> String {
    format!("{flow}#group:{group}")
}

/// The committed source offsets of a group, as the flow's group sync last read them: what
/// `kmirror failover` translates when the source cluster is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedGroup {
    /// `(topic, partition, committed offset)` of the flow's partitions.
    pub offsets: Vec<(String, i32, i64)>,
    /// When they were read (ms since the epoch).
    pub read_at_ms: i64,
    /// `(topic, partition, source offset)` whose translation the sync last committed to
    /// the target group: a source offset below it means the source group was rewound.
    /// Absent in what was stored before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed: Vec<(String, i32, i64)>,
    /// `(topic, partition, metadata)` of the commits in `offsets` that carried metadata
    /// (Kafka Streams keeps its stream time there), committed with them by a failover
    /// while the source is down; none when they came to over [`GROUP_METADATA_BYTES`].
    /// Absent in what was stored before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<(String, i32, String)>,
}

/// The most commit metadata kept per group: Kafka allows 4 KiB per partition
/// (`offset.metadata.max.bytes`), and a group's notes are one record of the progress
/// topic, which must fit its `max.message.bytes`.
pub const GROUP_METADATA_BYTES: usize = 64 << 10;

/// The value of a flow's marker.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// When the flow's first start was recorded (ms since the epoch).
    initialised_at_ms: i64,
    /// `(topic, partition)` found at the first start with `start_from: latest` that could
    /// not start then (no leader): they start at the source's end when they can, also
    /// after a restart. Absent in markers stored before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    start_at_end: Vec<(String, i32)>,
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Position(SourcePartition, Position),
    /// Chunk `index` of a partition's offset map; `None` deletes it.
    MapChunk(SourcePartition, u64, Option<Chunk>),
    /// A group's source offsets as the group sync last read them.
    Group(String, SyncedGroup),
    /// The id a source topic had when the flow first mirrored it.
    SourceTopic(String, uuid::Uuid),
    /// The cluster id of the flow's source.
    SourceCluster(String),
    /// The flow's first start is done; the partitions found then that start at the
    /// source's end once they can (`start_from: latest`).
    Marker(Vec<SourcePartition>),
    /// A tombstone for this key ([`super::forget`]).
    Forget(String),
}

/// A batch ready to produce, and which entries (by index) it carries.
#[derive(Debug)]
pub(super) struct EncodedBatch {
    pub bytes: Bytes,
    pub entries: std::ops::Range<usize>,
}

/// An entry too large for `max.message.bytes` even alone.
#[derive(Debug, thiserror::Error)]
#[error("a progress record of {bytes} bytes does not fit max.message.bytes = {limit}")]
pub(super) struct TooLarge {
    pub bytes: usize,
    pub limit: usize,
}

fn encode_entry(flow: &str, entry: &Entry, now_ms: i64) -> (Bytes, Option<Bytes>) {
    match entry {
        Entry::MapChunk(sp, index, chunk) => (
            Bytes::from(map_key(flow, sp, *index)),
            chunk
                .as_ref()
                .map(|c| Bytes::from(serde_json::to_vec(c).expect("a chunk serialises"))),
        ),
        Entry::Group(group, synced) => (
            Bytes::from(group_key(flow, group)),
            Some(Bytes::from(
                serde_json::to_vec(synced).expect("a group serialises"),
            )),
        ),
        Entry::Position(sp, pos) => (
            Bytes::from(key(flow, sp)),
            Some(Bytes::from(
                serde_json::to_vec(pos).expect("a position serialises"),
            )),
        ),
        Entry::SourceTopic(topic, topic_id) => (
            Bytes::from(source_topic_key(flow, topic)),
            Some(Bytes::from(
                serde_json::to_vec(&SourceTopic {
                    topic_id: *topic_id,
                })
                .expect("a topic id serialises"),
            )),
        ),
        Entry::SourceCluster(cluster_id) => (
            Bytes::from(source_cluster_key(flow)),
            Some(Bytes::from(
                serde_json::to_vec(&SourceCluster {
                    cluster_id: cluster_id.clone(),
                })
                .expect("a cluster id serialises"),
            )),
        ),
        Entry::Forget(key) => (Bytes::from(key.clone()), None),
        Entry::Marker(start_at_end) => (
            Bytes::from(flow.to_string()),
            Some(Bytes::from(
                serde_json::to_vec(&Marker {
                    initialised_at_ms: now_ms,
                    start_at_end: start_at_end
                        .iter()
                        .map(|sp| (sp.topic.clone(), sp.partition))
                        .collect(),
                })
                .expect("a marker serialises"),
            )),
        ),
    }
}

/// The source partition an entry belongs to, for a map chunk or a position.
fn partition_of(entry: &Entry) -> Option<&SourcePartition> {
    match entry {
        Entry::MapChunk(sp, ..) | Entry::Position(sp, _) => Some(sp),
        Entry::Group(..)
        | Entry::SourceTopic(..)
        | Entry::SourceCluster(..)
        | Entry::Marker(_)
        | Entry::Forget(_) => None,
    }
}

/// Encodes `entries`, in order, as batches of at most `max_batch_bytes` each. Consecutive
/// entries of one partition share a batch whenever they fit in one.
pub(super) fn encode(
    flow: &str,
    entries: &[Entry],
    now_ms: i64,
    max_batch_bytes: usize,
) -> Result<Vec<EncodedBatch>, TooLarge> {
    let mut out = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    let mut size = BATCH_OVERHEAD;
    let mut first = 0;
    let mut finish = |records: &mut Vec<Record>, range: std::ops::Range<usize>| {
        let bytes = kmirror_wire::records::encode(records, Compression::None)
            .expect("uncompressed records encode");
        records.clear();
        out.push(EncodedBatch {
            bytes,
            entries: range,
        });
    };
    let encoded: Vec<_> = entries
        .iter()
        .map(|entry| encode_entry(flow, entry, now_ms))
        .collect();
    let sizes: Vec<usize> = encoded
        .iter()
        .map(|(k, v)| RECORD_OVERHEAD + k.len() + v.as_ref().map_or(0, Bytes::len))
        .collect();
    for (i, (k, v)) in encoded.into_iter().enumerate() {
        let bytes = sizes[i];
        if BATCH_OVERHEAD + bytes > max_batch_bytes {
            return Err(TooLarge {
                bytes: BATCH_OVERHEAD + bytes,
                limit: max_batch_bytes,
            });
        }
        // A partition's map chunks and position start a batch of their own when they
        // would not fit in this one and fit in one alone: a batch is appended whole.
        let partition_bytes = match partition_of(&entries[i]) {
            Some(sp) if i == 0 || partition_of(&entries[i - 1]) != Some(sp) => entries[i..]
                .iter()
                .zip(&sizes[i..])
                .take_while(|(e, _)| partition_of(e) == Some(sp))
                .map(|(_, b)| b)
                .sum(),
            _ => bytes,
        };
        let needed = if BATCH_OVERHEAD + partition_bytes <= max_batch_bytes {
            partition_bytes
        } else {
            bytes
        };
        if size + needed > max_batch_bytes {
            finish(&mut records, first..i);
            first = i;
            size = BATCH_OVERHEAD;
        }
        size += bytes;
        // Offsets count from 0 in every batch: the base offset of a client batch is 0.
        let offset = records.len() as i64;
        records.push(kmirror_wire::records::record(offset, now_ms, Some(k), v));
    }
    if !records.is_empty() {
        finish(&mut records, first..entries.len());
    }
    Ok(out)
}

/// What a flow's records in the progress topic say, read in log order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Loaded {
    pub positions: HashMap<SourcePartition, Position>,
    /// The source offsets the group sync last read, by group.
    pub groups: HashMap<String, SyncedGroup>,
    /// The id each source topic had when the flow first mirrored it.
    pub source_topics: HashMap<String, uuid::Uuid>,
    /// The cluster id of the source the progress was written for.
    pub source_cluster: Option<String>,
    /// The chunks of each partition's offset map, by index.
    pub maps: HashMap<SourcePartition, std::collections::BTreeMap<u64, Chunk>>,
    /// The flow's marker was read.
    pub marker: bool,
    /// The partitions the marker says start at the source's end once they can.
    pub start_at_end: Vec<SourcePartition>,
}

/// A progress batch that cannot be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreadable {
    #[error("cannot decode a progress batch: {0}")]
    Batch(String),
    #[error("cannot read the progress of {key}: {error}")]
    Value {
        key: String,
        error: serde_json::Error,
    },
}

/// A stored value of `key`, or why it cannot be read.
fn parse_value<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, Unreadable> {
    serde_json::from_slice(value).map_err(|error| Unreadable::Value {
        key: key.to_string(),
        error,
    })
}

/// Sets `map[name]` to the value stored under `key` (read as `T`, kept as `into` makes it),
/// or removes it when the record is a tombstone (`value` is `None`).
fn keep<K: std::hash::Hash + Eq, V, T: serde::de::DeserializeOwned>(
    map: &mut HashMap<K, V>,
    name: K,
    key: &str,
    value: Option<&[u8]>,
    into: impl FnOnce(T) -> V,
) -> Result<(), Unreadable> {
    match value {
        Some(v) => {
            map.insert(name, into(parse_value(key, v)?));
        }
        None => {
            map.remove(&name);
        }
    }
    Ok(())
}

impl Loaded {
    /// Applies one whole batch: the last record of a key wins, and a tombstone removes it.
    /// Records of other flows are skipped.
    pub(super) fn apply(&mut self, flow: &str, batch: &Bytes) -> Result<(), Unreadable> {
        let mut b = batch.clone();
        let set =
            RecordBatchDecoder::decode(&mut b).map_err(|e| Unreadable::Batch(e.to_string()))?;
        for r in set.records {
            let Some(k) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if k == flow {
                self.marker = r.value.is_some();
                // A marker that does not parse still says the first start is done.
                let marker = r
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<Marker>(v).ok());
                self.start_at_end = marker
                    .map(|m| {
                        m.start_at_end
                            .into_iter()
                            .map(|(topic, partition)| SourcePartition { topic, partition })
                            .collect()
                    })
                    .unwrap_or_default();
                continue;
            }
            let value = r.value.as_deref();
            let rest = k.strip_prefix(flow).unwrap_or_default();
            if let Some(group) = rest.strip_prefix("#group:") {
                keep(
                    &mut self.groups,
                    group.to_string(),
                    k,
                    value,
                    |g: SyncedGroup| g,
                )?;
            } else if rest == "#source" {
                self.source_cluster = value
                    .map(|v| parse_value::<SourceCluster>(k, v))
                    .transpose()?
                    .map(|stored| stored.cluster_id);
            } else if let Some(topic) = rest.strip_prefix("#topic:") {
                keep(
                    &mut self.source_topics,
                    topic.to_string(),
                    k,
                    value,
                    |t: SourceTopic| t.topic_id,
                )?;
            } else if let Some((position_key, index)) = k.rsplit_once("#map") {
                let (Some((topic, partition)), Ok(index)) =
                    (parse_key(flow, position_key), index.parse::<u64>())
                else {
                    continue;
                };
                let chunks = self
                    .maps
                    .entry(SourcePartition {
                        topic: topic.to_string(),
                        partition,
                    })
                    .or_default();
                match value {
                    Some(v) => {
                        chunks.insert(index, parse_value::<Chunk>(k, v)?);
                    }
                    None => {
                        chunks.remove(&index);
                    }
                }
            } else if let Some((topic, partition)) = parse_key(flow, k) {
                let sp = SourcePartition {
                    topic: topic.to_string(),
                    partition,
                };
                keep(&mut self.positions, sp, k, value, |p: Position| p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{pos, sp_of as sp};
    use super::*;
    use kmirror_wire::batch::Batches;

    #[test]
    fn keys_round_trip_with_slashes_and_dots_in_names() {
        let k = key("east-to-west", &sp("orders.v1", 12));
        assert_eq!(parse_key("east-to-west", &k), Some(("orders.v1", 12)));
        assert_eq!(parse_key("east", &k), None);
    }

    /// Finding 7: many positions make several batches, each within the limit, each with
    /// base offset 0 and one batch per buffer; read back they give every position.
    #[test]
    fn a_large_write_is_split_into_batches_that_fit() {
        let mut entries: Vec<Entry> = (0..5000)
            .map(|p| Entry::Position(sp("orders.eu.payments", p), pos(i64::from(p) * 1000)))
            .collect();
        entries.push(Entry::Marker(Vec::new()));
        let limit = 64 * 1024;
        let batches = encode("east-to-west", &entries, 1, limit).unwrap();
        assert!(batches.len() > 1, "{} batch", batches.len());
        let mut next = 0;
        let mut loaded = Loaded::default();
        for b in &batches {
            assert_eq!(b.entries.start, next, "ranges are contiguous");
            next = b.entries.end;
            assert!(b.bytes.len() <= limit, "{} > {limit}", b.bytes.len());
            let views: Vec<_> = Batches::new(&b.bytes).map(Result::unwrap).collect();
            assert_eq!(views.len(), 1, "one batch per request");
            assert_eq!(views[0].base_offset(), 0);
            assert_eq!(views[0].record_count() as usize, b.entries.len());
            loaded.apply("east-to-west", &b.bytes).unwrap();
        }
        assert_eq!(next, entries.len());
        assert_eq!(loaded.positions.len(), 5000);
        assert_eq!(
            loaded.positions[&sp("orders.eu.payments", 4999)],
            pos(4_999_000)
        );
        assert!(loaded.marker);
        // The default limit (1 MiB) makes a 12k-partition flow two batches, not one too large.
        let entries: Vec<Entry> = (0..12_000)
            .map(|p| Entry::Position(sp("orders.eu.payments", p), pos(1 << 40)))
            .collect();
        let batches = encode("east-to-west", &entries, 1, 1_048_588).unwrap();
        assert!(batches.len() >= 2);
        assert!(batches.iter().all(|b| b.bytes.len() <= 1_048_588));
    }

    #[test]
    fn the_marker_keeps_the_partitions_that_start_at_the_end() {
        let mut loaded = Loaded::default();
        let marker = Entry::Marker(vec![sp("t", 1), sp("u", 0)]);
        for b in encode("f", &[marker], 1, 1 << 20).unwrap() {
            loaded.apply("f", &b.bytes).unwrap();
        }
        assert!(loaded.marker);
        assert_eq!(loaded.start_at_end, [sp("t", 1), sp("u", 0)]);
        // Rewritten once they started: none left.
        for b in encode("f", &[Entry::Marker(Vec::new())], 2, 1 << 20).unwrap() {
            loaded.apply("f", &b.bytes).unwrap();
        }
        assert!(loaded.marker && loaded.start_at_end.is_empty());
    }

    #[test]
    fn a_record_larger_than_the_limit_is_an_error() {
        let entries = [Entry::Position(sp("t", 0), pos(1))];
        let e = encode("f", &entries, 1, 100).unwrap_err();
        assert_eq!(e.limit, 100);
    }

    #[test]
    fn later_records_win_other_flows_are_skipped_and_tombstones_remove() {
        let mut loaded = Loaded::default();
        let write = |entries: &[Entry], flow: &str| {
            encode(flow, entries, 1, 1 << 20).unwrap().remove(0).bytes
        };
        loaded
            .apply("f", &write(&[Entry::Position(sp("t", 0), pos(5))], "f"))
            .unwrap();
        loaded
            .apply("f", &write(&[Entry::Position(sp("t", 0), pos(9))], "f"))
            .unwrap();
        loaded
            .apply(
                "f",
                &write(
                    &[
                        Entry::Position(sp("t", 1), pos(3)),
                        Entry::Marker(Vec::new()),
                    ],
                    "g",
                ),
            )
            .unwrap();
        assert_eq!(loaded.positions.len(), 1);
        assert_eq!(loaded.positions[&sp("t", 0)], pos(9));
        assert!(!loaded.marker, "another flow's marker");
        let tombstone = kmirror_wire::records::encode(
            &[kmirror_wire::records::record(
                0,
                1,
                Some(Bytes::from("f/t/0")),
                None,
            )],
            Compression::None,
        )
        .unwrap();
        loaded.apply("f", &tombstone).unwrap();
        assert!(loaded.positions.is_empty());
    }

    #[test]
    fn a_position_keeps_its_leader_epoch_and_one_written_without_it_reads_as_unknown() {
        let with_epoch = Position {
            leader_epoch: Some(7),
            ..pos(5)
        };
        let (_, value) = encode_entry("f", &Entry::Position(sp("t", 0), with_epoch), 1);
        let value = value.unwrap();
        assert!(std::str::from_utf8(&value)
            .unwrap()
            .contains("\"leader_epoch\":7"));
        assert_eq!(
            serde_json::from_slice::<Position>(&value).unwrap(),
            with_epoch
        );
        let (_, unknown) = encode_entry("f", &Entry::Position(sp("t", 0), pos(5)), 1);
        assert!(!std::str::from_utf8(&unknown.unwrap())
            .unwrap()
            .contains("leader_epoch"));
        // What daemons before the epoch wrote.
        let old: Position =
            serde_json::from_str(r#"{"next_source_offset":5,"next_target_offset":105}"#).unwrap();
        assert_eq!(old, pos(5));
    }
}
