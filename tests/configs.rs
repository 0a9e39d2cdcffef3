//! Every example topology in `configs/` loads and validates.

use std::path::Path;

/// Throw-away certificates (scripts/gen-certs.sh) for the examples that use TLS.
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-certs.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn every_example_topology_validates() {
    let certs = certificates();
    let certs_dir = certs.path().display().to_string();
    // Every `${VAR}` resolves to a placeholder, except the certificates' directory.
    let example_env = |name: &str| match name {
        "KMIRROR_CERTS" => Some(certs_dir.clone()),
        _ => Some("example-secret".to_string()),
    };
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .expect("configs/ exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example topologies in {}",
        directory.display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable example");
        let name = format!(
            "configs/{}",
            path.file_name().expect("file name").to_string_lossy()
        );
        match kmirror::config::parse(&text, &name, &example_env) {
            Ok(topology) => assert!(!topology.flows.is_empty(), "{name} has no flows"),
            Err(errors) => failures.push(errors.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "invalid example topologies:\n{}",
        failures.join("\n")
    );
}

#[test]
fn quickstart_is_two_embedded_clusters_and_one_prefixing_flow() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.yaml");
    let topology = kmirror::config::load(&path).expect("quickstart validates without environment");
    assert_eq!(topology.clusters.len(), 2);
    let flow = &topology.flows[0];
    assert_eq!(flow.rename("orders"), "source.orders");
    assert!(flow.matches("orders"));
    assert!(!flow.matches("__consumer_offsets"));
    assert!(!flow.matches("kmirror-offsets"));
}
