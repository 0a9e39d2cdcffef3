//! Writing progress: what changed since the last write, taken out and put back if the
//! write fails; the periodic writer with its failure reports; an exclusive flow's lease
//! deciding whether anything may be written.

use super::*;

/// How often a progress writer that keeps failing says so again.
const REPORT_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Progress writes failing in a row.
struct Failing {
    since: std::time::Instant,
    /// When it was last reported at WARN (or ERROR).
    reported: Option<std::time::Instant>,
    /// Whether an error that needs an operator was reported (at ERROR, at once).
    reported_fatal: bool,
    count: u64,
}

impl Failing {
    fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            reported: None,
            reported_fatal: false,
            count: 0,
        }
    }

    /// One more failed write of `flow`'s progress: a WARN (an ERROR when it needs an
    /// operator, at once) when none was logged for REPORT_AGAIN, DEBUG otherwise.
    fn failed(&mut self, flow: &str, e: &ClientError) {
        let now = std::time::Instant::now();
        self.count += 1;
        let fatal = e.class() == ErrorClass::Fatal;
        let due = self
            .reported
            .is_none_or(|r| now.duration_since(r) >= REPORT_AGAIN)
            || (fatal && !self.reported_fatal);
        if !due {
            tracing::debug!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; will retry.");
            return;
        }
        self.reported = Some(now);
        self.reported_fatal |= fatal;
        if fatal {
            tracing::error!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; this needs operator action. A restart would mirror again what was acknowledged since the last write.");
        } else {
            tracing::warn!(flow = %flow, error = %e, failed_writes = self.count, "Cannot write mirror progress; will retry (reported again every minute while it fails).");
        }
    }
}

/// The time the final progress write gets when the drain has none left.
const FINAL_WRITE_LEAST: std::time::Duration = std::time::Duration::from_secs(3);

/// Entries taken out of `dirty` for a write; whatever was not written when this is dropped
/// (failure or cancellation) is marked dirty again.
pub(super) struct Taken<'a> {
    progress: &'a Progress,
    pub(super) entries: Vec<Entry>,
    pub(super) written: usize,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut st = self.progress.lock();
        for e in &self.entries[self.written..] {
            match e {
                Entry::Position(sp, _) => {
                    st.dirty.insert(sp.clone());
                }
                Entry::MapChunk(sp, index, chunk) => st.restore_map_change(sp, *index, chunk),
                Entry::Group(group, _) => {
                    st.groups_dirty.insert(group.clone());
                }
                Entry::SourceTopic(topic, _) => {
                    st.source_topics_dirty.insert(topic.clone());
                }
                Entry::SourceCluster(_) => st.source_cluster_dirty = true,
                Entry::Marker(_) => st.marker_dirty = true,
                Entry::Forget(_) => {}
            }
        }
    }
}

impl Progress {
    /// Since when (unix ms) the periodic progress writes fail, with the last error; `None`
    /// while they succeed.
    pub fn write_failing(&self) -> Option<(i64, String)> {
        self.write_failing
            .lock()
            .expect("write failing lock")
            .clone()
    }

    /// Records the outcome of a periodic write.
    pub(super) fn note_write(&self, result: Result<(), &ClientError>) {
        let mut failing = self.write_failing.lock().expect("write failing lock");
        *failing = match result {
            Ok(()) => None,
            Err(e) => {
                let since = failing
                    .as_ref()
                    .map_or_else(crate::telemetry::stats::now_ms, |f| f.0);
                Some((since, e.to_string()))
            }
        };
    }

