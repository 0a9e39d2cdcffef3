use super::*;
use crate::client::produce_combiner::take_request;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kmirror_wire::messenger::MessengerConfig;
use kmirror_wire::records::{encode, record};

fn target(topic: &str, partition: i32) -> ProduceTarget {
    ProduceTarget {
        topic: StrBytes::from_string(topic.to_string()),
        topic_id: None,
        partition,
    }
}

fn batch(value: &str, count: usize) -> Bytes {
    let records: Vec<_> = (0..count as i64)
        .map(|i| {
            record(
                i,
                1_700_000_000_000,
                None,
                Some(Bytes::from(value.to_string())),
            )
        })
        .collect();
    encode(&records, Compression::None).unwrap()
}

fn submission(target: ProduceTarget, records: Bytes) -> (Submission, oneshot::Receiver<Answer>) {
    let (answer, rx) = oneshot::channel();
    let s = Submission {
        target,
        records,
        gate: None,
        answer,
    };
    (s, rx)
}

#[test]
fn partitions_are_spread_evenly_over_the_lanes() {
    let lanes = Lanes::default();
    let mut per_lane = [0; PRODUCE_LANES];
    for _ in 0..3 * PRODUCE_LANES {
        per_lane[lanes.assign()] += 1;
    }
    assert_eq!(per_lane, [3; PRODUCE_LANES]);
}

/// Produces count as near once a broker's lanes are decided near, and only while every
/// decided broker is: one distant broker makes them distant (the fetch loop then does not
/// wait for acks before asking, `mirror::flow::fetching`).
#[test]
fn produces_are_near_only_while_every_decided_broker_is() {
    let lanes = Lanes::default();
    assert!(!lanes.all_near(), "nothing decided yet");
    let decide = |node_id, count| {
        lanes.broker(node_id).lanes.set(count).expect("undecided");
    };
    lanes.broker(3); // known, not decided
    decide(1, NEAR_PRODUCE_LANES);
    assert!(lanes.all_near());
    decide(2, PRODUCE_LANES);
    assert!(!lanes.all_near());
}

#[test]
fn a_request_takes_each_partitions_first_waiting_batch_in_order_within_its_size() {
    let big = Bytes::from(vec![0u8; MAX_REQUEST_BYTES / 2]);
    let mut waiting: VecDeque<Submission> = [
        (target("a", 0), batch("x", 1)),
        (target("a", 1), batch("x", 1)),
        (target("b", 0), big.clone()),
        (target("a", 0), batch("y", 1)),
        (target("b", 1), batch("z", 1)),
        (target("a", 1), batch("y", 1)),
        (target("a", 0), batch("w", 1)),
    ]
    .into_iter()
    .map(|(t, r)| submission(t, r).0)
    .collect();
    let names = |v: &[Submission]| {
        v.iter()
            .map(|s| {
                let value = RecordBatchDecoder::decode(&mut s.records.clone())
                    .ok()
                    .and_then(|set| set.records[0].value.clone())
                    .map_or("big".into(), |v| String::from_utf8_lossy(&v).into_owned());
                format!("{}-{}:{value}", s.target.topic, s.target.partition)
            })
            .collect::<Vec<_>>()
    };
    // The second batch of a-0 waits for the next request; b-1 behind it does not.
    assert_eq!(
        names(&take_request(&mut waiting)),
        ["a-0:x", "a-1:x", "b-0:big", "b-1:z"]
    );
    assert_eq!(names(&take_request(&mut waiting)), ["a-0:y", "a-1:y"]);
    assert_eq!(names(&take_request(&mut waiting)), ["a-0:w"]);
    assert!(waiting.is_empty());
    // A batch over the request size still goes, alone; what does not fit waits, and so
    // does what follows it.
    let huge = Bytes::from(vec![0u8; MAX_REQUEST_BYTES + 1]);
    let mut waiting: VecDeque<Submission> = [
        (target("a", 0), huge),
        (target("a", 1), big.clone()),
        (target("a", 2), big.clone()),
        (target("a", 3), big),
    ]
    .into_iter()
    .map(|(t, r)| submission(t, r).0)
    .collect();
    assert_eq!(names(&take_request(&mut waiting)), ["a-0:big"]);
    assert_eq!(names(&take_request(&mut waiting)), ["a-1:big", "a-2:big"]);
    assert_eq!(names(&take_request(&mut waiting)), ["a-3:big"]);
}

