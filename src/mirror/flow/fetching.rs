//! The fetch loop's Fetches. Per source leader: one for the partitions that have data
//! (answered at once); one long poll, on a connection of its own, for the partitions that
//! caught up (Kafka answers one request at a time per connection, so a long poll on a shared
//! connection would hold up partitions whose memory was just released); and one per
//! partition whose last Fetch brought much data, beside the first: a response that carries
//! one partition is handed to it without a copy. A partition is in one Fetch at a time,
//! memory is reserved before a Fetch is sent, partitions are listed in rotating order, and
//! each partition's answer is handed to its pipeline ([`super::delivery`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use super::{
    FlowRunner, FETCH_WAIT_MS, MIN_FETCH_BYTES, MIN_PARTITION_FETCH_BYTES, PARTITION_FETCH_BYTES,
};
use kmirror_wire::batch::LOG_OVERHEAD;

use crate::client::fetch::{self, FetchWant};
use crate::client::ClientError;
use crate::mirror::memory::Reservation;
use crate::mirror::progress::SourcePartition;
use crate::telemetry::stats::FAILING_GRACE_MS;

#[path = "fetch_answers.rs"]
mod answers;
#[path = "fetch_sizes.rs"]
mod sizes;
use sizes::{ask_bytes, partition_limit};

/// A Fetch response asks for at most this fraction of the fetch pool, so that several are on
/// their way at once; one shared by several partitions also for no more than the headroom
/// its split is done in ([`crate::mirror::memory`]).
const RESPONSES_PER_POOL: usize = 4;
/// How long a partition whose next batch did not fit the free memory holds back the
/// other fetches while memory is released.
const NEEDS_FIRST: Duration = Duration::from_secs(1);
/// Most a long poll for caught-up partitions reserves.
const CAUGHT_UP_FETCH_BYTES: usize = 256 << 10;
/// The loop looks again after this when nothing else wakes it.
const LOOK_AGAIN: Duration = Duration::from_millis(100);
/// A leader whose Fetch failed is asked again after this, doubled for each failure in a
/// row up to [`FETCH_RETRY_MAX`].
const FETCH_RETRY: Duration = Duration::from_millis(500);
const FETCH_RETRY_MAX: Duration = Duration::from_secs(10);
/// Failures in a row of a leader's Fetches after the first that are logged at WARN once
/// each this many (the others at DEBUG): a source down for an hour is a few lines, not one
/// per Fetch.
const FETCH_FAILURES_PER_WARN: u32 = 20;
/// Partitions whose last Fetch brought at least this much are fetched alone: their
/// response is then large enough to own its memory
/// ([`kmirror_wire::frame_reader::OWN_ALLOCATION_BYTES`]), which is handed to the
/// partition without a copy.
pub(super) const ALONE_FROM_BYTES: usize = kmirror_wire::frame_reader::OWN_ALLOCATION_BYTES;
/// A leader whose last Fetch that did not wait was answered within this is near: a
/// partition is in one Fetch at a time, so from a distant leader one batch per Fetch
/// would cap it at a batch per round trip, where Kafka's consumer reads up to its
/// partition limit.
const NEAR_SOURCE_ANSWER: Duration = Duration::from_millis(10);
/// From a distant leader, with a near target, a partition fetched alone whose last
/// response's batches still await their acks waits for them, up to this fraction of the
/// leader's answer time, before asking for less than its limit: it is in one Fetch at a
/// time, and asked at once it would ask for what the response left of its share (with a
/// share of 1 MiB and batches of 300 KB: two batches, then one, in turn). A distant
/// target's acks take a round trip of their own, which the wait would add to every Fetch.
/// A partition in a shared Fetch does not wait: the Fetch would leave without it.
const ACK_WAIT_PER_ANSWER_TIME: u32 = 4;

/// `items` from the one at `round` (modulo their number) on, and round to the start: each
/// is first once in as many rounds as there are items (while the list stays the same). Kafka returns a batch larger than
/// the per-partition limit whole only to the first partition with data, and fills a
/// response in the order asked; a fixed order would leave the last partitions nothing
/// while the first ones always have data.
fn rotated<T>(items: &[T], round: usize) -> impl Iterator<Item = &T> {
    let skip = round.checked_rem(items.len()).unwrap_or(0);
    items.iter().skip(skip).chain(items.iter().take(skip))
}

/// Which Fetch a partition goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Its last Fetch brought data: asked without waiting, with the leader's other such
    /// partitions.
    HasData,
    /// Its last Fetch brought much data: asked without waiting, in a Fetch of its own
    /// (several may be on the connection at once).
    Alone,
    /// Its last Fetch brought nothing: a long poll, on a connection of its own.
    CaughtUp,
}

