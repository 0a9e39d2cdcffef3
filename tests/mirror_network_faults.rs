//! Network faults while the daemon mirrors.
//!
//! Connections cut in the middle of frames: the daemon reaches both brokers through
//! proxies that break every connection at once, again and again while it mirrors (a
//! network blip, a load balancer resetting its flows). A Fetch response or a Produce
//! request cut short is never used in part; the daemon connects again, fetches from its
//! position and resends its unacknowledged batches with the same producer sequences, which
//! the target recognises as duplicates of what it already wrote. Nothing may be lost,
//! reordered or written twice, and nothing is reported at ERROR: a broken connection is
//! not a reason for an operator to act. At Kafka 4.1 versions and emulating Kafka 2.8.
//!
//! A source or a target that stops answering for several request timeouts, then answers
//! again.

mod support;

use std::time::{Duration, Instant};

use support::groups::{commit, committed, wait_for_committed};
use support::records::{self, Produce};
use support::*;

const TOPIC: &str = "cut.events";
const PARTITIONS: usize = 4;
const RECORDS_PER_PARTITION: u32 = 20_000;

/// A broker that clients reach through a proxy adding `rtt` that can cut their
/// connections.
fn behind_cutter(
    data_dir: &std::path::Path,
    rtt: Duration,
    broker_args: &[&str],
) -> (BrokerProcess, String, Cutter) {
    let proxy = DelayProxy::bind(rtt);
    let addr = proxy.addr();
    let mut args = broker_args.to_vec();
    args.extend(["--advertised-listener", &addr]);
    let broker = BrokerProcess::start(data_dir, &args);
    let cutter = proxy.forward_to(&broker.addr());
    (broker, addr, cutter)
}

/// Writes `RECORDS_PER_PARTITION` records of 1 KB to each partition of `TOPIC` on
/// `source` (acknowledged ones to `acked`); returns how many were acknowledged.
fn produce_source(source: &str, acked: &std::path::Path) -> u64 {
    Produce {
        records: RECORDS_PER_PARTITION,
        value_bytes: 1_000,
        create: true,
        ..Produce::new(source, TOPIC, PARTITIONS, acked)
    }
    .run()
}

/// A flow `name` of `TOPIC` from east to west with `extra` lines. A rate limit keeps the
/// mirror going for several seconds, so that the faults land while batches are on the
/// wire both ways.
fn flow_of(name: &str, extra: &str) -> String {
    format!("  - name: {name}\n    source: east\n    target: west\n    topics: {{ include: [\"{TOPIC}\"] }}\n    rename: \"{{topic}}\"\n    discovery_interval: 1s\n    limits: {{ bytes_per_sec: 16MiB }}\n{extra}")
}

/// The records of `TOPIC` on `target` (duplicates included).
fn mirrored(rt: &tokio::runtime::Runtime, target: &str) -> u64 {
    rt.block_on(support::cluster::high_watermarks(target, TOPIC))
        .max(0) as u64
}

/// Everything `produced` reached `target` once, in order, and the daemon said nothing at
/// ERROR.
fn assert_mirrored_once(
    target: &str,
    acked: &std::path::Path,
    produced: u64,
    daemon: &DaemonProcess,
) {
    let verdict =
        records::verify_until_complete(target, TOPIC, PARTITIONS, acked, Duration::from_secs(120));
    eprintln!("{}", verdict.report);
    verdict.assert_complete_and_ordered(produced);
    assert_eq!(
        verdict.duplicated, 0,
        "resent batches were written twice:\n{}",
        verdict.report
    );
    assert!(
        !daemon.log.contains(" ERROR "),
        "the daemon reported errors:\n{}",
        daemon.log.tail(60)
    );
}

/// Mirrors `RECORDS_PER_PARTITION` records per partition with a flow of `flow_extra`
/// lines while both sides' connections are cut: ten times 150 ms apart from the daemon's
/// start (while it sets up), then every 200 ms once the mirror moved since the last cut; `before` runs once the source holds the records, `after` once the target
/// holds them all, with the source's address; then checks that nothing was lost,
/// reordered or duplicated and that nothing was said at ERROR.
fn mirror_through_cuts(
    broker_args: &[&str],
    flow_extra: &str,
    before: impl Fn(&str),
    after: impl Fn(&str, &str, &DaemonProcess),
) {
    let dir = tempfile::tempdir().unwrap();
    // Round trips keep requests on the wire most of the time, where the cuts find them.
    let rtt = Duration::from_millis(20);
    let (source, source_addr, source_cuts) =
        behind_cutter(&dir.path().join("source"), rtt, broker_args);
    let (target, target_addr, target_cuts) =
        behind_cutter(&dir.path().join("target"), rtt, broker_args);
    let acked = dir.path().join("acked.json");
    let produced = produce_source(&source.addr(), &acked);
    before(&source.addr());
    let config = write_topology(
        dir.path(),
        &[("east", &source_addr), ("west", &target_addr)],
        &flow_of("cuts", flow_extra),
    );
    let daemon = DaemonProcess::start(&config);
    // While it sets up (progress, producer id, ownership, first discovery): ten cuts.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        source_cuts.cut();
        target_cuts.cut();
    }
    let total = u64::from(RECORDS_PER_PARTITION) * PARTITIONS as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Cut both sides every 300 ms until the target holds everything; count the rounds
    // that cut live connections while the mirror was under way.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut cuts_mid_mirror = 0;
    let mut at_last_cut = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = mirrored(&rt, &target.addr());
        if now >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror stalled at {now} of {total} records:\n{}",
            daemon.log.tail(60)
        );
        // Cut only once the mirror moved since the last cut: every cut then finds it
        // working, and it is never starved of time to make progress.
        if now > at_last_cut {
            let cut = source_cuts.cut() + target_cuts.cut();
            if cut > 0 && now > 0 {
                cuts_mid_mirror += 1;
            }
            at_last_cut = now;
        }
    }
    eprintln!("{cuts_mid_mirror} rounds of cuts while the mirror ran");
    // The cuts broke requests on the wire, both ways.
    for broken in ["Fetch failed", "Produce failed"] {
        assert!(
            daemon.log.contains(broken),
            "no cut found a request on the wire ({broken}):\n{}",
            daemon.log.tail(60)
        );
    }
    assert!(
        cuts_mid_mirror >= 5,
        "only {cuts_mid_mirror} rounds of cuts landed while the mirror ran: the test proved little"
    );
    after(&source.addr(), &target.addr(), &daemon);
    assert_mirrored_once(&target.addr(), &acked, produced, &daemon);
}

