//! One partition of a topic: its log (on disk under `<data_dir>/<topic>-<partition>/`, or
//! in memory) and its idempotent-producer state, opened, closed and deleted together.
//! Which partitions a topic has is [`crate::topics`]'.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::log::{LogConfig, LogError, PartitionLog};
use crate::producers::PartitionProducerState;

/// One partition: its log and its idempotent-producer state, each behind a lock. Paths
/// that need both (produce) take `producers` first, then `log`.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Mutex<Box<dyn PartitionLog>>,
    pub producers: Mutex<PartitionProducerState>,
    /// Where the producer-state snapshot is written on clean close.
    snapshot_path: Option<PathBuf>,
}

impl Partition {
    /// Opens (and recovers) partition `index` of `topic`: on disk under `data_dir`, else in
    /// memory; its producer state comes from the snapshot and the log.
    pub(crate) fn open(
        data_dir: Option<&Path>,
        topic: &str,
        index: i32,
        config: LogConfig,
    ) -> Result<Partition, LogError> {
        let now = now_ms();
        let (log, snapshot_path): (Box<dyn PartitionLog>, _) = match data_dir {
            Some(dir) => {
                let dir = partition_dir(dir, topic, index);
                let log = crate::log::disk::DiskLog::open(&dir, config, now)?;
                (Box::new(log), Some(dir.join("producer.snapshot")))
            }
            None => (Box::new(crate::log::memory::MemoryLog::new(config)), None),
        };
        let producers = restore_producers(log.as_ref(), snapshot_path.as_deref(), now);
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            producers: Mutex::new(producers),
            snapshot_path,
        })
    }

    /// Writes the producer-state snapshot (clean shutdown) and closes the log.
    pub(crate) fn close(&self) -> Result<(), LogError> {
        let producers = self.producers.lock().expect("producers lock");
        let mut log = self.log.lock().expect("log lock");
        if let Some(path) = &self.snapshot_path {
            if let Err(e) = producers.save_snapshot(path, log.log_end_offset()) {
                // Not fatal: the next start rebuilds the state from the log.
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "Cannot write producer snapshot.");
            }
        }
        log.close()?;
        Ok(())
    }

    /// Deletes the log and its files. Other holders (an in-flight fetch) keep an Arc; they
    /// see an empty log from then on.
    pub(crate) fn delete_log(&self) -> Result<(), LogError> {
        let log = std::mem::replace(
            &mut *self.log.lock().expect("log lock"),
            Box::new(crate::log::memory::MemoryLog::new(LogConfig::default())),
        );
        log.delete()
    }

    /// Moves the log start offset (DeleteRecords). The producers' state stays: Kafka
    /// removes it only when a producer expires (ProducerStateManager
    /// .onLogStartOffsetIncremented), so a retried batch is still known as a duplicate.
    /// The aborted transactions below the new log start are forgotten, as Kafka deletes a
    /// segment's transaction index with it.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut producers = self.producers.lock().expect("producers lock");
        let start = self
            .log
            .lock()
            .expect("log lock")
            .delete_records_before(offset)?;
        producers.txns.forget_below(start);
        Ok(start)
    }

    /// Applies retention (the producers' state stays, as for DeleteRecords; aborted
    /// transactions below the new log start go); returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut producers = self.producers.lock().expect("producers lock");
        let mut log = self.log.lock().expect("log lock");
        let deleted = log.apply_retention(now_ms)?;
        producers.txns.forget_below(log.log_start_offset());
        Ok(deleted)
    }
}

/// Rebuilds a partition's producer state: the snapshot written at the last clean close
/// (if it matches the log), then every batch after it.
fn restore_producers(
    log: &dyn PartitionLog,
    snapshot: Option<&Path>,
    now_ms: i64,
) -> PartitionProducerState {
    let expiration_ms = crate::producers::DEFAULT_PRODUCER_ID_EXPIRATION_MS;
    let (mut state, from) =
        match snapshot.map(|p| PartitionProducerState::load_snapshot(p, expiration_ms)) {
            Some(Ok(Some((state, offset))))
                if offset >= log.log_start_offset() && offset <= log.log_end_offset() =>
            {
                (state, offset)
            }
            _ => (
                PartitionProducerState::new(expiration_ms),
                log.log_start_offset(),
            ),
        };
    if from < log.log_end_offset() {
        let scanned = log.scan(from, &mut |batch| {
            state.rebuild_from(&batch, now_ms);
            true
        });
        if let Err(e) = scanned {
            tracing::warn!(error = %e, "Cannot rebuild producer state from the log.");
        }
    }
    state
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The directory of partition `index` of `topic`.
pub(crate) fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}