    /// Takes the changed map chunks (each partition's followed by its position when that
    /// changed too), the other changed positions (current values), the groups and the
    /// marker, in that order.
    pub(super) fn take(&self) -> Taken<'_> {
        let mut st = self.lock();
        let mut dirty = std::mem::take(&mut st.dirty);
        // A partition's map changes are followed by its position, so that one batch
        // carries both ([`codec::encode`]): a crash between two batches of a write never
        // leaves a restarted map without the position it belongs to.
        let changes = st.take_map_changes();
        let mut entries = Vec::with_capacity(changes.len() + dirty.len());
        if std::mem::take(&mut st.source_cluster_dirty) {
            entries.extend(st.source_cluster.clone().map(Entry::SourceCluster));
        }
        let topics = std::mem::take(&mut st.source_topics_dirty);
        entries.extend(topics.into_iter().filter_map(|topic| {
            let id = *st.source_topics.get(&topic)?;
            Some(Entry::SourceTopic(topic, id))
        }));
        let mut changes = changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            let sp = match &change {
                Entry::MapChunk(sp, ..) => sp.clone(),
                _ => {
                    entries.push(change);
                    continue;
                }
            };
            entries.push(change);
            let partition_ends =
                !matches!(changes.peek(), Some(Entry::MapChunk(next, ..)) if *next == sp);
            if partition_ends && dirty.remove(&sp) {
                if let Some(p) = st.positions.get(&sp) {
                    entries.push(Entry::Position(sp, *p));
                }
            }
        }
        entries.extend(dirty.into_iter().filter_map(|sp| {
            let p = *st.positions.get(&sp)?;
            Some(Entry::Position(sp, p))
        }));
        let groups = std::mem::take(&mut st.groups_dirty);
        entries.extend(groups.into_iter().filter_map(|group| {
            let synced = st.groups.get(&group)?.clone();
            Some(Entry::Group(group, synced))
        }));
        if std::mem::take(&mut st.marker_dirty) {
            entries.push(Entry::Marker(st.start_at_end.iter().cloned().collect()));
        }
        Taken {
            progress: self,
            entries,
            written: 0,
        }
    }

    /// Writes what changed since the last write, in batches that fit the topic's
    /// `max.message.bytes`, one batch per request. What is not written stays dirty.
    /// From now on, writes only while `lease` holds (an exclusive flow's owner).
    pub fn write_only_under(&self, lease: Lease) {
        let _ = self.gate.set(Arc::new(lease.clone()));
        let _ = self.lease.set(lease);
    }

    /// The gate the flow's batches pass when their Produce request is built: the lease of
    /// an exclusive flow's owner, none otherwise.
    pub fn send_gate(&self) -> Option<Gate> {
        self.gate.get().cloned()
    }

    /// Whether this daemon may write now: not an exclusive flow's owner whose lease lapsed.
    pub fn may_write(&self) -> bool {
        self.lease.get().is_none_or(Lease::held)
    }

    /// Returns once this daemon may send: at once but for an exclusive flow's owner whose
    /// lease lapsed, which waits until it is renewed (or its flow ends).
    pub async fn wait_owned(&self) {
        if let Some(lease) = self.lease.get() {
            lease.wait_held().await;
        }
    }

    fn check_lease(&self, target: &ClusterClient) -> Result<(), ClientError> {
        if self.may_write() {
            return Ok(());
        }
        Err(ClientError::Incomplete {
            cluster: target.name().to_string(),
            what: format!("writing {PROGRESS_TOPIC}: this daemon's ownership of the flow lapsed (its session may have expired; another kmirror may own the flow)"),
        })
    }

    pub async fn write(&self, target: &ClusterClient) -> Result<usize, ClientError> {
        let _turn = self.writing.lock().await;
        self.check_lease(target)?;
        let mut taken = self.take();
        if taken.entries.is_empty() {
            return Ok(0);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let limit = self.max_batch_bytes.load(Ordering::Relaxed);
        // The daemon's own finding, not the broker's MESSAGE_TOO_LARGE.
        let batches = codec::encode(&self.flow, &taken.entries, now, limit).map_err(|e| {
            ClientError::Refused {
                cluster: target.name().to_string(),
                what: format!("writing {PROGRESS_TOPIC}: {e}"),
            }
        })?;
        for batch in batches {
            self.check_lease(target)?;
            if let Err(e) = store::send_batch(target, batch.bytes).await {
                if let ClientError::Broker {
                    error: ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge,
                    ..
                } = &e
                {
                    // The topic's limit was lowered since it was read: smaller batches.
                    self.max_batch_bytes
                        .store((limit / 2).max(1024), Ordering::Relaxed);
                    return Err(ClientError::Incomplete {
                        cluster: target.name().to_string(),
                        what: format!("{e}; writing smaller batches next time"),
                    });
                }
                return Err(e);
            }
            taken.written = batch.entries.end;
        }
        Ok(taken.entries.len())
    }

    /// Writes every `interval` until `stop`; then writes once more, retrying for up to
    /// `drain`'s deadline, so a restart does not mirror again what was acknowledged.
    pub async fn run_writer(
        self: Arc<Self>,
        target: Arc<ClusterClient>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
        drain: crate::mirror::Drain,
    ) {
        // A target that is down fails every write: reported at once, then once every
        // REPORT_AGAIN with the count (each failure at DEBUG), and its end at INFO.
        let mut failing: Option<Failing> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            // An owner whose lease lapsed writes nothing: its ownership ends any moment.
            if !self.may_write() {
                continue;
            }
            // A target that accepts and never answers holds a write (and the metadata
            // refresh after a failed one) for the request timeout: the stop does not wait
            // for it. Nothing is lost: what a cancelled write took stays to be written.
            let written = tokio::select! {
                _ = stop.cancelled() => break,
                written = self.write(&target) => written,
            };
            self.note_write(written.as_ref().map(|_| ()));
            if let Err(e) = written {
                failing
                    .get_or_insert_with(Failing::new)
                    .failed(&self.flow, &e);
                let refreshed = tokio::select! {
                    _ = stop.cancelled() => break,
                    refreshed = target.refresh_metadata() => refreshed,
                };
                if refreshed.is_err() {
                    tracing::debug!(flow = %self.flow, "Target metadata refresh failed.");
                }
            } else if let Some(f) = failing.take() {
                tracing::info!(flow = %self.flow, failed_writes = f.count, failing_for_s = f.since.elapsed().as_secs(), "Mirror progress written again.");
            }
        }
        if !self.may_write() {
            tracing::warn!(flow = %self.flow, "The final progress write is skipped: this daemon's ownership of the flow lapsed, and another kmirror may own it and have stored newer positions. The next owner mirrors again what was acknowledged since the last write.");
            return;
        }
        // What the drain left, but time for one write even when it left nothing: a write
        // takes milliseconds when the target answers, and this bounds one that does not.
        // The retries get the same time: a target back within it is still written to.
        let time = drain.remaining().max(FINAL_WRITE_LEAST);
        let last = tokio::time::timeout(
            time,
            target.retry("writing the final progress", Some(time), || {
                self.write(&target)
            }),
        )
        .await;
        let failed = match last {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} ms", time.as_millis())),
        };
        if let Some(error) = failed {
            tracing::warn!(flow = %self.flow, error, "The final progress write failed; the restart mirrors again what was acknowledged since the last successful write.");
        }
    }
}
