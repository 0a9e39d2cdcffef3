//! Many partitions per Produce request: one combiner task per connection lane to a target
//! broker gathers the batches partitions hand it and writes them as one Produce request,
//! one batch per partition (Kafka refuses two batches for one partition in a request:
//! ProduceRequest.validateRecords), like Kafka's own producer does per node.
//!
//! The first waiting batch of every partition leaves in the next request, so a broker
//! leading many partitions gets few large requests rather than many small ones. A lane
//! keeps at most [`MAX_REQUESTS_IN_FLIGHT`] requests on its connection (a partition has
//! at most five of them); past that, batches gather until an answer frees a slot. The
//! bound is generous on purpose: on a distant target the requests in flight are what
//! fills the round trip, and Kafka reads a connection's requests one at a time anyway.
//! A partition's batches wait in the lane's queue in the order it handed them over
//! ([`ProduceLane::submit`] returns once the queue has taken one), and a request takes
//! only the first of them, so its requests reach the target in order.
//! A broker's `throttle_time_ms` (KIP-219) holds every lane to that broker until it has
//! passed, as Kafka's clients do.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kmirror_wire::messenger::{Messenger, RequestError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::produce::{ProduceOutcome, ProduceTarget};
use super::produce_combiner::{combine, Submission};

/// Connections per distant target broker that produces are spread over: Kafka handles one
/// request at a time per connection, so partitions on different lanes are written
/// concurrently. Behind 50 ms, 8 lanes kept 91-93% of the bench's window filled with large
/// batches where 4 kept 85-86% (the broker's validation of one request no longer holds up
/// another partition's on the same connection).
pub const PRODUCE_LANES: usize = 8;

/// Lanes to a near broker, one whose first connection answered within [`NEAR_ROUND_TRIP`]
/// (the least of [`CONNECT_SAMPLES`] round trips), fixed for the life of the client: one
/// connection, as Kafka's own producer and librdkafka keep per broker. Near, the lanes'
/// concurrency buys little and a request's cost is mostly its own (a write, a wake-up of
/// the broker, a response, a wake-up of each partition), so fewer, fuller requests save CPU:
/// on 8 partitions of 16 KiB batches a request carries 8 batches instead of 4 on two lanes,
/// and the daemon took 9-16% less CPU per GB at the same speed (two lanes had taken 19-21%
/// less than four; README, "Performance"). A near broker that answers
/// produces late because acks=all waits on its followers loses nothing by it: Kafka reads
/// a connection's next request only once the previous one is answered, so a round trip
/// carries one batch per partition however the partitions are spread over connections.
/// Through a distant link, requests overlap in flight on the link and the broker's
/// validation of each connection's requests, one at a time, is what the lanes share out.
pub const NEAR_PRODUCE_LANES: usize = 1;
// A broker's lane count also tells whether it is near ([`ProduceLane::round_trip`]).
const _: () = assert!(NEAR_PRODUCE_LANES != PRODUCE_LANES);

/// The round trip of a new connection under which its broker counts as near.
pub const NEAR_ROUND_TRIP: Duration = Duration::from_millis(3);

/// ApiVersions round trips, the connection's first among them, whose least decides whether
/// a broker is near: on a busy machine one of them alone was seen at 5 ms to a local broker.
const CONNECT_SAMPLES: usize = 3;

/// Produce requests a lane keeps on its connection at once (measured at a 50 ms round trip:
/// 5 held the catch-up bench to 78 MB/s, 32 let it reach 159).
pub const MAX_REQUESTS_IN_FLIGHT: usize = 32;

/// Bytes of batches gathered into one request; a larger batch goes alone.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Batches waiting for a lane's combiner.
const QUEUE_BATCHES: usize = 256;

/// The answer for one partition: its outcome, `None` if the response left it out.
pub type Answer = Result<Option<ProduceOutcome>, RequestError>;

/// Round trips of requests sent on an idle lane that the estimate takes the least of.
const IDLE_SAMPLES: usize = 8;

/// Idle round trips needed before they, not the connection's round trip, make the estimate.
const IDLE_SAMPLES_NEEDED: usize = 3;