impl Kind {
    fn lane(self) -> usize {
        match self {
            Kind::HasData | Kind::Alone => 0,
            Kind::CaughtUp => 1,
        }
    }

    /// Kafka answers a Fetch with `max_wait_ms` 0 at once, data or not (ReplicaManager.
    /// fetchMessages: `params.maxWaitMs <= 0`).
    fn max_wait_ms(self) -> i32 {
        match self {
            Kind::HasData | Kind::Alone => 0,
            Kind::CaughtUp => FETCH_WAIT_MS,
        }
    }
}

/// A Fetch that finished, with what it was for.
pub(super) struct FetchDone {
    leader: i32,
    kind: Kind,
    partitions: Vec<SourcePartition>,
    reservation: Reservation,
    result: Result<fetch::Fetched, ClientError>,
    /// How long the request took once on its connection.
    answered_in: Duration,
}

/// The Fetches on the wire and when leaders may be asked again.
#[derive(Default)]
pub(super) struct Fetches {
    running: FuturesUnordered<BoxFuture<'static, FetchDone>>,
    busy: HashSet<(i32, Kind)>,
    /// Leaders not asked before this: after a failed Fetch, or throttled (KIP-219).
    leader_not_before: HashMap<i32, Instant>,
    /// Failed Fetches in a row, per leader.
    leader_failures: HashMap<i32, u32>,
    /// How long each leader took to answer its last Fetch that did not wait.
    answer_time: HashMap<i32, Duration>,
    /// The first time a partition waiting for its acks ([`ACK_WAIT_PER_ANSWER_TIME`])
    /// asks anyway.
    ack_wait_until: Option<Instant>,
    refreshing: Option<tokio::task::JoinHandle<()>>,
}

impl Fetches {
    /// The next Fetch to finish; `None` at once when none is on the wire.
    pub fn next(&mut self) -> impl Future<Output = Option<FetchDone>> + '_ {
        self.running.next()
    }
}

