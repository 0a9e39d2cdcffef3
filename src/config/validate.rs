//! Validation: from the text to a [`Topology`], collecting every error.
//!
//! Each cluster, flow and the `telemetry` block is deserialized separately (see
//! [`locate::deserialize_at`]), so a type error in one does not hide problems in the
//! others; then every value is checked and every cross-reference resolved, and each
//! problem is recorded with its position (found by [`locate`]) instead of returned.
//! Defaults are applied here. Cross-flow checks live in [`super::graph`].

use super::diagnostics::Diagnostics;
use super::graph::{self, CycleGuard, FlowEdge};
use super::interpolate;
use super::locate::{self, FieldPath, Target};
use super::names::{is_topic_char, NameFilter, Pattern, RenameTemplate};
use super::raw::{
    self, RawCluster, RawEmbedded, RawFlow, RawGroups, RawLimits, RawSasl, RawSyncConfigs,
    RawTelemetry, RawTls, Skeleton, Text, Typed,
};
use super::units::{parse_duration, parse_size};
use super::{
    BrokerAddress, Cluster, ConfigErrors, Connection, Delivery, Embedded, Flow, Groups, Limits,
    PartitionPolicy, Remote, Sasl, Secret, StartFrom, SyncConfigs, Telemetry, Tls, Topology,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest cluster or flow name accepted (names end up in topic names and metric labels).
const MAX_NAME_LEN: usize = 64;
const DEFAULT_CLIENT_ID: &str = "kmirror";
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_GROUPS_INTERVAL: Duration = Duration::from_secs(5);

/// Entry point behind [`super::parse`].
pub(super) fn parse(
    text: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Topology, ConfigErrors> {
    let mut diagnostics = Diagnostics::new(file_name, text);
    let (topology, substitutions) =
        interpolate::with_environment(text, env, || resolve(&mut diagnostics));
    diagnostics.finish(topology, &substitutions)
}

/// Reads the whole document, reporting into `diagnostics`; `None` if it is unusable.
fn resolve(diagnostics: &mut Diagnostics<'_>) -> Option<Topology> {
    let root = FieldPath::root();
    let skeleton: Skeleton = match serde_yaml::from_str(diagnostics.text()) {
        Ok(skeleton) => skeleton,
        Err(error) => {
            diagnostics.serde(&error, &root);
            return None;
        }
    };
    check_top_level_keys(diagnostics, &skeleton);
    let cluster_names = skeleton.cluster_names.clone().unwrap_or_else(|| {
        diagnostics.at(&root, "missing field `clusters`");
        Vec::new()
    });
    let flow_count = skeleton.flow_count.unwrap_or_else(|| {
        diagnostics.at(&root, "missing field `flows`");
        0
    });
    if skeleton.cluster_names.as_ref().is_some_and(Vec::is_empty) {
        diagnostics.at(&root.key("clusters"), "no clusters defined");
    }
    if skeleton.flow_count == Some(0) {
        diagnostics.at(
            &root.key("flows"),
            "no flows defined; a topology needs at least one flow",
        );
    }
    let clusters = resolve_clusters(diagnostics, &cluster_names);
    let known_clusters: BTreeSet<&str> = cluster_names.iter().map(String::as_str).collect();
    let flows = resolve_flows(diagnostics, flow_count, &known_clusters);
    let telemetry = if skeleton.keys.iter().any(|key| key == "telemetry") {
        resolve_telemetry(diagnostics, &clusters)
    } else {
        None
    };
    Some(Topology {
        clusters,
        flows,
        telemetry,
    })
}

fn check_top_level_keys(diagnostics: &mut Diagnostics<'_>, skeleton: &Skeleton) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for key in &skeleton.keys {
        let occurrence = seen.entry(key.as_str()).or_default();
        let path = FieldPath::root().key(key.as_str());
        if !raw::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            diagnostics.at_key(
                &path,
                *occurrence,
                format!("unknown field `{key}`, expected one of `clusters`, `flows`, `telemetry`"),
            );
        } else if *occurrence > 0 {
            diagnostics.at_key(&path, *occurrence, format!("duplicate key `{key}`"));
        }
        *occurrence += 1;
    }
}

