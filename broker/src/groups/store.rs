//! Persistence of the group coordinator: committed offsets and group metadata in one
//! append-only file, `<data_dir>/__consumer_offsets.log`.
//!
//! Each frame is `[u32 len][u32 crc32c(payload)][payload]`, big-endian, where the payload
//! is a JSON array of [`Record`]s written by one operation (so one OffsetCommit request is
//! all-or-nothing on replay). On open the file is replayed into a [`Snapshot`]; a torn or
//! corrupt tail (short frame, bad CRC, undecodable payload) is truncated away, and a file
//! larger than the compaction threshold is rewritten as a snapshot (temp file, fsync,
//! rename). Appends go straight to the page cache with one `write` call; `fsync` after each
//! append is optional. A store without a directory keeps nothing (in-memory brokers).
//!
//! This module knows nothing about group semantics: it only stores and replays records.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the store inside the data directory.
pub const FILE_NAME: &str = "__consumer_offsets.log";

const FRAME_HEADER: usize = 8;
/// A frame larger than this is treated as corruption rather than allocated.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// Errors of the offsets store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("offsets store I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode an offsets store record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One committed offset of a partition, as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
    /// OffsetCommit v2-4 `retention_time_ms` (KIP-211's old semantics): expires at this
    /// time instead of after `offsets.retention.minutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_timestamp_ms: Option<i64>,
}

/// The persisted view of one classic group (what a restart needs to keep serving it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group: String,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// Members with their assignment; empty when the group is Empty, or when the
    /// generation's assignment was not yet known when it was written.
    pub members: Vec<MemberRecord>,
}

/// One member of a persisted group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<ProtocolRecord>,
    #[serde(with = "hex_bytes")]
    pub assignment: Vec<u8>,
}

/// One (protocol name, metadata) pair a member supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolRecord {
    pub name: String,
    #[serde(with = "hex_bytes")]
    pub metadata: Vec<u8>,
}

/// A change to the coordinator's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Record {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        #[serde(flatten)]
        committed: CommittedOffset,
    },
    OffsetDelete {
        group: String,
        topic: String,
        partition: i32,
    },
    Group(GroupRecord),
    /// The group and all its offsets are gone.
    GroupDelete {
        group: String,
    },
}

/// Offsets of one group, ordered by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Everything the store holds, as replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub groups: BTreeMap<String, GroupRecord>,
    pub offsets: BTreeMap<String, GroupOffsets>,
}

impl Snapshot {
    /// Applies one record, exactly as replay does.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Offset {
                group,
                topic,
                partition,
                committed,
            } => {
                self.offsets
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), committed);
            }
            Record::OffsetDelete {
                group,
                topic,
                partition,
            } => {
                if let Some(offsets) = self.offsets.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
            Record::Group(g) => {
                self.groups.insert(g.group.clone(), g);
            }
            Record::GroupDelete { group } => {
                self.groups.remove(&group);
                self.offsets.remove(&group);
            }
        }
    }

    /// The records that rebuild this snapshot, one batch per group.
    fn to_batches(&self) -> Vec<Vec<Record>> {
        let mut names: Vec<&String> = self.groups.keys().chain(self.offsets.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let mut batch = Vec::new();
                if let Some(g) = self.groups.get(name) {
                    batch.push(Record::Group(g.clone()));
                }
                for ((topic, partition), committed) in self.offsets.get(name).into_iter().flatten()
                {
                    batch.push(Record::Offset {
                        group: name.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        committed: committed.clone(),
                    });
                }
                batch
            })
            .collect()
    }
}

/// Where and how the store writes.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the store file; `None` keeps nothing on disk.
    pub dir: Option<PathBuf>,
    /// fsync after every append (otherwise appends reach the page cache only).
    pub fsync: bool,
    /// Rewrite the file on open when it is larger than this.
    pub compact_threshold_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: None,
            fsync: false,
            compact_threshold_bytes: 16 << 20,
        }
    }
}

/// The open store: an append handle, or nothing for in-memory coordinators.
#[derive(Debug)]
pub struct OffsetStore {
    file: Option<(File, PathBuf)>,
    len: u64,
    fsync: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OffsetStore {
    /// Opens (creating if needed) the store, replays it and returns its contents.
    pub fn open(config: &StoreConfig) -> Result<(Self, Snapshot), StoreError> {
        let Some(dir) = &config.dir else {
            return Ok((
                Self {
                    file: None,
                    len: 0,
                    fsync: false,
                },
                Snapshot::default(),
            ));
        };
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io_err(&path))?;
        let (snapshot, valid_len) = replay(&data);
        if valid_len < data.len() {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = valid_len,
                file_bytes = data.len(),
                "Truncating a torn or corrupt tail of the offsets store."
            );
            file.set_len(valid_len as u64).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        let mut store = Self {
            file: Some((file, path)),
            len: valid_len as u64,
            fsync: config.fsync,
        };
        if store.len > config.compact_threshold_bytes {
            store.compact(&snapshot)?;
        }
        Ok((store, snapshot))
    }

    /// Whether this store writes to disk.
    pub fn is_persistent(&self) -> bool {
        self.file.is_some()
    }

