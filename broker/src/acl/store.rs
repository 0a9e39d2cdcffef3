//! ACLs on disk: `acls.json` in the data directory, one JSON array of bindings, written
//! atomically (temporary file, fsync, rename) on every change.

use std::path::{Path, PathBuf};

use super::AclBinding;

pub(super) const FILE: &str = "acls.json";

#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    #[error("cannot read ACLs from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ACL file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write ACLs to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn load(path: &Path) -> Result<Vec<AclBinding>, AclStoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AclStoreError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let acls: Vec<AclBinding> =
        serde_json::from_slice(&bytes).map_err(|e| AclStoreError::Corrupt {
            path: path.into(),
            message: e.to_string(),
        })?;
    if let Some(bad) = acls.iter().find_map(|a| a.validate().err()) {
        return Err(AclStoreError::Corrupt {
            path: path.into(),
            message: bad,
        });
    }
    Ok(acls)
}

pub(super) fn save(path: &Path, acls: &[AclBinding]) -> Result<(), AclStoreError> {
    let bytes = serde_json::to_vec_pretty(acls).expect("ACLs serialize");
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| AclStoreError::Write {
        path: path.into(),
        source,
    })
}
