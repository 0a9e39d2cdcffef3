//! Flow ownership (`exclusive: true`), at Kafka 4.1 versions and emulating Kafka 2.8: two
//! daemons run the same flow; one mirrors it and the other stands by (ready, mirroring
//! nothing), so no record reaches the target twice. A stopped owner hands the flow over
//! (it drains and leaves the group), a killed one once its session expires; either way
//! the next owner carries on from the stored progress and nothing is lost. A daemon the
//! target keeps out of the group says why in /status.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::cluster::wait_for_records;
use support::records::{self, join_producer, Produce};
use support::topics::{admin, flow, read, wait_records};
use support::*;

const OWNS: &str = "owns the flow now";
const STANDS_BY: &str = "this one stands by";

/// A daemon of its own topology file (same flow, same clusters) and telemetry listener.
struct Daemon {
    process: DaemonProcess,
    listen: String,
}

fn start_daemon(dir: PathBuf, clusters: &[(&str, &str)]) -> Daemon {
    std::fs::create_dir_all(&dir).unwrap();
    let flows = format!("{}    exclusive: true\n", flow("owned"));
    let config = write_topology(&dir, clusters, &flows);
    let listen = add_telemetry_listener(&config);
    Daemon {
        process: DaemonProcess::start(&config),
        listen,
    }
}

/// Waits (up to 60 s) for a line of `daemon`'s log containing `needle`.
fn wait_log(daemon: &DaemonProcess, needle: &str) {
    assert!(
        daemon.log.wait_for(needle, Duration::from_secs(60)),
        "no {needle:?} in:\n{}",
        daemon.log.tail(20)
    );
}