/// Answer waits (see [`LaneStats::answered`]) that the floor takes the least of, all of
/// them needed: one short wait among them says the broker answers quickly. A near broker
/// starved of CPU on a busy machine answered 16 in a row 3.6 ms late; behind acks=all every
/// wait is long, so many samples cost only a later start of merging (64 answers: 0.3 s at
/// 5 ms).
const FLOOR_SAMPLES: usize = 64;

/// Only requests whose batches are all smaller than this are sampled for the round trip.
/// A request carrying large or merged batches spends longer in the broker (it validates
/// every byte); counted, it would make a near target look distant, and the merging it
/// then triggers would keep it looking so.
pub(super) const SAMPLED_BATCH_BYTES: usize = 64 << 10;

/// The least of the last few samples of a duration, once there are enough of them.
#[derive(Debug)]
struct LeastRecent {
    samples: Mutex<VecDeque<Duration>>,
    window: usize,
    needed: usize,
    /// The least, in µs, kept with each sample so that reading it (once per batch) takes
    /// no lock; `u64::MAX` until there are `needed` samples.
    least_us: AtomicU64,
}

impl LeastRecent {
    fn new(window: usize, needed: usize) -> Self {
        Self {
            samples: Mutex::default(),
            window,
            needed,
            least_us: AtomicU64::new(u64::MAX),
        }
    }

    fn record(&self, sample: Duration) {
        let mut r = self.samples.lock().expect("samples lock");
        let dropped = if r.len() == self.window {
            r.pop_front()
        } else {
            None
        };
        r.push_back(sample);
        if r.len() >= self.needed {
            // The least changes only when the new sample is below it or the dropped one
            // was it; otherwise no need to look at all of them (one call per answer).
            let known = self.least_us.load(Ordering::Relaxed);
            let least = if known == u64::MAX || dropped.is_some_and(|d| micros(d) <= known) {
                r.iter().min().map_or(u64::MAX, |d| micros(*d))
            } else {
                known.min(micros(sample))
            };
            self.least_us.store(least, Ordering::Relaxed);
        }
    }

    fn get(&self) -> Option<Duration> {
        match self.least_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            least => Some(Duration::from_micros(least)),
        }
    }
}

/// What a lane has written: requests, and the batches they carried.
#[derive(Debug)]
pub struct LaneStats {
    pub requests: AtomicU64,
    pub batches: AtomicU64,
    /// Round trips of recent requests sent while no other was in flight to the broker.
    idle_round_trips: LeastRecent,
    /// How long recent answers took beyond what the lane's earlier requests held them up
    /// ([`LaneStats::answered`]).
    answer_waits: LeastRecent,
    /// When the lane's last answer came.
    last_answer: Mutex<Option<Instant>>,
}

impl Default for LaneStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::default(),
            batches: AtomicU64::default(),
            idle_round_trips: LeastRecent::new(IDLE_SAMPLES, IDLE_SAMPLES_NEEDED),
            answer_waits: LeastRecent::new(FLOOR_SAMPLES, FLOOR_SAMPLES),
            last_answer: Mutex::default(),
        }
    }
}

impl LaneStats {
    /// Notes the answer to a request sent at `sent_at`; `sampled` when it carried small
    /// batches only. Kafka reads a connection's requests one at a time, and answers them in
    /// order: an answer that comes while earlier requests were in flight waited for them,
    /// so what counts is the time since the later of its sending and the previous answer.
    /// On a near broker that is the broker's work on the request, short for small batches
    /// however busy the lane is; when every such wait is long, the broker holds requests
    /// back (acks=all waiting on its followers), which the idle round trips alone miss
    /// while the broker is never idle, as in a catch-up.
    pub(super) fn answered(&self, sent_at: Instant, sampled: bool) {
        let now = Instant::now();
        let since = {
            let mut last = self.last_answer.lock().expect("last answer lock");
            let since = last.map_or(sent_at, |l| l.max(sent_at));
            *last = Some(now);
            since
        };
        if sampled {
            self.answer_waits
                .record(now.saturating_duration_since(since));
        }
    }

    /// Notes the round trip of a request sent while no other was in flight to the broker.
    pub(super) fn idle_round_trip(&self, round_trip: Duration) {
        self.idle_round_trips.record(round_trip);
    }
}

