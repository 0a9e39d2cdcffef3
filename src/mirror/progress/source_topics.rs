//! Which source the progress belongs to, kept with it:
//! - the source's cluster id: another topology's flow of the same name writing into the
//!   same target (or a flow pointed at another source) would otherwise take these
//!   positions for its own, skipping or repeating records;
//! - the id each source topic had when the flow first mirrored it: a topic deleted and
//!   re-created while the daemon was stopped has another id, and its positions belong to
//!   the old topic ([`crate::mirror::flow`] stops it with an ERROR instead of mirroring the
//!   new topic from the old offsets).

use uuid::Uuid;

use super::{Progress, PROGRESS_TOPIC};

/// Why the progress of `flow` is not its source's: it was written for source cluster id
/// `stored`, and the flow's source (cluster `source`) is cluster id `id`. Said by `run`,
/// `plan`, `offsets` and `failover` alike; each adds what it does about it.
pub fn other_source(flow: &str, source: &str, stored: &str, id: &str) -> String {
    format!("the progress of flow {flow} in {PROGRESS_TOPIC} was written for source cluster id {stored}, but the flow's source {source} is cluster id {id}: another topology has a flow named {flow} writing into this target, or the flow's source changed. Its positions and offset maps are not this source's offsets")
}

impl Progress {
    /// The source cluster id stored with the progress; `None` before a flow stored one.
    pub fn source_cluster(&self) -> Option<String> {
        self.lock().source_cluster.clone()
    }

    /// Checks that the progress belongs to the source cluster `cluster_id`, keeping that
    /// id (written with the next progress write) when none is stored; `Err` with the id
    /// stored when it is another.
    pub fn check_source_cluster(&self, cluster_id: &str) -> Result<(), String> {
        let mut st = self.lock();
        match &st.source_cluster {
            Some(stored) if stored != cluster_id => Err(stored.clone()),
            Some(_) => Ok(()),
            None => {
                st.source_cluster = Some(cluster_id.to_string());
                st.source_cluster_dirty = true;
                Ok(())
            }
        }
    }

    /// The id `topic` had when the flow first mirrored it, as stored; `None` before that,
    /// and for progress written before ids were kept.
    pub fn source_topic_id(&self, topic: &str) -> Option<Uuid> {
        self.lock().source_topics.get(topic).copied()
    }

    /// Keeps `id` as the id of `topic` (written with the next progress write) unless one
    /// is kept already; a nil id (a source without topic ids) is not kept.
    pub fn note_source_topic_id(&self, topic: &str, id: Uuid) {
        if id.is_nil() {
            return;
        }
        let mut st = self.lock();
        if !st.source_topics.contains_key(topic) {
            st.source_topics.insert(topic.to_string(), id);
            st.source_topics_dirty.insert(topic.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, Loaded};
    use super::*;

    /// A topic's id is written once, read back by the next start, and never replaced.
    #[test]
    fn a_source_topic_id_is_kept_once_and_read_back() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        p.note_source_topic_id("orders", Uuid::nil());
        assert_eq!(p.source_topic_id("orders"), None);
        p.note_source_topic_id("orders", first);
        p.note_source_topic_id("orders", second);
        assert_eq!(p.source_topic_id("orders"), Some(first));
        let mut taken = p.take();
        let mut loaded = Loaded::default();
        for batch in codec::encode("f", &taken.entries, 1, 1 << 20).unwrap() {
            loaded.apply("f", &batch.bytes).unwrap();
            // Another flow's records are not this flow's.
            loaded.apply("g", &batch.bytes).unwrap();
        }
        taken.written = taken.entries.len();
        drop(taken);
        assert!(p.take().entries.is_empty(), "written once");
        let reloaded = Progress::new("f", loaded, 1 << 20);
        assert_eq!(reloaded.source_topic_id("orders"), Some(first));
        assert_eq!(reloaded.source_topic_id("payments"), None);
    }

    /// The source's cluster id is kept at the first check; a later check with another id
    /// (another topology's flow of the same name, or a changed source) is refused, also
    /// after a restart.
    #[test]
    fn the_source_cluster_is_kept_and_another_refused() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        assert_eq!(p.check_source_cluster("east-id"), Ok(()));
        assert_eq!(p.check_source_cluster("east-id"), Ok(()));
        assert_eq!(p.check_source_cluster("other-id"), Err("east-id".into()));
        let mut taken = p.take();
        let mut loaded = Loaded::default();
        for batch in codec::encode("f", &taken.entries, 1, 1 << 20).unwrap() {
            loaded.apply("f", &batch.bytes).unwrap();
        }
        taken.written = taken.entries.len();
        drop(taken);
        let reloaded = Progress::new("f", loaded, 1 << 20);
        assert_eq!(
            reloaded.check_source_cluster("other-id"),
            Err("east-id".into())
        );
        assert_eq!(reloaded.check_source_cluster("east-id"), Ok(()));
        assert!(reloaded.take().entries.is_empty(), "nothing new to write");
    }
}
