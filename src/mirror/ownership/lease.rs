//! How long this daemon may still act as the owner of an exclusive flow: until its
//! member's session could expire, counted from the coordinator's last answer (less
//! [`super::member::LEASE_MARGIN`]). The member renews it with every answer while it owns
//! the flow and ends it when it leaves the group; the flow's progress is written only
//! while it holds. A daemon
//! stopped past its session (SIGSTOP, a stalled host) finds it lapsed when it runs
//! again, before its member could notice anything: the progress it acknowledged before the
//! stop is stale by then (another daemon owns the flow and stored newer positions), and
//! written over them it would make the next owner mirror everything since again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Shared between a flow's ownership member and the flow; cheap to check.
#[derive(Clone, Debug)]
pub struct Lease(Arc<State>);

#[derive(Debug)]
struct State {
    base: Instant,
    /// Nanoseconds after `base` up to which the lease holds; 0: not held.
    until_ns: AtomicU64,
}

impl Default for Lease {
    fn default() -> Self {
        Self(Arc::new(State {
            base: Instant::now(),
            until_ns: AtomicU64::new(0),
        }))
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
}
