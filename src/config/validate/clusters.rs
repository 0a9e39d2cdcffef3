//! Validation of `clusters`: remote connections (bootstrap, TLS, SASL), embedded brokers,
//! and the conflicts between embedded brokers.

use super::{
    check_name, timeout, DEFAULT_CLIENT_ID, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use crate::config::diagnostics::Diagnostics;
use crate::config::locate::{self, FieldPath, Target};
use crate::config::raw::{RawCluster, RawEmbedded, RawSasl, RawTls, Text};
use crate::config::{BrokerAddress, Cluster, Connection, Embedded, Remote, Sasl, Secret, Tls};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub(super) fn resolve_clusters(
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
    let replication_factor = match raw.replication_factor.map(|value| value.0) {
        None => None,
        Some(0) => {
            diagnostics.at(
                &path.key("replication_factor"),
                "replication_factor must be at least 1 (leave it out for the cluster's default.replication.factor)",
            );
            None
        }
        Some(n) if n > 1 && raw.embedded.is_some() => {
            diagnostics.at(
                &path.key("replication_factor"),
                format!("an embedded cluster has one node: replication_factor {n} cannot be met"),
            );
            None
        }
        Some(n) => match i16::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                diagnostics.at(
                    &path.key("replication_factor"),
                    format!("replication_factor {n} is above Kafka's limit of 32767"),
                );
                None
            }
        },
    };
    // `tls:` or `sasl:` written without a value asks for something and says nothing of
    // it: refused, never read as plaintext or no authentication.
    let tls = written_value(diagnostics, path, "tls", raw.tls, EMPTY_TLS);
    let sasl = written_value(diagnostics, path, "sasl", raw.sasl, EMPTY_SASL);
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
        (Some(bootstrap), None) => resolve_remote(diagnostics, path, &bootstrap, tls, sasl),
        (None, Some(embedded)) => {
            if sasl.is_some() {
                diagnostics.at(
                    &path.key("sasl"),
                    "embedded clusters do not authenticate; `sasl` applies to remote clusters only",
                );
            }
            let tls = tls.and_then(|t| resolve_embedded_tls(diagnostics, &path.key("tls"), t));
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
        replication_factor,
        connection: connection?,
    })
}

const EMPTY_TLS: &str = "`tls` has no value (were its settings commented out?): write `tls: {}` for TLS trusting the system's CAs, give it `ca`, `cert`, `key` or `server_name`, or remove the key for plaintext";
const EMPTY_SASL: &str = "`sasl` has no value (were its settings commented out?): give it `mechanism`, `username` and `password` or `password_file`, or remove the key to connect without authentication";

/// The value of a key that may be written empty (`written` in `raw.rs`): an empty one is an error.
fn written_value<T>(
    diagnostics: &mut Diagnostics<'_>,
    path: &FieldPath,
    key: &str,
    value: Option<Option<T>>,
    empty: &str,
) -> Option<T> {
    match value {
        Some(None) => {
            diagnostics.at(&path.key(key), empty);
            None
        }
        Some(Some(v)) => Some(v),
        None => None,
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

pub(super) fn parse_listen(
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
