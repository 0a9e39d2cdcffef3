//! Live reload on SIGHUP: a flow added starts, a flow removed drains and stops, a flow
//! whose limits changed restarts, and a flow left as it was keeps running on the same
//! connections (the daemon's sockets are all still open after the reload) without missing
//! a record produced across it; an invalid file changes nothing and the daemon goes on.

mod support;

use std::time::Duration;

use support::cluster::{high_watermarks, wait_for_records};
use support::records::{join_producer, Produce};
use support::*;

fn flow(name: &str, topic: &str, limits: &str) -> String {
    format!("  - name: {name}\n    source: east\n    target: west\n    topics: {{ include: [\"{topic}\"] }}\n    rename: \"{{topic}}\"\n    discovery_interval: 1s\n{limits}")
}

/// Waits until `topic` on the target holds `want` records, and no more.
fn wait_target(
    rt: &tokio::runtime::Runtime,
    target: &str,
    topic: &str,
    want: i64,
    daemon: &DaemonProcess,
) {
    wait_for_records(rt, target, topic, want, daemon);
    assert_eq!(
        rt.block_on(high_watermarks(target, topic)),
        want,
        "{topic}: duplicates"
    );
}

#[test]
fn sighup_adds_removes_and_restarts_flows_and_leaves_the_others_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let produce = |topic: &str, records: u32, create: bool| Produce {
        records,
        create,
        ..Produce::new(
            &source.addr(),
            topic,
            1,
            &dir.path().join(format!("{topic}-{records}.json")),
        )
    };
    for topic in ["a", "b", "c", "d"] {
        assert_eq!(produce(topic, 300, true).run(), 300);
    }
    let clusters = [("east", source.addr()), ("west", target.addr())];
    let clusters: Vec<(&str, &str)> = clusters.iter().map(|(n, a)| (*n, a.as_str())).collect();
    let config = write_topology(
        dir.path(),
        &clusters,
        &[
            flow("fa", "a", ""),
            flow("fb", "b", ""),
            flow("fd", "d", ""),
        ]
        .concat(),
    );
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    for topic in ["a", "b", "d"] {
        wait_target(&rt, &target.addr(), topic, 300, &daemon);
    }
    let sockets_before = daemon.socket_inodes();
    assert!(!sockets_before.is_empty());

    // fa as it was, fb gone, fc new, fd with another limit; records keep coming to a.
    write_topology(
        dir.path(),
        &clusters,
        &[
            flow("fa", "a", ""),
            flow("fc", "c", ""),
            flow("fd", "d", "    limits: { max_in_flight_bytes: 8MiB }\n"),
        ]
        .concat(),
    );
    let producer = Produce {
        rate: 400,
        ..produce("a", 400, false)
    }
    .spawn();
    daemon.signal("-HUP");
    let reloaded = daemon
        .log
        .wait_for_line("Topology reloaded.", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not reloaded:\n{}", daemon.log.tail(30)));
    for part in ["added=fc", "removed=fb", "restarted=fd", "unchanged=fa"] {
        assert!(reloaded.contains(part), "{part} not in {reloaded}");
    }
    // One worker thread keeps freed memory up to the flows' budgets: now two of the
    // default 64 MiB and fd's 8 MiB, no longer three of 64 MiB.
    let kept = format!("keeps_freed_bytes={}", (2 * 64 + 8) << 20);
    assert!(reloaded.contains(&kept), "{kept} not in {reloaded}");
    assert!(daemon.wait_notified("RELOADING=1", Duration::ZERO));
    let sockets_after = daemon.socket_inodes();
    let closed: Vec<_> = sockets_before.difference(&sockets_after).collect();
    assert!(
        closed.is_empty(),
        "sockets closed by the reload: {closed:?}"
    );
    assert_eq!(join_producer(producer), 400);
    wait_target(&rt, &target.addr(), "a", 700, &daemon);
    wait_target(&rt, &target.addr(), "c", 300, &daemon);
    assert!(
        daemon.log.contains("Flow stopped. flow=fb"),
        "{}",
        daemon.log.tail(40)
    );

    // The removed flow mirrors nothing more; the restarted one goes on.
    assert_eq!(produce("b", 50, false).run(), 50);
    assert_eq!(produce("d", 50, false).run(), 50);
    wait_target(&rt, &target.addr(), "d", 350, &daemon);
    assert_eq!(rt.block_on(high_watermarks(&target.addr(), "b")), 300);

    // An invalid file changes nothing.
    std::fs::write(&config, "clusters: {\n").unwrap();
    daemon.signal("-HUP");
    assert!(
        daemon
            .log
            .wait_for("Reload refused", Duration::from_secs(30)),
        "{}",
        daemon.log.tail(30)
    );
    assert_eq!(produce("a", 50, false).run(), 50);
    wait_target(&rt, &target.addr(), "a", 750, &daemon);
    assert!(daemon.socket_inodes().is_superset(&sockets_before));
}