fn resolve_clusters(
    diagnostics: &mut Diagnostics<'_>,
    names: &[String],
) -> BTreeMap<String, Cluster> {
    let clusters_path = FieldPath::root().key("clusters");
    let mut clusters = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        let path = clusters_path.key(name.as_str());
        let occurrence = seen.entry(name.as_str()).or_default();
        *occurrence += 1;
        if *occurrence > 1 {
            diagnostics.at_key(
                &path,
                *occurrence - 1,
                format!("duplicate cluster name `{name}`"),
            );
            continue;
        }
        check_name(
            diagnostics,
            &path,
            Target::Key { occurrence: 0 },
            "cluster",
            name,
        );
        match locate::deserialize_at::<RawCluster>(diagnostics.text(), &path) {
            Ok(Some(raw)) => {
                if let Some(cluster) = resolve_cluster(diagnostics, name, &path, raw) {
                    clusters.insert(name.clone(), cluster);
                }
            }
            Ok(None) => diagnostics.at(&path, "cluster not found (internal error)"),
            Err(error) => diagnostics.serde(&error, &path),
        }
    }
    check_embedded_conflicts(diagnostics, &clusters);
    clusters
}

fn resolve_cluster(
    diagnostics: &mut Diagnostics<'_>,
    name: &str,
    path: &FieldPath,
    raw: RawCluster,
) -> Option<Cluster> {
    let errors_before = diagnostics.error_count();
    let client_id = raw
        .client_id
        .map_or_else(|| DEFAULT_CLIENT_ID.to_string(), |text| text.0);
    if client_id.trim().is_empty() {
        diagnostics.at(&path.key("client_id"), "client_id must not be empty");
    }
    let request_timeout = timeout(
        diagnostics,
        path,
        "request_timeout",
        raw.request_timeout_ms.map(|ms| ms.0),
        raw.request_timeout.as_ref(),
        DEFAULT_REQUEST_TIMEOUT,
    );
    let connect_timeout = timeout(
        diagnostics,
        path,
        "connect_timeout",
        raw.connect_timeout_ms.map(|ms| ms.0),
        raw.connect_timeout.as_ref(),
        DEFAULT_CONNECT_TIMEOUT,
    );
    let connection = match (raw.bootstrap, raw.embedded) {
        (Some(_), Some(_)) => {
            diagnostics.at(
                &path.key("embedded"),
                "a cluster is either remote (`bootstrap`) or `embedded`, not both",
            );
            None
        }
        (None, None) => {
            diagnostics.at(
                path,
                "missing `bootstrap` (a remote cluster) or `embedded` (an in-process kmirror-broker)",
            );
            None
        }
        (Some(bootstrap), None) => resolve_remote(diagnostics, path, &bootstrap, raw.tls, raw.sasl),
        (None, Some(embedded)) => {
            if raw.sasl.is_some() {
                diagnostics.at(
                    &path.key("sasl"),
                    "embedded clusters do not authenticate; `sasl` applies to remote clusters only",
                );
            }
            let tls = raw
                .tls
                .and_then(|t| resolve_embedded_tls(diagnostics, &path.key("tls"), t));
            resolve_embedded(diagnostics, &path.key("embedded"), embedded)
                .map(|e| Connection::Embedded(Embedded { tls, ..e }))
        }
    };
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Cluster {
        name: name.to_string(),
        client_id,
        request_timeout: request_timeout?,
        connect_timeout: connect_timeout?,
        connection: connection?,
    })
}

/// `name_ms: 30000` or `name: 30s` (not both), positive.
fn timeout(
    diagnostics: &mut Diagnostics<'_>,
    cluster_path: &FieldPath,
    name: &str,
    millis: Option<u64>,
    human: Option<&Text>,
    default: Duration,
) -> Option<Duration> {
    let millis_key = format!("{name}_ms");
    match (millis, human) {
        (Some(_), Some(_)) => {
            diagnostics.at(
                &cluster_path.key(name),
                format!("set either `{millis_key}` or `{name}`, not both"),
            );
            None
        }
        (Some(0), None) => {
            diagnostics.at(
                &cluster_path.key(millis_key),
                format!("`{name}_ms` must be positive"),
            );
            None
        }
        (Some(millis), None) => Some(Duration::from_millis(millis)),
        (None, human) => duration(diagnostics, &cluster_path.key(name), human, default),
    }
}

