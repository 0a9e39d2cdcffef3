//! Where the `kmirror-broker` and `kmirror` binaries are. `CARGO_BIN_EXE_*` exists only in
//! the package that owns a binary, so the kit finds both the same way for every package: a
//! variable naming the file, else the target directory of the running test executable,
//! where the binary is built (once per test process, a no-op when it is fresh).
//!
//! That build runs without the variables cargo sets for the running test (`CARGO_PKG_*`,
//! `CARGO_MANIFEST_DIR`, ...): build scripts such as ring's rerun when one changes, so with
//! them every switch between a plain `cargo build` and a test of another package rebuilt
//! ring and everything above it (3 minutes in release, for every `cargo bench`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The `kmirror-broker` binary: `$KMIRROR_TEST_BROKER_BIN`, else built next to the tests.
pub fn broker_binary() -> PathBuf {
    binary(
        "KMIRROR_TEST_BROKER_BIN",
        "kmirror-broker",
        "kmirror-broker",
    )
}

/// The `kmirror` daemon binary: `$KMIRROR_TEST_DAEMON_BIN`, else built next to the tests.
pub fn daemon_binary() -> PathBuf {
    binary("KMIRROR_TEST_DAEMON_BIN", "kmirror", "kmirror")
}

fn binary(var: &str, package: &str, bin: &'static str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return path.into();
    }
    let dir = profile_dir();
    let path = dir.join(bin);
    static BUILT: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.insert(bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", package, "--bin", bin]);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_for_the_running_target) {
                cmd.env_remove(name);
            }
        }
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(status.success(), "{cmd:?} failed: {status}");
    }
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// `target/<profile>/`: the directory of the test executable, or its parent for `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable's directory");
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>/").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Whether cargo sets `name` for the test or bench it runs (rather than the user for cargo).
fn set_for_the_running_target(name: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
    ];
    const NAMES: [&str; 4] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::set_for_the_running_target;

    /// What cargo sets for a test goes; what a user sets for cargo stays.
    #[test]
    fn only_the_running_targets_variables_are_dropped() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_kmirror",
            "OUT_DIR",
        ] {
            assert!(set_for_the_running_target(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "RUSTFLAGS",
        ] {
            assert!(!set_for_the_running_target(name), "{name}");
        }
    }
}