/// A broker of our own (Kafka's rules) with `topic` of `partitions` created, and a
/// connection to it.
async fn broker_with_topic(
    dir: &std::path::Path,
    topic: &'static str,
    partitions: i32,
) -> (kmirror_testkit::BrokerProcess, Arc<Messenger>) {
    let broker = kmirror_testkit::BrokerProcess::start(dir, &[]);
    let m = Arc::new(
        Messenger::connect(&broker.addr(), MessengerConfig::default())
            .await
            .unwrap(),
    );
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let (created, _) = m.send(&create).await.unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    (broker, m)
}

/// A combiner of node 0 on `m`, reading `rx`; its stats.
fn spawn_combiner(m: &Arc<Messenger>, rx: mpsc::Receiver<Submission>) -> Arc<LaneStats> {
    let stats = Arc::new(LaneStats::default());
    tokio::spawn(combine(
        m.clone(),
        0,
        Arc::default(),
        (stats.clone(), Arc::default()),
        rx,
    ));
    stats
}

/// A lane whose combiner reads what `tx` sends, on `m`.
fn lane_on(
    m: &Arc<Messenger>,
    tx: mpsc::Sender<Submission>,
    stats: &Arc<LaneStats>,
) -> ProduceLane {
    let broker = Arc::new(BrokerLoad::new());
    broker.connected(m);
    ProduceLane {
        messenger: m.clone(),
        tx,
        stats: stats.clone(),
        broker,
    }
}

/// Batches for many partitions that wait together leave in one Produce request, which
/// a broker enforcing Kafka's rules accepts, and each partition gets its own answer.
#[tokio::test]
async fn waiting_batches_of_many_partitions_share_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, m) = broker_with_topic(dir.path(), "lanes", 16).await;

    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    let mut queued = Vec::new();
    for p in 0..16 {
        let (s, q) = submission(target("lanes", p), batch(&format!("p{p}"), p as usize + 1));
        tx.try_send(s).unwrap_or_else(|_| panic!("queue has room"));
        queued.push(q);
    }
    let stats = spawn_combiner(&m, rx);
    for (p, q) in queued.into_iter().enumerate() {
        let answer = q.await.unwrap().unwrap();
        let outcome = answer.expect("the response names the partition");
        assert_eq!((p, outcome.error_code, outcome.base_offset), (p, 0, 0));
    }
    assert_eq!(stats.requests.load(Ordering::Relaxed), 1);
    assert_eq!(stats.batches.load(Ordering::Relaxed), 16);

    // The next batch of a partition follows its first.
    let lane = lane_on(&m, tx, &stats);
    let answer = lane
        .submit(target("lanes", 3), batch("again", 2), None)
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((answer.error_code, answer.base_offset), (0, 4));
    assert_eq!(stats.requests.load(Ordering::Relaxed), 2);
}

// ApiVersions requests `throttling_broker`s answered on this thread: a paused-clock test
// runs its brokers on its own thread.
thread_local! {
    static API_VERSIONS_SEEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn api_versions_seen() -> usize {
    API_VERSIONS_SEEN.with(|seen| seen.get())
}

/// A scripted broker on an in-memory stream: answers ApiVersions (the first
/// `slow_api_versions` after `connect_after`), then every Produce with `throttle_time_ms`
/// from `throttles` in turn, and reports when each Produce arrived. (Our broker has no
/// client quotas, so it never asks for a pause.)
async fn throttling_broker(
    stream: tokio::io::DuplexStream,
    throttles: Vec<i32>,
    (answer_after, connect_after, mut slow_api_versions): (Duration, Duration, usize),
    arrivals: mpsc::UnboundedSender<Instant>,
) {
    use futures::{SinkExt, StreamExt};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{produce_request, ApiKey, ApiVersionsResponse};
    use kafka_protocol::protocol::Decodable;
    use kmirror_wire::frame;
    let mut framed = tokio_util::codec::Framed::new(stream, frame::codec(1 << 20));
    let mut throttles = throttles.into_iter();
    while let Some(Ok(f)) = framed.next().await {
        let mut f = f.freeze();
        let header = frame::decode_request_header(&mut f).unwrap();
        let (id, version) = (header.correlation_id, header.request_api_version);
        let out = if header.request_api_key == ApiKey::ApiVersions as i16 {
            API_VERSIONS_SEEN.with(|seen| seen.set(seen.get() + 1));
            if slow_api_versions > 0 {
                slow_api_versions -= 1;
                tokio::time::sleep(connect_after).await;
            }
            let resp = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default()
                    .with_api_key(ApiKey::Produce as i16)
                    .with_min_version(3)
                    .with_max_version(9),
                ApiVersion::default()
                    .with_api_key(ApiKey::ApiVersions as i16)
                    .with_min_version(0)
                    .with_max_version(3),
            ]);
            frame::encode_response(id, version, &resp).unwrap()
        } else {
            arrivals.send(Instant::now()).unwrap();
            tokio::time::sleep(answer_after).await;
            let req = ProduceRequest::decode(&mut f, version).unwrap();
            let answered = |p: &produce_request::PartitionProduceData| {
                PartitionProduceResponse::default().with_index(p.index)
            };
            let resp = ProduceResponse::default()
                .with_throttle_time_ms(throttles.next().unwrap_or(0))
                .with_responses(
                    req.topic_data
                        .iter()
                        .map(|t| {
                            TopicProduceResponse::default()
                                .with_name(t.name.clone())
                                .with_partition_responses(
                                    t.partition_data.iter().map(answered).collect(),
                                )
                        })
                        .collect(),
                );
            frame::encode_response(id, version, &resp).unwrap()
        };
        framed.send(out).await.unwrap();
    }
}