/// A positive duration such as "10s", or `default` when absent.
fn duration(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    text: Option<&Text>,
    default: Duration,
) -> Option<Duration> {
    let Some(text) = text else {
        return Some(default);
    };
    match parse_duration(&text.0) {
        Ok(value) if value.is_zero() => {
            diagnostics.at(path, format!("duration {:?} must be positive", text.0));
            None
        }
        Ok(value) => Some(value),
        Err(message) => {
            diagnostics.at(path, message);
            None
        }
    }
}

/// A positive byte size such as "50MiB".
fn size(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, text: &Text) -> Option<u64> {
    match parse_size(&text.0) {
        Ok(0) => {
            diagnostics.at(path, format!("size {:?} must be positive", text.0));
            None
        }
        Ok(bytes) => Some(bytes),
        Err(message) => {
            diagnostics.at(path, message);
            None
        }
    }
}

fn resolve_remote(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    bootstrap: &[Text],
    tls: Option<RawTls>,
    sasl: Option<RawSasl>,
) -> Option<Connection> {
    let bootstrap_path = path.key("bootstrap");
    if bootstrap.is_empty() {
        diagnostics.at(
            &bootstrap_path,
            "bootstrap must list at least one broker as host:port",
        );
    }
    let mut addresses = Vec::new();
    for (index, text) in bootstrap.iter().enumerate() {
        match parse_broker_address(&text.0) {
            Ok(address) => addresses.push(address),
            Err(message) => diagnostics.at(&bootstrap_path.index(index), message),
        }
    }
    let tls = tls.and_then(|raw| resolve_tls(diagnostics, &path.key("tls"), raw));
    let sasl = sasl.and_then(|raw| resolve_sasl(diagnostics, &path.key("sasl"), raw));
    (addresses.len() == bootstrap.len() && !addresses.is_empty()).then_some(Connection::Remote(
        Remote {
            bootstrap: addresses,
            tls,
            sasl,
        },
    ))
}

/// A cluster's `tls`: every file must exist and be readable, and the files must make a
/// usable TLS client (certificates parse, the key matches the certificate).
fn resolve_tls(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, raw: RawTls) -> Option<Tls> {
    let errors_before = diagnostics.error_count();
    let mut file = |key: &str, text: Option<Text>| {
        let text = text?;
        let file = PathBuf::from(&text.0);
        if let Err(e) = std::fs::File::open(&file) {
            diagnostics.at(
                &path.key(key),
                format!("cannot read {}: {e}", file.display()),
            );
        }
        Some(file)
    };
    let ca = file("ca", raw.ca);
    let cert = file("cert", raw.cert);
    let key = file("key", raw.key);
    let cert_and_key = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            diagnostics.at(
                path,
                "tls needs both `cert` and `key` for a client certificate, or neither",
            );
            None
        }
    };
    let tls = Tls {
        ca,
        cert_and_key,
        server_name: raw.server_name.map(|t| t.0),
    };
    if diagnostics.error_count() > errors_before {
        return None;
    }
    if let Err(e) = tls.client() {
        diagnostics.at(path, e.to_string());
        return None;
    }
    Some(tls)
}
/// Why a topology with `sasl` is refused.
/// A cluster's `sasl`: a mechanism, a username and exactly one of `password` (e.g.
/// `${VAR}`) and `password_file` (read now; a trailing newline is dropped).
fn resolve_sasl(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, raw: RawSasl) -> Option<Sasl> {
    let errors_before = diagnostics.error_count();
    if raw.username.0.is_empty() {
        diagnostics.at(&path.key("username"), "sasl username must not be empty");
    }
    let password = match (raw.password, raw.password_file) {
        (Some(password), None) => Some(password),
        (None, Some(file)) => match std::fs::read_to_string(&file.0) {
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\n', '\r']))),
            Err(e) => {
                diagnostics.at(
                    &path.key("password_file"),
                    format!("cannot read {}: {e}", file.0),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            diagnostics.at(path, "give `password` or `password_file`, not both");
            None
        }
        (None, None) => {
            diagnostics.at(path, "missing `password` or `password_file`");
            None
        }
    };
    if password.as_ref().is_some_and(|p| p.expose().is_empty()) {
        diagnostics.at(path, "sasl password must not be empty");
    }
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Sasl {
        mechanism: raw.mechanism.0,
        username: raw.username.0,
        password: password?,
    })
}

/// `host:port` or `[ipv6]:port`.
fn parse_broker_address(text: &str) -> Result<BrokerAddress, String> {
    let invalid =
        || format!("invalid broker address {text:?}: expected host:port, e.g. \"kafka-1:9092\"");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(char::is_whitespace)
        || (host.contains(':') && !text.starts_with('['))
    {
        return Err(invalid());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid broker address {text:?}: port must be a number from 1 to 65535"
        )),
        Ok(port) => Ok(BrokerAddress {
            host: host.to_string(),
            port,
        }),
    }
}

