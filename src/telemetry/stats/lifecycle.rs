//! A flow's lifecycle as the status reports it: started, restarting, standing by, joining
//! its ownership group, failing to start, giving up; and the fetch loop's heartbeat.

use super::*;

impl FlowStats {
    /// The flow (re)starts, after a reload or a change of owner: it keeps its counters,
    /// but what described its last run goes (the partitions, which the new run counts
    /// again as it finds them, and whether its clusters were failing), so a topic the
    /// reload took out, or a drain the reload cut short, is not reported on and on.
    pub fn restarting(&self) {
        self.set_started(false);
        self.gave_up.store(false, Ordering::Relaxed);
        self.partitions.lock().expect("partitions lock").clear();
        self.target_failing_since_ms.store(0, Ordering::Relaxed);
        self.source_failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// The flow finished starting (`true`), or is (re)starting (`false`).
    pub fn set_started(&self, started: bool) {
        if started {
            self.started_ms.store(now_ms(), Ordering::Relaxed);
        }
        self.started.store(started, Ordering::Relaxed);
        *self.start_error.lock().expect("start error lock") = None;
    }

    /// A request of the flow's setup (loading its progress, its producer id) failed and is
    /// retried: counted as an error of class `setup`, and the reason it has not started.
    pub fn setup_retried(&self, error: &dyn std::fmt::Display) {
        self.count_error("setup");
        self.start_failed(error);
    }

    /// Starting the flow failed with `error` (it is retried, or needs an operator): the
    /// reason it has not started, and its last error.
    pub fn start_failed(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        *self.start_error.lock().expect("start error lock") = Some(error.clone());
        *self.last_error.lock().expect("error lock") = Some((now_ms(), error));
    }

    /// A discovery round could not read the clusters' metadata (the next one asks again):
    /// counted as an error of class `discovery`, the last error, and before the flow
    /// started, the reason it has not.
    pub fn discovery_failed(&self, error: &dyn std::fmt::Display) {
        self.count_error("discovery");
        if self.is_started() {
            *self.last_error.lock().expect("error lock") = Some((now_ms(), error.to_string()));
        } else {
            self.start_failed(error);
        }
    }

    /// Why the flow has not started, once its setup failed; `None` once it started.
    pub fn start_error(&self) -> Option<String> {
        self.start_error.lock().expect("start error lock").clone()
    }

    /// The fetch loop turned (`running`), or ended (`!running`).
    pub fn beat(&self, running: bool) {
        let at = if running { now_ms() } else { 0 };
        self.loop_beat_ms.store(at, Ordering::Relaxed);
    }

    /// Unix ms of the fetch loop's last turn, while it runs.
    pub fn loop_beat_ms(&self) -> Option<i64> {
        Some(self.loop_beat_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// The flow stopped for good: it needs an operator, and nothing is retried.
    pub fn gave_up(&self) {
        self.gave_up.store(true, Ordering::Relaxed);
    }

    /// Whether the flow stopped for good ([`Self::gave_up`]).
    pub fn has_given_up(&self) -> bool {
        self.gave_up.load(Ordering::Relaxed)
    }

    /// Whether another kmirror owns the flow and this one stands by (`exclusive: true`).
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Relaxed);
    }

    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
    }

    /// Why this kmirror is not in the flow's ownership group; `None` once it is.
    pub fn set_joining(&self, why: Option<String>) {
        *self.joining.lock().expect("joining lock") = why;
    }

    pub fn joining(&self) -> Option<String> {
        self.joining.lock().expect("joining lock").clone()
    }
}
