//! The data directory's `meta.properties` (Kafka's file name and key): the cluster id a
//! broker generated when its directory was new. Each cluster then has an id of its own,
//! as Kafka's do (`kafka-storage.sh format` writes a random one), and keeps it across
//! restarts: clients such as kmirror tell clusters apart by it.

use std::io;
use std::path::Path;

/// The file, as Kafka names it.
pub const FILE_NAME: &str = "meta.properties";

/// The id every kmirror-broker reported before ids were kept here: a directory that
/// already holds data keeps it, so a cluster's id does not change with an upgrade.
pub const LEGACY_CLUSTER_ID: &str = "kmirror-local-cluster";

/// The `cluster.id` of `data_dir`'s `meta.properties`; when the file or the key is
/// missing, a new random one (a directory that already holds data: [`LEGACY_CLUSTER_ID`]),
/// written there.
pub fn cluster_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("cluster.id="))
                .map(str::trim)
                .find(|id| !id.is_empty());
            if let Some(id) = stored {
                return Ok(id.to_string());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let holds_data = std::fs::read_dir(data_dir)?.next().is_some();
    let id = if holds_data {
        LEGACY_CLUSTER_ID.to_string()
    } else {
        uuid::Uuid::new_v4().simple().to_string()
    };
    crate::fsutil::write_atomic(&path, format!("version=1\ncluster.id={id}\n").as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_gets_its_own_id_and_keeps_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = cluster_id(&a.path().join("data")).unwrap();
        assert_eq!(cluster_id(&a.path().join("data")).unwrap(), first);
        assert_ne!(cluster_id(b.path()).unwrap(), first);
        std::fs::write(
            b.path().join(FILE_NAME),
            "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n",
        )
        .unwrap();
        assert_eq!(cluster_id(b.path()).unwrap(), "MkU3OEVBNTcwNTJENDM2Qk");
        // A directory from before ids were kept keeps the id its broker reported.
        let c = tempfile::tempdir().unwrap();
        std::fs::write(c.path().join("topics.json"), "[]").unwrap();
        assert_eq!(cluster_id(c.path()).unwrap(), LEGACY_CLUSTER_ID);
        assert_eq!(cluster_id(c.path()).unwrap(), LEGACY_CLUSTER_ID);
    }
}