#[test]
fn connections_cut_mid_frame_on_both_sides_lose_and_duplicate_nothing() {
    mirror_through_cuts(&[], "", |_| {}, |_, _, _| {});
}

/// The same against brokers emulating Kafka 2.8 (Fetch v12 and Produce v9, by name).
#[test]
fn connections_cut_mid_frame_on_both_sides_lose_and_duplicate_nothing_emulating_kafka_2_8() {
    mirror_through_cuts(&["--emulate-kafka", "2.8"], "", |_| {}, |_, _, _| {});
}

/// The same cuts with the flow owned through a group on the target (`exclusive`) and a
/// consumer group's offsets synced: a broken connection to the coordinator is not a lost
/// ownership (Kafka's members, too, keep their place until their session times out), and
/// the group's offsets reach the target translated.
#[test]
fn an_exclusive_flow_syncing_groups_rides_out_connection_cuts() {
    let group = "app-cuts";
    // (The group tools read partitions 0 and 1.)
    let offsets = "0:15000,1:15001";
    mirror_through_cuts(
        &[],
        "    exclusive: true\n    groups: { include: [\"app-.*\"], sync_offsets: true, interval: 1s }\n",
        |source| commit(source, TOPIC, group, offsets),
        |_, target, daemon| {
            wait_for_committed(target, TOPIC, group, 2, daemon);
            // One to one: the target's offsets are the source's.
            let want: std::collections::BTreeMap<String, i64> = offsets
                .split(',')
                .map(|p| p.split_once(':').unwrap())
                .map(|(p, o)| (p.to_string(), o.parse().unwrap()))
                .collect();
            assert_eq!(committed(target, TOPIC, group), want);
            assert!(
                !daemon.log.contains("Flow ownership lost"),
                "a cut connection to the coordinator cost the ownership:\n{}",
                daemon.log.tail(60)
            );
        },
    );
}

/// A broker that stops answering for several times the daemon's request timeout while the
/// daemon mirrors (a network partition that drops packets, a broker in a long pause),
/// until the daemon has given up on three requests: they time out, it connects again and
/// fetches or resends in order, and the requests it gave up on, still in the stopped
/// broker's socket buffers, are answered there after all once it runs again (a target
/// recognises the resent batches as duplicates). Nothing lost, reordered or written
/// twice, no ERROR.
fn a_broker_that_stops_answering_past_the_request_timeout(stopped: &str) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let acked = dir.path().join("acked.json");
    let produced = produce_source(&source.addr(), &acked);
    let config = write_topology(
        dir.path(),
        &[("east", &source.addr()), ("west", &target.addr())],
        &flow_of("stalls", ""),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("request_timeout: 10s", "request_timeout: 2s"),
    )
    .unwrap();
    // Fetch failures after a leader's first are logged at DEBUG (and every 20th at WARN),
    // discovery's once: the test counts every timed-out Fetch.
    let daemon = DaemonProcess::start_with(
        &config,
        &[],
        &[("KMIRROR_LOG", "info,kmirror::mirror::flow::fetching=debug")],
    );
    let total = u64::from(RECORDS_PER_PARTITION) * PARTITIONS as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    support::cluster::wait_for_records(&rt, &target.addr(), TOPIC, total as i64 / 10, &daemon);
    let broker = if stopped == "source" {
        &source
    } else {
        &target
    };
    broker.pause();
    assert!(
        daemon
            .log
            .wait_for_count("timed out", 3, Duration::from_secs(60)),
        "no request to the stopped {stopped} timed out:\n{}",
        daemon.log.tail(40)
    );
    broker.resume();
    assert_mirrored_once(&target.addr(), &acked, produced, &daemon);
}

#[test]
fn a_target_that_stops_answering_past_the_request_timeout_loses_and_duplicates_nothing() {
    a_broker_that_stops_answering_past_the_request_timeout("target");
}

#[test]
fn a_source_that_stops_answering_past_the_request_timeout_loses_and_duplicates_nothing() {
    a_broker_that_stops_answering_past_the_request_timeout("source");
}
