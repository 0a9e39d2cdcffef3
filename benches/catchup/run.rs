//! One copy of a source topic to a target, by the kmirror daemon or by the librdkafka
//! baseline (`benches/baseline_mirror.py`), timed the same way for both: from process start
//! until the target's log end offsets hold every source record. CPU seconds and peak RSS
//! are the copying process's own (for the daemon from /proc, for Python from getrusage).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::source::{self, PARTITIONS};
use crate::support::{self, DaemonProcess};

/// Longest a single copy may take before the bench gives up on it.
const DEADLINE: Duration = Duration::from_secs(180);

/// A daemon slower than this to its first record has its log printed: starting takes under
/// a second even behind 50 ms (a dozen round trips), so more is a stall worth reading about.
const SLOW_START_SECONDS: f64 = 2.0;

/// The shares of the records between which the steady rate is measured.
pub const MIDDLE: [f64; 2] = [0.1, 0.9];

/// When a copy reached its marks, in seconds from its start.
struct Timing {
    all: f64,
    first: f64,
    /// From [`MIDDLE`]'s first share of the records to its second.
    middle: f64,
}

/// What one copy cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub seconds: f64,
    /// From process start until the first record reached the target (connecting,
    /// metadata, topic creation, loading progress: a fixed cost, paid once per start).
    pub first_record_seconds: f64,
    /// From 10% to 90% of the records on the target: the steady rate's time, without the
    /// start-up before and the drain of the last window after.
    pub middle_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

/// Where a copy reads and writes.
pub struct Job<'a> {
    pub rt: &'a Runtime,
    pub source: &'a str,
    /// The target as the copying process reaches it (through the proxy, when there is one).
    pub target: &'a str,
    /// The target's own listener, for the bench's polling.
    pub target_direct: &'a str,
    pub topic: &'a str,
    pub records: u64,
    pub max_in_flight_bytes: u64,
}

impl Job<'_> {
    /// Waits until `topic` on the target holds every record; `Err` with `why()` on timeout.
    fn wait_complete(
        &self,
        topic: &str,
        start: Instant,
        why: impl Fn() -> String,
    ) -> Result<Timing, String> {
        let m = self.rt.block_on(source::connect(self.target_direct));
        let mut first = None;
        let mut crossed = [None; 2];
        let mut last = (0.0, 0u64);
        loop {
            let copied = self.rt.block_on(source::end_offsets(&m, topic));
            let now = start.elapsed().as_secs_f64();
            if copied > 0 && first.is_none() {
                first = Some(now);
            }
            for (at, share) in crossed.iter_mut().zip(MIDDLE) {
                let mark = self.records as f64 * share;
                if at.is_none() && copied as f64 >= mark {
                    // Between two polls the count grew about evenly.
                    let part = (mark - last.1 as f64) / (copied - last.1) as f64;
                    *at = Some(last.0 + part * (now - last.0));
                }
            }
            last = (now, copied);
            if copied >= self.records {
                return Ok(Timing {
                    all: now,
                    first: first.unwrap_or(now),
                    middle: crossed[1].unwrap_or(now) - crossed[0].unwrap_or(0.0),
                });
            }
            if start.elapsed() > DEADLINE {
                return Err(format!("{topic} incomplete after {DEADLINE:?}: {}", why()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon mirrors `topic` to `topic` + `suffix` (a fresh topic per repeated copy)
    /// in a flow of that name, so no copy resumes from another's progress; `dir` holds its
    /// topology.
    ///
    /// With `telemetry`, the daemon serves its telemetry listener and the bench scrapes
    /// `/metrics` and `/status` every second while it copies, as a monitoring system would.
    pub fn kmirror(&self, dir: &Path, suffix: &str, telemetry: bool) -> Result<Measured, String> {
        let target_topic = format!("{}{suffix}", self.topic);
        std::fs::create_dir_all(dir).expect("run directory");
        let flow = format!(
            "  - name: {target_topic}\n    source: source\n    target: target\n    topics: {{ include: [\"{topic}\"] }}\n    rename: \"{{topic}}{suffix}\"\n    discovery_interval: 1s\n    limits: {{ max_in_flight_bytes: {inflight} }}\n",
            topic = self.topic,
            inflight = self.max_in_flight_bytes,
        );
        let config = support::write_topology(
            dir,
            &[("source", self.source), ("target", self.target)],
            &flow,
        );
        let listen = format!("127.0.0.1:{}", support::free_port());
        if telemetry {
            support::add_telemetry(&config, &format!("listen: \"{listen}\""));
        }
        let start = Instant::now();
        let mut daemon = DaemonProcess::start(&config);
        let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(telemetry));
        let scraper = {
            let scraping = scraping.clone();
            std::thread::spawn(move || {
                while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = support::http_get(&listen, "/metrics");
                    let _ = support::http_get(&listen, "/status");
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        let t = self.wait_complete(&target_topic, start, || daemon.log.tail(20));
        scraping.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = scraper.join();
        let t = t?;
        if t.first > SLOW_START_SECONDS {
            println!(
                "  kmirror took {:.1} s to its first record; its log:\n{}",
                t.first,
                daemon.log.text()
            );
        }
        let measured = Measured {
            seconds: t.all,
            first_record_seconds: t.first,
            middle_seconds: t.middle,
            // Clock ticks are USER_HZ, 100 per second on Linux.
            cpu_seconds: daemon
                .cpu_ticks()
                .map_or(0.0, |(_, all)| all as f64 / 100.0),
            peak_rss_mib: daemon.peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        };
        daemon.terminate();
        Ok(measured)
    }

    /// The confluent-kafka loop copies `topic` to `<topic>.baseline`.
    pub fn baseline(&self, python: &str) -> Result<Measured, String> {
        let target_topic = format!("{}.baseline", self.topic);
        self.rt.block_on(async {
            source::create(&*source::connect(self.target_direct).await, &target_topic).await
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/baseline_mirror.py");
        let start = Instant::now();
        let mut child = Command::new(python)
            .args([script, "--source", self.source, "--target", self.target])
            .args(["--topic", self.topic, "--target-topic", &target_topic])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--records", &self.records.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let timed = self.wait_complete(&target_topic, start, || "baseline still running".into());
        if timed.is_err() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "baseline failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> Result<f64, String> {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .ok_or_else(|| format!("no {name}= in baseline output: {text}"))
        };
        let t = timed?;
        Ok(Measured {
            seconds: t.all,
            first_record_seconds: t.first,
            middle_seconds: t.middle,
            cpu_seconds: field("cpu_seconds")?,
            peak_rss_mib: field("maxrss_kib")? / 1024.0,
        })
    }
}
