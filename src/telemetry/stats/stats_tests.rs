use super::*;

fn flow() -> FlowStats {
    FlowStats::new("f", ("a", "b"), None)
}

/// A started flow with partition t-0 at position 0.
fn started_with_a_partition() -> (Arc<FlowStats>, Arc<PartitionStats>) {
    let f = Arc::new(flow());
    f.set_started(true);
    let p = f.partition(
        &SourcePartition {
            topic: "t".into(),
            partition: 0,
        },
        0,
    );
    (f, p)
}

/// Why `f` is not ready at `now_ms`.
fn not_ready_at(f: &Arc<FlowStats>, now_ms: i64) -> Vec<String> {
    crate::telemetry::http::not_ready(std::slice::from_ref(f), now_ms)
}

/// Asserts that `f` is ready at `now_ms` (`why`: what the case is).
fn assert_ready_at(f: &Arc<FlowStats>, now_ms: i64, why: &str) {
    let reasons = not_ready_at(f, now_ms);
    assert!(reasons.is_empty(), "{why}: {reasons:?}");
}

/// Asserts that `f` is not ready at `now_ms` for one reason, which contains `needle`.
fn assert_one_reason_at(f: &Arc<FlowStats>, now_ms: i64, needle: &str) {
    let reasons = not_ready_at(f, now_ms);
    assert!(
        reasons.len() == 1 && reasons[0].contains(needle),
        "{reasons:?}"
    );
}

#[test]
fn lag_is_the_fetchable_end_minus_position_and_its_age_that_of_the_oldest_held_batch() {
    let f = flow();
    let sp = SourcePartition {
        topic: "t".into(),
        partition: 0,
    };
    let p = f.partition(&sp, 10);
    assert_eq!(
        (p.lag_records(), p.lag_seconds(3_500)),
        (None, None),
        "no Fetch answered yet: unknown, not 0"
    );
    assert_eq!((f.lag_records(), f.lag_unknown_partitions()), (0, 1));
    p.fetched(25, 25);
    assert_eq!(p.lag_records(), Some(15));
    assert_eq!(p.lag_seconds(3_500), None, "behind, and nothing read yet");
    p.holding(Some(1_000));
    assert_eq!(p.lag_seconds(3_500), Some(2.5));
    assert_eq!((f.lag_records(), f.lag_unknown_partitions()), (15, 0));
    f.acknowledged(&p, 15, 100, 2_000, now_ms());
    p.advanced(25);
    p.holding(None);
    assert_eq!(
        (p.lag_records(), p.lag_seconds(9_000)),
        (Some(0), Some(0.0))
    );
    p.fetched(30, 30);
    assert_eq!(
        p.lag_seconds(9_000),
        Some(7.0),
        "not read yet: the last mirrored record's age"
    );
    assert_eq!(f.records(), 15);
    assert_eq!(f.latency_batches(), 1);
}

#[test]
fn a_flow_behind_is_stalled_only_once_nothing_was_acknowledged_for_a_minute_since_it_started() {
    let (f, p) = started_with_a_partition();
    p.fetched(1_000, 1_000);
    let now = now_ms();
    assert_ready_at(
        &f,
        now + 27_000,
        "behind since it started 27 s ago: not stalled yet",
    );
    assert_one_reason_at(&f, now + 61_000, "nothing acknowledged for over 60 s");
}

#[test]
fn a_flow_started_again_counts_its_minute_from_that_start() {
    // Stats outlive a flow's runs: a reload, a standby taking over, a setup retry.
    let f = Arc::new(flow());
    let p = f.partition(
        &SourcePartition {
            topic: "t".into(),
            partition: 0,
        },
        0,
    );
    p.fetched(1_000, 1_000);
    f.set_started(true);
    f.acknowledged(&p, 1, 10, now_ms(), now_ms());
    f.set_started(false);
    // Started again two minutes later, as set_started(true) would record it then.
    f.started_ms.store(now_ms() + 120_000, Ordering::Relaxed);
    f.started.store(true, Ordering::Relaxed);
    let now = now_ms();
    assert_ready_at(&f, now + 150_000, "started again 30 s before");
    assert_one_reason_at(&f, now + 181_000, "");
}

