//! A produce lane's combiner task: takes the batches partitions hand the lane, in the order
//! they came, and writes them as Produce requests of one batch per partition (each
//! partition's first waiting batch), at most [`MAX_REQUESTS_IN_FLIGHT`] on the connection;
//! answers each batch from the response and keeps the broker's `throttle_time_ms`
//! (KIP-219): the connection it came over holds every request until then, and the other
//! lanes to that broker hold their Produce requests.

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
    Answer, Gate, LaneStats, MAX_REQUESTS_IN_FLIGHT, MAX_REQUEST_BYTES, SAMPLED_BATCH_BYTES,
};
use super::throttle_wait;

/// One partition's batch, handed to a lane.
pub(super) struct Submission {
    pub(super) target: ProduceTarget,
    pub(super) records: Bytes,
    /// Checked when the batch's request is built: a closed gate withdraws the batch.
    pub(super) gate: Option<Gate>,
    /// Told the batch's answer, or why the request holding it could not be sent.
    pub(super) answer: oneshot::Sender<Answer>,
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
        let mut taken = take_request(&mut waiting);
        withdraw_gated(&mut taken);
        if taken.is_empty() {
            continue;
        }
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
        // A connection another request throttled is waited for before the clock starts.
        m.throttled().await;
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
        let throttles = throttles.clone();
        let stats = stats.clone();
        let broker_in_flight = broker_in_flight.clone();
        let connection = m.clone();
        tracing::trace!(node_id, batches = parts.len(), "Produce request sent.");
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
                if r.throttle_time_ms > 0 && version >= FIRST_PRODUCE_CLIENT_THROTTLES {
                    // KIP-219 (Kafka: NetworkClient.maybeThrottle, SocketServer's muted
                    // channel): the broker reads nothing more from this connection until
                    // then, so every request on it waits (a progress write, a metadata
                    // refresh), not only this lane's next Produce; the other lanes to the
                    // broker hold their Produce requests. (Before v6 the broker held the
                    // response back instead.)
                    connection.throttle(throttle_wait(r.throttle_time_ms));
                    note_throttle(&throttles, node_id, r);
                }
                if idle {
                    stats.idle_round_trip(sent_at.elapsed());
                }
            }
            for (target, tx) in parts {
                let answer = match &resp {
                    Ok(r) => Ok(partition_outcome(r, &target)),
                    Err(e) => Err(e.clone()),
                };
                // A partition that stopped waiting no longer needs its answer.
                let _ = tx.send(answer);
            }
            drop(slot);
        });
    }
}

/// Answers the batches of `taken` whose gate is closed `RequestError::Withdrawn` and takes
/// them out: nothing of theirs reaches the wire. (Their partitions' later batches, closed
/// too, follow them out; the pipeline resends in order once its gate opens again.)
pub(super) fn withdraw_gated(taken: &mut Vec<Submission>) {
    let closed = |s: &mut Submission| s.gate.as_ref().is_some_and(|g| !g.open());
    for s in taken.extract_if(.., closed) {
        let reason = s.gate.as_ref().map_or("", |g| g.closed_reason());
        tracing::debug!(topic = %s.target.topic, partition = s.target.partition, reason, "Batch withdrawn before its request was sent.");
        let _ = s.answer.send(Err(RequestError::Withdrawn {
            reason: reason.into(),
        }));
    }
}

/// The submissions of the next request, from `waiting` in order: each partition's first
/// waiting batch (Kafka keeps only one of two batches for the same partition in a request:
/// KafkaApis.handleProduceRequest collects them into a map), at least one, then more while
/// they fit [`MAX_REQUEST_BYTES`]. A partition's later batches keep their order for the
/// requests after, so they reach the target in the order the partition handed them over.
pub(super) fn take_request(waiting: &mut VecDeque<Submission>) -> Vec<Submission> {
    let mut taken: Vec<Submission> = Vec::with_capacity(waiting.len().min(64));
    let mut bytes = 0usize;
    let mut i = 0;
    while let Some(next) = waiting.get(i) {
        let repeated = taken.iter().any(|t| {
            t.target.partition == next.target.partition && t.target.topic == next.target.topic
        });
        if repeated {
            i += 1;
            continue;
        }
        if !taken.is_empty() && bytes + next.records.len() > MAX_REQUEST_BYTES {
            break;
        }
        bytes += next.records.len();
        taken.push(waiting.remove(i).expect("index in range"));
    }
    taken
}

type Part = (ProduceTarget, oneshot::Sender<Answer>);

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
        parts.push((s.target, s.answer));
    }
    Built {
        request: request(batches, PRODUCE_TIMEOUT_MS),
        batches: shared,
        parts,
    }
}

fn fail(parts: Vec<Part>, error: RequestError) {
    for (_, answer) in parts {
        let _ = answer.send(Err(error.clone()));
    }
}

/// The first Produce version whose client waits out `throttle_time_ms` itself (Kafka:
/// ProduceResponse.shouldClientThrottle; older brokers held the response back instead).
const FIRST_PRODUCE_CLIENT_THROTTLES: i16 = 6;

/// Records a broker's request to hold back the other lanes to it too (KIP-219).
fn note_throttle(throttles: &Mutex<HashMap<i32, Instant>>, node_id: i32, resp: &ProduceResponse) {
    let until = Instant::now() + throttle_wait(resp.throttle_time_ms);
    let mut t = throttles.lock().expect("throttles lock");
    let slot = t.entry(node_id).or_insert(until);
    *slot = (*slot).max(until);
}
