//! A produce lane's combiner task: takes the batches partitions hand the lane, in the order
//! they came, and writes them as Produce requests of one batch per partition, at most
//! [`MAX_REQUESTS_IN_FLIGHT`] on the connection; answers each partition from the response
//! and keeps the broker's `throttle_time_ms` (KIP-219).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kmirror_wire::messenger::{Messenger, RequestError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::produce::{
    partition_outcome, request, request_version, ProduceTarget, PRODUCE_TIMEOUT_MS,
};
use super::produce_lane::{
    Answer, LaneStats, MAX_REQUESTS_IN_FLIGHT, MAX_REQUEST_BYTES, SAMPLED_BATCH_BYTES,
};
use super::throttle_wait;

/// One partition's batch, handed to a lane.
pub(super) struct Submission {
    pub(super) target: ProduceTarget,
    pub(super) records: Bytes,
    /// Told once the request holding the batch is on the connection, or could not be.
    pub(super) queued: oneshot::Sender<Result<oneshot::Receiver<Answer>, RequestError>>,
}

/// The combiner: gathers waiting batches into requests, in the order they came.
pub(super) async fn combine(
    m: Arc<Messenger>,
    node_id: i32,
    throttles: Arc<Mutex<HashMap<i32, Instant>>>,
    (stats, broker_in_flight): (Arc<LaneStats>, Arc<AtomicUsize>),
    mut rx: mpsc::Receiver<Submission>,
) {
    let slots = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    let mut waiting: VecDeque<Submission> = VecDeque::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            match rx.recv().await {
                Some(s) => waiting.push_back(s),
                None => return,
            }
        }
        while let Ok(s) = rx.try_recv() {
            waiting.push_back(s);
        }
        let throttled = throttles
            .lock()
            .expect("throttles lock")
            .get(&node_id)
            .copied();
        if let Some(until) = throttled.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until).await;
            while let Ok(s) = rx.try_recv() {
                waiting.push_back(s);
            }
        }
        let taken = take_request(&mut waiting);
        let Built {
            request: req,
            batches,
            parts,
        } = build(taken);
        let version = match request_version(&m, parts.iter().all(|p| p.0.topic_id.is_some())) {
            Ok(v) => v,
            Err(e) => {
                fail(parts, e);
                continue;
            }
        };
        let sent_at = Instant::now();
        let pending = match m.enqueue_sharing(&req, version, &batches).await {
            Ok(p) => p,
            Err(e) => {
                fail(parts, e);
                continue;
            }
        };
        // A round trip is sampled only when nothing else of ours was at the broker: then
        // it is the link's and the cluster's (acks=all), not our own load's.
        let small = batches.iter().all(|b| b.len() < SAMPLED_BATCH_BYTES);
        let idle = broker_in_flight.fetch_add(1, Ordering::AcqRel) == 0 && small;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats
            .batches
            .fetch_add(parts.len() as u64, Ordering::Relaxed);
        let mut answers = Vec::with_capacity(parts.len());
        for (target, queued) in parts {
            let (tx, rx) = oneshot::channel();
            // A partition that stopped waiting no longer needs its answer.
            let _ = queued.send(Ok(rx));
            answers.push((target, tx));
        }
        let throttles = throttles.clone();
        let stats = stats.clone();
        let broker_in_flight = broker_in_flight.clone();
        tracing::trace!(node_id, batches = answers.len(), "Produce request sent.");
        tokio::spawn(async move {
            let resp = pending.wait().await;
            broker_in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::trace!(
                node_id,
                ok = resp.is_ok(),
                round_trip_us = sent_at.elapsed().as_micros() as u64,
                "Produce response."
            );
            stats.answered(sent_at, small && resp.is_ok());
            if let Ok(r) = &resp {
                note_throttle(&throttles, node_id, r);
                if idle {
                    stats.idle_round_trip(sent_at.elapsed());
                }
            }
            for (target, tx) in answers {
                let answer = match &resp {
                    Ok(r) => Ok(partition_outcome(r, &target)),
                    Err(e) => Err(e.clone()),
                };
                let _ = tx.send(answer);
            }
            drop(slot);
        });
    }
}

/// The submissions of the next request, from the front of `waiting`: at least one, then
/// more while they fit [`MAX_REQUEST_BYTES`] and name a partition not taken yet (Kafka
/// keeps only one of two batches for the same partition in a request: KafkaApis.
/// handleProduceRequest collects them into a map).
pub(super) fn take_request(waiting: &mut VecDeque<Submission>) -> Vec<Submission> {
    let mut taken: Vec<Submission> = Vec::new();
    let mut bytes = 0usize;
    while let Some(next) = waiting.front() {
        let fits = taken.is_empty() || bytes + next.records.len() <= MAX_REQUEST_BYTES;
        let repeated = taken.iter().any(|t| {
            t.target.topic == next.target.topic && t.target.partition == next.target.partition
        });
        if !fits || repeated {
            break;
        }
        bytes += next.records.len();
        taken.push(waiting.pop_front().expect("front exists"));
    }
    taken
}

type Part = (
    ProduceTarget,
    oneshot::Sender<Result<oneshot::Receiver<Answer>, RequestError>>,
);

/// One Produce request for `taken`.
struct Built {
    request: ProduceRequest,
    /// Its record batches, which the encoded frame references instead of copying.
    batches: Vec<Bytes>,
    parts: Vec<Part>,
}

fn build(taken: Vec<Submission>) -> Built {
    let mut parts = Vec::with_capacity(taken.len());
    let mut batches = Vec::with_capacity(taken.len());
    let mut shared = Vec::with_capacity(taken.len());
    for s in taken {
        shared.push(s.records.clone());
        batches.push((s.target.clone(), s.records));
        parts.push((s.target, s.queued));
    }
    Built {
        request: request(batches, PRODUCE_TIMEOUT_MS),
        batches: shared,
        parts,
    }
}

fn fail(parts: Vec<Part>, error: RequestError) {
    for (_, queued) in parts {
        let _ = queued.send(Err(error.clone()));
    }
}

/// Records a broker's request to hold back (KIP-219).
fn note_throttle(throttles: &Mutex<HashMap<i32, Instant>>, node_id: i32, resp: &ProduceResponse) {
    if resp.throttle_time_ms > 0 {
        let until = Instant::now() + throttle_wait(resp.throttle_time_ms);
        let mut t = throttles.lock().expect("throttles lock");
        let slot = t.entry(node_id).or_insert(until);
        *slot = (*slot).max(until);
    }
}
