//! A finished Fetch: its partitions handed to their pipelines, a failed one retried with
//! a backoff per leader, a throttled one paused (KIP-219), partitions without a leader
//! said once each way.

use super::*;

impl FlowRunner {
    /// A source partition found without a leader in the source's metadata (its only
    /// replicas' nodes down), or with one again: said once each way, and shown (its lag
    /// unknown meanwhile, `/readyz` naming it after a while). One whose topic the metadata
    /// no longer lists (`topic_gone`: deleted, most likely) is said so; discovery then
    /// tells what becomes of it.
    pub(super) fn note_leaderless(
        &mut self,
        sp: &SourcePartition,
        leaderless: bool,
        topic_gone: bool,
    ) {
        let Some(r) = self.partitions.get_mut(sp) else {
            return;
        };
        r.leaderless = leaderless;
        r.stats.set_leaderless(leaderless);
        if topic_gone {
            // (Said once for the topic by the caller.)
            r.stats
                .error("the source topic is no longer in the source's metadata (deleted?)".into());
        } else if leaderless {
            tracing::warn!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, "The source partition has no leader (its replicas' brokers are down?); it is fetched again once it has one.");
        } else {
            tracing::info!(flow = %self.flow.name, topic = %sp.topic, partition = sp.partition, "The source partition has a leader again.");
        }
    }

    /// Hands a finished Fetch's partitions to their pipelines.
    pub(in crate::mirror::flow) fn finish_fetch(&mut self, done: FetchDone, fetches: &mut Fetches) {
        let FetchDone {
            leader,
            kind,
            partitions,
            mut reservation,
            result,
            answered_in,
        } = done;
        fetches.busy.remove(&(leader, kind));
        let now = Instant::now();
        for sp in &partitions {
            if let Some(r) = self.partitions.get_mut(sp) {
                r.fetching = false;
                r.answered_at = Some(now);
            }
        }
        let got = match result {
            Ok(got) => {
                self.stats.source_answered();
                if let Some(failures) = fetches.leader_failures.remove(&leader) {
                    tracing::info!(flow = %self.flow.name, leader, failures, "Fetch works again.");
                }
                if kind.max_wait_ms() == 0 {
                    fetches.answer_time.insert(leader, answered_in);
                }
                got
            }
            Err(e) => {
                let failures = fetches.leader_failures.entry(leader).or_default();
                *failures += 1;
                let failures = *failures;
                let retry = FETCH_RETRY
                    .saturating_mul(1 << (failures - 1).min(5))
                    .min(FETCH_RETRY_MAX);
                let retry_in_ms = retry.as_millis() as u64;
                if failures == 1 || failures.is_multiple_of(FETCH_FAILURES_PER_WARN) {
                    tracing::warn!(flow = %self.flow.name, leader, error = %e, failures, retry_in_ms, "Fetch failed; retrying (further failures in a row are logged at DEBUG, and every {FETCH_FAILURES_PER_WARN}th here).");
                } else {
                    tracing::debug!(flow = %self.flow.name, leader, error = %e, failures, retry_in_ms, "Fetch failed; retrying.");
                }
                self.stats.source_failed(&e);
                // Its partitions' last lag grows stale while the source goes on: unknown
                // once no Fetch of theirs has answered for as long as a failing side takes
                // to be reported (one failure alone is a blip, retried at once).
                let stale = Duration::from_millis(FAILING_GRACE_MS as u64);
                for sp in &partitions {
                    if let Some(r) = self.partitions.get(sp) {
                        if r.stats.fetched_ago().is_none_or(|ago| ago >= stale) {
                            r.stats.fetch_failed();
                        }
                    }
                }
                fetches
                    .leader_not_before
                    .insert(leader, Instant::now() + retry);
                self.refresh_source(fetches);
                return;
            }
        };
        tracing::trace!(flow = %self.flow.name, leader, ?kind, partitions = got.partitions.len(), reserved_bytes = reservation.bytes(), "Fetch response.");
        // Also when the response carries no partition: that is how Kafka answers a Fetch
        // over its quota.
        let throttle_ms = got.throttle_time_ms;
        // A response that carried one partition is handed to it without a copy.
        let alone = got.partitions.len() == 1;
        let mut refresh = false;
        for g in got.partitions {
            refresh |= self.deliver(g, alone, &mut reservation);
        }
        if refresh {
            self.refresh_source(fetches);
        }
        if throttle_ms > 0 {
            // KIP-219: the source broker asked for a pause before the next fetch.
            tracing::debug!(flow = %self.flow.name, leader, throttle_ms, "Source throttled the fetch.");
            fetches.leader_not_before.insert(
                leader,
                Instant::now() + crate::client::throttle_wait(throttle_ms),
            );
        }
    }

    /// Refreshes the source's metadata in the background (once at a time): a partition
    /// without a leader, or a leader that failed, must not hold up the others.
    pub(super) fn refresh_source(&self, fetches: &mut Fetches) {
        if fetches
            .refreshing
            .as_ref()
            .is_some_and(|h| !h.is_finished())
        {
            return;
        }
        let source = self.source.clone();
        fetches.refreshing = Some(tokio::spawn(async move {
            let _ = source.refresh_metadata().await;
        }));
    }
}