fn parse_listen(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    text: &Text,
) -> Option<SocketAddr> {
    match text.0.parse::<SocketAddr>() {
        Ok(address) => Some(address),
        Err(_) => {
            diagnostics.at(
                path,
                format!(
                    "invalid listen address {:?}: expected ip:port, e.g. \"127.0.0.1:19092\"",
                    text.0
                ),
            );
            None
        }
    }
}

fn resolve_embedded(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawEmbedded,
) -> Option<Embedded> {
    let listen = parse_listen(diagnostics, &path.key("listen"), &raw.listen);
    if raw.data_dir.0.trim().is_empty() {
        diagnostics.at(&path.key("data_dir"), "data_dir must not be empty");
    }
    let partitions = raw.partitions.map_or(1, |value| value.0);
    if partitions == 0 {
        diagnostics.at(&path.key("partitions"), "partitions must be at least 1");
    }
    Some(Embedded {
        listen: listen?,
        data_dir: PathBuf::from(raw.data_dir.0),
        partitions,
        tls: None,
    })
}

/// An embedded cluster's `tls`: its broker presents `cert` and `key`, and the daemon trusts
/// `ca` when it connects to it, so all three are needed.
fn resolve_embedded_tls(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawTls,
) -> Option<Tls> {
    let missing: Vec<&str> = [
        ("ca", raw.ca.is_none()),
        ("cert", raw.cert.is_none()),
        ("key", raw.key.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        diagnostics.at(
            path,
            format!(
                "an embedded cluster's tls needs `ca` (trusted by the daemon), `cert` and `key` (its broker's); missing: {}",
                missing.join(", ")
            ),
        );
        return None;
    }
    let tls = resolve_tls(diagnostics, path, raw)?;
    let (cert, key) = tls.cert_and_key.as_ref()?;
    if let Err(e) = kmirror_wire::tls::server_config(cert, key, None) {
        diagnostics.at(path, e.to_string());
        return None;
    }
    Some(tls)
}

/// Two embedded brokers cannot share a listen address or a data directory.
fn check_embedded_conflicts(
    diagnostics: &mut Diagnostics<'_>,
    clusters: &BTreeMap<String, Cluster>,
) {
    let mut listens: BTreeMap<SocketAddr, &str> = BTreeMap::new();
    let mut data_dirs: BTreeMap<&PathBuf, &str> = BTreeMap::new();
    for (name, cluster) in clusters {
        let Connection::Embedded(embedded) = &cluster.connection else {
            continue;
        };
        let path = FieldPath::root()
            .key("clusters")
            .key(name.as_str())
            .key("embedded");
        if embedded.listen.port() != 0 {
            if let Some(other) = listens.insert(embedded.listen, name) {
                diagnostics.at(
                    &path.key("listen"),
                    format!(
                        "listen address {} is also used by embedded cluster `{other}`",
                        embedded.listen
                    ),
                );
            }
        }
        if let Some(other) = data_dirs.insert(&embedded.data_dir, name) {
            diagnostics.at(
                &path.key("data_dir"),
                format!(
                    "data_dir {:?} is also used by embedded cluster `{other}`",
                    embedded.data_dir
                ),
            );
        }
    }
}

/// Cluster and flow names: non-empty, short, and legal inside a topic name.
fn check_name(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    target: Target,
    kind: &str,
    name: &str,
) {
    let problem = if name.is_empty() {
        Some(format!("{kind} name must not be empty"))
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!(
            "{kind} name `{name}` is longer than {MAX_NAME_LEN} characters"
        ))
    } else if !name.chars().all(is_topic_char) {
        Some(format!(
            "{kind} name `{name}` may only contain letters, digits, '.', '_' and '-'"
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        diagnostics.located(path, target, message);
    }
}

fn resolve_flows(
    diagnostics: &mut Diagnostics<'_>,
    count: usize,
    known_clusters: &BTreeSet<&str>,
) -> Vec<Flow> {
    let flows_path = FieldPath::root().key("flows");
    // (index in the file, flow) for the flows that resolved.
    let mut resolved: Vec<(usize, Flow)> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..count {
        let path = flows_path.index(index);
        let raw = match locate::deserialize_at::<RawFlow>(diagnostics.text(), &path) {
            Ok(Some(raw)) => raw,
            Ok(None) => continue,
            Err(error) => {
                diagnostics.serde(&error, &path);
                continue;
            }
        };
        if let Some(first) = names.get(&raw.name.0) {
            diagnostics.at(
                &path.key("name"),
                format!("duplicate flow name `{}` (also flows[{first}])", raw.name.0),
            );
        } else {
            names.insert(raw.name.0.clone(), index);
        }
        if let Some(flow) = resolve_flow(diagnostics, &path, raw, known_clusters) {
            resolved.push((index, flow));
        }
    }
    let edges: Arc<[FlowEdge]> = resolved
        .iter()
        .map(|(_, flow)| FlowEdge {
            source: flow.source.clone(),
            target: flow.target.clone(),
            rename: flow.rename.clone(),
        })
        .collect();
    let (indices, mut flows): (Vec<usize>, Vec<Flow>) = resolved.into_iter().unzip();
    for flow in &mut flows {
        flow.cycle_guard = CycleGuard::new(Arc::clone(&edges));
    }
    let findings = graph::identity_cycles(&flows)
        .into_iter()
        .chain(graph::rename_collisions(&flows));
    for finding in findings {
        diagnostics.at(
            &flows_path
                .index(indices[finding.flow_index])
                .key(finding.field),
            finding.message,
        );
    }
    flows
}

fn resolve_flow(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawFlow,
    known_clusters: &BTreeSet<&str>,
) -> Option<Flow> {
    let errors_before = diagnostics.error_count();
    let name = raw.name.0;
    check_name(diagnostics, &path.key("name"), Target::Value, "flow", &name);
    let (source, target) = (raw.source.0, raw.target.0);
    for (key, cluster) in [("source", &source), ("target", &target)] {
        if !known_clusters.contains(cluster.as_str()) {
            let defined: Vec<&str> = known_clusters.iter().copied().collect();
            diagnostics.at(
                &path.key(key),
                format!(
                    "unknown cluster `{cluster}` (defined clusters: {})",
                    defined.join(", ")
                ),
            );
        }
    }
    if source == target {
        diagnostics.at(
            &path.key("target"),
            format!("source and target are the same cluster `{source}`; a flow copies between two clusters"),
        );
    }
    let topics_path = path.key("topics");
    if raw.topics.include.is_empty() {
        diagnostics.at(
            &topics_path.key("include"),
            "topics.include must list at least one regex (\".*\" mirrors every topic)",
        );
    }
    let topics = NameFilter {
        include: patterns(
            diagnostics,
            &topics_path.key("include"),
            &raw.topics.include,
        ),
        exclude: patterns(
            diagnostics,
            &topics_path.key("exclude"),
            &raw.topics.exclude,
        ),
    };
    let rename_text = raw
        .rename
        .map_or_else(|| RenameTemplate::DEFAULT.to_string(), |text| text.0);
    let rename = RenameTemplate::parse(&rename_text)
        .map_err(|message| diagnostics.at(&path.key("rename"), message));
    let sync_configs =
        resolve_sync_configs(diagnostics, &path.key("sync_configs"), raw.sync_configs);
    let discovery_interval = duration(
        diagnostics,
        &path.key("discovery_interval"),
        raw.discovery_interval.as_ref(),
        DEFAULT_DISCOVERY_INTERVAL,
    );
    let delivery = raw.delivery.map_or(Delivery::AtLeastOnce, |value| value.0);
    if delivery == Delivery::ExactlyOnce {
        diagnostics.at(
            &path.key("delivery"),
            "delivery `exactly_once` is not supported yet; use `at_least_once` (the default)",
        );
    }
    let limits = resolve_limits(diagnostics, &path.key("limits"), raw.limits);
    let mm2_compat = raw.mm2_compat.is_some_and(|value| value.0);
    // MM2 checkpoints need translated groups: MM2's default group filter when unset.
    let raw_groups = match raw.groups {
        None if mm2_compat => Some(RawGroups::default()),
        other => other,
    };
    let groups = raw_groups.map(|groups| resolve_groups(diagnostics, &path.key("groups"), groups));
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Flow {
        name,
        source,
        target,
        topics,
        rename: rename.ok()?,
        partitions: raw
            .partitions
            .map_or(PartitionPolicy::Preserve, |value| value.0),
        create_topics: raw.create_topics.is_none_or(|value| value.0),
        sync_configs,
        start_from: raw.start_from.map_or(StartFrom::Earliest, |value| value.0),
        discovery_interval: discovery_interval?,
        delivery,
        limits: limits?,
        groups: groups.flatten(),
        mm2_compat,
        sync_acls: raw.sync_acls.is_some_and(|value| value.0),
        cycle_guard: CycleGuard::default(),
    })
}

/// Compiles a list of regexes, reporting each bad one at its own index.
fn patterns(diagnostics: &mut Diagnostics<'_>, path: &FieldPath, texts: &[Text]) -> Vec<Pattern> {
    let mut compiled = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        match Pattern::new(&text.0) {
            Ok(pattern) => compiled.push(pattern),
            Err(message) => diagnostics.at(&path.index(index), message),
        }
    }
    compiled
}