/// `d` in whole µs, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whether a batch may still go out when the request that would carry it is built. An
/// exclusive flow's owner sends only while its ownership lease holds: after a pause past
/// its session (SIGSTOP, a stalled host), the batches it had already handed a lane must not
/// go out either ([`crate::mirror::ownership::lease`]).
pub trait SendGate: Send + Sync + std::fmt::Debug {
    /// Whether batches may go out now.
    fn open(&self) -> bool;
    /// Why they may not, when they may not.
    fn closed_reason(&self) -> &'static str;
}

/// A batch's [`SendGate`], shared by the batches of one flow.
pub type Gate = Arc<dyn SendGate>;

/// The entry point of one connection's combiner.
#[derive(Clone)]
pub struct ProduceLane {
    messenger: Arc<Messenger>,
    tx: mpsc::Sender<Submission>,
    stats: Arc<LaneStats>,
    broker: Arc<BrokerLoad>,
}

/// What the lanes to one broker share.
#[derive(Debug)]
struct BrokerLoad {
    /// Produce requests on the wire, over all the broker's lanes.
    in_flight: Arc<AtomicUsize>,
    /// The least round trip any of its connections measured when it was opened.
    connect_round_trip_us: AtomicU64,
    /// How many lanes its partitions are spread over: [`NEAR_PRODUCE_LANES`] or
    /// [`PRODUCE_LANES`], from the round trip of the first connection; one probe decides
    /// for every partition that asks meanwhile.
    lanes: tokio::sync::OnceCell<usize>,
}

impl BrokerLoad {
    fn new() -> Self {
        Self {
            in_flight: Arc::default(),
            connect_round_trip_us: AtomicU64::new(u64::MAX),
            lanes: tokio::sync::OnceCell::new(),
        }
    }

    /// The lanes to use, decided on the first call from the least of `first`'s round trips
    /// ([`CONNECT_SAMPLES`]), which also counts as a connection's round trip.
    async fn lanes(&self, first: &Messenger) -> usize {
        let decide = || async {
            let round_trip = first.least_round_trip(CONNECT_SAMPLES - 1).await;
            self.connect_round_trip_us
                .fetch_min(micros(round_trip), Ordering::Relaxed);
            let lanes = if round_trip < NEAR_ROUND_TRIP {
                NEAR_PRODUCE_LANES
            } else {
                PRODUCE_LANES
            };
            tracing::info!(produce_connections = lanes, broker = %first.addr(), round_trip_us = micros(round_trip), "Produce connections to this broker chosen by its round trip.");
            lanes
        };
        *self.lanes.get_or_init(decide).await
    }

    /// Whether the broker was found near when its lane count was decided.
    fn is_near(&self) -> bool {
        self.lanes.get() == Some(&NEAR_PRODUCE_LANES)
    }

    fn connected(&self, m: &Messenger) {
        self.connect_round_trip_us
            .fetch_min(micros(m.round_trip()), Ordering::Relaxed);
    }
}

impl ProduceLane {
    /// Requests and batches written so far on this lane's connection.
    pub fn stats(&self) -> &LaneStats {
        &self.stats
    }

    /// The Produce round trip of this lane without queueing: the least of the recent
    /// produces of small batches sent while the broker had nothing else of ours (which
    /// includes acks=all waiting for followers), once there are [`IDLE_SAMPLES_NEEDED`];
    /// until then the least round trip of the connections to that broker (each measured
    /// once, when it was opened). A single sample may be an outlier (the first write to a
    /// new partition, a connection opened while the machine was busy). Never less than the
    /// least of the lane's last [`FLOOR_SAMPLES`] answer waits ([`LaneStats::answered`]).
    ///
    /// A near broker (see [`NEAR_ROUND_TRIP`]) has no link to wait on: its produces take
    /// long only while it holds them (acks=all waiting on followers), which the answer
    /// waits show however busy the lane, so they alone count once there are enough. Its
    /// idle produces do not: in a catch-up they are the first few, to partitions just
    /// created, and none follows while the broker stays busy, so one slow start on a busy
    /// machine would stand for the whole copy (1 copy in 6 of the bench's small batches
    /// to a local broker merged on 3.2 ms and took twice the CPU).
    pub fn round_trip(&self) -> Duration {
        // `Lanes::get` counted this lane's own connection in when it made the lane.
        let connect =
            Duration::from_micros(self.broker.connect_round_trip_us.load(Ordering::Relaxed));
        let floor = self.stats.answer_waits.get();
        if self.broker.is_near() {
            return floor.unwrap_or(connect);
        }
        let base = self.stats.idle_round_trips.get().unwrap_or(connect);
        match floor {
            Some(floor) => base.max(floor),
            None => base,
        }
    }