/// Produces `records` to partition `p` of topic "t" through `lane`; its outcome.
async fn produced(lane: &ProduceLane, p: i32, records: Bytes) -> ProduceOutcome {
    lane.submit(target("t", p), records, None)
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// Small batches produced alone on `lane` do set its round trip: the broker's
/// `answer_after`, once there are enough samples.
async fn assert_sampled_alone(lane: &ProduceLane, p: i32, answer_after: Duration) {
    for _ in 0..IDLE_SAMPLES_NEEDED {
        produced(lane, p, batch("alone", 1)).await;
    }
    assert!(lane.round_trip() >= answer_after);
}

/// A messenger to [`throttling_broker`] over an in-memory stream, and the receiver of
/// the broker's arrival times.
async fn scripted(
    throttles: Vec<i32>,
    answer_after: Duration,
) -> (Arc<Messenger>, mpsc::UnboundedReceiver<Instant>) {
    scripted_connecting(throttles, answer_after, Duration::ZERO).await
}

/// [`scripted`], with the broker answering ApiVersions after `connect_after`.
async fn scripted_connecting(
    throttles: Vec<i32>,
    answer_after: Duration,
    connect_after: Duration,
) -> (Arc<Messenger>, mpsc::UnboundedReceiver<Instant>) {
    scripted_slow_api_versions(throttles, answer_after, (connect_after, usize::MAX)).await
}

/// [`scripted`], with the broker answering its first `count` ApiVersions after `after`.
async fn scripted_slow_api_versions(
    throttles: Vec<i32>,
    answer_after: Duration,
    (after, count): (Duration, usize),
) -> (Arc<Messenger>, mpsc::UnboundedReceiver<Instant>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (arrived, arrivals) = mpsc::unbounded_channel();
    tokio::spawn(throttling_broker(
        server,
        throttles,
        (answer_after, after, count),
        arrived,
    ));
    let (read, write) = tokio::io::split(client);
    let m = Messenger::over("scripted".into(), read, write, MessengerConfig::default())
        .await
        .unwrap();
    (Arc::new(m), arrivals)
}

/// KIP-219: after a response with `throttle_time_ms`, nothing more goes to that broker
/// until the time has passed (the clock is tokio's paused one: no real waiting).
#[tokio::test(start_paused = true)]
async fn a_throttled_broker_gets_nothing_until_its_throttle_time_has_passed() {
    let (m, mut arrivals) = scripted(vec![700, 0], Duration::ZERO).await;
    let lanes = Lanes::default();
    let lane = lanes.get(1, 0, m.clone());
    let other_lane = lanes.get(1, 1, m);
    let first = produced(&lane, 0, batch("v", 1)).await;
    assert_eq!(first.throttle_time_ms, 700);
    let answered_at = Instant::now();
    let first_arrival = arrivals.recv().await.unwrap();
    // The next produce, on another lane to the same broker, waits out the throttle.
    let second = produced(&other_lane, 1, batch("v", 1)).await;
    assert_eq!(second.throttle_time_ms, 0);
    let second_arrival = arrivals.recv().await.unwrap();
    assert!(
        second_arrival >= answered_at + Duration::from_millis(700),
        "sent {:?} after the throttled answer",
        second_arrival - answered_at
    );
    assert!(second_arrival > first_arrival);
}

/// The round trip that decides whether small batches are merged is sampled only from
/// requests of small batches: a large one that took long at the broker leaves it
/// alone (the clock is tokio's paused one: the broker's 20 ms pass at once).
#[tokio::test(start_paused = true)]
async fn only_requests_of_small_batches_set_the_lane_round_trip() {
    let answer_after = Duration::from_millis(20);
    let (m, _arrivals) = scripted(vec![], answer_after).await;
    let lane = Lanes::default().get(1, 0, m);
    let large = batch(&"x".repeat(SAMPLED_BATCH_BYTES), 1);
    assert!(large.len() >= SAMPLED_BATCH_BYTES);
    produced(&lane, 0, large).await;
    assert!(
        lane.round_trip() < answer_after,
        "a large batch's request set the round trip to {:?}",
        lane.round_trip()
    );
    assert_sampled_alone(&lane, 0, answer_after).await;
}

/// A round trip is not sampled while another request of ours is at the same broker
/// (on any lane): under our own load a near broker answers late, and counting that
/// would turn merging on where the link is near.
#[tokio::test(start_paused = true)]
async fn a_round_trip_is_sampled_only_when_the_broker_has_nothing_else_of_ours() {
    let answer_after = Duration::from_millis(20);
    let (m, _arrivals) = scripted(vec![], answer_after).await;
    let lanes = Lanes::default();
    let (busy, lane) = (lanes.get(1, 0, m.clone()), lanes.get(1, 1, m));
    let first = busy
        .submit(target("t", 0), batch("busy", 1), None)
        .await
        .unwrap();
    let second = lane
        .submit(target("t", 1), batch("small", 1), None)
        .await
        .unwrap();
    first.await.unwrap().unwrap().unwrap();
    second.await.unwrap().unwrap().unwrap();
    assert!(
        lane.round_trip() < answer_after,
        "sampled while another lane's request was at the broker: {:?}",
        lane.round_trip()
    );
    assert_sampled_alone(&lane, 1, answer_after).await;
}

/// A broker whose first connection answers within [`NEAR_ROUND_TRIP`] spreads its
/// partitions over [`NEAR_PRODUCE_LANES`], one that answers later over [`PRODUCE_LANES`];
/// either is kept for the broker (a partition's requests stay on one connection), whatever
/// its later connections or produces take. Tickets name lanes in turn: every lane of a
/// broker gets its share (tokio's paused clock: no real waiting).
#[tokio::test(start_paused = true)]
async fn a_near_broker_spreads_its_partitions_over_fewer_lanes_for_good() {
    let lanes = Lanes::default();
    let (quick, _a) = scripted(vec![], NEAR_ROUND_TRIP * 4).await;
    let (far, _b) = scripted_connecting(vec![], Duration::ZERO, NEAR_ROUND_TRIP * 2).await;
    assert_eq!(lanes.count(1, &quick).await, NEAR_PRODUCE_LANES);
    assert_eq!(lanes.count(2, &far).await, PRODUCE_LANES);
    // Produces that take long (acks=all) and a slow later connection change nothing.
    let lane = lanes.get(1, 0, quick.clone());
    for _ in 0..IDLE_SAMPLES_NEEDED {
        produced(&lane, 0, batch("alone", 1)).await;
    }
    assert_eq!(lanes.count(1, &far).await, NEAR_PRODUCE_LANES);
    assert_eq!(lanes.count(2, &quick).await, PRODUCE_LANES);

    let mut per_lane = [0; PRODUCE_LANES];
    for _ in 0..2 * PRODUCE_LANES {
        per_lane[lanes.assign() % lanes.count(1, &quick).await] += 1;
    }
    assert_eq!(
        per_lane[..NEAR_PRODUCE_LANES],
        [2 * PRODUCE_LANES / NEAR_PRODUCE_LANES; NEAR_PRODUCE_LANES]
    );
    assert!(per_lane[NEAR_PRODUCE_LANES..].iter().all(|&n| n == 0));

    // A connection opened in a busy moment: its first round trip is slow, the next ones
    // are not, and the least of them counts.
    let (busy_moment, _c) =
        scripted_slow_api_versions(vec![], Duration::ZERO, (NEAR_ROUND_TRIP * 2, 1)).await;
    assert!(busy_moment.round_trip() >= NEAR_ROUND_TRIP * 2);
    assert_eq!(lanes.count(3, &busy_moment).await, NEAR_PRODUCE_LANES);
}

/// A near broker's round trip is the floor of its answer waits alone: slow idle produces
/// (the first writes to new partitions, on a busy machine) do not make it look distant,
/// and one that holds every produce back (acks=all) is found once the floor has its
/// samples. A distant broker's idle produces still count. (tokio's paused clock.)
#[tokio::test(start_paused = true)]
async fn a_near_brokers_round_trip_is_its_answer_waits_not_its_first_produces() {
    let held = NEAR_ROUND_TRIP * 4;
    let lanes = Lanes::default();
    let (near, _a) = scripted(vec![], held).await;
    assert_eq!(lanes.count(1, &near).await, NEAR_PRODUCE_LANES);
    let lane = lanes.get(1, 0, near);
    for _ in 0..IDLE_SAMPLES_NEEDED {
        produced(&lane, 0, batch("slow start", 1)).await;
    }
    assert!(
        lane.round_trip() < NEAR_ROUND_TRIP,
        "slow idle produces set a near broker's round trip to {:?}",
        lane.round_trip()
    );
    for _ in IDLE_SAMPLES_NEEDED..FLOOR_SAMPLES {
        produced(&lane, 0, batch("held", 1)).await;
    }
    assert!(lane.round_trip() >= held, "{:?}", lane.round_trip());

    let (far, _b) = scripted_connecting(vec![], held, NEAR_ROUND_TRIP * 2).await;
    assert_eq!(lanes.count(2, &far).await, PRODUCE_LANES);
    assert_sampled_alone(&lanes.get(2, 0, far), 0, held).await;
}

/// Partitions that ask for a broker's lane count at the same time share one probe: the
/// first connection's extra ApiVersions round trips, [`CONNECT_SAMPLES`] with its own.
#[tokio::test(start_paused = true)]
async fn partitions_asking_at_once_share_one_probe_of_the_broker() {
    let probe_after = Duration::from_millis(1);
    let (m, _arrivals) = scripted_connecting(vec![], Duration::ZERO, probe_after).await;
    let before = api_versions_seen();
    let lanes = Lanes::default();
    let counts = futures::future::join_all((0..8).map(|_| lanes.count(1, &m))).await;
    assert_eq!(counts, vec![NEAR_PRODUCE_LANES; 8]);
    assert_eq!(api_versions_seen() - before, CONNECT_SAMPLES - 1);
}

/// A broker that holds every produce back (acks=all waiting on followers) while reading
/// one request at a time, as Kafka does, and that always has another request of ours, so
/// that no round trip is sampled as idle: the answer waits show its round trip. One that
/// answers at once keeps a near round trip however many requests queue on the lane.
/// (tokio's paused clock: the broker's waits pass at once.)
#[tokio::test(start_paused = true)]
async fn a_busy_lane_finds_a_broker_that_holds_its_answers_back() {
    async fn busy_round_trip(answer_after: Duration) -> (Duration, Option<Duration>) {
        let (m, _arrivals) = scripted(vec![], answer_after).await;
        let lane = Lanes::default().get(1, 0, m);
        // Two partitions, each with a request always waiting behind its other one.
        let mut pending = VecDeque::new();
        for i in 0..2 * FLOOR_SAMPLES {
            pending.push_back(
                lane.submit(target("t", (i % 2) as i32), batch("b", 1), None)
                    .await,
            );
            if pending.len() > 2 {
                let answer = pending.pop_front().unwrap().unwrap().await.unwrap();
                answer.unwrap().unwrap();
            }
        }
        for p in pending {
            p.unwrap().await.unwrap().unwrap().unwrap();
        }
        (lane.round_trip(), lane.stats.idle_round_trips.get())
    }
    let acks_all = NEAR_ROUND_TRIP * 4;
    let (round_trip, idle) = busy_round_trip(acks_all).await;
    assert_eq!(idle, None, "the broker was never idle");
    assert!(round_trip >= acks_all, "{round_trip:?}");
    let (round_trip, _) = busy_round_trip(Duration::ZERO).await;
    assert!(round_trip < NEAR_ROUND_TRIP, "{round_trip:?}");
}

/// Until produces are sampled, the estimate is the least round trip of the broker's
/// connections: one opened while the machine was busy does not make it look distant.
#[tokio::test(start_paused = true)]
async fn before_produces_are_sampled_the_least_connect_round_trip_counts() {
    let connect_after = Duration::from_millis(20);
    let (slow, _a) = scripted_connecting(vec![], Duration::ZERO, connect_after).await;
    let (fast, _b) = scripted(vec![], Duration::ZERO).await;
    assert!(slow.round_trip() >= connect_after);
    let lanes = Lanes::default();
    let _fast_lane = lanes.get(1, 0, fast);
    let slow_lane = lanes.get(1, 1, slow);
    assert!(
        slow_lane.round_trip() < connect_after,
        "{:?}",
        slow_lane.round_trip()
    );
}

/// The least of the last few samples follows the window: a new least counts at once, and
/// when the least leaves the window the next least of those left takes its place.
#[test]
fn the_least_recent_sample_follows_its_window() {
    let ms = Duration::from_millis;
    let least = LeastRecent::new(3, 2);
    least.record(ms(5));
    assert_eq!(least.get(), None, "fewer samples than needed");
    least.record(ms(7));
    assert_eq!(least.get(), Some(ms(5)));
    least.record(ms(2));
    assert_eq!(least.get(), Some(ms(2)), "a new least");
    least.record(ms(9)); // 5 leaves: 7, 2, 9
    assert_eq!(least.get(), Some(ms(2)));
    least.record(ms(8)); // 7 leaves: 2, 9, 8
    assert_eq!(least.get(), Some(ms(2)));
    least.record(ms(6)); // 2 leaves: 9, 8, 6
    assert_eq!(least.get(), Some(ms(6)), "the least left the window");
    least.record(ms(10)); // 9 leaves: 8, 6, 10
    least.record(ms(11)); // 8 leaves: 6, 10, 11
    assert_eq!(least.get(), Some(ms(6)));
    least.record(ms(12)); // 6 leaves: 10, 11, 12
    assert_eq!(least.get(), Some(ms(10)));
}

/// A gate a test opens and closes.
#[derive(Debug, Default)]
struct Switch(std::sync::atomic::AtomicBool);

impl SendGate for Switch {
    fn open(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn closed_reason(&self) -> &'static str {
        "switched off"
    }
}

/// A batch whose gate is closed when its request is built never reaches the broker: it is
/// answered `Withdrawn`, and the batches of other flows in the same request go as usual.
/// (An exclusive flow's owner that ran again after a pause past its session must not send
/// the batches it had handed its lanes.)
#[tokio::test]
async fn a_batch_whose_gate_closed_is_withdrawn_and_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, m) = broker_with_topic(dir.path(), "gated", 2).await;

    let switch = Arc::new(Switch::default());
    let gate: Gate = switch.clone();
    // Both wait in the queue before the combiner starts: one request would carry both.
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    let (mut gated, withdrawn) = submission(target("gated", 0), batch("zombie", 3));
    gated.gate = Some(gate.clone());
    let (free, sent) = submission(target("gated", 1), batch("other", 2));
    tx.try_send(gated)
        .unwrap_or_else(|_| panic!("queue has room"));
    tx.try_send(free)
        .unwrap_or_else(|_| panic!("queue has room"));
    let stats = spawn_combiner(&m, rx);
    match withdrawn.await.unwrap() {
        Err(RequestError::Withdrawn { reason }) => assert_eq!(&*reason, "switched off"),
        other => panic!("the gated batch was not withdrawn: {other:?}"),
    }
    let other = sent.await.unwrap().unwrap().expect("partition 1 answered");
    assert_eq!((other.error_code, other.base_offset), (0, 0));
    assert_eq!(stats.batches.load(Ordering::Relaxed), 1);

    // Open again, the partition's next batch is its first on the broker.
    switch.0.store(true, Ordering::Relaxed);
    let lane = lane_on(&m, tx, &stats);
    let answer = lane
        .submit(target("gated", 0), batch("owner", 1), Some(gate))
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap()
        .expect("partition 0 answered");
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
}
