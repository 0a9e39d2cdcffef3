//! Whole-file scenarios for [`super::parse`]: every error kind with its position and
//! path, several errors at once, interpolation, defaults, cycles and collisions.

use super::*;

const FILE: &str = "topology.yaml";

fn env(name: &str) -> Option<String> {
    match name {
        "EAST_PASSWORD" => Some("correct horse battery staple".to_string()),
        "WEIRD_PASSWORD" => Some("p@ss: #word".to_string()),
        "DIGITS" => Some("007".to_string()),
        _ => None,
    }
}

fn parse_ok(text: &str) -> Topology {
    match parse(text, FILE, &env) {
        Ok(topology) => topology,
        Err(errors) => panic!("expected a valid topology, got:\n{errors}"),
    }
}

fn parse_err(text: &str) -> Vec<ConfigError> {
    match parse(text, FILE, &env) {
        Ok(topology) => panic!("expected errors, got {topology:#?}"),
        Err(errors) => errors.errors,
    }
}

/// The single error, as printed.
fn single_error(text: &str) -> String {
    let errors = parse_err(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors {
            errors: errors.clone()
        }
    );
    errors[0].to_string()
}

const CLUSTERS: &str = "\
clusters:
  a: { bootstrap: [\"a:9092\"] }
  b: { bootstrap: [\"b:9092\"] }
  c: { bootstrap: [\"c:9092\"] }
";

/// A topology with the three clusters above and `flows` appended verbatim.
fn with_flows(flows: &str) -> String {
    format!("{CLUSTERS}flows:\n{flows}")
}

#[test]
fn minimal_flow_gets_the_defaults() {
    let topology = parse_ok(&with_flows(
        "  - name: a-to-b\n    source: a\n    target: b\n    topics: { include: [\".*\"] }\n",
    ));
    let flow = topology.flow("a-to-b").expect("flow");
    assert_eq!(flow.rename.as_str(), "{source}.{topic}");
    assert_eq!(flow.rename("orders"), "a.orders");
    assert_eq!(topology.rename(flow, "orders"), "a.orders");
    assert_eq!(flow.partitions, PartitionPolicy::Preserve);
    assert!(flow.create_topics);
    assert!(flow.sync_configs.enabled);
    assert!(!flow.sync_configs.syncs("min.insync.replicas"));
    assert!(!flow.sync_configs.syncs("remote.storage.enable"));
    assert!(!flow.sync_configs.syncs("message.format.version"));
    assert!(!flow
        .sync_configs
        .syncs("leader.replication.throttled.replicas"));
    assert!(flow.sync_configs.syncs("retention.ms"));
    assert_eq!(flow.start_from, StartFrom::Earliest);
    assert_eq!(flow.discovery_interval, Duration::from_secs(10));
    assert_eq!(flow.delivery, Delivery::AtLeastOnce);
    assert_eq!(
        flow.limits,
        Limits {
            bytes_per_sec: None,
            records_per_sec: None,
            max_in_flight_bytes: 64 << 20,
            batch_bytes: 1 << 20,
        }
    );
    assert!(flow.groups.is_none());
    let cluster = topology.cluster("a").expect("cluster");
    assert_eq!(cluster.client_id, "kmirror");
    assert_eq!(cluster.request_timeout, Duration::from_secs(30));
    assert_eq!(cluster.connect_timeout, Duration::from_secs(10));
    assert_eq!(cluster.replication_factor, None);
    assert!(topology.telemetry.is_none());
}

#[test]
fn a_clusters_replication_factor_is_at_least_1_and_met_by_an_embedded_cluster() {
    let flow =
        "flows:\n  - name: f\n    source: a\n    target: b\n    topics: { include: [\".*\"] }\n";
    let topology =
        |b: &str| format!("clusters:\n  a: {{ bootstrap: [\"a:9092\"] }}\n  b: {b}\n{flow}");
    let parsed = parse_ok(&topology(
        "{ bootstrap: [\"b:9092\"], replication_factor: 3 }",
    ));
    assert_eq!(parsed.cluster("b").expect("b").replication_factor, Some(3));
    assert_eq!(
        single_error(&topology("{ bootstrap: [\"b:9092\"], replication_factor: 0 }")),
        "topology.yaml:3:51: clusters.b.replication_factor: replication_factor must be at least 1 (leave it out for the cluster's default.replication.factor)"
    );
    let too_many = single_error(&topology(
        "{ embedded: { listen: \"127.0.0.1:0\", data_dir: ./d }, replication_factor: 2 }",
    ));
    assert!(
        too_many.contains("an embedded cluster has one node"),
        "{too_many}"
    );
    let above = single_error(&topology(
        "{ bootstrap: [\"b:9092\"], replication_factor: 40000 }",
    ));
    assert!(above.contains("above Kafka's limit of 32767"), "{above}");
    let not_a_number = single_error(&topology(
        "{ bootstrap: [\"b:9092\"], replication_factor: three }",
    ));
    assert!(
        not_a_number.contains("replication_factor"),
        "{not_a_number}"
    );
}

#[test]
fn full_schema_parses_into_typed_values() {
    let text = "\
clusters:
  east:
    bootstrap: [\"kafka-east-1:9092\", \"[::1]:9093\"]
    client_id: mirror-east
    request_timeout_ms: 15000
    connect_timeout: 3s
  local:
    embedded: { listen: \"127.0.0.1:19092\", data_dir: ./data/local, partitions: 3 }
flows:
  - name: east-to-local
    source: east
    target: local
    topics: { include: [\"orders\\\\..*\"], exclude: [\".*\\\\.internal\"] }
    rename: \"{topic}\"
    partitions: preserve
    create_topics: false
    sync_configs: { enabled: true, exclude: [\"retention\\\\.ms\"] }
    start_from: latest
    discovery_interval: 500ms
    delivery: at_least_once
    limits: { bytes_per_sec: 50MiB, records_per_sec: 1000, max_in_flight_bytes: 8MB }
    groups: { include: [\"app-.*\"], sync_offsets: true, interval: 1m }
telemetry: { listen: \"127.0.0.1:9644\" }
";
    let topology = parse_ok(text);
    let east = topology.cluster("east").unwrap();
    assert_eq!(east.client_id, "mirror-east");
    assert_eq!(east.request_timeout, Duration::from_millis(15000));
    assert_eq!(east.connect_timeout, Duration::from_secs(3));
    let Connection::Remote(remote) = &east.connection else {
        panic!("remote")
    };
    let bootstrap: Vec<String> = remote.bootstrap.iter().map(ToString::to_string).collect();
    assert_eq!(bootstrap, ["kafka-east-1:9092", "[::1]:9093"]);
    let Connection::Embedded(local) = &topology.cluster("local").unwrap().connection else {
        panic!("embedded")
    };
    assert_eq!(local.listen, "127.0.0.1:19092".parse().unwrap());
    assert_eq!(local.partitions, 3);

    let flow = &topology.flows[0];
    assert_eq!(flow.rename("orders.eu"), "orders.eu");
    assert!(flow.matches("orders.eu"));
    assert!(!flow.matches("orders.eu.internal"));
    assert!(!flow.create_topics);
    assert!(!flow.sync_configs.syncs("retention.ms"));
    assert!(
        !flow.sync_configs.syncs("min.insync.replicas"),
        "defaults are kept"
    );
    assert_eq!(flow.start_from, StartFrom::Latest);
    assert_eq!(flow.discovery_interval, Duration::from_millis(500));
    assert_eq!(
        flow.limits,
        Limits {
            bytes_per_sec: Some(50 << 20),
            records_per_sec: Some(1000),
            max_in_flight_bytes: 8_000_000,
            batch_bytes: 1 << 20,
        }
    );
    let groups = flow.groups.as_ref().unwrap();
    assert!(groups.sync_offsets && groups.interval == Duration::from_secs(60));
    assert!(groups.filter.matches("app-billing") && !groups.filter.matches("connect-x"));
    assert_eq!(
        topology.telemetry.as_ref().unwrap().listen.unwrap().port(),
        9644
    );
}

/// Mistakes inside `tls` and `sasl` are reported, TLS files must exist and be readable,
/// and no secret is printed.
#[test]
fn tls_and_sasl_mistakes_are_reported_without_secrets() {
    let text = "\
clusters:
  a:
    bootstrap: [\"a:1\"]
    tls: { ca: /etc/kmirror/ca.pem, cert: /c.pem }
    sasl: { mechanism: SCRAM-SHA-512, username: \"\", password: \"${EAST_PASSWORD}\" }
  b: { bootstrap: [\"b:1\"], sasl: { mechanism: PLAIN, username: u, password: p } }
flows:
  - { name: f, source: a, target: b, topics: { include: [x] } }
";
    let printed: Vec<String> = parse_err(text).iter().map(ToString::to_string).collect();
    let all = printed.join("\n");
    let expected = [
        "topology.yaml:4:10: clusters.a.tls: tls needs both `cert` and `key`",
        "topology.yaml:4:16: clusters.a.tls.ca: cannot read /etc/kmirror/ca.pem",
        "topology.yaml:4:43: clusters.a.tls.cert: cannot read /c.pem",
        "topology.yaml:5:49: clusters.a.sasl.username: sasl username must not be empty",
    ];
    for want in expected {
        assert!(
            printed.iter().any(|got| got.starts_with(want)),
            "missing {want}\nall:\n{all}"
        );
    }
    assert_eq!(printed.len(), expected.len(), "all:\n{all}");
    assert!(!all.contains("horse"), "secret leaked: {all}");
}

/// `tls:` or `sasl:` written with no value (its settings commented out) is refused at its
/// line, on a remote and on an embedded cluster: never read as plaintext or as no
/// authentication. `tls: {}` still means TLS with the system's CAs.
#[test]
fn an_empty_tls_or_sasl_key_is_refused() {
    let text = "\
clusters:
  a:
    bootstrap: [\"a:1\"]
    tls:
      # ca: /etc/kmirror/ca.pem
    sasl: ~
  b: { bootstrap: [\"b:1\"], tls: {} }
  c:
    embedded: { listen: \"127.0.0.1:0\", data_dir: /tmp/c }
    tls:
flows:
  - { name: f, source: a, target: b, topics: { include: [x] } }
  - { name: g, source: c, target: b, topics: { include: [x] } }
";
    let printed: Vec<String> = parse_err(text).iter().map(ToString::to_string).collect();
    let all = printed.join("\n");
    let expected = [
        "topology.yaml:4:9: clusters.a.tls: `tls` has no value",
        "topology.yaml:6:11: clusters.a.sasl: `sasl` has no value",
        "topology.yaml:10:9: clusters.c.tls: `tls` has no value",
    ];
    for want in expected {
        assert!(
            printed.iter().any(|got| got.starts_with(want)),
            "missing {want}\nall:\n{all}"
        );
    }
    assert_eq!(printed.len(), expected.len(), "all:\n{all}");

    let topology = parse_ok(
        &text
            .replace("    tls:\n      # ca", "    tls: {}\n      # ca")
            .replace("    sasl: ~\n", "")
            .replace("    tls:\nflows", "flows"),
    );
    match &topology.clusters["a"].connection {
        Connection::Remote(r) => assert!(r.tls.is_some() && r.sasl.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn secrets_never_print() {
    assert_eq!(Secret::new("correct horse").to_string(), "***");
    assert_eq!(format!("{:?}", Secret::new("correct horse")), "***");
}

#[test]
fn yaml_significant_and_numeric_values_survive_interpolation() {
    let topology = parse_ok(
        "clusters:\n  a:\n    bootstrap: [\"a:1\"]\n    client_id: ${WEIRD_PASSWORD}\n  b: { bootstrap: [\"b:1\"], client_id: \"${DIGITS}\" }\nflows:\n  - { name: f, source: a, target: b, topics: { include: [x] } }\n",
    );
    assert_eq!(topology.cluster("a").unwrap().client_id, "p@ss: #word");
    assert_eq!(topology.cluster("b").unwrap().client_id, "007");
}

#[test]
fn numbers_booleans_and_choices_come_from_variables_too() {
    let env = |name: &str| match name {
        "RATE" => Some("500".to_string()),
        "CREATE" => Some("false".to_string()),
        "FROM" => Some("latest".to_string()),
        _ => None,
    };
    let text = with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [x] }\n    create_topics: ${CREATE}\n    start_from: ${FROM}\n    limits:\n      records_per_sec: ${RATE}\n",
    );
    let topology = parse(&text, FILE, &env).unwrap();
    let flow = &topology.flows[0];
    assert!(!flow.create_topics);
    assert_eq!(flow.start_from, StartFrom::Latest);
    assert_eq!(flow.limits.records_per_sec, Some(500));
    // The error quotes the reference as written, not the environment's value.
    let errors = parse(&text.replace("${FROM}", "${FROM}ish"), FILE, &env).unwrap_err();
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert!(
        errors.errors[0]
            .to_string()
            .starts_with("topology.yaml:11:17: flows[0].start_from: unknown variant `${FROM}ish`"),
        "{errors}"
    );
}

#[test]
fn values_cannot_change_the_document_and_keys_are_not_substituted() {
    let env = |name: &str| match name {
        "INJECT" => Some("x\n  c: { bootstrap: [\"c:1\"] }".to_string()),
        "NAME" => Some("b".to_string()),
        _ => None,
    };
    let topology = parse(
        "clusters:\n  a:\n    bootstrap: [\"a:1\"]\n    client_id: ${INJECT}\n  ${NAME}: { bootstrap: [\"b:1\"] }\nflows:\n  - { name: f, source: a, target: \"${NAME}\", topics: { include: [x] } }\n",
        FILE,
        &env,
    );
    let errors = topology.unwrap_err().to_string();
    assert!(errors.contains("unknown cluster `b`"), "{errors}");
    assert!(!errors.contains("c:1"), "{errors}");
}

#[test]
fn an_unquoted_reference_in_a_flow_mapping_gets_a_hint() {
    let error = single_error(&with_flows(
        "  - { name: ${NAME}, source: a, target: b, topics: { include: [x] } }\n",
    ));
    assert!(
        error.contains("write a `${VAR}` value in quotes"),
        "{error}"
    );
}

#[test]
fn missing_variable_names_variable_and_line() {
    let error = single_error(
        "clusters:\n  a:\n    bootstrap: [\"a:1\"]\n    client_id: \"${NOT_SET}\"\n  b: { bootstrap: [\"b:1\"] }\nflows:\n  - { name: f, source: a, target: b, topics: { include: [x] } }\n",
    );
    assert!(
        error.starts_with(
            "topology.yaml:4:16: clusters.a.client_id: environment variable NOT_SET is not set"
        ),
        "{error}"
    );
}

#[test]
fn defaults_in_interpolation() {
    let topology = parse_ok(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [\".*\"] }\n    discovery_interval: ${INTERVAL:-2s}\n",
    ));
    assert_eq!(topology.flows[0].discovery_interval, Duration::from_secs(2));
}

#[test]
fn interpolated_values_are_redacted_from_messages() {
    let text = with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [\".*\"] }\n    discovery_interval: \"${EAST_PASSWORD}\"\n",
    );
    let error = single_error(&text);
    assert!(!error.contains("horse"), "{error}");
    assert!(error.contains("${EAST_PASSWORD}"), "{error}");
    // Also where a number, boolean or choice is read from the environment.
    for field in [
        "create_topics: \"${EAST_PASSWORD}\"",
        "partitions: \"${EAST_PASSWORD}\"",
    ] {
        let error = single_error(&with_flows(&format!(
            "  - name: f\n    source: a\n    target: b\n    topics: {{ include: [\".*\"] }}\n    {field}\n"
        )));
        assert!(!error.contains("horse"), "{error}");
        assert!(error.contains("${EAST_PASSWORD}"), "{error}");
    }
}

#[test]
fn invalid_regex_names_file_line_column_and_path() {
    let error = single_error(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics:\n      include:\n        - \"orders\\\\..*\"\n        - \"orders(\"\n",
    ));
    assert_eq!(error, "topology.yaml:12:11: flows[0].topics.include[1]: invalid regex \"orders(\": unclosed group");
}

#[test]
fn invalid_regex_in_flow_style_list_points_at_the_item() {
    let error = single_error(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [\"ok\", \"(bad\"] } }\n",
    ));
    assert!(
        error.starts_with("topology.yaml:6:64: flows[0].topics.include[1]: invalid regex"),
        "{error}"
    );
}

#[test]
fn unknown_key_is_rejected_with_its_location() {
    let error = single_error(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [x] }\n    discovery_intervall: 10s\n",
    ));
    assert!(
        error.starts_with(
            "topology.yaml:10:5: flows[0]: unknown field `discovery_intervall`, expected one of"
        ),
        "{error}"
    );
    let nested = single_error(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [x], exlude: [y] }\n",
    ));
    assert!(
        nested.starts_with("topology.yaml:9:29: flows[0].topics: unknown field `exlude`"),
        "{nested}"
    );
    let top = single_error(&format!(
        "{}telemetri: {{ listen: \"127.0.0.1:1\" }}\n",
        with_flows("  - { name: f, source: a, target: b, topics: { include: [x] } }\n")
    ));
    assert!(
        top.starts_with("topology.yaml:7:1: telemetri: unknown field `telemetri`"),
        "{top}"
    );
}

#[test]
fn type_errors_carry_location_and_path() {
    let error = single_error(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [x] }\n    limits:\n      records_per_sec: lots\n",
    ));
    assert!(
        error.starts_with(
            "topology.yaml:11:24: flows[0].limits.records_per_sec: invalid type: string \"lots\""
        ),
        "{error}"
    );
    let variant = single_error(&with_flows(
        "  - name: f\n    source: a\n    target: b\n    topics: { include: [x] }\n    start_from: beginning\n",
    ));
    assert!(
        variant.contains(
            "flows[0].start_from: unknown variant `beginning`, expected `earliest` or `latest`"
        ),
        "{variant}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let errors = parse_err("clusters:\n  a: [\n flows: x\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].line > 0, "{}", errors[0]);
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let text = "\
clusters:
  a: { bootstrap: [\"a\"] }
  b: { bootstrap: [\"b:9092\"], tls: { cert: /c.pem } }
  bad name: { bootstrap: [\"c:9092\"] }
  e: { embedded: { listen: \"localhost:1\", data_dir: ./d } }
flows:
  - name: one
    source: a
    target: nowhere
    topics: { include: [\"(\"] }
    rename: \"{src}.{topic}\"
    discovery_interval: 10
    delivery: exactly_once
    limits: { bytes_per_sec: 0, records_per_sec: 0, max_in_flight_bytes: 1mb }
  - name: one
    source: b
    target: b
    topics: { include: [] }
  - name: typo
    source: a
    target: b
    topics: { include: [x] }
    bogus: 1
";
    let errors = parse_err(text);
    let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "topology.yaml:2:20: clusters.a.bootstrap[0]: invalid broker address \"a\"",
        "topology.yaml:3:36: clusters.b.tls: tls needs both `cert` and `key`",
        "topology.yaml:3:44: clusters.b.tls.cert: cannot read /c.pem",
        "topology.yaml:4:3: clusters.bad name: cluster name `bad name` may only contain",
        "topology.yaml:5:28: clusters.e.embedded.listen: invalid listen address \"localhost:1\"",
        "topology.yaml:9:13: flows[0].target: unknown cluster `nowhere`",
        "topology.yaml:10:25: flows[0].topics.include[0]: invalid regex \"(\"",
        "topology.yaml:11:13: flows[0].rename: rename template \"{src}.{topic}\" has an unknown placeholder {src}",
        "topology.yaml:12:25: flows[0].discovery_interval: invalid duration \"10\": \"10\" has no unit",
        "topology.yaml:13:15: flows[0].delivery: delivery `exactly_once` is not supported yet",
        "topology.yaml:14:30: flows[0].limits.bytes_per_sec: size \"0\" must be positive",
        "topology.yaml:14:50: flows[0].limits.records_per_sec: records_per_sec must be positive",
        "topology.yaml:14:74: flows[0].limits.max_in_flight_bytes: invalid size \"1mb\": unknown unit \"mb\"",
        "topology.yaml:15:11: flows[1].name: duplicate flow name `one` (also flows[0])",
        "topology.yaml:17:13: flows[1].target: source and target are the same cluster `b`",
        "topology.yaml:18:24: flows[1].topics.include: topics.include must list at least one regex",
        "topology.yaml:23:5: flows[2]: unknown field `bogus`",
    ];
    for (line, (got, want)) in printed.iter().zip(expected.iter()).enumerate() {
        assert!(
            got.starts_with(want),
            "error {line}:\n got: {got}\nwant: {want}...\nall:\n{}",
            printed.join("\n")
        );
    }
    assert_eq!(
        printed.len(),
        expected.len(),
        "all:\n{}",
        printed.join("\n")
    );
    // Display of the collection: one error per line.
    let display = ConfigErrors { errors }.to_string();
    assert_eq!(display.lines().count(), expected.len());
}

#[test]
fn cluster_shape_errors() {
    let text = "\
clusters:
  both: { bootstrap: [\"x:1\"], embedded: { listen: \"127.0.0.1:1\", data_dir: d } }
  neither: { client_id: x }
  secure-embedded: { embedded: { listen: \"127.0.0.1:2\", data_dir: e }, sasl: { mechanism: PLAIN, username: u, password: p } }
  twice: { bootstrap: [\"x:1\"], request_timeout_ms: 1000, request_timeout: 1s }
  emb1: { embedded: { listen: \"127.0.0.1:3\", data_dir: same } }
  emb2: { embedded: { listen: \"127.0.0.1:3\", data_dir: same } }
  b: { bootstrap: [\"b:1\"] }
  b: { bootstrap: [\"b:2\"] }
flows:
  - { name: f, source: b, target: emb1, topics: { include: [x] } }
telemetry: { listen: \"127.0.0.1:3\" }
";
    let errors = parse_err(text);
    let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = printed.join("\n");
    for want in [
        "topology.yaml:2:41: clusters.both.embedded: a cluster is either remote (`bootstrap`) or `embedded`, not both",
        "topology.yaml:3:12: clusters.neither: missing `bootstrap`",
        "topology.yaml:4:78: clusters.secure-embedded.sasl: embedded clusters do not authenticate",
        "topology.yaml:5:75: clusters.twice.request_timeout: set either `request_timeout_ms` or `request_timeout`, not both",
        "topology.yaml:7:31: clusters.emb2.embedded.listen: listen address 127.0.0.1:3 is also used by embedded cluster `emb1`",
        "topology.yaml:7:56: clusters.emb2.embedded.data_dir: data_dir \"same\" is also used by embedded cluster `emb1`",
        "topology.yaml:9:3: clusters.b: duplicate cluster name `b`",
        "topology.yaml:12:22: telemetry.listen: telemetry listen address 127.0.0.1:3 is also the listen address of embedded cluster `emb1`",
    ] {
        assert!(printed.iter().any(|got| got.starts_with(want)), "missing {want}\nall:\n{all}");
    }
    assert_eq!(printed.len(), 8, "all:\n{all}");
}

#[test]
fn empty_and_incomplete_documents() {
    let empty = parse_err("");
    let printed: Vec<String> = empty.iter().map(ToString::to_string).collect();
    assert!(
        printed
            .iter()
            .any(|e| e.contains("missing field `clusters`")),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|e| e.contains("missing field `flows`")),
        "{printed:?}"
    );
    let no_flows = single_error(&format!("{CLUSTERS}flows: []\n"));
    assert!(no_flows.contains("flows: no flows defined"), "{no_flows}");
    let not_a_map = single_error("clusters: [a, b]\nflows: []\n");
    assert!(
        not_a_map.starts_with(
            "topology.yaml:1:11: clusters: invalid type: sequence, expected a mapping"
        ),
        "{not_a_map}"
    );
    let list = single_error("- a\n- b\n");
    assert!(list.contains("expected a topology mapping"), "{list}");
    let missing_field = single_error(&with_flows(
        "  - { name: f, source: a, topics: { include: [x] } }\n",
    ));
    assert!(
        missing_field.starts_with("topology.yaml:6:5: flows[0]: missing field `target`"),
        "{missing_field}"
    );
}

#[test]
fn regexes_match_whole_topic_names() {
    let topology = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [\"orders\", \"pay.*\"], exclude: [\"payments-test\"] } }\n",
    ));
    let flow = &topology.flows[0];
    assert!(flow.matches("orders"));
    assert!(
        !flow.matches("orders-eu"),
        "include must match the whole name"
    );
    assert!(!flow.matches("old-orders"));
    assert!(flow.matches("payments"));
    assert!(!flow.matches("payments-test"));
    assert!(
        flow.matches("payments-test2"),
        "exclude must match the whole name too"
    );
}

#[test]
fn rename_templates() {
    let topology = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [\".*\"] }, rename: \"from-{source}-to-{target}.{topic}\" }\n",
    ));
    assert_eq!(topology.flows[0].rename("orders"), "from-a-to-b.orders");
    let missing_topic = single_error(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [\".*\"] }, rename: \"{source}\" }\n",
    ));
    assert!(
        missing_topic
            .contains("flows[0].rename: rename template \"{source}\" must contain {topic}"),
        "{missing_topic}"
    );
}

#[test]
fn identity_cycle_is_rejected_naming_the_flows() {
    let error = single_error(&with_flows(
        "  - { name: a-to-b, source: a, target: b, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: b-to-a, source: b, target: a, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n",
    ));
    assert!(error.starts_with("topology.yaml:6:80: flows[0].rename: replication cycle a → b → a: flows `a-to-b`, `b-to-a`"), "{error}");
}

#[test]
fn longer_identity_cycle_is_rejected() {
    let error = single_error(&with_flows(
        "  - { name: ab, source: a, target: b, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: bc, source: b, target: c, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: ca, source: c, target: a, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n",
    ));
    assert!(
        error.contains("replication cycle a → b → c → a: flows `ab`, `bc`, `ca`"),
        "{error}"
    );
}

#[test]
fn identity_cycle_with_disjoint_filters_is_accepted() {
    parse_ok(&with_flows(
        "  - { name: a-to-b, source: a, target: b, topics: { include: [\"a\\\\..*\"] }, rename: \"{topic}\" }\n  - { name: b-to-a, source: b, target: a, topics: { include: [\"b\\\\..*\"] }, rename: \"{topic}\" }\n",
    ));
    parse_ok(&with_flows(
        "  - { name: a-to-b, source: a, target: b, topics: { include: [\".*\"], exclude: [\"from-b.*\"] }, rename: \"{topic}\" }\n  - { name: b-to-a, source: b, target: a, topics: { include: [\"from-b\\\\..*\"] }, rename: \"{topic}\" }\n",
    ));
}

#[test]
fn prefix_rename_cycle_is_accepted_and_guarded() {
    let topology = parse_ok(&with_flows(
        "  - { name: a-to-b, source: a, target: b, topics: { include: [\".*\"] } }\n  - { name: b-to-a, source: b, target: a, topics: { include: [\".*\"] } }\n",
    ));
    let a_to_b = topology.flow("a-to-b").unwrap();
    let b_to_a = topology.flow("b-to-a").unwrap();
    // A local topic goes across once...
    assert!(a_to_b.matches("orders"));
    assert_eq!(a_to_b.rename("orders"), "a.orders");
    // ...and its mirror is not sent back.
    assert!(b_to_a.is_cycle("a.orders"));
    assert!(!b_to_a.matches("a.orders"));
    assert!(b_to_a.matches("orders"));
    assert!(!a_to_b.matches("b.orders"));
}

#[test]
fn cycle_guard_follows_chains_of_renames() {
    let topology = parse_ok(&with_flows(
        "  - { name: ab, source: a, target: b, topics: { include: [\".*\"] } }\n  - { name: bc, source: b, target: c, topics: { include: [\".*\"] } }\n  - { name: ca, source: c, target: a, topics: { include: [\".*\"] } }\n",
    ));
    let ca = topology.flow("ca").unwrap();
    // "b.a.orders" on c came from a through b: c → a would close the loop.
    assert!(ca.is_cycle("b.a.orders"));
    assert!(!ca.is_cycle("b.orders"));
    assert!(!ca.is_cycle("orders"));
}

#[test]
fn mixed_identity_and_prefix_cycle_is_accepted() {
    parse_ok(&with_flows(
        "  - { name: a-to-b, source: a, target: b, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: b-to-a, source: b, target: a, topics: { include: [\".*\"] } }\n",
    ));
}

#[test]
fn rename_collision_is_rejected() {
    let error = single_error(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: b-to-c, source: b, target: c, topics: { include: [\"orders.*\"] }, rename: \"{topic}\" }\n",
    ));
    assert!(
        error.starts_with("topology.yaml:7:86: flows[1].rename: rename collision: flows `a-to-c` (rename \"{topic}\") and `b-to-c` (rename \"{topic}\") both write to cluster `c`"),
        "{error}"
    );
}

/// Two flows of one source cannot be told apart by {source}: the advice says so.
#[test]
fn a_rename_collision_of_one_source_does_not_advise_source() {
    let error = single_error(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] } }\n  - { name: a-to-c-2, source: a, target: c, topics: { include: [\"orders.*\"] } }\n",
    ));
    assert!(error.contains("rename collision"), "{error}");
    assert!(
        error.contains("both read cluster `a`, so {source} cannot tell them apart")
            && !error.contains("use a rename with {source}"),
        "{error}"
    );
    let other_sources = single_error(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n  - { name: b-to-c, source: b, target: c, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n",
    ));
    assert!(
        other_sources.contains("use a rename with {source}"),
        "{other_sources}"
    );
}

/// Plain names in the includes of two flows of one source prove them disjoint (`big` and
/// `big2`; `big` and every topic but `big`), where only literal prefixes were compared
/// before.
#[test]
fn plain_names_in_two_flows_of_one_source_do_not_collide() {
    parse_ok(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [big, small] } }\n  - { name: a-to-c-2, source: a, target: c, topics: { include: [big2] } }\n",
    ));
    parse_ok(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [big] } }\n  - { name: a-to-c-2, source: a, target: c, topics: { include: [\".*\"], exclude: [big] } }\n",
    ));
}

/// Clusters `us` and `us.east` with the default rename both make `us.east.x`: the advice
/// does not tell flows that already name their source to name it.
#[test]
fn a_rename_collision_of_overlapping_cluster_names_says_so() {
    let error = single_error(
        "clusters:\n  us: { bootstrap: [\"a:1\"] }\n  us.east: { bootstrap: [\"b:1\"] }\n  c: { bootstrap: [\"c:1\"] }\nflows:\n  - { name: us-to-c, source: us, target: c, topics: { include: [\"east\\\\..*\"] } }\n  - { name: use-to-c, source: us.east, target: c, topics: { include: [\".*\"] } }\n",
    );
    assert!(error.contains("rename collision"), "{error}");
    assert!(
        error.contains("both name their source") && !error.contains("use a rename with {source}"),
        "{error}"
    );
}

#[test]
fn identity_and_prefix_into_one_target_collide_unless_disjoint() {
    let error = single_error(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] } }\n  - { name: b-to-c, source: b, target: c, topics: { include: [\".*\"] }, rename: \"{topic}\" }\n",
    ));
    assert!(error.contains("rename collision"), "{error}");
    parse_ok(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] } }\n  - { name: b-to-c, source: b, target: c, topics: { include: [\"b-.*\"] }, rename: \"{topic}\" }\n",
    ));
}

#[test]
fn fan_in_with_source_prefixes_does_not_collide() {
    parse_ok(&with_flows(
        "  - { name: a-to-c, source: a, target: c, topics: { include: [\".*\"] } }\n  - { name: b-to-c, source: b, target: c, topics: { include: [\".*\"] } }\n",
    ));
}

#[test]
fn a_byte_order_mark_is_skipped_and_bytes_that_are_not_utf8_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "clusters:\n  a: { bootstrap: [\"a:1\"] }\n  b: { bootstrap: [\"b:1\"] }\nflows:\n  - { name: f, source: a, target: b, topics: { include: [x] } }\n";
    let bom = dir.path().join("bom.yaml");
    std::fs::write(&bom, format!("\u{feff}{yaml}")).unwrap();
    assert_eq!(load(&bom).expect("a BOM is skipped").flows.len(), 1);
    let latin1 = dir.path().join("latin1.yaml");
    let mut bytes = yaml.as_bytes().to_vec();
    bytes.splice(10..10, *b"# caf\xe9\n");
    std::fs::write(&latin1, bytes).unwrap();
    let errors = load(&latin1).unwrap_err().to_string();
    assert!(
        errors.contains("latin1.yaml:2:6") && errors.contains("not UTF-8"),
        "{errors}"
    );
}

#[test]
fn load_reports_unreadable_files() {
    let errors = load(std::path::Path::new("/nonexistent/topology.yaml")).unwrap_err();
    assert_eq!(errors.errors.len(), 1);
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/topology.yaml: cannot read the topology file"),
        "{errors}"
    );
}

#[test]
fn telemetry_settings_and_their_errors() {
    let base = "clusters:\n  a: { bootstrap: [\"a:1\"] }\n  b: { bootstrap: [\"b:1\"] }\nflows:\n  - { name: f, source: a, target: b, topics: { include: [x] } }\n";
    let t = parse_ok(&format!(
        "{base}telemetry: {{ log_interval: 5s, otlp: {{ endpoint: \"http://collector:4318\" }} }}\n"
    ))
    .telemetry
    .unwrap();
    assert_eq!(t.listen, None);
    assert_eq!(t.log_interval, std::time::Duration::from_secs(5));
    let otlp = t.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://collector:4318/v1/metrics");
    assert_eq!(otlp.interval, std::time::Duration::from_secs(10));
    let t = parse_ok(&format!(
        "{base}telemetry: {{ otlp: {{ endpoint: \"http://c:4318/custom/path\", interval: 2s }} }}\n"
    ))
    .telemetry
    .unwrap();
    assert_eq!(t.log_interval, super::DEFAULT_LOG_INTERVAL);
    assert_eq!(t.otlp.unwrap().endpoint, "http://c:4318/custom/path");
    for (telemetry, want) in [
        (
            "{ otlp: { endpoint: \"https://c:4318\" } }",
            "telemetry.otlp.endpoint: invalid OTLP endpoint \"https://c:4318\": https endpoints need TLS",
        ),
        (
            "{ log_interval: 0s }",
            "telemetry.log_interval: duration \"0s\" must be positive",
        ),
        (
            "{ otlp: { endpoint: \"http://c:1\", headers: {} } }",
            "unknown field `headers`",
        ),
    ] {
        let errors = parse_err(&format!("{base}telemetry: {telemetry}\n"));
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(all.iter().any(|e| e.contains(want)), "missing {want}\nall: {all:?}");
    }
    // A bad listen address does not hide the OTLP block's errors.
    let errors = parse_err(&format!(
        "{base}telemetry: {{ listen: \"nowhere\", otlp: {{ endpoint: \"https://c:4318\", interval: 0s }} }}\n"
    ));
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for want in [
        "telemetry.listen",
        "https endpoints need TLS",
        "telemetry.otlp.interval",
    ] {
        assert!(
            all.iter().any(|e| e.contains(want)),
            "missing {want}\nall: {all:?}"
        );
    }
}

#[test]
fn mm2_compat_implies_mm2s_default_group_filter() {
    let topology = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [x] }, mm2_compat: true }\n",
    ));
    let flow = &topology.flows[0];
    assert!(flow.mm2_compat);
    let groups = flow.groups.as_ref().expect("groups implied");
    assert!(
        !groups.sync_offsets,
        "checkpoints only; no commits unless asked"
    );
    assert!(groups.filter.matches("app") && !groups.filter.matches("connect-x"));
    let plain = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [x] } }\n",
    ));
    assert!(!plain.flows[0].mm2_compat && plain.flows[0].groups.is_none());
}

/// A `groups` selection that neither syncs offsets nor feeds MM2 checkpoints would do
/// nothing, silently: refused at its line. With either, it is taken.
#[test]
fn groups_that_nothing_uses_are_refused() {
    for sync in ["", ", sync_offsets: false"] {
        let error = single_error(&with_flows(&format!(
            "  - {{ name: f, source: a, target: b, topics: {{ include: [x] }}, groups: {{ include: [app]{sync} }} }}\n"
        )));
        assert!(
            error.starts_with("topology.yaml:6:72: ")
                && error.contains(
                    "flows[0].groups: `groups` selects consumer groups, but nothing uses them"
                ),
            "{error}"
        );
    }
    for used in [
        "groups: { include: [app], sync_offsets: true }",
        "groups: { include: [app] }, mm2_compat: true",
    ] {
        parse_ok(&with_flows(&format!(
            "  - {{ name: f, source: a, target: b, topics: {{ include: [x] }}, {used} }}\n"
        )));
    }
}

#[test]
fn embedded_tls_needs_ca_cert_and_key() {
    let error = single_error(
        "clusters:\n  a: { embedded: { listen: \"127.0.0.1:1\", data_dir: d }, tls: { cert: c.pem } }\n  b: { bootstrap: [\"b:1\"] }\nflows:\n  - { name: f, source: a, target: b, topics: { include: [x] } }\n",
    );
    assert!(
        error.contains("clusters.a.tls: an embedded cluster's tls needs")
            && error.contains("missing: ca, key"),
        "{error}"
    );
}

#[test]
fn sasl_plain_takes_a_password_or_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "from-file\n").unwrap();
    let text = format!(
        "clusters:\n  a: {{ bootstrap: [\"a:1\"], sasl: {{ mechanism: PLAIN, username: u, password_file: \"{}\" }} }}\n  b: {{ bootstrap: [\"b:1\"], sasl: {{ mechanism: PLAIN, username: v, password: \"${{EAST_PASSWORD}}\" }} }}\nflows:\n  - {{ name: f, source: a, target: b, topics: {{ include: [x] }} }}\n",
        file.display()
    );
    let topology = parse_ok(&text);
    let sasl = |name: &str| match &topology.cluster(name).unwrap().connection {
        Connection::Remote(r) => r.sasl.clone().unwrap(),
        Connection::Embedded(_) => unreachable!(),
    };
    assert_eq!(sasl("a").password.expose(), "from-file");
    assert_eq!(sasl("b").password.expose(), "correct horse battery staple");
    let both = single_error(&text.replace("password_file:", "password: x, password_file:"));
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn exclusive_is_off_unless_asked_and_must_be_a_bool() {
    let exclusive = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [x] }, exclusive: true }\n",
    ));
    assert!(exclusive.flows[0].exclusive);
    let plain = parse_ok(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [x] } }\n",
    ));
    assert!(!plain.flows[0].exclusive);
    assert_ne!(
        exclusive.flows[0].settings_key(),
        plain.flows[0].settings_key(),
        "a reload that turns it on or off restarts the flow"
    );
    let err = single_error(&with_flows(
        "  - { name: f, source: a, target: b, topics: { include: [x] }, exclusive: maybe }\n",
    ));
    assert!(err.contains("maybe"), "{err}");
}

/// A budget below what a Fetch reserves is refused, naming the key written; an unset
/// `batch_bytes` follows a budget below its default instead of being refused for it.
#[test]
fn a_budget_too_small_to_fetch_is_refused_and_batch_bytes_follows_a_small_one() {
    let flow = |limits: &str| {
        format!(
            "clusters:\n  a: {{ bootstrap: [\"a:9092\"] }}\n  b: {{ bootstrap: [\"b:9092\"] }}\nflows:\n  - name: one\n    source: a\n    target: b\n    topics: {{ include: [x] }}\n    limits: {limits}\n"
        )
    };
    for small in ["1B", "64KiB", "100KiB"] {
        let errors = parse_err(&flow(&format!("{{ max_in_flight_bytes: {small} }}")));
        let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(printed.len(), 1, "{printed:?}");
        assert!(
            printed[0].contains(
                "flows[0].limits.max_in_flight_bytes: max_in_flight_bytes must be at least 128KiB"
            ),
            "{printed:?}"
        );
    }
    let topology = parse_ok(&flow("{ max_in_flight_bytes: 512KiB }"));
    let limits = &topology.flows[0].limits;
    assert_eq!(
        (limits.max_in_flight_bytes, limits.batch_bytes),
        (512 << 10, 512 << 10)
    );
    let topology = parse_ok(&flow("{ max_in_flight_bytes: 128KiB, batch_bytes: 16KiB }"));
    assert_eq!(topology.flows[0].limits.batch_bytes, 16 << 10);
}

/// Two flows with one name: that is the error, once; not also a rename collision
/// attributed to a `rename` the second flow does not have.
#[test]
fn a_duplicate_flow_name_is_one_error() {
    let flow = "  - name: one\n    source: a\n    target: b\n    topics: { include: [x] }\n";
    let text = format!(
        "clusters:\n  a: {{ bootstrap: [\"a:9092\"] }}\n  b: {{ bootstrap: [\"b:9092\"] }}\nflows:\n{flow}{flow}"
    );
    let printed: Vec<String> = parse_err(&text).iter().map(ToString::to_string).collect();
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert!(
        printed[0].contains("flows[1].name: duplicate flow name `one` (also flows[0])"),
        "{printed:?}"
    );
}
