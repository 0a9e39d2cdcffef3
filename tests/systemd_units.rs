//! The unit files in `systemd/` pass `systemd-analyze verify` without a warning: the
//! service for one topology, the template for one topology per instance, and the broker.
//! Their `/usr/local/bin/` commands are pointed at the built binaries (verify checks that
//! they exist and are executable).

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn the_unit_files_pass_systemd_analyze_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let daemon = support::daemon_binary();
    let broker = support::broker_binary();
    let mut units = Vec::new();
    for (file, as_name) in [
        ("kmirror.service", "kmirror.service"),
        ("kmirror@.service", "kmirror@east-west.service"),
        ("kmirror-broker.service", "kmirror-broker.service"),
    ] {
        let text = std::fs::read_to_string(root.join("systemd").join(file)).unwrap();
        let text = text
            .replace("/usr/local/bin/kmirror-broker", broker.to_str().unwrap())
            .replace("/usr/local/bin/kmirror ", &format!("{} ", daemon.display()));
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.contains("/usr/local/bin")),
            "{file}: a command left unmapped"
        );
        let path = dir.path().join(as_name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (scripts/test.sh installs Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the machine rather than the units (no running systemd in a container).
    let about_units: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            units
                .iter()
                .any(|u| l.contains(u.file_name().unwrap().to_str().unwrap()))
        })
        .collect();
    assert!(
        out.status.success() && about_units.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
