//! Producer id allocation and `InitProducerId` for idempotent (non-transactional)
//! producers.
//!
//! Ids are monotonic `i64`s reserved in blocks of [`ProducerIdManager::BLOCK_SIZE`]: before
//! the first id of a block is handed out, the start of the *next* block is written to
//! `<data_dir>/producer-ids` and fsynced. After a crash the unused rest of a block is
//! skipped, never reused.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use crate::fsutil::write_atomic;

const FILE_VERSION: u32 = 1;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct IdFile {
    version: u32,
    next_block_start: i64,
}

/// Ids `next..end` are reserved (persisted) but not handed out yet; `end` is the value on
/// disk, so every id ever handed out, in this run or an earlier one, is below `next`.
#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Allocates producer ids and answers `InitProducerId`.
#[derive(Debug)]
pub struct ProducerIdManager {
    /// The file the next block's start is stored in; none for an in-memory broker.
    path: Option<PathBuf>,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    /// Name of the file under the data directory.
    pub const FILE_NAME: &'static str = "producer-ids";
    /// Ids reserved per fsync.
    pub const BLOCK_SIZE: i64 = 1000;

    /// Opens (or starts) the id sequence stored under `data_dir`. A present but unreadable
    /// file is an error: starting again from 0 would reuse ids.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(Self::FILE_NAME);
        let start = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: IdFile = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                if file.version != FILE_VERSION || file.next_block_start < 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: unsupported version {} or negative block start {}",
                            path.display(),
                            file.version,
                            file.next_block_start
                        ),
                    ));
                }
                file.next_block_start
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: Some(path),
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    /// Ids for an in-memory broker: from 0, nothing written anywhere.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            block: Mutex::new(Block { next: 0, end: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Block> {
        self.block.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns a producer id never handed out before. Blocks on a file write and fsync
    /// once every [`Self::BLOCK_SIZE`] ids.
    pub fn allocate(&self) -> io::Result<i64> {
        let mut block = self.lock();
        if block.next >= block.end {
            let new_end = block
                .end
                .checked_add(Self::BLOCK_SIZE)
                .ok_or_else(|| io::Error::other("producer id space exhausted"))?;
            if let Some(path) = &self.path {
                let file = IdFile {
                    version: FILE_VERSION,
                    next_block_start: new_end,
                };
                let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
                write_atomic(path, &bytes)?;
            }
            block.end = new_end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Answers `InitProducerId` at any version the crate decodes (0..=5). The response has
    /// the same fields at every version up to 5; only v2+ adds tagged fields, which the
    /// encoder handles.
    ///
    /// - No transactional id: always a fresh id at epoch 0, with or without the producer's
    ///   current id and epoch (v3+, KIP-360); Kafka never bumps an idempotent producer's
    ///   epoch on the broker (clients bump it themselves).
    /// - Id and epoch not both -1 or both set: INVALID_REQUEST, as Kafka.
    /// - A transactional id: not answered here (the transaction coordinator does).
    pub fn handle(&self, req: &InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
        if req.transactional_id.is_some() {
            // The transaction coordinator answers these (crate::transactions).
            return error_response(ResponseError::InvalidRequest.code());
        }

        let (pid, epoch) = if version >= 3 {
            (req.producer_id.0, req.producer_epoch)
        } else {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        };
        // Kafka: KafkaApis.handleInitProducerIdRequest (half-set id/epoch is INVALID_REQUEST)
        if (pid == NO_PRODUCER_ID || epoch == NO_PRODUCER_EPOCH) && pid != i64::from(epoch) {
            return error_response(ResponseError::InvalidRequest.code());
        }
        // Kafka: TransactionCoordinator.handleInitProducerId (null transactional id: "always
        // blindly accept the request and return a new producerId", epoch 0)
        match self.allocate() {
            Ok(id) => ok_response(id, 0),
            Err(e) => {
                // Kafka answers COORDINATOR_LOAD_IN_PROGRESS (retriable) when it cannot get
                // an id block; clients retry after a back-off.
                tracing::error!(error = %e, path = ?self.path, "cannot allocate a producer id");
                error_response(ResponseError::CoordinatorLoadInProgress.code())
            }
        }
    }
}

fn ok_response(producer_id: i64, producer_epoch: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(producer_id.into())
        .with_producer_epoch(producer_epoch)
}

fn error_response(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(NO_PRODUCER_ID.into())
        .with_producer_epoch(NO_PRODUCER_EPOCH)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    /// Encodes the request and decodes it at `version` (as the broker would receive it),
    /// handles it, and round-trips the response through the wire at `version`.
    fn call(
        mgr: &ProducerIdManager,
        req: &InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        let mut buf = BytesMut::new();
        req.encode(&mut buf, version).unwrap();
        let decoded = InitProducerIdRequest::decode(&mut buf.freeze(), version).unwrap();
        let resp = mgr.handle(&decoded, version);
        let mut out = BytesMut::new();
        resp.encode(&mut out, version).unwrap();
        InitProducerIdResponse::decode(&mut out.freeze(), version).unwrap()
    }

    fn plain() -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
    }

    fn bump(pid: i64, epoch: i16) -> InitProducerIdRequest {
        plain()
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch)
    }

    fn stored_block_start(dir: &Path) -> i64 {
        let bytes = std::fs::read(dir.join(ProducerIdManager::FILE_NAME)).unwrap();
        let file: IdFile = serde_json::from_slice(&bytes).unwrap();
        file.next_block_start
    }

    #[test]
    fn in_memory_ids_run_on_across_blocks() {
        let mgr = ProducerIdManager::in_memory();
        let ids: Vec<i64> = (0..2500).map(|_| mgr.allocate().unwrap()).collect();
        assert_eq!(ids, (0..2500).collect::<Vec<i64>>());
    }

    #[test]
    fn fresh_ids_are_monotonic_and_the_block_is_persisted_first() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        assert!(!dir.path().join(ProducerIdManager::FILE_NAME).exists());
        assert_eq!(mgr.allocate().unwrap(), 0);
        assert_eq!(stored_block_start(dir.path()), 1000);
        assert_eq!(mgr.allocate().unwrap(), 1);
        assert_eq!(mgr.allocate().unwrap(), 2);
    }

    #[test]
    fn ids_are_never_reused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mgr = ProducerIdManager::open(dir.path()).unwrap();
            for expected in 0..3 {
                assert_eq!(mgr.allocate().unwrap(), expected);
            }
        }
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(mgr.allocate().unwrap(), 1000);
        for expected in 1001..2000 {
            assert_eq!(mgr.allocate().unwrap(), expected);
        }
        assert_eq!(stored_block_start(dir.path()), 2000);
        assert_eq!(mgr.allocate().unwrap(), 2000);
        assert_eq!(stored_block_start(dir.path()), 3000);
        drop(mgr);
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(mgr.allocate().unwrap(), 3000);
    }

    #[test]
    fn an_unreadable_id_file_is_an_error_not_a_restart_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ProducerIdManager::FILE_NAME), b"garbage").unwrap();
        let err = ProducerIdManager::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn every_version_without_a_producer_id_gets_a_fresh_id_at_epoch_0() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        for (i, version) in (0..=5).enumerate() {
            let resp = call(&mgr, &plain(), version);
            assert_eq!(resp.error_code, 0, "v{version}");
            assert_eq!(resp.producer_id.0, i as i64, "v{version}");
            assert_eq!(resp.producer_epoch, 0, "v{version}");
            assert_eq!(resp.throttle_time_ms, 0);
        }
    }

    #[test]
    fn v0_and_v1_requests_decoded_from_raw_bytes_work() {
        // v0/v1 body: transactional_id (nullable string, -1) | transaction_timeout_ms.
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        for version in [0i16, 1] {
            let mut raw = bytes::Bytes::from_static(&[0xff, 0xff, 0, 0, 0xea, 0x60]);
            let req = InitProducerIdRequest::decode(&mut raw, version).unwrap();
            let resp = mgr.handle(&req, version);
            let mut out = BytesMut::new();
            resp.encode(&mut out, version).unwrap();
            // throttle i32 | error i16 | producer_id i64 | epoch i16, no tagged fields.
            assert_eq!(out.len(), 16, "v{version}");
            assert_eq!(&out[4..6], &[0, 0]);
        }
    }

    #[test]
    fn v3_plus_with_a_known_producer_gets_a_new_id_at_epoch_0() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        for version in 3..=5 {
            let first = call(&mgr, &bump(-1, -1), version);
            assert_eq!((first.error_code, first.producer_epoch), (0, 0));
            let pid = first.producer_id.0;
            for epoch in [0, 7, i16::MAX - 1] {
                let next = call(&mgr, &bump(pid, epoch), version);
                assert_eq!(next.error_code, 0, "v{version} epoch {epoch}");
                assert!(next.producer_id.0 > pid, "v{version}: a new id");
                assert_eq!(next.producer_epoch, 0, "v{version}");
            }
        }
    }

    #[test]
    fn an_id_never_issued_here_also_gets_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        let resp = call(&mgr, &bump(5_000_000, 3), 3);
        assert_eq!(resp.error_code, 0);
        assert_eq!((resp.producer_id.0, resp.producer_epoch), (0, 0));
    }

    #[test]
    fn half_set_producer_id_and_epoch_is_an_invalid_request() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = ProducerIdManager::open(dir.path()).unwrap();
        for req in [bump(3, -1), bump(-1, 3)] {
            let resp = call(&mgr, &req, 3);
            assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
            assert_eq!((resp.producer_id.0, resp.producer_epoch), (-1, -1));
        }
    }
}