#[test]
fn lag_counts_up_to_the_last_stable_offset_not_past_an_open_transaction() {
    let f = flow();
    let sp = SourcePartition {
        topic: "t".into(),
        partition: 0,
    };
    let p = f.partition(&sp, 40);
    // A transaction open in the source from offset 40: the daemon has read all it can.
    p.fetched(55, 40);
    assert_eq!(p.lag_records(), Some(0));
    assert_eq!(
        (p.high_watermark(), p.last_stable_offset()),
        (Some(55), Some(40))
    );
    // It ended: what it held back is lag until mirrored.
    p.fetched(56, 56);
    assert_eq!(p.lag_records(), Some(16));
}

/// A partition no Fetch has answered has an unknown lag, not 0: once the flow has
/// acknowledged nothing for a minute while it still had none, the flow is not ready.
#[test]
fn a_flow_whose_partition_was_never_fetched_is_not_ready_after_a_minute() {
    let (f, p) = started_with_a_partition();
    let now = now_ms();
    assert_ready_at(&f, now + 27_000, "no Fetch answered for 27 s");
    assert_one_reason_at(&f, now + 61_000, "partition t-0: no Fetch answered");
    p.fetched(0, 0);
    assert_ready_at(&f, now + 61_000, "answered, and nothing to mirror");
}

/// A partition whose Fetches answered and then fail (its leader's node stopped): its lag is
/// unknown, and `/readyz` counts the minute from its last answer, not from its start.
#[test]
fn a_partition_whose_fetches_fail_is_counted_from_its_last_answer() {
    let (f, p) = started_with_a_partition();
    let created = now_ms();
    // A real gap between the partition's start and its last answer.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    p.fetched(10, 10);
    p.fetch_failed();
    assert_ready_at(&f, created + 60_500, "answered a second after its start");
    assert_one_reason_at(&f, now_ms() + 61_000, "no Fetch answered for it in 61 s");
}

/// A partition waiting for its deleted source topic (no leader, no Fetch answered) does
/// not make the flow unready: there is nothing to mirror; once the topic is back, the same
/// partition counts again.
#[test]
fn a_partition_whose_source_topic_was_deleted_does_not_make_the_flow_unready() {
    let (f, p) = started_with_a_partition();
    let now = now_ms();
    p.set_leaderless(true);
    let reasons = not_ready_at(&f, now + 61_000);
    assert!(
        reasons.len() == 2,
        "no Fetch answered, and no leader: {reasons:?}"
    );
    f.source_topic_deleted("t", true);
    assert_ready_at(&f, now + 61_000, "its source topic was deleted");
    assert!(
        p.last_error()
            .is_some_and(|e| e.contains("source topic was deleted")),
        "{:?}",
        p.last_error()
    );
    p.set_leaderless(true);
    p.error("fetch: UNKNOWN_TOPIC_ID".into());
    assert!(p.last_error().is_some_and(|e| e.contains("deleted")));
    f.source_topic_deleted("t", false);
    assert_eq!(not_ready_at(&f, now + 61_000).len(), 2);
    // Started again (a reload, a new owner), it is what discovery says anew.
    f.source_topic_deleted("t", true);
    p.advanced(1);
    let sp = SourcePartition {
        topic: "t".into(),
        partition: 0,
    };
    assert!(!f.partition(&sp, 1).is_source_deleted());
}

/// One partition stuck while another goes on (its target leader is gone): the flow keeps
/// acknowledging, but once the stuck partition, behind, has not advanced for a minute the
/// flow is not ready, and the reason names it.
#[test]
fn a_partition_behind_that_does_not_advance_for_a_minute_is_not_ready() {
    let (f, p0) = started_with_a_partition();
    let p1 = f.partition(
        &SourcePartition {
            topic: "t".into(),
            partition: 1,
        },
        0,
    );
    p0.fetched(100, 100);
    p1.fetched(100, 100);
    p0.advanced(100);
    let now = now_ms();
    // t-0 acknowledged a moment before each look: the flow is not idle.
    f.last_ack_ms.store(now + 60_000, Ordering::Relaxed);
    assert_ready_at(&f, now + 30_000, "not advanced for 30 s");
    assert_one_reason_at(
        &f,
        now + 61_000,
        "partition t-1: 100 records behind and not advanced",
    );
    // Under the flow's rate limits the partitions take turns: not flagged.
    f.throttled_ms.store(now + 30_000, Ordering::Relaxed);
    assert_ready_at(&f, now + 61_000, "rate limited");
    f.throttled_ms.store(0, Ordering::Relaxed);
    p1.advanced(100);
    assert_ready_at(&f, now + 61_000, "caught up");
}

