//! The transaction coordinator's state on disk: every change is written to
//! `<data_dir>/transactions.json` before it is answered (Kafka writes it to
//! `__transaction_state`), so a restarted broker goes on with its transactions; one that
//! cannot be written is undone and answered NOT_COORDINATOR, as Kafka answers a failed
//! append of the transaction log (TransactionStateManager.appendTransactionToLog, a
//! storage error).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;

use super::coordinator::{Coordinator, Txns};

/// The coordinator's file in the data directory.
pub const FILE_NAME: &str = "transactions.json";
const FILE_VERSION: u32 = 1;

/// The file: `{"version": 1, "transactions": {id: state}}`.
#[derive(serde::Deserialize)]
struct File {
    version: u32,
    transactions: Txns,
}

#[derive(serde::Serialize)]
struct FileRef<'a> {
    version: u32,
    transactions: &'a Txns,
}

impl Coordinator {
    /// The coordinator of a broker with `data_dir` (its state as last written), or one in
    /// memory.
    pub fn open(data_dir: Option<&Path>) -> std::io::Result<Self> {
        let Some(dir) = data_dir else {
            return Ok(Self::default());
        };
        let path = dir.join(FILE_NAME);
        let txns = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                if file.version != FILE_VERSION {
                    return Err(std::io::Error::other(format!(
                        "{} has version {}; this broker reads version {FILE_VERSION}",
                        path.display(),
                        file.version
                    )));
                }
                file.transactions
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            txns: Mutex::new(txns),
            path: Some(path),
        })
    }

    /// Writes the state (nothing in memory).
    fn save(&self, txns: &Txns) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = FileRef {
            version: FILE_VERSION,
            transactions: txns,
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Runs `f` on the state of `transactional_id` and writes the outcome; if it cannot be
    /// written, the change is undone and the request answered NOT_COORDINATOR.
    pub(super) fn mutate<T>(
        &self,
        transactional_id: &str,
        f: impl FnOnce(&mut Txns) -> Result<T, ResponseError>,
    ) -> Result<T, ResponseError> {
        let mut txns = self.lock();
        let before = txns.get(transactional_id).cloned();
        let undo = |txns: &mut Txns| match before.clone() {
            Some(b) => txns.insert(transactional_id.to_string(), b),
            None => txns.remove(transactional_id),
        };
        let out = match f(&mut txns) {
            Ok(out) => out,
            Err(e) => {
                undo(&mut txns);
                return Err(e);
            }
        };
        if txns.get(transactional_id) == before.as_ref() {
            return Ok(out);
        }
        if let Err(e) = self.save(&txns) {
            tracing::error!(transactional_id, error = %e, "Cannot write the transaction state.");
            undo(&mut txns);
            return Err(ResponseError::NotCoordinator);
        }
        Ok(out)
    }

    /// Writes the state after an internal change; if it cannot, puts `before` back and
    /// answers false (the change is tried again later).
    pub(super) fn save_or_undo(&self, txns: &mut Txns, before: Txns) -> bool {
        match self.save(txns) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "Cannot write the transaction state.");
                *txns = before;
                false
            }
        }
    }

    /// Writes the state after an internal change that stands whether or not it is written
    /// (logged if it cannot be).
    pub(super) fn save_logged(&self, txns: &Txns) {
        if let Err(e) = self.save(txns) {
            tracing::error!(error = %e, "Cannot write the transaction state.");
        }
    }
}
