//! The group sync's notes kept with the progress: the committed source offsets it last
//! read per group (what `kmirror failover` translates while the source is down), and the
//! source offsets whose translations it last committed to the target group (what tells a
//! rewound source group from a target group its consumers moved on).

use super::codec::GROUP_METADATA_BYTES;
use super::{Progress, SyncedGroup};

/// How often the time of a read is written again while a group's offsets stay the same.
pub const READ_AT_REFRESH_MS: i64 = 60_000;

impl Progress {
    /// Records the committed source offsets the group sync read for `group`, with the
    /// metadata of those that carried some (written with the next progress write; the
    /// metadata only while it comes to at most [`GROUP_METADATA_BYTES`]); whether they
    /// changed. What was committed stays. Offsets read again unchanged refresh the time
    /// of the read every [`READ_AT_REFRESH_MS`], so a failover while the source is down
    /// says how old they are within that.
    pub fn note_group(
        &self,
        group: &str,
        offsets: Vec<(String, i32, i64)>,
        metadata: Vec<(String, i32, String)>,
        read_at_ms: i64,
    ) -> bool {
        let kept_bytes: usize = metadata.iter().map(|(t, _, m)| t.len() + m.len()).sum();
        let metadata = if kept_bytes <= GROUP_METADATA_BYTES {
            metadata
        } else {
            Vec::new()
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(g) = st
            .groups
            .get_mut(group)
            .filter(|g| g.offsets == offsets && g.metadata == metadata)
        {
            if read_at_ms - g.read_at_ms >= READ_AT_REFRESH_MS {
                g.read_at_ms = read_at_ms;
                st.groups_dirty.insert(group.to_string());
            }
            return false;
        }
        let committed = st
            .groups
            .remove(group)
            .map(|g| g.committed)
            .unwrap_or_default();
        st.groups.insert(
            group.to_string(),
            SyncedGroup {
                offsets,
                read_at_ms,
                committed,
                metadata,
            },
        );
        st.groups_dirty.insert(group.to_string());
        true
    }

    /// Records that the translations of these `(topic, partition, source offset)` were
    /// committed to the target group `group` (written with the next progress write).
    pub fn note_committed(&self, group: &str, committed: &[(String, i32, i64)]) {
        let mut st = self.lock();
        let Some(g) = st.groups.get_mut(group) else {
            return;
        };
        let mut changed = false;
        for (topic, partition, offset) in committed {
            match g
                .committed
                .iter_mut()
                .find(|(t, p, _)| t == topic && p == partition)
            {
                Some(entry) if entry.2 == *offset => {}
                Some(entry) => {
                    entry.2 = *offset;
                    changed = true;
                }
                None => {
                    g.committed.push((topic.clone(), *partition, *offset));
                    changed = true;
                }
            }
        }
        if changed {
            st.groups_dirty.insert(group.to_string());
        }
    }

    /// What the group sync last read and committed for `group`, if anything.
    pub fn synced_group(&self, group: &str) -> Option<SyncedGroup> {
        self.lock().groups.get(group).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, Loaded};
    use super::*;

    /// A rewind read while the target group could not be committed (its consumers were
    /// active) must not hide what was committed: reads replace the read offsets only.
    #[test]
    fn what_was_committed_outlives_later_reads_and_is_stored() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        let at = |offset| vec![("t".to_string(), 0, offset)];
        assert!(p.note_group("g", at(500), Vec::new(), 1));
        p.note_committed("g", &at(500));
        assert!(p.note_group("g", at(10), Vec::new(), 2));
        let g = p.synced_group("g").unwrap();
        assert_eq!((g.offsets, g.committed), (at(10), at(500)));
        let taken = p.take();
        let mut loaded = Loaded::default();
        for batch in codec::encode("f", &taken.entries, 1, 1 << 20).unwrap() {
            loaded.apply("f", &batch.bytes).unwrap();
        }
        let reloaded = Progress::new("f", loaded, 1 << 20);
        assert_eq!(reloaded.synced_group("g").unwrap().committed, at(500));
        reloaded.note_committed("g", &at(10));
        assert_eq!(reloaded.synced_group("g").unwrap().committed, at(10));
    }

    /// Offsets read again unchanged are not written again at every read, but the time of
    /// the read is, once a minute: a failover while the source is down tells their age.
    #[test]
    fn an_unchanged_read_refreshes_its_time_once_a_minute() {
        let p = Progress::new("f", Loaded::default(), 1 << 20);
        let at = |offset| vec![("t".to_string(), 0, offset)];
        // What a write takes (all of it written).
        let written = || {
            let mut taken = p.take();
            taken.written = taken.entries.len();
            taken.written
        };
        assert!(p.note_group("g", at(500), Vec::new(), 1_000));
        assert_eq!(written(), 1);
        assert!(!p.note_group("g", at(500), Vec::new(), 1_000 + READ_AT_REFRESH_MS - 1));
        assert_eq!(written(), 0, "nothing to write yet");
        assert_eq!(p.synced_group("g").unwrap().read_at_ms, 1_000);
        assert!(!p.note_group("g", at(500), Vec::new(), 1_000 + READ_AT_REFRESH_MS));
        assert_eq!(written(), 1, "the read's time is written again");
        assert_eq!(
            p.synced_group("g").unwrap().read_at_ms,
            1_000 + READ_AT_REFRESH_MS
        );
    }
}