/// Waits (up to 60 s) until `count` lines of `daemon`'s log contain `needle`.
fn wait_lines(daemon: &DaemonProcess, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon
        .log
        .lines()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
        < count
    {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} lines with {needle:?} after 60 s:\n{}",
            daemon.log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn flow_status(listen: &str) -> serde_json::Value {
    let (_, status) = http_get(listen, "/status").expect("/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    status["flows"][0].clone()
}

/// Which of `daemons` logs that it owns the flow, waiting for one to.
fn owner(daemons: &[&Daemon]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owners: Vec<usize> = (0..daemons.len())
            .filter(|&i| daemons[i].process.log.contains(OWNS))
            .collect();
        match owners[..] {
            [one] => return one,
            [] => assert!(
                Instant::now() < deadline,
                "no daemon owns the flow after 60 s:\n{}",
                daemons[0].process.log.tail(20)
            ),
            _ => panic!("two daemons own the flow at once"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `{partition: [value, ...]}` of `topic` with repeated values left out (first kept).
fn without_duplicates(got: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (p, values) in got.as_object().unwrap() {
        let mut seen = std::collections::HashSet::new();
        let kept: Vec<_> = values
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| seen.insert(v.to_string()))
            .cloned()
            .collect();
        out.insert(p.clone(), kept.into());
    }
    out.into()
}

/// A source and a target broker, the source with topic `owned` (2 partitions, 5 records
/// each).
fn clusters(broker_args: &[&str]) -> (tempfile::TempDir, BrokerProcess, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), broker_args);
    let target = BrokerProcess::start(&dir.path().join("target"), broker_args);
    admin(&source.addr(), &["create", "owned", "2"]);
    admin(&source.addr(), &["produce", "owned", "a", "5"]);
    (dir, source, target)
}

fn two_daemons_share_one_flow(broker_args: &[&str]) {
    let (dir, source, target) = clusters(broker_args);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", target_addr.as_str()),
    ];
    let mut first = start_daemon(dir.path().join("one"), &clusters);
    let mut second = start_daemon(dir.path().join("two"), &clusters);

    // One mirrors; the other stands by, ready and mirroring nothing.
    let owning = owner(&[&first, &second]);
    let (owning, standing) = if owning == 0 {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    wait_log(&standing.process, STANDS_BY);
    admin(&source_addr, &["produce", "owned", "b", "5"]);
    wait_records(&target_addr, "owned", 20, &owning.process);
    let deadline = Instant::now() + Duration::from_secs(60);
    while flow_status(&owning.listen)["lag_records"] != 0 {
        assert!(Instant::now() < deadline, "{}", flow_status(&owning.listen));
        std::thread::sleep(Duration::from_millis(200));
    }
    let standby = flow_status(&standing.listen);
    assert_eq!(standby["standby"], true, "{standby}");
    assert_eq!(standby["ready"], true, "{standby}");
    assert_eq!(standby["mirrored_records"], 0, "{standby}");
    assert_eq!(http_get(&standing.listen, "/readyz").unwrap().0, 200);
    assert_eq!(flow_status(&owning.listen)["standby"], false);
    assert_eq!(read(&target_addr, "owned"), read(&source_addr, "owned"));

    // A stopped owner drains and leaves: the standby takes over where it stopped.
    owning.process.terminate_ok();
    wait_log(&standing.process, OWNS);
    admin(&source_addr, &["produce", "owned", "c", "5"]);
    wait_records(&target_addr, "owned", 30, &standing.process);
    assert_eq!(read(&target_addr, "owned"), read(&source_addr, "owned"));

    // The stopped one comes back as the standby; the owner is killed: the standby takes
    // over once the coordinator expires the dead owner's session, and nothing is lost.
    owning.process.restart();
    wait_log(&owning.process, STANDS_BY);
    standing.process.kill9();
    admin(&source_addr, &["produce", "owned", "d", "5"]);
    wait_log(&owning.process, OWNS);
    let want = read(&source_addr, "owned");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read(&target_addr, "owned");
        if without_duplicates(&got) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "target {got}\nsource {want}\n{}",
            owning.process.log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn one_of_two_daemons_mirrors_an_exclusive_flow_at_kafka_4_1_versions() {
    two_daemons_share_one_flow(&[]);
}

#[test]
fn one_of_two_daemons_mirrors_an_exclusive_flow_emulating_kafka_2_8() {
    two_daemons_share_one_flow(&["--emulate-kafka", "2.8"]);
}

/// An owner whose group coordinator stops answering (the target broker is paused) gives
/// the flow up before its session could expire, as another daemon may own it by then;
/// once the coordinator answers again it joins again, owns the flow again and carries on
/// from the stored progress.
#[test]
fn an_owner_cut_off_from_its_coordinator_stops_until_it_owns_the_flow_again() {
    let (dir, source, target) = clusters(&[]);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", target_addr.as_str()),
    ];
    let daemon = start_daemon(dir.path().join("one"), &clusters);
    wait_log(&daemon.process, OWNS);
    wait_records(&target_addr, "owned", 10, &daemon.process);

    target.pause();
    wait_log(&daemon.process, "Flow ownership lost");
    target.resume();
    wait_lines(&daemon.process, OWNS, 2);
    admin(&source_addr, &["produce", "owned", "b", "5"]);
    wait_records(&target_addr, "owned", 20, &daemon.process);
    assert_eq!(read(&target_addr, "owned"), read(&source_addr, "owned"));
}

/// Three exclusive flows on two daemons: each flow is owned by exactly one of them, none
/// changes hands while both run, and each is mirrored once. (Each flow's member has its
/// own connections to the coordinator: on a shared one, a JoinGroup waiting for one
/// flow's rebalance would hold up the others' joins and heartbeats.)
#[test]
fn each_of_three_exclusive_flows_has_one_owner() {
    let (dir, source, target) = clusters(&[]);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let names = ["f0", "f1", "f2"];
    let mut flows = String::new();
    for name in names {
        admin(&source_addr, &["create", name, "1"]);
        admin(&source_addr, &["produce", name, name, "5"]);
        flows.push_str(&format!("  - name: {name}\n    source: east\n    target: west\n    topics: {{ include: [\"{name}\"] }}\n    rename: \"{{topic}}\"\n    exclusive: true\n"));
    }
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", target_addr.as_str()),
    ];
    let daemons: Vec<DaemonProcess> = ["one", "two"]
        .iter()
        .map(|d| {
            let dir = dir.path().join(d);
            std::fs::create_dir_all(&dir).unwrap();
            DaemonProcess::start(&write_topology(&dir, &clusters, &flows))
        })
        .collect();
    let owned = |name: &str| -> usize {
        let needle = format!("flow={name} ");
        daemons
            .iter()
            .map(|d| {
                d.log
                    .lines()
                    .iter()
                    .filter(|l| l.contains(OWNS) && l.contains(&needle))
                    .count()
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while names.iter().any(|n| owned(n) == 0) {
        assert!(
            Instant::now() < deadline,
            "not every flow is owned:\n{}\n{}",
            daemons[0].log.tail(20),
            daemons[1].log.tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in names {
        let got = wait_records(&target_addr, name, 5, &daemons[0]);
        assert_eq!(got, read(&source_addr, name), "{name}");
    }
    for name in names {
        assert_eq!(owned(name), 1, "{name} changed hands");
    }
    for d in &daemons {
        assert!(!d.log.contains("Flow ownership lost"), "{}", d.log.tail(30));
    }
}

/// A daemon whose target principal may not use the flow's ownership group (no Describe
/// ACL on `kmirror.rules`: FindCoordinator answers GROUP_AUTHORIZATION_FAILED) mirrors
/// nothing, says so once at ERROR, and /status names the group and the error instead of
/// "connecting to its clusters".
#[test]
fn a_daemon_the_target_keeps_out_of_the_ownership_group_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "admin:admin-pw-1\nalice:alice-pw-2\n").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let users = users.display().to_string();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(
        &dir.path().join("target"),
        &[
            "--sasl-users",
            &users,
            "--authorizer",
            "acl",
            "--super-users",
            "User:admin",
        ],
    );
    admin(&source.addr(), &["create", "owned", "1"]);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", target_addr.as_str()),
    ];
    let config = write_topology(
        dir.path(),
        &clusters,
        &format!("{}    exclusive: true\n", flow("owned")),
    );
    let bootstrap = format!("    bootstrap: [\"{target_addr}\"]\n");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &bootstrap,
        &format!("{bootstrap}    sasl: {{ mechanism: SCRAM-SHA-256, username: alice, password: alice-pw-2 }}\n"),
    );
    std::fs::write(&config, text).unwrap();
    let listen = add_telemetry_listener(&config);
    let daemon = DaemonProcess::start(&config);
    wait_log(&daemon, "Cannot join the flow's ownership group");
    let deadline = Instant::now() + Duration::from_secs(30);
    let reasons = loop {
        let reasons = flow_status(&listen)["not_ready"].to_string();
        if reasons.contains("cannot join") || Instant::now() > deadline {
            break reasons;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        reasons.contains("cannot join its ownership group kmirror.rules")
            && reasons.contains("GroupAuthorizationFailed"),
        "/status does not say why: {reasons}"
    );
    assert_eq!(flow_status(&listen)["errors"]["ownership"], 1);
    assert!(!daemon.log.contains(OWNS));
}

/// A producer of `records` per partition of 2-partition `topic` on `source` at `rate`
/// records/s, acknowledged ones to `acked`; the topic is created first.
fn steady_stream(
    source: &str,
    topic: &str,
    records: u32,
    rate: u32,
    acked: &std::path::Path,
) -> Produce {
    let produce = Produce {
        records,
        rate,
        ..Produce::new(source, topic, 2, acked)
    };
    Produce {
        records: 0,
        create: true,
        ..produce.clone()
    }
    .run();
    produce
}

/// An exclusive flow `owned` of `topic`.
fn exclusive_flow(topic: &str) -> String {
    format!("  - name: owned\n    source: east\n    target: west\n    topics: {{ include: [\"{topic}\"] }}\n    rename: \"{{topic}}\"\n    exclusive: true\n")
}

/// An owner paused past its session (SIGSTOP: a suspended VM, a stalled host) is a zombie
/// when it runs again: the standby took the flow over and mirrored on meanwhile. The
/// zombie gives the flow up before it sends or stores anything: no batch it held and no
/// position it had acknowledged but not yet stored reaches the target after the take-over,
/// so when the flow is handed back to it later (a clean hand-over), it starts where the
/// other owner stopped and mirrors nothing twice.
#[test]
fn an_owner_paused_past_its_session_sends_and_stores_nothing_when_it_runs_again() {
    const TOPIC: &str = "owned.events";
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let acked = dir.path().join("acked.json");
    let produce = steady_stream(&source_addr, TOPIC, 6_000, 400, &acked);
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", target_addr.as_str()),
    ];
    let start = |name: &str| {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = write_topology(&dir, &clusters, &exclusive_flow(TOPIC));
        let listen = add_telemetry_listener(&config);
        Daemon {
            process: DaemonProcess::start(&config),
            listen,
        }
    };
    let producer = produce.spawn();
    let mut first = start("one");
    let mut second = start("two");
    let owning = owner(&[&first, &second]);
    let (zombie, other) = if owning == 0 {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    let zombie_listen = zombie.listen.clone();
    let (zombie, other) = (&mut zombie.process, &mut other.process);
    wait_log(other, STANDS_BY);
    // Paused while it mirrors a steady stream: it holds acknowledged positions not stored
    // yet, and batches not sent yet.
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_for_records(&rt, &target_addr, TOPIC, 500, zombie);
    zombie.pause();
    wait_log(other, OWNS);
    let produced = join_producer(producer);
    let before =
        records::verify_until_complete(&target_addr, TOPIC, 2, &acked, Duration::from_secs(120));
    before.assert_complete_and_ordered(produced);
    // The zombie runs again, gives the flow up and stands by.
    zombie.resume();
    wait_log(zombie, "Flow ownership lost");
    wait_lines(zombie, STANDS_BY, 1);
    // A clean hand-over back to it: it starts where the other owner stopped.
    other.terminate_ok();
    wait_lines(zombie, OWNS, 2);
    // Once it caught up, whatever it would mirror again has been.
    let deadline = Instant::now() + Duration::from_secs(60);
    while flow_status(&zombie_listen)["lag_records"] != 0 {
        assert!(Instant::now() < deadline, "{}", zombie.log.tail(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = records::verify(&target_addr, TOPIC, 2, &acked, Some(&source_addr));
    eprintln!(
        "before the zombie ran again:\n{}\nafter:\n{}",
        before.report, after.report
    );
    // A request the zombie had built, not yet written, at the instant it was stopped goes
    // out when it runs again, as a request in flight would have gone out before (batches
    // still queued for a request are withdrawn then): a record or two at this rate. What it held back and its stale progress would be
    // hundreds to thousands (the other owner's take-over above mirrored over 1,000 again).
    let added = after.duplicated.saturating_sub(before.duplicated);
    assert!(
        added <= IN_HAND_AT_THE_STOP,
        "{added} duplicates more: the zombie sent batches, or its stale progress made the next owner mirror records again:\n{}",
        zombie.log.tail(40)
    );
}

/// Records of the Produce requests a paused daemon may have built, not yet written, at the
/// instant it was stopped (at 200 records/s per partition, linger 5 ms: a batch or two per
/// partition).
const IN_HAND_AT_THE_STOP: u64 = 8;

/// An owner paused while it catches up through a slow link (200 ms of round trip, batches
/// of 16 KiB) holds batches fetched but not sent yet. Run again past its session, it sends
/// none of them: the standby owns the flow by then and mirrored those records already, so
/// each one sent would be a duplicate on the target: a flow whose ownership was lost
/// abandons its drain (on SIGTERM an owner sends what it holds: that is its drain).
#[test]
fn an_owner_paused_while_catching_up_sends_none_of_the_batches_it_held() {
    const TOPIC: &str = "held.events";
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let proxy = DelayProxy::bind(Duration::from_millis(200));
    let proxy_addr = proxy.addr();
    let target = BrokerProcess::start(
        &dir.path().join("target"),
        &["--advertised-listener", &proxy_addr],
    );
    let _link = proxy.forward_to(&target.addr());
    let source_addr = source.addr();
    let acked = dir.path().join("acked.json");
    // Small batches (linger 0), which the daemon merges up to 16 KiB behind the slow
    // link: 2 partitions x 5 requests of 16 KiB per round trip, several seconds for the copy.
    let produced = Produce {
        records: 3_000,
        rate: 2_000,
        value_bytes: 1_000,
        linger_ms: 0,
        create: true,
        ..Produce::new(&source_addr, TOPIC, 2, &acked)
    }
    .run();
    let clusters = [
        ("east", source_addr.as_str()),
        ("west", proxy_addr.as_str()),
    ];
    let flows = format!(
        "{}    limits: {{ max_in_flight_bytes: 4MiB, batch_bytes: 16KiB }}\n",
        exclusive_flow(TOPIC)
    );
    let start = |name: &str| {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        DaemonProcess::start(&write_topology(&dir, &clusters, &flows))
    };
    let zombie = start("one");
    wait_log(&zombie, OWNS);
    let other = start("two");
    wait_log(&other, STANDS_BY);
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_for_records(&rt, &proxy_addr, TOPIC, 500, &zombie);
    zombie.pause();
    let at_pause = rt.block_on(support::cluster::high_watermarks(&proxy_addr, TOPIC));
    assert!(
        at_pause < i64::try_from(produced).unwrap() / 2,
        "the owner was to be paused in the middle of its catch-up, with batches held: {at_pause} of {produced} records mirrored"
    );
    wait_log(&other, OWNS);
    let before =
        records::verify_until_complete(&proxy_addr, TOPIC, 2, &acked, Duration::from_secs(120));
    before.assert_complete_and_ordered(produced);
    let standing_by = zombie
        .log
        .lines()
        .iter()
        .filter(|l| l.contains(STANDS_BY))
        .count();
    zombie.resume();
    wait_log(&zombie, "Flow ownership lost");
    wait_lines(&zombie, STANDS_BY, standing_by + 1);
    let after = records::verify(&proxy_addr, TOPIC, 2, &acked, Some(&source_addr));
    eprintln!(
        "before the zombie ran again:\n{}\nafter:\n{}",
        before.report, after.report
    );
    assert_eq!(
        after.duplicated,
        before.duplicated,
        "the zombie sent the batches it held when it ran again:\n{}",
        zombie.log.tail(40)
    );
}

/// The target's group coordinator stops (node 0 of three: the lowest live node
/// coordinates, and it is also the bootstrap address) while an exclusive flow mirrors a
/// steady stream: the owner finds the new coordinator and the other nodes through the
/// metadata it has and keeps the flow (the group lives on, as Kafka's does when its
/// coordinator moves), and nothing is lost; node 0 starts again and the mirror goes on.
#[test]
fn an_exclusive_flow_outlives_its_coordinator_and_bootstrap_node() {
    const TOPIC: &str = "coordinated.events";
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = ThreeNodes::start(&dir.path().join("target"), &[]);
    let (source_addr, target_addr) = (source.addr(), target.addr());
    let acked = dir.path().join("acked.json");
    let produce = steady_stream(&source_addr, TOPIC, 5_000, 500, &acked);
    let config = write_topology(
        dir.path(),
        &[("east", &source_addr), ("west", &target_addr)],
        &exclusive_flow(TOPIC),
    );
    let daemon = DaemonProcess::start(&config);
    wait_log(&daemon, OWNS);
    let producer = produce.spawn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Asked through node 1 (on the port after the node control's) while node 0 is stopped.
    let admin_port: u16 = target.admin.rsplit(':').next().unwrap().parse().unwrap();
    let node1 = format!("127.0.0.1:{}", admin_port + 1);
    wait_for_records(&rt, &target_addr, TOPIC, 500, &daemon);
    target.node(0, "stop");
    // The mirror goes on without it: more than a heartbeat interval's worth of records.
    let stopped_at = rt.block_on(support::cluster::high_watermarks(&node1, TOPIC));
    wait_for_records(&rt, &node1, TOPIC, stopped_at + 2_000, &daemon);
    target.node(0, "start");
    let produced = join_producer(producer);
    let verdict =
        records::verify_until_complete(&target_addr, TOPIC, 2, &acked, Duration::from_secs(120));
    eprintln!("{}", verdict.report);
    verdict.assert_complete_and_ordered(produced);
    for bad in [" ERROR ", "Flow ownership lost"] {
        assert!(!daemon.log.contains(bad), "{bad}:\n{}", daemon.log.tail(60));
    }
}