/// A partition idle for longer than a minute (caught up, so its position did not move)
/// that gets a record is not "behind and not advanced" the moment the record arrives: the
/// time without moving counts from when it was last seen caught up.
#[test]
fn an_idle_partition_that_gets_a_record_is_not_stalled_at_once() {
    let (f, p) = started_with_a_partition();
    let now = now_ms();
    f.last_ack_ms.store(now + 120_000, Ordering::Relaxed);
    // Fetches find it caught up for 90 s; then one record arrives.
    p.note_caught_up(0, || now + 90_000);
    p.fetched(1, 1);
    assert_ready_at(&f, now + 91_000, "behind for a second");
    assert_one_reason_at(
        &f,
        now + 151_000,
        "partition t-0: 1 records behind and not advanced for 61 s",
    );
}

/// A source partition without a leader: its lag is unknown at once (not the last Fetch's
/// 0), and after a minute `/readyz` names it.
#[test]
fn a_source_partition_without_a_leader_is_named_after_a_minute() {
    let (f, p) = started_with_a_partition();
    p.fetched(0, 0);
    let now = now_ms();
    f.last_ack_ms.store(now + 120_000, Ordering::Relaxed);
    p.set_leaderless(true);
    assert_eq!(f.lag_unknown_partitions(), 1);
    assert_ready_at(&f, now + 30_000, "no leader for 30 s");
    assert_one_reason_at(
        &f,
        now + 61_000,
        "partition t-0: the source partition has had no leader",
    );
    p.set_leaderless(false);
    p.fetched(0, 0);
    assert_ready_at(&f, now + 61_000, "a leader again");
}

/// A partition's transient error is shown until its position moves again; one that
/// stopped it stays.
#[test]
fn a_partitions_transient_error_goes_once_it_moves() {
    let (_, p) = started_with_a_partition();
    p.error("topic t partition 0 has no leader".into());
    assert!(p.last_error().is_some());
    p.advanced(5);
    assert_eq!(p.last_error(), None);
    p.set_state(PartitionState::Failed, Some("MESSAGE_TOO_LARGE".into()));
    p.advanced(6);
    assert_eq!(p.last_error().as_deref(), Some("MESSAGE_TOO_LARGE"));
}

/// Each failing side is reported with its own last error: a source error that came after
/// the target's is not shown as the reason the target fails. A side failing for a moment
/// (a leader moving) is not a reason yet.
#[test]
fn a_failing_side_is_reported_with_its_own_error() {
    let (f, _) = started_with_a_partition();
    f.produce_retry("retriable", &"partition 0 has no leader");
    f.source_failed(&"OFFSET_OUT_OF_RANGE");
    let now = now_ms();
    assert_ready_at(&f, now + 1_000, "failing for a second");
    let reasons = not_ready_at(&f, now + super::FAILING_GRACE_MS);
    let target = reasons.iter().find(|r| r.contains("target b failing"));
    assert!(
        target.is_some_and(|r| r.ends_with("partition 0 has no leader")),
        "{reasons:?}"
    );
    let source = reasons.iter().find(|r| r.contains("source a failing"));
    assert!(
        source.is_some_and(|r| r.ends_with("OFFSET_OUT_OF_RANGE")),
        "{reasons:?}"
    );
}

/// A flow that has not started (its source unreachable, say) has an unknown lag in
/// `/status` (null), not 0; once started, its known lag.
#[test]
fn a_flow_not_started_has_an_unknown_lag() {
    let f = Arc::new(flow());
    let lag = |f: &Arc<FlowStats>| {
        let status = crate::telemetry::http::status(std::slice::from_ref(f));
        let flow = &status["flows"][0];
        (flow["lag_records"].clone(), flow["lag_seconds"].clone())
    };
    assert_eq!(lag(&f), (serde_json::Value::Null, serde_json::Value::Null));
    f.set_started(true);
    assert_eq!(lag(&f), (serde_json::json!(0), serde_json::json!(0.0)));
}