/// Default patterns (known to compile) followed by the configured ones.
fn with_defaults(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    use_defaults: bool,
    defaults: &[&str],
    configured: &[Text],
) -> Vec<Pattern> {
    let mut patterns: Vec<Pattern> = if use_defaults {
        defaults
            .iter()
            .map(|text| Pattern::new(text).expect("built-in pattern compiles"))
            .collect()
    } else {
        Vec::new()
    };
    patterns.extend(self::patterns(diagnostics, path, configured));
    patterns
}

fn resolve_sync_configs(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: Option<RawSyncConfigs>,
) -> SyncConfigs {
    let raw = raw.unwrap_or(RawSyncConfigs {
        enabled: None,
        exclude: Vec::new(),
        default_exclude: None,
    });
    SyncConfigs {
        enabled: raw.enabled.is_none_or(|value| value.0),
        exclude: with_defaults(
            diagnostics,
            &path.key("exclude"),
            raw.default_exclude.is_none_or(|value| value.0),
            SyncConfigs::DEFAULT_EXCLUDE,
            &raw.exclude,
        ),
    }
}

fn resolve_limits(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: Option<RawLimits>,
) -> Option<Limits> {
    let Some(raw) = raw else {
        return Some(Limits {
            bytes_per_sec: None,
            records_per_sec: None,
            max_in_flight_bytes: Limits::DEFAULT_MAX_IN_FLIGHT_BYTES,
            batch_bytes: Limits::DEFAULT_BATCH_BYTES,
        });
    };
    let errors_before = diagnostics.error_count();
    let bytes_per_sec = raw
        .bytes_per_sec
        .as_ref()
        .map(|text| size(diagnostics, &path.key("bytes_per_sec"), text));
    if raw.records_per_sec == Some(Typed(0)) {
        diagnostics.at(
            &path.key("records_per_sec"),
            "records_per_sec must be positive",
        );
    }
    let max_in_flight_bytes = match &raw.max_in_flight_bytes {
        Some(text) => size(diagnostics, &path.key("max_in_flight_bytes"), text),
        None => Some(Limits::DEFAULT_MAX_IN_FLIGHT_BYTES),
    };
    let batch_bytes = match &raw.batch_bytes {
        Some(text) => size(diagnostics, &path.key("batch_bytes"), text),
        None => Some(Limits::DEFAULT_BATCH_BYTES),
    };
    if let (Some(b), Some(m)) = (batch_bytes, max_in_flight_bytes) {
        if b < Limits::MIN_BATCH_BYTES || b > m {
            diagnostics.at(
                &path.key("batch_bytes"),
                format!(
                    "batch_bytes must be between 16KiB and max_in_flight_bytes ({m} bytes), got {b}"
                ),
            );
        }
    }
    if diagnostics.error_count() > errors_before {
        return None;
    }
    Some(Limits {
        bytes_per_sec: bytes_per_sec.flatten(),
        records_per_sec: raw.records_per_sec.map(|rate| rate.0),
        max_in_flight_bytes: max_in_flight_bytes?,
        batch_bytes: batch_bytes?,
    })
}

