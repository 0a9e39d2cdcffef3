//! One source partition's stats: its state, how far the mirror is behind it (in records
//! and in seconds), and its last error.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A partition's state, as `kmirror_partitions{state}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    Running = 0,
    /// Stopped on purpose: its topic was re-created, or the flow is draining.
    Stopped = 1,
    /// Stopped by an error that needs an operator.
    Failed = 2,
}

impl PartitionState {
    pub const ALL: [PartitionState; 3] = [Self::Running, Self::Stopped, Self::Failed];

    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Stopped,
            2 => Self::Failed,
            _ => Self::Running,
        }
    }
}

/// One source partition of a flow.
#[derive(Debug)]
pub struct PartitionStats {
    /// The source's high watermark at the last Fetch (or ListOffsets, while fetching is
    /// held back); -1 until one answered.
    high_watermark: AtomicI64,
    /// The source's last stable offset at the last Fetch: what the daemon (reading
    /// committed records only) can reach; below the high watermark while a transaction is
    /// open in the source. -1 until one answered.
    last_stable_offset: AtomicI64,
    /// When (a monotonic ms count, [`now_monotonic_ms`]) a Fetch last reported the high
    /// watermark; 0 before the first.
    fetched_at_ms: AtomicU64,
    /// The next source offset the target acknowledged.
    position: AtomicI64,
    /// Timestamp (ms) of the oldest batch held and not yet acknowledged; `i64::MIN` if none.
    oldest_held_ms: AtomicI64,
    /// Timestamp (ms) of the newest record mirrored; `i64::MIN` before the first.
    pub(super) last_mirrored_ms: AtomicI64,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
    /// When the flow first counted this partition (ms since the epoch).
    created_ms: i64,
    /// When its position last moved forward (ms since the epoch; `created_ms` before).
    advanced_ms: AtomicI64,
    /// When a Fetch or ListOffsets last found it caught up (ms since the epoch; 0 before).
    caught_up_ms: AtomicI64,
    /// Since when the source's metadata names no leader for it (ms since the epoch; 0
    /// while it has one).
    leaderless_since_ms: AtomicI64,
    /// Whether `last_error` is a transient one ([`Self::error`]), cleared by progress.
    transient_error: AtomicBool,
    /// Its source topic was re-created ([`Self::source_recreated`]): the source's ends are
    /// the new topic's, unrelated to this position, and no longer recorded.
    source_recreated: AtomicBool,
    /// Its source topic is gone from the source cluster ([`Self::source_deleted`]).
    source_deleted: AtomicBool,
}

impl PartitionStats {
    pub(super) fn new(position: i64) -> Self {
        let now = super::now_ms();
        Self {
            high_watermark: AtomicI64::new(-1),
            last_stable_offset: AtomicI64::new(-1),
            fetched_at_ms: AtomicU64::new(0),
            position: AtomicI64::new(position),
            oldest_held_ms: AtomicI64::new(i64::MIN),
            last_mirrored_ms: AtomicI64::new(i64::MIN),
            state: AtomicU8::new(PartitionState::Running as u8),
            last_error: Mutex::new(None),
            created_ms: now,
            advanced_ms: AtomicI64::new(now),
            caught_up_ms: AtomicI64::new(0),
            leaderless_since_ms: AtomicI64::new(0),
            transient_error: AtomicBool::new(false),
            source_recreated: AtomicBool::new(false),
            source_deleted: AtomicBool::new(false),
        }
    }

    /// When the flow first counted this partition (ms since the epoch).
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    pub fn fetched(&self, high_watermark: i64, last_stable_offset: i64) {
        if self.source_recreated.load(Ordering::Relaxed) {
            return;
        }
        self.note_caught_up(last_stable_offset, super::now_ms);
        self.high_watermark.store(high_watermark, Ordering::Relaxed);
        self.last_stable_offset
            .store(last_stable_offset, Ordering::Relaxed);
        self.fetched_at_ms
            .store(now_monotonic_ms(), Ordering::Relaxed);
    }

