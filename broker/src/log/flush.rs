//! Group commit and interval flushing: fsyncs of log files done outside partition locks,
//! shared among every caller that is waiting at the same time.
//!
//! [`GroupCommit`] runs one background task. A caller of [`GroupCommit::sync`] queues the
//! files it needs durable and waits; the task takes everything queued, fsyncs each
//! distinct file once (`File::sync_data` in `spawn_blocking`), answers every caller of that
//! round, and starts over. So while one round runs, all callers that arrive are covered by
//! the next single round, and a caller is always answered by a round that started after it
//! called. [`spawn_interval_flusher`] drives the same committer on a timer for
//! [`FlushPolicy::Interval`](super::FlushPolicy::Interval).
//!
//! It does not know about partitions or policies: callers decide which files to pass
//! (from [`PartitionLog::sync_handle`](super::PartitionLog::sync_handle)) and when.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Requests that may wait for the next round; callers beyond this wait to enqueue.
const QUEUE_BOUND: usize = 4096;

/// The outcome of one file's fsync, shareable among waiters.
type SyncOutcome = Result<(), (io::ErrorKind, String)>;

struct Request {
    files: Vec<Arc<File>>,
    done: oneshot::Sender<SyncOutcome>,
}

/// A group committer: one fsync per distinct file per round, shared by all waiters.
#[derive(Debug)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    rounds: AtomicU64,
    fsyncs: AtomicU64,
}

impl GroupCommit {
    /// Starts the committer task on the current tokio runtime. The task ends when the
    /// last `GroupCommit` handle is dropped and the queue is drained.
    pub fn spawn() -> Arc<GroupCommit> {
        let (tx, rx) = mpsc::channel(QUEUE_BOUND);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(rx, stats.clone()));
        Arc::new(GroupCommit {
            requests: tx,
            stats,
        })
    }

    /// Returns once an fsync round that started after this call has synced every file in
    /// `files`. Returns at once for an empty list.
    pub async fn sync(&self, files: Vec<Arc<File>>) -> io::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        let gone = || io::Error::other("the group commit task has stopped");
        self.requests
            .send(Request { files, done })
            .await
            .map_err(|_| gone())?;
        match wait.await.map_err(|_| gone())? {
            Ok(()) => Ok(()),
            Err((kind, message)) => Err(io::Error::new(kind, message)),
        }
    }

    /// Fsync rounds completed so far.
    pub fn rounds(&self) -> u64 {
        self.stats.rounds.load(Ordering::Relaxed)
    }

    /// `sync_data` calls made so far.
    pub fn fsyncs(&self) -> u64 {
        self.stats.fsyncs.load(Ordering::Relaxed)
    }
}

/// Identity of an open file: device and inode, or the handle's address if `fstat` fails.
fn file_key(f: &Arc<File>) -> (u64, u64) {
    f.metadata()
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or((u64::MAX, Arc::as_ptr(f) as u64))
}

async fn run(mut rx: mpsc::Receiver<Request>, stats: Arc<Stats>) {
    while let Some(first) = rx.recv().await {
        let mut round = vec![first];
        while round.len() < QUEUE_BOUND {
            match rx.try_recv() {
                Ok(r) => round.push(r),
                Err(_) => break,
            }
        }
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        let mut keys = Vec::with_capacity(round.len());
        for r in &round {
            let ks: Vec<_> = r.files.iter().map(file_key).collect();
            for (k, f) in ks.iter().zip(&r.files) {
                if seen.insert(*k) {
                    files.push((*k, f.clone()));
                }
            }
            keys.push(ks);
        }
        let n = files.len() as u64;
        let results = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|(k, f)| (k, f.sync_data().map_err(|e| (e.kind(), e.to_string()))))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        stats.fsyncs.fetch_add(n, Ordering::Relaxed);
        stats.rounds.fetch_add(1, Ordering::Relaxed);
        for (r, ks) in round.into_iter().zip(keys) {
            let outcome = ks
                .iter()
                .map(|k| {
                    results.iter().find(|(rk, _)| rk == k).map_or_else(
                        || Err((io::ErrorKind::Other, "fsync task failed".to_string())),
                        |(_, res)| res.clone(),
                    )
                })
                .find(Result::is_err)
                .unwrap_or(Ok(()));
            let _ = r.done.send(outcome);
        }
    }
}

/// Every `interval`, asks `handles` for the files to make durable and syncs them through
/// `group` (sharing rounds with any [`FlushPolicy::Always`](super::FlushPolicy::Always)
/// callers). Stops when `handles` returns `None` or the returned task is aborted. Errors
/// are logged and retried at the next tick.
pub fn spawn_interval_flusher<F>(
    group: Arc<GroupCommit>,
    interval: Duration,
    mut handles: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Option<Vec<Arc<File>>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(files) = handles() else { break };
            if let Err(error) = group.sync(files).await {
                tracing::warn!(%error, "interval flush failed; retrying at the next tick");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn files(dir: &std::path::Path, n: usize) -> Vec<Arc<File>> {
        (0..n)
            .map(|i| {
                let mut f = File::create(dir.join(format!("f{i}"))).unwrap();
                f.write_all(b"data").unwrap();
                Arc::new(f)
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let fs = files(dir.path(), 3);
        let group = GroupCommit::spawn();
        let callers = 64;
        let tasks: Vec<_> = (0..callers)
            .map(|i| {
                let group = group.clone();
                // Two handles to the same file, to check the dedupe by inode.
                let dup = Arc::new(fs[i % 3].try_clone().unwrap());
                let set = vec![fs[i % 3].clone(), dup];
                tokio::spawn(async move { group.sync(set).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let rounds = group.rounds();
        assert!(rounds >= 1 && rounds < callers as u64, "rounds = {rounds}");
        assert!(group.fsyncs() <= rounds * 3, "fsyncs = {}", group.fsyncs());
    }

    #[tokio::test]
    async fn a_sync_is_answered_by_a_round_that_started_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let fs = files(dir.path(), 1);
        let group = GroupCommit::spawn();
        group.sync(vec![]).await.unwrap();
        assert_eq!(group.rounds(), 0, "an empty sync needs no round");
        for expected in 1..=3 {
            group.sync(fs.clone()).await.unwrap();
            assert_eq!(group.rounds(), expected);
        }
    }

    #[tokio::test]
    async fn interval_flusher_syncs_until_told_to_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fs = files(dir.path(), 2);
        let group = GroupCommit::spawn();
        let mut ticks = 0;
        let task = spawn_interval_flusher(group.clone(), Duration::from_millis(1), move || {
            ticks += 1;
            (ticks <= 3).then(|| fs.clone())
        });
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.rounds(), 3);
        assert_eq!(group.fsyncs(), 6);
    }
}