fn resolve_groups(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: RawGroups,
) -> Option<Groups> {
    let include_texts = raw.include.unwrap_or_else(|| vec![Text(".*".to_string())]);
    if include_texts.is_empty() {
        diagnostics.at(
            &path.key("include"),
            "groups.include must list at least one regex (or be left out for \".*\")",
        );
    }
    let include = patterns(diagnostics, &path.key("include"), &include_texts);
    let exclude = with_defaults(
        diagnostics,
        &path.key("exclude"),
        raw.default_exclude.is_none_or(|value| value.0),
        Groups::DEFAULT_EXCLUDE,
        &raw.exclude,
    );
    let interval = duration(
        diagnostics,
        &path.key("interval"),
        raw.interval.as_ref(),
        DEFAULT_GROUPS_INTERVAL,
    );
    Some(Groups {
        filter: NameFilter { include, exclude },
        sync_offsets: raw.sync_offsets.is_some_and(|value| value.0),
        interval: interval?,
    })
}

fn resolve_telemetry(
    diagnostics: &mut Diagnostics<'_>,
    clusters: &BTreeMap<String, Cluster>,
) -> Option<Telemetry> {
    let path = FieldPath::root().key("telemetry");
    let raw = match locate::deserialize_at::<RawTelemetry>(diagnostics.text(), &path) {
        Ok(raw) => raw?,
        Err(error) => {
            diagnostics.serde(&error, &path);
            return None;
        }
    };
    let log_interval = duration(
        diagnostics,
        &path.key("log_interval"),
        raw.log_interval.as_ref(),
        super::DEFAULT_LOG_INTERVAL,
    );
    let listen_path = path.key("listen");
    let listen = match &raw.listen {
        Some(text) => Some(parse_listen(diagnostics, &listen_path, text)?),
        None => None,
    };
    for (name, cluster) in clusters {
        if let (Connection::Embedded(embedded), Some(listen)) = (&cluster.connection, listen) {
            if listen.port() != 0 && embedded.listen == listen {
                diagnostics.at(
                    &listen_path,
                    format!("telemetry listen address {listen} is also the listen address of embedded cluster `{name}`"),
                );
                return None;
            }
        }
    }
    let otlp = match &raw.otlp {
        None => Some(None),
        Some(o) => resolve_otlp(diagnostics, &path.key("otlp"), o).map(Some),
    };
    Some(Telemetry {
        listen,
        log_interval: log_interval?,
        otlp: otlp?,
    })
}

/// `telemetry.otlp`: an `http://` endpoint (to which `/v1/metrics` is added when it has
/// no path) and the push interval.
fn resolve_otlp(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    raw: &super::raw::RawOtlp,
) -> Option<super::Otlp> {
    let interval = duration(
        diagnostics,
        &path.key("interval"),
        raw.interval.as_ref(),
        Duration::from_secs(10),
    );
    let text = raw.endpoint.0.trim();
    let Some(rest) = text.strip_prefix("http://") else {
        let why = if text.starts_with("https://") {
            "https endpoints need TLS, which kmirror does not have yet; use a local collector over http"
        } else {
            "expected http://HOST:PORT[/PATH]"
        };
        diagnostics.at(
            &path.key("endpoint"),
            format!("invalid OTLP endpoint {text:?}: {why}"),
        );
        return None;
    };
    let endpoint = if rest.trim_end_matches('/').contains('/') {
        text.to_string()
    } else {
        format!("http://{}/v1/metrics", rest.trim_end_matches('/'))
    };
    Some(super::Otlp {
        endpoint,
        interval: interval?,
    })
}