impl FlowRunner {
    /// Sends a Fetch to every leader and kind that has none on the wire, for the partitions
    /// with room in their queue and their share of the memory.
    pub(super) fn start_fetches(&mut self, fetches: &mut Fetches) {
        let now = Instant::now();
        let md = self.source.metadata();
        // A partition fetches only while it holds less than its share of the memory, and
        // asks for no more than the rest of its share; one that holds it waits for its
        // acks, and the others go on.
        let active = self
            .partitions
            .values()
            .filter(|r| r.fetching || r.wants_data())
            .count();
        let share =
            (self.memory.fetch_pool_bytes() / active.max(1)).max(PARTITION_FETCH_BYTES as usize);
        let mut ready: Vec<_> = self
            .partitions
            .iter()
            .filter(|(_, r)| {
                !r.fetching
                    && r.wants_data()
                    && r.not_before.filter(|t| *t > now).is_none()
                    && r.held.bytes() + MIN_PARTITION_FETCH_BYTES <= share
            })
            .collect();
        // A partition whose next batch did not fit the free memory is fetched alone once
        // that much is free. For a moment nothing else is fetched, so that smaller fetches
        // do not take the memory as it is released; after that the others go on (memory
        // held by partitions stuck on the target may not come back soon), and it is
        // fetched whenever that much is free.
        // A partition whose leader cannot be asked now (unknown, or after a failed or
        // throttled Fetch) holds nothing back.
        let askable = |sp: &SourcePartition| {
            md.leader(&sp.topic, sp.partition).is_some_and(|leader| {
                fetches
                    .leader_not_before
                    .get(&leader)
                    .is_none_or(|t| *t <= now)
            })
        };
        let available = self.memory.fetch_available();
        let mut least_bytes = MIN_FETCH_BYTES;
        if let Some(i) = ready
            .iter()
            .position(|(sp, r)| r.needs.is_some_and(|(n, _)| n <= available) && askable(sp))
        {
            least_bytes = ready[i].1.needs.map_or(least_bytes, |(n, _)| n);
            ready = vec![ready[i]];
        } else if ready.iter().any(|(sp, r)| {
            r.needs
                .is_some_and(|(_, since)| now.duration_since(since) < NEEDS_FIRST)
                && askable(sp)
        }) {
            return;
        } else {
            ready.retain(|(_, r)| r.needs.is_none());
        }
        fetches.ack_wait_until = None;
        self.round = self.round.wrapping_add(1);
        let mut refresh = false;
        // A lone partition's Fetch also carries the batch it expects next and whether,
        // larger than the least Fetch, that batch is owed to it.
        let mut wanted: HashMap<(i32, Kind), Vec<FetchWant>> = HashMap::new();
        let mut alone: Vec<(i32, FetchWant, usize, usize, bool)> = Vec::new();
        let pool = self.memory.fetch_pool_bytes();
        let per_response = (pool / RESPONSES_PER_POOL).max(PARTITION_FETCH_BYTES as usize);
        let mut leaderless = Vec::new();
        for (sp, r) in rotated(&ready, self.round) {
            let Some(leader) = md.leader(&sp.topic, sp.partition) else {
                refresh = true;
                if !r.leaderless {
                    let gone = !md.topics.contains_key(&sp.topic);
                    leaderless.push(((*sp).clone(), true, gone));
                }
                continue;
            };
            if r.leaderless {
                leaderless.push(((*sp).clone(), false, false));
            }
            let kind = if r.caught_up {
                Kind::CaughtUp
            } else if r.alone {
                Kind::Alone
            } else {
                Kind::HasData
            };
            if fetches.busy.contains(&(leader, kind))
                || fetches
                    .leader_not_before
                    .get(&leader)
                    .is_some_and(|t| *t > now)
            {
                continue;
            }
            // A partition asks for what is left of its share, or for its next batch when
            // that is larger: Kafka returns the first batch whole however small the limit
            // (KIP-74), and one that arrives without memory reserved for it is dropped and
            // read again, so its Fetch reserves the whole batch or is not sent. A
            // partition below its share may so take one batch beyond it, when the memory
            // is free. Only a partition fetched alone does so: one whose batches are
            // small shares a response, which reserves at least [`MIN_FETCH_BYTES`] (one
            // expecting a large batch is fetched alone, [`super::delivery`]), and a long
            // poll waits for batches yet to be written and reserves little
            // ([`CAUGHT_UP_FETCH_BYTES`]), whatever the last batch was.
            let room = share - r.held.bytes();
            let batch_bytes = match kind {
                Kind::Alone => r.batch_bytes.min(pool),
                Kind::HasData | Kind::CaughtUp => 0,
            };
            let answer_time = fetches.answer_time.get(&leader).copied();
            let near = answer_time.is_some_and(|t| t < NEAR_SOURCE_ANSWER);
            let limit = partition_limit(kind, near || answer_time.is_none(), per_response);
            // Waits for its acks (ACK_WAIT_PER_ANSWER_TIME) rather than ask for less.
            if let (Some(t), Some(at)) = (answer_time, r.answered_at) {
                let until = at + t / ACK_WAIT_PER_ANSWER_TIME;
                if !near
                    && kind == Kind::Alone
                    && room < limit.min(share)
                    && until > now
                    && self.target.produces_near()
                {
                    fetches.ack_wait_until =
                        Some(fetches.ack_wait_until.map_or(until, |u| u.min(until)));
                    continue;
                }
            }
            let ask = ask_bytes(room, batch_bytes, r.batch_bytes_exact, near, limit);
            let want = FetchWant {
                topic: sp.topic.clone(),
                topic_id: self
                    .topic_ids
                    .get(&sp.topic)
                    .copied()
                    .filter(|id| !id.is_nil()),
                partition: sp.partition,
                offset: r.next_fetch_offset,
                max_bytes: i32::try_from(ask).ok(),
                leader_epoch: md.leader_epoch(&sp.topic, sp.partition),
                last_fetched_epoch: r.last_fetched_epoch,
            };
            match kind {
                Kind::Alone => {
                    // Owed: its batch is within its share, or it holds nothing (a batch
                    // larger than its share, or than the pool, which then takes all of it).
                    let owed = batch_bytes > MIN_FETCH_BYTES
                        && (batch_bytes <= room || r.held.bytes() == 0);
                    alone.push((leader, want, limit, batch_bytes, owed));
                }
                _ => wanted.entry((leader, kind)).or_default().push(want),
            }
        }
        let mut gone: BTreeMap<String, usize> = BTreeMap::new();
        for (sp, now_leaderless, topic_gone) in leaderless {
            self.note_leaderless(&sp, now_leaderless, topic_gone);
            if topic_gone {
                *gone.entry(sp.topic).or_default() += 1;
            }
        }
        for (topic, partitions) in gone {
            tracing::warn!(flow = %self.flow.name, topic, partitions, "The source topic is no longer in the source's metadata (deleted?); its partitions wait, and discovery says what becomes of them.");
        }
        if refresh {
            self.refresh_source(fetches);
        }
        // Each response's max_bytes is reserved before it is asked for, so responses
        // count against max_in_flight_bytes; a leader gets no fetch when memory is short.
        // What a response brings beyond the partitions' needs is released when it is sliced.
        let groups = wanted
            .into_iter()
            .map(|(key, wants)| (key, wants, PARTITION_FETCH_BYTES as usize, 0, false))
            .chain(
                alone
                    .into_iter()
                    .map(|(leader, want, limit, batch_bytes, owed)| {
                        ((leader, Kind::Alone), vec![want], limit, batch_bytes, owed)
                    }),
            );
        for ((leader, kind), wants, limit, batch_bytes, owed) in groups {
            // No more than the partitions asked for can come back (but for one batch
            // larger than its partition's limit, counted when it arrives).
            let asked: usize = wants
                .iter()
                .map(|w| w.max_bytes.map_or(limit, |m| (m as usize).min(limit)))
                .sum();
            // A long poll for partitions without data reserves little: what it brings is
            // what arrived meanwhile, and it must not hold memory others need.
            // A response shared by several partitions is split in the headroom kept for
            // it; one for a lone partition is handed over whole.
            let most = match kind {
                Kind::HasData => per_response.min(self.memory.split_headroom_bytes()),
                Kind::Alone => per_response,
                Kind::CaughtUp => CAUGHT_UP_FETCH_BYTES,
            };
            // A response carrying several partitions is split by copying: its Fetch
            // reserves the copies too, released as far as they are not taken.
            let split = if kind == Kind::Alone { 1 } else { 2 };
            let least = least_bytes.max(batch_bytes);
            let bytes = most
                .min(asked)
                .max(least)
                .min(self.memory.fetch_available() / split);
            if bytes < least {
                // A lone partition owed that much memory by its share goes first once it
                // is free (`needs`).
                if owed {
                    self.owe(&wants[0], least, now);
                }
                continue;
            }
            let Some(reservation) = self.memory.try_reserve_fetch(bytes * split) else {
                continue;
            };
            let partitions: Vec<SourcePartition> = wants
                .iter()
                .map(|w| SourcePartition {
                    topic: w.topic.clone(),
                    partition: w.partition,
                })
                .collect();
            for sp in &partitions {
                if let Some(r) = self.partitions.get_mut(sp) {
                    r.fetching = true;
                }
            }
            // A partition is in one Fetch at a time; Fetches of lone partitions may be
            // on a leader's connection together.
            if kind != Kind::Alone {
                fetches.busy.insert((leader, kind));
            }
            tracing::trace!(flow = %self.flow.name, leader, ?kind, partitions = partitions.len(), reserved_bytes = reservation.bytes(), free_bytes = self.memory.fetch_available(), "Fetching.");
            let source = self.source.clone();
            fetches.running.push(Box::pin(async move {
                let max_bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
                let partition_max = i32::try_from(limit).unwrap_or(i32::MAX).min(max_bytes);
                let mut sent = Instant::now();
                let result = async {
                    let m = source.broker_lane(leader, kind.lane()).await?;
                    // (Throttled by another flow's Fetch: not the leader's answer time.)
                    m.throttled().await;
                    sent = Instant::now();
                    fetch::fetch_answer(&m, &wants, kind.max_wait_ms(), max_bytes, partition_max)
                        .await
                        .map_err(|e| ClientError::Request {
                            cluster: source.name().to_string(),
                            source: e,
                        })
                }
                .await;
                FetchDone {
                    leader,
                    kind,
                    partitions,
                    reservation,
                    result,
                    answered_in: sent.elapsed(),
                }
            }));
        }
    }

    /// Marks a partition whose next batch, within its share, did not fit the free memory:
    /// it is fetched before the others once that much is free ([`NEEDS_FIRST`]).
    fn owe(&mut self, want: &FetchWant, bytes: usize, now: Instant) {
        let sp = SourcePartition {
            topic: want.topic.clone(),
            partition: want.partition,
        };
        if let Some(r) = self.partitions.get_mut(&sp) {
            let since = r.needs.map_or(now, |(_, since)| since);
            r.needs = Some((bytes, since));
        }
    }

    /// When the loop should look again if nothing wakes it: the next retry time of a
    /// partition or leader, at most [`LOOK_AGAIN`] away.
    pub(super) fn next_wake(&self, fetches: &Fetches) -> Instant {
        let now = Instant::now();
        self.partitions
            .values()
            .filter_map(|r| r.not_before)
            .chain(fetches.leader_not_before.values().copied())
            .chain(fetches.ack_wait_until)
            .filter(|t| *t > now)
            .fold(now + LOOK_AGAIN, Instant::min)
    }
}

#[cfg(test)]
#[path = "fetching_tests.rs"]
mod tests;