    /// How long since a Fetch last reported the high watermark (`None` before the first).
    pub fn fetched_ago(&self) -> Option<Duration> {
        match self.fetched_at_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_monotonic_ms().saturating_sub(at))),
        }
    }

    /// When (Unix ms) a Fetch last reported the high watermark (`None` before the first).
    pub fn last_fetched_ms(&self) -> Option<i64> {
        self.fetched_ago()
            .map(|ago| super::now_ms() - i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
    }

    /// The end the source's leader gave (ListOffsets read_committed: the last stable
    /// offset) while this partition is not fetched (its memory share is full): both ends
    /// only move up by it, as a Fetch that answers meanwhile is as new.
    pub fn listed(&self, last_stable_offset: i64) {
        if self.source_recreated.load(Ordering::Relaxed) {
            return;
        }
        self.note_caught_up(last_stable_offset, super::now_ms);
        self.high_watermark
            .fetch_max(last_stable_offset, Ordering::Relaxed);
        self.last_stable_offset
            .fetch_max(last_stable_offset, Ordering::Relaxed);
    }

    pub fn advanced(&self, next_source_offset: i64) {
        if self.position.load(Ordering::Relaxed) < next_source_offset {
            self.advanced_at(next_source_offset, super::now_ms());
        }
    }

    /// [`Self::advanced`] with the clock already read (once per acknowledged batch).
    pub fn advanced_at(&self, next_source_offset: i64, now_ms: i64) {
        let before = self
            .position
            .fetch_max(next_source_offset, Ordering::Relaxed);
        if before < next_source_offset {
            self.advanced_ms.store(now_ms, Ordering::Relaxed);
            // Moving again: a transient error is over (one that stopped it stays).
            if self.transient_error.load(Ordering::Relaxed)
                && self.transient_error.swap(false, Ordering::Relaxed)
                && self.state() == PartitionState::Running
            {
                *self.last_error.lock().expect("error lock") = None;
            }
        }
    }

    /// When its position last moved forward (ms since the epoch; when the flow counted it,
    /// before).
    pub fn advanced_ms(&self) -> i64 {
        self.advanced_ms.load(Ordering::Relaxed)
    }

    /// Notes `now_ms()` when the source's end (`last_stable_offset`) is no further than the
    /// position: the partition is caught up, whether or not it moved lately.
    /// The clock is read only then: most Fetches of a partition that is behind skip it.
    pub(super) fn note_caught_up(&self, last_stable_offset: i64, now_ms: impl FnOnce() -> i64) {
        if last_stable_offset >= 0 && last_stable_offset <= self.position() {
            self.caught_up_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Fetches of the partition fail (its leader is unreachable, e.g. the link to the
    /// source's datacenter is down): its lag is unknown, not the last one seen, until a
    /// Fetch answers again ([`Self::fetched`]).
    pub fn fetch_failed(&self) {
        self.high_watermark.store(-1, Ordering::Relaxed);
        self.last_stable_offset.store(-1, Ordering::Relaxed);
    }

    /// Its source topic was deleted and re-created: the partition stopped, and its lag is
    /// unknown from now on (the new topic's offsets start again; set against the old
    /// topic's position they would be a number that means nothing).
    pub fn source_recreated(&self) {
        self.source_recreated.store(true, Ordering::Relaxed);
        self.fetch_failed();
    }

    /// Its source topic is gone from the source cluster (`true`: deleted; the partition
    /// waits for it, its lag unknown), or is back. Readiness does not count a partition
    /// waiting so: the daemon cannot mirror what the source no longer has, and a restart
    /// would not list it at all.
    pub fn source_deleted(&self, deleted: bool) {
        if deleted {
            self.fetch_failed();
            self.error("the source topic was deleted: the partition waits for it (created again, it is another topic, which the flow stops with an ERROR)".into());
        }
        self.source_deleted.store(deleted, Ordering::Relaxed);
    }

    /// It starts again (a reload, a new owner): what was said of its source topic is for
    /// discovery to say anew.
    pub(super) fn started_again(&self) {
        self.source_recreated.store(false, Ordering::Relaxed);
        self.source_deleted.store(false, Ordering::Relaxed);
    }

    /// Whether its source topic is gone from the source cluster.
    pub fn is_source_deleted(&self) -> bool {
        self.source_deleted.load(Ordering::Relaxed)
    }

    /// The source partition has no leader (`true`; its lag is unknown until a Fetch
    /// answers again), or has one again.
    pub fn set_leaderless(&self, leaderless: bool) {
        if leaderless {
            self.leaderless_since_ms
                .store(super::now_ms(), Ordering::Relaxed);
            self.fetch_failed();
            // A deleted topic's partitions have no leader either: `error` keeps the
            // deletion, which says more.
            self.error("the source partition has no leader".into());
        } else {
            self.leaderless_since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Since when the source partition has had no leader (ms since the epoch).
    pub fn leaderless_since_ms(&self) -> Option<i64> {
        Some(self.leaderless_since_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// When it was last seen caught up, or its position last moved forward, whichever is
    /// later (ms since the epoch): how long it has been behind without moving is counted
    /// from there, so a partition idle for an hour is not stalled the moment a record
    /// arrives.
    pub fn moving_or_caught_up_ms(&self) -> i64 {
        self.advanced_ms()
            .max(self.caught_up_ms.load(Ordering::Relaxed))
    }

    /// The timestamp of the oldest batch now held (`None`: nothing held).
    pub fn holding(&self, oldest_ms: Option<i64>) {
        self.oldest_held_ms
            .store(oldest_ms.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    pub fn set_state(&self, state: PartitionState, error: Option<String>) {
        self.state.store(state as u8, Ordering::Relaxed);
        if error.is_some() {
            *self.last_error.lock().expect("error lock") = error;
        }
    }

    /// Records a transient error (the partition goes on retrying): shown until its
    /// position moves again ([`Self::advanced_at`]).
    pub fn error(&self, error: String) {
        // While its source topic is deleted, that is the reason (a fetch failing with
        // UNKNOWN_TOPIC_ID says less).
        if self.is_source_deleted() {
            return;
        }
        *self.last_error.lock().expect("error lock") = Some(error);
        self.transient_error.store(true, Ordering::Relaxed);
    }

    pub fn state(&self) -> PartitionState {
        PartitionState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn position(&self) -> i64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Whether the partition has a start position ([`super::NOT_STARTED`] until then).
    pub fn has_started(&self) -> bool {
        self.position() != super::NOT_STARTED
    }

    pub fn high_watermark(&self) -> Option<i64> {
        Some(self.high_watermark.load(Ordering::Relaxed)).filter(|h| *h >= 0)
    }

    pub fn last_stable_offset(&self) -> Option<i64> {
        Some(self.last_stable_offset.load(Ordering::Relaxed)).filter(|o| *o >= 0)
    }

    /// Records behind what the source lets the daemon read, its last stable offset, as
    /// Kafka's read_committed consumer counts its lag. `None` until the source's leader
    /// gave an end (a Fetch or ListOffsets answered): unknown, not 0. A transaction open in
    /// the source holds records back without making the mirror look stalled; /status shows
    /// them as the high watermark beyond.
    pub fn lag_records(&self) -> Option<u64> {
        self.last_stable_offset()
            .map(|o| u64::try_from(o - self.position()).unwrap_or(0))
    }

    /// Age in seconds of the oldest record not mirrored yet; 0 when caught up. `None` while
    /// the lag is unknown, or while records are behind and none was fetched yet.
    pub fn lag_seconds(&self, now_ms: i64) -> Option<f64> {
        if self.lag_records()? == 0 {
            return Some(0.0);
        }
        let held = self.oldest_held_ms.load(Ordering::Relaxed);
        let since = if held != i64::MIN {
            held
        } else {
            self.last_mirrored_ms.load(Ordering::Relaxed)
        };
        (since != i64::MIN).then(|| (now_ms - since).max(0) as f64 / 1000.0)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("error lock").clone()
    }
}

/// Milliseconds on a monotonic clock that starts at the first call (from 1, so that 0 can
/// mean "never").
fn now_monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}