    /// Bytes in the store file.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Appends one batch of records atomically (one frame), then fsyncs if configured.
    /// On failure the file is cut back to its previous length.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let Some((file, path)) = &mut self.file else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let frame = encode_frame(records)?;
        let result =
            file.write_all(&frame).and_then(
                |()| {
                    if self.fsync {
                        file.sync_data()
                    } else {
                        Ok(())
                    }
                },
            );
        if let Err(source) = result {
            let _ = file.set_len(self.len);
            return Err(StoreError::Io {
                path: path.clone(),
                source,
            });
        }
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Rewrites the file so it holds exactly `snapshot`.
    pub fn compact(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let Some((_, path)) = &self.file else {
            return Ok(());
        };
        let path = path.clone();
        let tmp = path.with_extension("log.compacting");
        let mut out = Vec::new();
        for batch in snapshot.to_batches() {
            out.extend_from_slice(&encode_frame(&batch)?);
        }
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&out).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        tracing::info!(
            path = %path.display(),
            before_bytes = self.len,
            after_bytes = out.len(),
            "Compacted the offsets store."
        );
        self.len = out.len() as u64;
        self.file = Some((file, path));
        Ok(())
    }
}

fn encode_frame(records: &[Record]) -> Result<Vec<u8>, StoreError> {
    let payload = serde_json::to_vec(records)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Replays frames; returns the state and the length of the valid prefix.
fn replay(data: &[u8]) -> (Snapshot, usize) {
    let mut snapshot = Snapshot::default();
    let mut pos = 0;
    while data.len() - pos >= FRAME_HEADER {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > MAX_FRAME_BYTES || data.len() - pos - FRAME_HEADER < len {
            break;
        }
        let payload = &data[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(records) = serde_json::from_slice::<Vec<Record>>(payload) else {
            break;
        };
        for r in records {
            snapshot.apply(r);
        }
        pos += FRAME_HEADER + len;
    }
    (snapshot, pos)
}

/// Bytes as a lowercase hex string in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, topic: &str, partition: i32, offset: i64) -> Record {
        Record::Offset {
            group: group.into(),
            topic: topic.into(),
            partition,
            committed: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_timestamp_ms: 1,
                expire_timestamp_ms: None,
            },
        }
    }

    fn config(dir: &Path) -> StoreConfig {
        StoreConfig {
            dir: Some(dir.to_path_buf()),
            fsync: true,
            compact_threshold_bytes: 1 << 20,
        }
    }

    fn group_record() -> GroupRecord {
        GroupRecord {
            group: "g".into(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            generation: 7,
            leader: Some("m1".into()),
            members: vec![MemberRecord {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                protocols: vec![ProtocolRecord {
                    name: "range".into(),
                    metadata: vec![0, 1, 0xfe],
                }],
                assignment: vec![9, 8],
            }],
        }
    }

    #[test]
    fn round_trip_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, snap) = OffsetStore::open(&config(dir.path())).unwrap();
            assert_eq!(snap, Snapshot::default());
            store
                .append(&[offset("g", "t", 0, 5), offset("g", "t", 1, 6)])
                .unwrap();
            store.append(&[Record::Group(group_record())]).unwrap();
            store
                .append(&[Record::OffsetDelete {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 1,
                }])
                .unwrap();
            store.append(&[offset("h", "t", 0, 1)]).unwrap();
            store
                .append(&[Record::GroupDelete { group: "h".into() }])
                .unwrap();
        }
        let (_, snap) = OffsetStore::open(&config(dir.path())).unwrap();
        assert_eq!(snap.groups.get("g"), Some(&group_record()));
        let g = &snap.offsets["g"];
        assert_eq!(g.len(), 1);
        assert_eq!(g[&("t".to_string(), 0)].offset, 5);
        assert!(!snap.offsets.contains_key("h"));
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let (mut store, _) = OffsetStore::open(&config(dir.path())).unwrap();
            store.append(&[offset("g", "t", 0, 5)]).unwrap();
            store.append(&[offset("g", "t", 0, 6)]).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        // Cut the last frame in half: the second commit is lost, the first survives.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 10).unwrap();
        drop(f);
        {
            let (mut store, snap) = OffsetStore::open(&config(dir.path())).unwrap();
            assert_eq!(snap.offsets["g"][&("t".to_string(), 0)].offset, 5);
            assert!(std::fs::metadata(&path).unwrap().len() < full - 10);
            store.append(&[offset("g", "t", 1, 7)]).unwrap();
        }
        // Garbage with a plausible header is rejected by the CRC.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 4, 1, 2, 3, 4, b'[', b']', b' ', b' '])
            .unwrap();
        drop(f);
        let (_, snap) = OffsetStore::open(&config(dir.path())).unwrap();
        let g = &snap.offsets["g"];
        assert_eq!(g[&("t".to_string(), 0)].offset, 5);
        assert_eq!(g[&("t".to_string(), 1)].offset, 7);
    }

    #[test]
    fn compaction_on_open_keeps_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.compact_threshold_bytes = 2_000;
        {
            let (mut store, _) = OffsetStore::open(&cfg).unwrap();
            for i in 0..200 {
                store.append(&[offset("g", "t", i % 3, i as i64)]).unwrap();
            }
            store.append(&[Record::Group(group_record())]).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let before = std::fs::metadata(&path).unwrap().len();
        let (store, snap) = OffsetStore::open(&cfg).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before / 10, "{after} vs {before}");
        assert_eq!(store.len_bytes(), after);
        assert_eq!(snap.offsets["g"].len(), 3);
        assert_eq!(snap.offsets["g"][&("t".to_string(), 2)].offset, 197);
        drop(store);
        let (_, again) = OffsetStore::open(&cfg).unwrap();
        assert_eq!(again, snap);
    }

    #[test]
    fn in_memory_store_keeps_nothing() {
        let (mut store, snap) = OffsetStore::open(&StoreConfig::default()).unwrap();
        assert!(!store.is_persistent());
        store.append(&[offset("g", "t", 0, 1)]).unwrap();
        assert_eq!(snap, Snapshot::default());
    }
}
