//! Catch-up benchmark (issue 8): the kmirror daemon and a librdkafka consume -> produce
//! loop (`benches/baseline_mirror.py`, confluent-kafka) copy the same source topics between
//! the same kmirror-broker processes, which enforce Kafka's produce rules. Scenarios: large
//! batches (lz4, linger 50 ms, 1 MiB) and small batches (lz4, linger 0, 16 KiB), each
//! direct and through a TCP proxy adding 5 ms and 50 ms of round trip to the target. One
//! table with wire and key+value MB/s, CPU seconds per GB of key+value bytes and peak RSS
//! per tool, the kmirror/librdkafka ratios, and the targets marked PASS or MISS. Behind
//! 50 ms the daemon also copies at the window target's budget (`WINDOW_TARGET_IN_FLIGHT_BYTES`),
//! where that target is judged.
//!
//! `cargo bench --bench catchup` (also run by `.ci/run`): it exits non-zero when a copy did
//! not complete, never for a target missed. `KMIRROR_PYTHON` names a Python with confluent-kafka for
//! the baseline (`scripts/test.sh` sets up `.venv`); without it only kmirror runs.
//! `KMIRROR_BENCH_MIB` sets the key+value MiB per direct scenario (default 1024; the proxied
//! scenarios copy half as much). `KMIRROR_BENCH_ONLY=small/rtt50ms` runs only the scenarios
//! whose name contains it; `KMIRROR_BENCH_IN_FLIGHT_MIB` sets the flow's max_in_flight_bytes.
//! `KMIRROR_BENCH_SOURCE_RTT_MS=50` puts the source behind a proxy adding that round trip
//! (the copying processes reach it only through the proxy; the data is loaded directly).
//! `KMIRROR_BENCH_REPEAT=5` has the daemon copy each source topic five times (each to a
//! fresh target topic, every copy printed); the table shows the copy of median CPU (the
//! window target's copies: of median steady rate), since a shared 2-core machine varies by
//! a third from one copy to the next.
//! Every copy starts with the kernel's dirty pages written back (`sync`).
//! `KMIRROR_BENCH_TELEMETRY=compare` alternates copies without and with the telemetry
//! listener scraped every second (off, on, on, off, ...), and prints the median of each; `=on` scrapes every copy.

#[path = "../../broker/benches/data.rs"]
mod data;
mod machine;
mod report;
mod run;
mod source;
use kmirror_testkit as support;

use std::path::Path;
use std::time::Duration;

use report::Row;
use source::{Pool, Shape};
use support::BrokerProcess;

/// The flow's `limits.max_in_flight_bytes`, set explicitly for the window target
/// (`KMIRROR_BENCH_IN_FLIGHT_MIB` overrides it).
const MAX_IN_FLIGHT_BYTES: u64 = 16 << 20;

/// The budget at which the window target (80% of `max_in_flight_bytes` / RTT behind 50 ms)
/// is judged, in extra copies of the 50 ms scenarios. At [`MAX_IN_FLIGHT_BYTES`] the bound
/// (335 MB/s) is about 80% of what this 2-core machine carries through the proxy into a
/// target broker that validates every batch as Kafka does (415-420 MB/s behind 5 ms, where
/// the window bounds nothing and the daemon's produce round trips took 20 ms, median,
/// instead of 5: queued in the broker and the proxy). Run that close to the machine's
/// limit, the round trips behind 50 ms took 54 ms (median) in one copy and 72 ms in a
/// busier one, 89% and 61% of the bound: the row measured the machine's spare CPU. At
/// 8 MiB the bound is about 40% of what the machine carries, the round trips stay at
/// 52 ms, and what is missing from the bound is the daemon's.
const WINDOW_TARGET_IN_FLIGHT_BYTES: u64 = 8 << 20;

/// The records carry 2023 timestamps: a broker's default retention.ms (7 days) would
/// delete them at its first retention check.
const KEEP_FOREVER: &str = "--retention-ms=-1";

/// A target cluster as the copying processes see it: directly, or through the proxy.
struct Target {
    broker: BrokerProcess,
    client_addr: String,
}

impl Target {
    fn start(dir: &Path, rtt: Option<Duration>) -> Self {
        let (broker, client_addr) = BrokerProcess::start_behind(dir, &[KEEP_FOREVER], rtt);
        Self {
            broker,
            client_addr,
        }
    }
}

/// `repeat` copies of `job`'s topic by the daemon, each to `topic` + `label` + its number
/// (nothing for the first); with `telemetry` "on" every copy serves telemetry scraped
/// every second, with "compare" copies alternate off, on, on, off.
fn kmirror_copies(
    job: &run::Job,
    dir: &Path,
    label: &str,
    repeat: usize,
    telemetry: &str,
) -> Vec<(bool, Result<run::Measured, String>)> {
    (0..repeat)
        .map(|i| {
            let suffix = match i {
                0 => label.to_string(),
                i => format!("{label}.{i}"),
            };
            // off, on, on, off, ...: a drift over the run favours neither.
            let on = telemetry == "on" || (telemetry == "compare" && matches!(i % 4, 1 | 2));
            let run = dir.join("runs").join(format!("{}{suffix}", job.topic));
            write_back_dirty_pages();
            let m = job.kmirror(&run, &suffix, on);
            println!(
                "  kmirror{}{}: {m:?}",
                if on { " (telemetry scraped)" } else { "" },
                if label.is_empty() {
                    String::new()
                } else {
                    format!(" at max_in_flight_bytes {}", job.max_in_flight_bytes)
                },
            );
            (on, m)
        })
        .collect()
}

