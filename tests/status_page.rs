//! The status page at `/`, rendered by headless Chromium (Debian's `chromium`, installed by
//! scripts/test.sh) while the daemon mirrors: its script fetches `/status` and the page
//! shows the running flow's name and numbers, and its group offset sync. The test saves a
//! screenshot (`status-page.png` in Cargo's target tmp directory).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::records::Produce;
use support::*;

const FLOW: &str = "east-to-west";

/// Chromium's flags for a page that runs its script before the DOM is taken.
fn chromium(url: &str, extra: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,800",
            "--virtual-time-budget=5000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium (scripts/test.sh installs Debian's chromium package)")
}

#[test]
fn the_status_page_renders_a_running_flow_in_chromium() {
    let (dir, brokers) = brokers();
    let config = one_flow(dir.path(), &[&brokers[0], &brokers[1]], "orders");
    // The flow also syncs group `app`'s offsets; the page lists the group.
    let mut yaml = std::fs::read_to_string(&config).unwrap();
    yaml.push_str("    groups: { include: [\"app\"], sync_offsets: true, interval: 1s }\n");
    std::fs::write(&config, yaml).unwrap();
    let listen = add_telemetry_listener(&config);
    let acked = dir.path().join("acked.json");
    Produce {
        records: 1234,
        create: true,
        ..Produce::new(&brokers[0].addr(), "orders", 2, &acked)
    }
    .run();
    support::groups::commit(&brokers[0].addr(), "orders", "app", "0:100,1:200");
    let daemon = DaemonProcess::start(&config);
    let deadline = Instant::now() + Duration::from_secs(90);
    while http_get(&listen, "/metrics").and_then(|(_, m)| {
        metric(
            &m,
            &format!("kmirror_mirrored_records_total{{flow=\"{FLOW}\"}}"),
        )
    }) != Some(2468.0)
        || !http_get(&listen, "/status").is_some_and(|(_, s)| s.contains("\"group\":\"app\""))
    {
        assert!(Instant::now() < deadline, "{}", daemon.log.tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = format!("http://{listen}/");
    let dom = chromium(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&format!("class=\"flow-name\">{FLOW}<")),
        "the flow's name is not on the page:\n{dom}"
    );
    assert!(
        dom.contains("class=\"v\">2468<") && dom.contains(">running<"),
        "the page does not show 2468 records mirrored by a running flow:\n{dom}"
    );
    assert!(dom.contains("lag (records)") && dom.contains("latency p99"));
    assert!(
        dom.contains("Group offset sync") && dom.contains("data-group=\"app\""),
        "the page does not list the synced group:\n{dom}"
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}): {}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
