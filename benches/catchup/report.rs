//! The bench's output: one table of every copy (kmirror, the librdkafka loop, and their
//! ratio per figure) and the targets, each marked PASS or MISS. A miss is printed,
//! never a failed process: timings vary with the machine.

use std::time::Duration;

use crate::run::{self, Measured};
use crate::source::{Loaded, Shape};

/// Daemon CPU seconds per GB of key+value bytes, large batches, direct.
const LARGE_CPU_PER_GB: f64 = 0.5;
/// Small batches may cost this much more than large ones.
const SMALL_FACTOR: f64 = 1.5;
/// Share of `max_in_flight_bytes / RTT` to reach at the longest round trip.
const WINDOW_SHARE: f64 = 0.8;
/// The round trip the window target applies to.
pub const TARGET_RTT: Duration = Duration::from_millis(50);

/// One scenario: a source topic copied by both tools.
pub struct Row {
    pub shape: Shape,
    pub network: String,
    pub rtt: Option<Duration>,
    pub loaded: Loaded,
    pub kmirror: Result<Measured, String>,
    /// `None` when the baseline was not run at all.
    pub baseline: Option<Result<Measured, String>>,
    /// Behind [`TARGET_RTT`]: the daemon's copies at the window target's budget.
    pub window: Option<Result<Measured, String>>,
}

impl Row {
    fn scenario(&self) -> String {
        format!("{}/{}", self.shape.name(), self.network)
    }
}

/// Columns of the table, in order.
const COLUMNS: usize = 7;

/// seconds, seconds to the first record, wire MB/s, steady wire MB/s (from 10% of the
/// records on the target to 90%: [`run::MIDDLE`]), key+value MB/s, CPU s per GB of key+value, peak RSS MiB.
fn figures(m: &Measured, loaded: &Loaded) -> [f64; COLUMNS] {
    let middle_share = run::MIDDLE[1] - run::MIDDLE[0];
    let middle_seconds = m.middle_seconds.max(f64::EPSILON);
    [
        m.seconds,
        m.first_record_seconds,
        loaded.wire_bytes as f64 / 1e6 / m.seconds,
        loaded.wire_bytes as f64 * middle_share / 1e6 / middle_seconds,
        loaded.kv_bytes as f64 / 1e6 / m.seconds,
        m.cpu_seconds / (loaded.kv_bytes as f64 / 1e9),
        m.peak_rss_mib,
    ]
}

/// Index of the steady wire MB/s column.
const STEADY_WIRE: usize = 3;
/// Index of the CPU column.
const CPU: usize = 5;

fn line(scenario: &str, tool: &str, cells: &[String]) {
    println!(
        "{scenario:<14} {tool:<18} {:>8} {:>9} {:>10} {:>11} {:>10} {:>12} {:>13}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
    );
}

