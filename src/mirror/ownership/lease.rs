//! How long this daemon may still act as the owner of an exclusive flow: until its
//! member's session could expire, counted from the coordinator's last answer (less
//! [`super::member::LEASE_MARGIN`]). The member renews it with every answer while it owns
//! the flow and ends it when it leaves the group; the flow's progress is written only
//! while it holds. A daemon
//! stopped past its session (SIGSTOP, a stalled host) finds it lapsed when it runs
//! again, before its member could notice anything: the progress it acknowledged before the
//! stop is stale by then (another daemon owns the flow and stored newer positions), and
//! written over them it would make the next owner mirror everything since again. The
//! flow's pipelines send nothing while it has lapsed ([`Lease::wait_held`]): each batch
//! they held from before the stop would reach the target after the other daemon mirrored
//! it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

/// Shared between a flow's ownership member and the flow; cheap to check.
#[derive(Clone, Debug)]
pub struct Lease(Arc<State>);

#[derive(Debug)]
struct State {
    base: Instant,
    /// Nanoseconds after `base` up to which the lease holds; 0: not held.
    until_ns: AtomicU64,
    /// Woken when the lease is renewed.
    renewed: Notify,
}

impl Default for Lease {
    fn default() -> Self {
        Self(Arc::new(State {
            base: Instant::now(),
            until_ns: AtomicU64::new(0),
            renewed: Notify::new(),
        }))
    }
}

/// A batch of an exclusive flow goes out only while the lease holds.
impl crate::client::produce_lane::SendGate for Lease {
    fn open(&self) -> bool {
        self.held()
    }
    fn closed_reason(&self) -> &'static str {
        "this daemon's ownership of the flow lapsed (another kmirror may own it)"
    }
}

impl Lease {
    /// Holds until `until`.
    pub fn hold_until(&self, until: Instant) {
        let ns = until.saturating_duration_since(self.0.base).as_nanos();
        self.0.until_ns.store(
            u64::try_from(ns).unwrap_or(u64::MAX).max(1),
            Ordering::Release,
        );
        self.0.renewed.notify_waiters();
    }

    /// No longer held.
    pub fn end(&self) {
        self.0.until_ns.store(0, Ordering::Release);
    }

    /// Whether it holds now.
    pub fn held(&self) -> bool {
        let until = self.0.until_ns.load(Ordering::Acquire);
        until != 0 && (self.0.base.elapsed().as_nanos() as u64) < until
    }

    /// Returns once it holds: at once while it does, else when it is renewed. A lease that
    /// lapsed for good is never renewed; its flow then ends, and with it this wait.
    pub async fn wait_held(&self) {
        // The common case, once per batch: no waiter list touched.
        if self.held() {
            return;
        }
        loop {
            let renewed = self.0.renewed.notified();
            tokio::pin!(renewed);
            renewed.as_mut().enable();
            if self.held() {
                return;
            }
            renewed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_holds_until_its_time_and_not_after_it_ended() {
        let lease = Lease::default();
        assert!(!lease.held(), "not held before it is given");
        lease.hold_until(Instant::now() + Duration::from_secs(60));
        assert!(lease.held());
        lease.hold_until(Instant::now() - Duration::from_millis(1));
        assert!(!lease.held(), "lapsed");
        lease.hold_until(Instant::now() + Duration::from_secs(60));
        lease.end();
        assert!(!lease.held(), "ended");
    }

    #[tokio::test]
    async fn waiting_for_a_lapsed_lease_ends_when_it_is_renewed() {
        use futures::FutureExt;
        let lease = Lease::default();
        lease.hold_until(Instant::now() + Duration::from_secs(60));
        assert!(lease.wait_held().now_or_never().is_some(), "held: no wait");
        lease.hold_until(Instant::now() - Duration::from_millis(1));
        let waiting = tokio::spawn({
            let lease = lease.clone();
            async move { lease.wait_held().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "lapsed: it waits");
        lease.hold_until(Instant::now() + Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("renewed: the wait ends")
            .unwrap();
    }
}
