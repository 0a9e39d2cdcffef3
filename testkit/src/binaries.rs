//! Where the `kmirror-broker` and `kmirror` binaries are. `CARGO_BIN_EXE_*` exists only in
//! the package that owns a binary, so the kit finds both the same way for every package: a
//! variable naming the file, else the target directory of the running test executable,
//! where the binary is built (once per test process, a no-op when it is fresh).

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
