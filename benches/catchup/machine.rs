//! Readings of the machine printed beside the figures, to tell the daemon's share of a
//! result from the machine's. Besides the load average, how fast the page cache takes new
//! data: this project's machines are VMs that hand memory free for a couple of seconds
//! back to their host (`page_reporting`), and touching it again costs a fault into the
//! host. A write of 1000 MiB of new data ran at 171-250 MB/s to ext4 and to tmpfs alike,
//! against 7.6 GB/s overwriting cached pages. The target broker pays it on every Produce:
//! 2.7 ms (median; p90 7.2) to handle a 490 KB request against 0.58 ms (p90 1.2) in
//! memory used moments before. Behind 50 ms the window target's bound at 8 MiB is
//! 168 MB/s, close to that rate: when the reading is low, the machine is the limit.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Bytes written for the page-cache reading: enough for a steady rate, few enough to
/// take a second or two at the slow rate.
const PAGE_CACHE_PROBE_BYTES: usize = 256 << 20;

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

/// "new data to the page cache: N MB/s": a write of [`PAGE_CACHE_PROBE_BYTES`] of new
/// data to a fresh file in `dir` (deleted after), as a broker's log append does.
pub fn page_cache_reading(dir: &Path) -> String {
    let path = dir.join("page-cache-probe");
    let chunk = vec![0x5a_u8; 1 << 20];
    let started = Instant::now();
    let written = std::fs::File::create(&path).and_then(|mut f| {
        for _ in 0..PAGE_CACHE_PROBE_BYTES / chunk.len() {
            f.write_all(&chunk)?;
        }
        Ok(())
    });
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    match written {
        Ok(()) => format!(
            "new data to the page cache: {:.0} MB/s ({} MiB)",
            PAGE_CACHE_PROBE_BYTES as f64 / seconds / 1e6,
            PAGE_CACHE_PROBE_BYTES >> 20
        ),
        Err(e) => format!("new data to the page cache: not measured ({e})"),
    }
}