    /// Whether the lane can still carry batches: its connection is not poisoned and its
    /// combiner runs. A lane that cannot is replaced by the next `produce_lane`.
    pub fn is_live(&self) -> bool {
        !self.messenger.is_poisoned() && !self.tx.is_closed()
    }

    /// Hands `records` (one batch) for `target` to the lane; returns once the lane's queue
    /// has taken it (it waits while the queue is full), with the receiver of its answer.
    /// A request that cannot be sent answers its batches with the error; a batch whose
    /// `gate` is closed when its request is built is answered `RequestError::Withdrawn`.
    pub async fn submit(
        &self,
        target: ProduceTarget,
        records: Bytes,
        gate: Option<Gate>,
    ) -> Result<oneshot::Receiver<Answer>, RequestError> {
        let (answer, rx) = oneshot::channel();
        let closed = || RequestError::Poisoned {
            reason: "the produce lane closed".into(),
        };
        let submission = Submission {
            target,
            records,
            gate,
            answer,
        };
        // Without a wait when the queue has room, as it mostly has (one call per batch).
        match self.tx.try_send(submission) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(submission)) => {
                self.tx.send(submission).await.map_err(|_| closed())?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(closed()),
        }
        Ok(rx)
    }
}

/// The lanes of one cluster client, by broker and lane number, and each broker's throttle.
#[derive(Default)]
pub(super) struct Lanes {
    lanes: Mutex<HashMap<(i32, usize), ProduceLane>>,
    throttles: Arc<Mutex<HashMap<i32, Instant>>>,
    brokers: Mutex<HashMap<i32, Arc<BrokerLoad>>>,
    /// The ticket the next partition is given.
    next: AtomicUsize,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lanes = self.lanes.lock().expect("lanes lock");
        f.debug_struct("Lanes")
            .field("lanes", &lanes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Lanes {
    /// A ticket for a new partition, in turn, so partitions spread evenly over the lanes:
    /// its lane is the ticket modulo the lanes its broker has ([`Lanes::count`]).
    pub(super) fn assign(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % PRODUCE_LANES
    }

    /// Whether produces go to near brokers only: every broker whose lanes are decided was
    /// found near ([`NEAR_ROUND_TRIP`]), and one is.
    pub(super) fn all_near(&self) -> bool {
        let brokers = self.brokers.lock().expect("brokers lock");
        let mut decided = brokers
            .values()
            .filter(|b| b.lanes.get().is_some())
            .peekable();
        decided.peek().is_some() && decided.all(|b| b.is_near())
    }

    /// How many lanes broker `node_id` has, decided from `first` (its lane 0) the first time.
    pub(super) async fn count(&self, node_id: i32, first: &Messenger) -> usize {
        self.broker(node_id).lanes(first).await
    }

    fn broker(&self, node_id: i32) -> Arc<BrokerLoad> {
        self.brokers
            .lock()
            .expect("brokers lock")
            .entry(node_id)
            .or_insert_with(|| Arc::new(BrokerLoad::new()))
            .clone()
    }

    /// The lane on connection `m` (lane `lane` of broker `node_id`); a new combiner when
    /// the connection was replaced.
    pub(super) fn get(&self, node_id: i32, lane: usize, m: Arc<Messenger>) -> ProduceLane {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        if let Some(l) = lanes.get(&(node_id, lane)) {
            if Arc::ptr_eq(&l.messenger, &m) {
                return l.clone();
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let stats = Arc::new(LaneStats::default());
        let broker = self.broker(node_id);
        broker.connected(&m);
        tokio::spawn(combine(
            m.clone(),
            node_id,
            self.throttles.clone(),
            (stats.clone(), broker.in_flight.clone()),
            rx,
        ));
        let l = ProduceLane {
            messenger: m,
            tx,
            stats,
            broker,
        };
        lanes.insert((node_id, lane), l.clone());
        l
    }
}

#[cfg(test)]
#[path = "produce_lane_tests.rs"]
mod tests;