/// The copy of median `key` among `runs`; a failed copy fails the scenario.
fn median_by(
    runs: Vec<Result<run::Measured, String>>,
    key: impl Fn(&run::Measured) -> f64,
) -> Result<run::Measured, String> {
    let mut ok = runs.into_iter().collect::<Result<Vec<_>, _>>()?;
    ok.sort_by(|a, b| key(a).total_cmp(&key(b)));
    Ok(ok[ok.len() / 2])
}

/// Writes back the kernel's dirty pages before a copy starts: one copy's writes to the
/// target broker's log (a librdkafka loop leaves 1-2 GB dirty) would otherwise be written
/// back while the next copy runs and slow it.
fn write_back_dirty_pages() {
    if let Err(e) = std::process::Command::new("sync").status() {
        println!("cannot run sync: {e}");
    }
}

/// A number from the environment variable `name`; `None` when unset or not a number.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    let mib: u64 = env_number("KMIRROR_BENCH_MIB").unwrap_or(1024);
    let only = std::env::var("KMIRROR_BENCH_ONLY").unwrap_or_default();
    let max_in_flight_bytes = env_number::<u64>("KMIRROR_BENCH_IN_FLIGHT_MIB")
        .map_or(MAX_IN_FLIGHT_BYTES, |mib| mib << 20);
    let repeat: usize = env_number("KMIRROR_BENCH_REPEAT").unwrap_or(1).max(1);
    let telemetry = std::env::var("KMIRROR_BENCH_TELEMETRY").unwrap_or_default();
    let python = std::env::var("KMIRROR_PYTHON")
        .ok()
        .filter(|p| !p.is_empty());
    if python.is_none() {
        println!("KMIRROR_PYTHON is not set: the librdkafka baseline is NOT run (point it at a Python with confluent-kafka, e.g. .venv/bin/python from scripts/test.sh)");
    }
    // The daemon binary is built on first use; build it now, not inside the first timed
    // copy (a rebuild there once counted 90 s as the daemon's time to its first record).
    let daemon = support::daemon_binary();
    println!("daemon: {}", daemon.display());
    println!("load average at start: {}", machine::load_average().trim());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let source_rtt = env_number("KMIRROR_BENCH_SOURCE_RTT_MS").map(Duration::from_millis);
    let (source, source_client) =
        BrokerProcess::start_behind(&dir.path().join("source"), &[KEEP_FOREVER], source_rtt);
    let source_m = rt.block_on(source::connect(&source.addr()));
    let pools = [Pool::new(Shape::Large), Pool::new(Shape::Small)];
    let networks = [
        ("direct", None, mib),
        ("rtt5ms", Some(Duration::from_millis(5)), mib / 2),
        ("rtt50ms", Some(Duration::from_millis(50)), mib / 2),
    ];
    let mut rows = Vec::new();
    for (network, rtt, mib) in networks {
        let target = Target::start(&dir.path().join(network), rtt);
        let wanted = pools
            .iter()
            .filter(|p| format!("{}/{network}", p.shape.name()).contains(&only));
        for (i, pool) in wanted.enumerate() {
            if i == 0 {
                println!("{network}: {}", machine::page_cache_reading(dir.path()));
            }
            let topic = format!("{}-{network}", pool.shape.name());
            let loaded = rt.block_on(source::load(&source_m, &topic, pool, mib << 20));
            println!(
                "{topic}: {} records in {} lz4 batches ({:.0} KB each on the wire), {:.1} MB wire, {:.1} MB key+value",
                loaded.records,
                loaded.batches,
                loaded.wire_bytes as f64 / loaded.batches as f64 / 1e3,
                loaded.wire_bytes as f64 / 1e6,
                loaded.kv_bytes as f64 / 1e6
            );
            let job = run::Job {
                rt: &rt,
                source: &source_client,
                target: &target.client_addr,
                target_direct: &target.broker.addr(),
                topic: &topic,
                records: loaded.records,
                max_in_flight_bytes,
            };
            let copies = kmirror_copies(&job, dir.path(), "", repeat, &telemetry);
            if telemetry == "compare" {
                report::telemetry_difference(&topic, &copies);
            }
            let kmirror = median_by(copies.into_iter().map(|(_, m)| m).collect(), |m| {
                m.cpu_seconds
            });
            // The window target is judged at a budget this machine can carry behind the
            // round trip (see WINDOW_TARGET_IN_FLIGHT_BYTES).
            let window = (rtt == Some(report::TARGET_RTT)).then(|| {
                let job = run::Job {
                    max_in_flight_bytes: WINDOW_TARGET_IN_FLIGHT_BYTES,
                    ..job
                };
                let copies = kmirror_copies(&job, dir.path(), ".window", repeat, "");
                // A rate target: the copy of median steady rate (its middle 80%'s time).
                median_by(copies.into_iter().map(|(_, m)| m).collect(), |m| {
                    m.middle_seconds
                })
            });
            let baseline = python.as_deref().map(|py| {
                write_back_dirty_pages();
                job.baseline(py)
            });
            println!("  librdkafka loop: {baseline:?}");
            rows.push(Row {
                shape: pool.shape,
                network: network.to_string(),
                rtt,
                loaded,
                kmirror,
                baseline,
                window,
            });
        }
    }
    report::table(&rows);
    report::targets(&rows, max_in_flight_bytes, WINDOW_TARGET_IN_FLIGHT_BYTES);
    println!("\nload average at end: {}", machine::load_average().trim());
    println!("at end: {}", machine::page_cache_reading(dir.path()));
    // A target missed is a figure (timings vary with the machine); a copy that did not
    // complete is a failure.
    let failed = rows
        .iter()
        .filter(|r| r.kmirror.is_err() || matches!(r.baseline, Some(Err(_))))
        .count();
    if failed > 0 {
        eprintln!("{failed} scenario(s) had a copy that did not complete");
        std::process::exit(1);
    }
}