/// A reload that changes a flow's rename and then changes it back: the records mirrored
/// while it pointed elsewhere are not in the first target topic, and the daemon says so
/// (WARN) rather than going on into it silently. Offset translation starts again at each
/// change: a source offset mirrored into the other topic is `before_map`, never "exact" at
/// a target offset of this one that holds another record.
#[test]
fn a_rename_changed_and_changed_back_restarts_offset_translation() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let produce = |records: u32, round: u32| {
        Produce {
            records,
            create: round == 0,
            ..Produce::new(
                &source.addr(),
                "r",
                1,
                &dir.path().join(format!("r-{round}.json")),
            )
        }
        .run()
    };
    let clusters = [("east", source.addr()), ("west", target.addr())];
    let clusters: Vec<(&str, &str)> = clusters.iter().map(|(n, a)| (*n, a.as_str())).collect();
    let renamed = |prefix: &str| {
        let flow = format!("  - name: fr\n    source: east\n    target: west\n    topics: {{ include: [\"r\"] }}\n    rename: \"{prefix}.{{topic}}\"\n    discovery_interval: 1s\n");
        write_topology(dir.path(), &clusters, &flow)
    };
    let config = renamed("a");
    assert_eq!(produce(100, 0), 100);
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    wait_target(&rt, &target.addr(), "a.r", 100, &daemon);
    let reloads = |n: usize| {
        support::discovery::wait_until("the reload", &daemon, || {
            let done = daemon
                .log
                .lines()
                .iter()
                .filter(|l| l.contains("Topology reloaded."))
                .count();
            (done >= n).then_some(())
        })
    };
    for (round, prefix, holds) in [(1, "b", 100), (2, "a", 200)] {
        renamed(prefix);
        daemon.signal("-HUP");
        reloads(round as usize);
        assert_eq!(produce(100, round), 100);
        wait_target(&rt, &target.addr(), &format!("{prefix}.r"), holds, &daemon);
    }
    let config = config.to_str().unwrap();
    let translate = |offset| support::topics::translate_in(config, "fr", "r", 0, offset);
    support::discovery::wait_until("the progress of the last records", &daemon, || {
        (translate(300) == ("exact".to_string(), 200)).then_some(())
    });
    assert_eq!(translate(250), ("exact".to_string(), 150));
    assert_eq!(translate(150).0, "before_map");
    assert!(
        daemon
            .log
            .contains("is another one than the records mirrored so far went to"),
        "{}",
        daemon.log.tail(30)
    );
}

/// A reload that changes `telemetry.listen` moves the listener: `kmirror status CONFIG`
/// (which reads the address from the file) finds the daemon there, and the old address
/// closes; the progress lines follow a new `log_interval`, their rates counted from the
/// reload, not from the start. An address that cannot be bound leaves the listener where it was, with an
/// ERROR, and the rest of the reload still applies.
#[test]
fn a_reload_moves_the_telemetry_listener() {
    let dir = tempfile::tempdir().unwrap();
    let source = BrokerProcess::start(&dir.path().join("source"), &[]);
    let target = BrokerProcess::start(&dir.path().join("target"), &[]);
    let clusters = [("east", source.addr()), ("west", target.addr())];
    let clusters: Vec<(&str, &str)> = clusters.iter().map(|(n, a)| (*n, a.as_str())).collect();
    let topology = |flows: &str, telemetry: &str| {
        let config = write_topology(dir.path(), &clusters, flows);
        add_telemetry(&config, telemetry);
        config
    };
    let first = format!("127.0.0.1:{}", free_port());
    let config = topology(&flow("fa", "a", ""), &format!("listen: \"{first}\""));
    let daemon = DaemonProcess::start(&config);
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(30)
    );
    assert_eq!(http_get(&first, "/healthz").map(|a| a.0), Some(200));
    // Records mirrored before the reload; none after it.
    support::topics::admin(&source.addr(), &["create", "a", "1"]);
    support::topics::admin(&source.addr(), &["produce", "a", "x", "300"]);
    // The target topic first: asked before it exists, the watermark query was seen to
    // wait a minute.
    assert!(
        daemon.log.wait_for(
            "Created target topic. flow=fa topic=a",
            Duration::from_secs(60)
        ),
        "{}",
        daemon.log.tail(30)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    wait_target(&rt, &target.addr(), "a", 300, &daemon);

    let progress_lines = || -> Vec<String> {
        let lines = daemon.log.lines();
        lines
            .into_iter()
            .filter(|l| l.contains("Mirroring."))
            .collect()
    };
    let before_reload = progress_lines().len();

    let second = format!("127.0.0.1:{}", free_port());
    topology(
        &flow("fa", "a", ""),
        &format!("listen: \"{second}\", log_interval: 1s"),
    );
    daemon.signal("-HUP");
    support::discovery::wait_until("the listener on its new address", &daemon, || {
        (http_get(&second, "/healthz")?.0 == 200).then_some(())
    });
    let table = kmirror_ok(&["status", config.to_str().unwrap()]);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("fa")),
        "{table}"
    );
    support::discovery::wait_until("the old address to close", &daemon, || {
        http_get(&first, "/healthz").is_none().then_some(())
    });
    // The progress lines follow the new interval (30 s before), their rates counted from
    // the reload: nothing was mirrored since. (The second line after the count: a line of
    // the old interval may have come between the count and the reload.)
    let line = support::discovery::wait_until("progress lines after the reload", &daemon, || {
        progress_lines().get(before_reload + 1).cloned()
    });
    assert!(line.contains("records_per_sec=0 "), "{line}");

    // An address taken by another process: the listener stays, the flows still change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    topology(
        &[flow("fa", "a", ""), flow("fb", "b", "")].concat(),
        &format!("listen: \"{taken_addr}\""),
    );
    daemon.signal("-HUP");
    let reloaded = daemon
        .log
        .wait_for_line("added=fb", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not reloaded:\n{}", daemon.log.tail(30)));
    assert!(reloaded.contains("Topology reloaded."), "{reloaded}");
    assert!(
        daemon
            .log
            .contains("The telemetry listener stays where it was"),
        "{}",
        daemon.log.tail(30)
    );
    assert_eq!(http_get(&second, "/healthz").map(|a| a.0), Some(200));
}