pub fn table(rows: &[Row]) {
    println!();
    line(
        "scenario",
        "tool",
        &[
            "seconds",
            "to first",
            "wire MB/s",
            "steady wire",
            "k+v MB/s",
            "CPU s/GB k+v",
            "peak RSS MiB",
        ]
        .map(String::from),
    );
    for row in rows {
        let scenario = row.scenario();
        let show = |tool: &str, r: &Result<Measured, String>| match r {
            Ok(m) => line(
                &scenario,
                tool,
                &figures(m, &row.loaded).map(|f| format!("{f:.2}")),
            ),
            Err(e) => println!("{scenario:<14} {tool:<18} failed: {e}"),
        };
        show("kmirror", &row.kmirror);
        match &row.baseline {
            None => println!("{scenario:<14} {:<18} not run", "librdkafka loop"),
            Some(base) => {
                show("librdkafka loop", base);
                if let (Ok(k), Ok(b)) = (&row.kmirror, base) {
                    let (k, b) = (figures(k, &row.loaded), figures(b, &row.loaded));
                    let ratios: Vec<String> = (0..COLUMNS)
                        .map(|i| format!("{:.2}x", k[i] / b[i]))
                        .collect();
                    line(&scenario, "kmirror/librdkafka", &ratios);
                }
            }
        }
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn kmirror_figures(rows: &[Row], shape: Shape, rtt: Option<Duration>) -> Option<[f64; COLUMNS]> {
    let row = rows.iter().find(|r| r.shape == shape && r.rtt == rtt)?;
    Some(figures(row.kmirror.as_ref().ok()?, &row.loaded))
}

/// The targets; the window target is judged on the copies at `window_bytes`.
pub fn targets(rows: &[Row], max_in_flight_bytes: u64, window_bytes: u64) {
    println!("\ntargets (kmirror):");
    let large = kmirror_figures(rows, Shape::Large, None).map(|f| f[CPU]);
    let small = kmirror_figures(rows, Shape::Small, None).map(|f| f[CPU]);
    if let Some(large) = large {
        println!(
            "  {} large/direct CPU {large:.3} s/GB k+v <= {LARGE_CPU_PER_GB}",
            verdict(large <= LARGE_CPU_PER_GB)
        );
    }
    if let Some(small) = small {
        let limit = SMALL_FACTOR * LARGE_CPU_PER_GB;
        println!(
            "  {} small/direct CPU {small:.3} s/GB k+v <= {SMALL_FACTOR} x {LARGE_CPU_PER_GB} = {limit}",
            verdict(small <= limit)
        );
        if let Some(large) = large {
            println!(
                "  {} small/direct CPU is {:.2}x large/direct (<= {SMALL_FACTOR}x)",
                verdict(small <= SMALL_FACTOR * large),
                small / large
            );
        }
    }
    for row in rows.iter().filter(|r| r.rtt.is_some()) {
        let Some(rtt) = row.rtt else { continue };
        if let Ok(m) = &row.kmirror {
            window_line("info ", row, m, rtt, max_in_flight_bytes);
        }
        match &row.window {
            Some(Ok(m)) => {
                let share = window_share(row, m, rtt, window_bytes);
                let check = format!("{} ", verdict(share >= WINDOW_SHARE));
                window_line(&check, row, m, rtt, window_bytes);
            }
            Some(Err(e)) => println!("  MISS {}: failed: {e}", row.scenario()),
            None => {}
        }
    }
    // What the machine carries at all through the proxy: the rate behind 5 ms, where
    // the window bounds nothing.
    for row in rows
        .iter()
        .filter(|r| r.rtt.is_some() && r.rtt != Some(TARGET_RTT))
    {
        if let Ok(m) = &row.kmirror {
            println!(
                "  info {}: the window bounds nothing here; {:.1} MB/s steady wire is about what this machine carries through the proxy",
                row.scenario(),
                figures(m, &row.loaded)[STEADY_WIRE]
            );
        }
    }
}

/// The window's bound `max_in_flight_bytes` / `rtt` and the steady wire rate, in MB/s. The
/// window bounds the rate of data moving: measured between 10% and 90% of the records,
/// neither the start-up (its own column) nor the last window's drain.
fn window_rates(row: &Row, m: &Measured, rtt: Duration, max_in_flight_bytes: u64) -> (f64, f64) {
    let bound = max_in_flight_bytes as f64 / rtt.as_secs_f64() / 1e6;
    (bound, figures(m, &row.loaded)[STEADY_WIRE])
}

fn window_share(row: &Row, m: &Measured, rtt: Duration, max_in_flight_bytes: u64) -> f64 {
    let (bound, wire) = window_rates(row, m, rtt, max_in_flight_bytes);
    wire / bound
}

fn window_line(check: &str, row: &Row, m: &Measured, rtt: Duration, max_in_flight_bytes: u64) {
    let (bound, wire) = window_rates(row, m, rtt, max_in_flight_bytes);
    println!(
        "  {check}{}: max_in_flight_bytes / RTT = {max_in_flight_bytes} B / {rtt:?} = {bound:.1} MB/s; achieved {wire:.1} MB/s steady wire = {:.0}% (target >= {:.0}% at {TARGET_RTT:?})",
        row.scenario(),
        wire / bound * 100.0,
        WINDOW_SHARE * 100.0
    );
}

/// The cost of telemetry scraped, from copies in blocks of off, on, on, off (a drift over
/// the run cancels within a block): per block, the on copies' CPU and wall seconds over
/// the off copies'; printed per block and as the mean.
pub fn telemetry_difference(topic: &str, copies: &[(bool, Result<Measured, String>)]) {
    let mut ratios = Vec::new();
    for block in copies.chunks_exact(4) {
        let ok: Option<Vec<&Measured>> = block.iter().map(|(_, m)| m.as_ref().ok()).collect();
        let Some(m) = ok else { continue };
        let ratio = |f: fn(&Measured) -> f64| (f(m[1]) + f(m[2])) / (f(m[0]) + f(m[3]));
        ratios.push((ratio(|m| m.cpu_seconds), ratio(|m| m.seconds)));
    }
    if ratios.is_empty() {
        return;
    }
    let pct = |r: f64| (r - 1.0) * 100.0;
    let list = |f: fn(&(f64, f64)) -> f64| {
        ratios
            .iter()
            .map(|r| format!("{:+.1}%", pct(f(r))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mean = |f: fn(&(f64, f64)) -> f64| ratios.iter().map(f).sum::<f64>() / ratios.len() as f64;
    println!(
        "  telemetry {topic}: scraped vs not, per block of 4 copies: CPU {} (mean {:+.1}%), wall {} (mean {:+.1}%)",
        list(|r| r.0),
        pct(mean(|r| r.0)),
        list(|r| r.1),
        pct(mean(|r| r.1)),
    );
}
