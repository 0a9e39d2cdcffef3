//! `telemetry.otlp`: the daemon pushes its metrics over OTLP/HTTP (protobuf) to the
//! endpoint every `interval`, and once more when it stops (seen with an interval of an
//! hour). No OpenTelemetry collector can run here, so a listener stands in for its HTTP
//! side (it answers every POST with 200 and keeps what arrived), and OpenTelemetry's own
//! protobuf definitions (`opentelemetry-proto` from PyPI) decode the bodies, as a collector
//! would: the records counter must equal what was mirrored.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::records::Produce;
use support::*;

/// One request the stand-in collector received: path, content type, body.
type Received = (String, String, Vec<u8>);

fn collector() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut length, mut content_type) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "content-type" => content_type = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    keep.lock().unwrap().push((path, content_type, body));
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, got)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn metrics_are_pushed_over_otlp_http() {
    let (collector_addr, received) = collector();
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders");
    add_telemetry(
        &config,
        &format!("otlp: {{ endpoint: \"http://{collector_addr}\", interval: 1s }}"),
    );
    Produce {
        records: 100,
        create: true,
        ..Produce::new(
            &brokers[0].addr(),
            "orders",
            1,
            &dir.path().join("acked.json"),
        )
    }
    .run();
    let mut daemon = DaemonProcess::start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    let pushed = |got: &[Received]| {
        got.iter().any(|(path, content_type, body)| {
            path == "/v1/metrics"
                && content_type == "application/x-protobuf"
                && contains(body, "kmirror_mirrored_records")
                && contains(body, "east-to-west")
        })
    };
    // The counter reaches what was mirrored in some push, and the latency histogram (an
    // SDK instrument of the push alone) counts the batches that carried it.
    let pushed_value = |got: &[Received], name: &str| -> Option<f64> {
        let bodies: Vec<String> = got
            .iter()
            .enumerate()
            .map(|(i, (_, _, body))| {
                let path = dir.path().join(format!("otlp-{i}.bin"));
                std::fs::write(&path, body).unwrap();
                path.to_str().unwrap().to_string()
            })
            .collect();
        let args: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let out = run_python("otlp_decode.py", &args);
        let metrics: serde_json::Value = serde_json::from_str(
            out.lines()
                .find_map(|l| l.strip_prefix("METRICS "))
                .unwrap_or("{}"),
        )
        .unwrap();
        metrics[name]
            .as_array()?
            .iter()
            .find(|p| p["attributes"]["flow"] == "east-to-west")?["value"]
            .as_f64()
    };
    let done = |got: &[Received]| {
        pushed(got)
            && pushed_value(got, "kmirror_mirrored_records") == Some(100.0)
            && pushed_value(got, "kmirror_replication_latency_seconds").is_some_and(|n| n >= 1.0)
    };
    while !done(&received.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "no OTLP push with kmirror's metrics in 60 s; received {:?}\n{}",
            received
                .lock()
                .unwrap()
                .iter()
                .map(|(p, c, b)| (p.clone(), c.clone(), b.len()))
                .collect::<Vec<_>>(),
            daemon.log.tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.terminate_ok();

    // With an hour between pushes, what arrives after SIGTERM is the push at shutdown.
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders");
    add_telemetry(
        &config,
        &format!("otlp: {{ endpoint: \"http://{collector_addr}\", interval: 1h }}"),
    );
    daemon.restart();
    assert!(
        daemon.wait_ready(Duration::from_secs(60)),
        "{}",
        daemon.log.tail(20)
    );
    let before_stop = received.lock().unwrap().len();
    daemon.terminate_ok();
    assert!(
        pushed(&received.lock().unwrap()[before_stop..]),
        "no push with kmirror's metrics at shutdown:\n{}",
        daemon.log.tail(20)
    );
}

/// A collector that accepts connections and never answers: every failed push is logged (the
/// SDK's own errors reach the daemon's log), and stopping waits at most a few seconds for
/// the last push instead of the HTTP client's ten (plus the periodic push in flight).
#[test]
fn a_silent_collector_is_reported_and_does_not_hold_up_the_exit() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let collector_addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders");
    add_telemetry(
        &config,
        &format!("otlp: {{ endpoint: \"http://{collector_addr}\", interval: 1s }}"),
    );
    let mut daemon = DaemonProcess::start(&config);
    assert!(
        daemon
            .log
            .wait_for("Failed to export metrics", Duration::from_secs(60)),
        "no failed push reported:\n{}",
        daemon.log.tail(20)
    );
    daemon.terminate_ok();
    assert!(
        daemon
            .log
            .contains("The last metrics push did not finish in time"),
        "{}",
        daemon.log.tail(20)
    );
}
