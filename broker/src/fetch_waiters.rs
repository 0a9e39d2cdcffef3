//! Long-polling fetches wait on their own partitions, as Kafka's fetch purgatory watches a
//! delayed fetch under each partition it reads (DelayedOperationPurgatory
//! .tryCompleteElseWatch) and an append checks only the fetches watching its partition
//! (ReplicaManager.addCompletePurgatoryAction). One broker-wide wake-up made every
//! append re-read every waiting fetch, whatever it read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// The fetches waiting on one topic's partitions, by partition.
type ByPartition = HashMap<i32, Vec<Weak<Notify>>>;

/// The fetches waiting, by topic name and partition.
#[derive(Debug, Default)]
pub struct FetchWaiters {
    watching: Mutex<HashMap<String, ByPartition>>,
}

impl FetchWaiters {
    /// Watches `partitions` for appends until the returned watch is dropped. An append
    /// made after this call and before the wait is not missed: it leaves a permit.
    pub fn watch<'a>(
        self: &Arc<Self>,
        partitions: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Watch {
        let notify = Arc::new(Notify::new());
        let mut keys: Vec<(String, i32)> = Vec::new();
        let mut watching = self.watching.lock().expect("fetch waiters lock");
        // A partition named twice is watched twice; the watch's drop removes both.
        for (topic, index) in partitions {
            let by_index = match watching.get_mut(topic) {
                Some(by_index) => by_index,
                None => watching.entry(topic.to_string()).or_default(),
            };
            by_index
                .entry(index)
                .or_default()
                .push(Arc::downgrade(&notify));
            keys.push((topic.to_string(), index));
        }
        Watch {
            waiters: Arc::clone(self),
            keys,
            notify,
        }
    }

    /// Wakes the fetches watching `topic`'s partition `index`.
    pub fn appended(&self, topic: &str, index: i32) {
        let watching = self.watching.lock().expect("fetch waiters lock");
        let waiting = watching
            .get(topic)
            .and_then(|by_index| by_index.get(&index));
        for notify in waiting.into_iter().flatten().filter_map(Weak::upgrade) {
            notify.notify_one();
        }
    }
}

/// One fetch's watch over its partitions.
#[derive(Debug)]
pub struct Watch {
    waiters: Arc<FetchWaiters>,
    keys: Vec<(String, i32)>,
    notify: Arc<Notify>,
}

impl Watch {
    /// Returns once one of the watched partitions was appended to since the last return
    /// (or since the watch began).
    pub async fn appended(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watching = self.waiters.watching.lock().expect("fetch waiters lock");
        let mine = Arc::downgrade(&self.notify);
        for (topic, index) in &self.keys {
            let Some(by_index) = watching.get_mut(topic.as_str()) else {
                continue;
            };
            if let Some(waiting) = by_index.get_mut(index) {
                waiting.retain(|w| !w.ptr_eq(&mine));
                if waiting.is_empty() {
                    by_index.remove(index);
                }
            }
            if by_index.is_empty() {
                watching.remove(topic.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn an_append_wakes_only_the_fetches_watching_its_partition() {
        let waiters = Arc::new(FetchWaiters::default());
        let a0 = waiters.watch([("a", 0)]);
        let a1_b0 = waiters.watch([("a", 1), ("b", 0)]);
        waiters.appended("a", 1);
        waiters.appended("c", 0);
        assert!(
            a0.appended().now_or_never().is_none(),
            "a-0 was not appended to"
        );
        assert!(
            a1_b0.appended().now_or_never().is_some(),
            "a-1 was appended to"
        );
        assert!(
            a1_b0.appended().now_or_never().is_none(),
            "one wake per append"
        );
        waiters.appended("b", 0);
        assert!(a1_b0.appended().now_or_never().is_some());
        assert!(a0.appended().now_or_never().is_none());
    }

    #[test]
    fn a_dropped_watch_leaves_nothing_behind() {
        let waiters = Arc::new(FetchWaiters::default());
        let kept = waiters.watch([("a", 0)]);
        drop(waiters.watch([("a", 0), ("a", 0), ("b", 3)]));
        let watching = waiters.watching.lock().unwrap();
        assert_eq!(watching.len(), 1);
        assert_eq!(watching["a"][&0].len(), 1);
        drop(watching);
        drop(kept);
        assert!(waiters.watching.lock().unwrap().is_empty());
    }
}
