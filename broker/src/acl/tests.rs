use super::*;

fn acl(rtype: i8, name: &str, pat: i8, principal: &str, operation: i8, perm: i8) -> AclBinding {
    AclBinding {
        resource_type: rtype,
        resource_name: name.into(),
        pattern_type: pat,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: perm,
    }
}

fn caller(principal: &str) -> Caller {
    Caller {
        principal: principal.into(),
        host: "10.0.0.7".parse().unwrap(),
    }
}

fn authorizer(acls: &[AclBinding]) -> Authorizer {
    let a = Authorizer::open(vec!["User:admin".into()], None).unwrap();
    a.create(acls).unwrap();
    a
}

use op::*;
use pattern::{LITERAL, PREFIXED};
use permission::{ALLOW, DENY};
use resource::{CLUSTER, GROUP, TOPIC};

#[test]
fn no_acl_denies_and_super_users_are_allowed_everything() {
    let a = authorizer(&[]);
    assert!(!a.authorize(&caller("User:alice"), READ, TOPIC, "orders"));
    assert!(a.authorize(&caller("User:admin"), ALTER, CLUSTER, CLUSTER_NAME));
}

#[test]
fn deny_beats_allow_and_allows_imply_describe_only() {
    let a = authorizer(&[
        acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
        acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, DENY),
        acl(TOPIC, "orders", LITERAL, "User:*", WRITE, ALLOW),
        acl(TOPIC, "audit", LITERAL, "User:alice", ALL, ALLOW),
        acl(TOPIC, "audit", LITERAL, "User:alice", READ, DENY),
        acl(TOPIC, "cfg", LITERAL, "User:alice", ALTER_CONFIGS, ALLOW),
    ]);
    let alice = caller("User:alice");
    assert!(a.authorize(&alice, READ, TOPIC, "orders"));
    assert!(
        a.authorize(&alice, DESCRIBE, TOPIC, "orders"),
        "READ implies DESCRIBE"
    );
    assert!(
        !a.authorize(&alice, WRITE, TOPIC, "orders"),
        "DENY beats ALLOW User:*"
    );
    assert!(a.authorize(&caller("User:bob"), WRITE, TOPIC, "orders"));
    assert!(!a.authorize(&alice, READ, TOPIC, "audit"));
    // A DENY of READ does not deny DESCRIBE (Kafka: DENY ACLs match their operation only).
    assert!(a.authorize(&alice, DESCRIBE, TOPIC, "audit"));
    assert!(a.authorize(&alice, DESCRIBE_CONFIGS, TOPIC, "cfg"));
    assert!(!a.authorize(&alice, DESCRIBE, TOPIC, "cfg"));
}

#[test]
fn prefixed_and_wildcard_patterns_and_hosts() {
    let mut on_host = acl(GROUP, "mirror-", PREFIXED, "User:carol", READ, ALLOW);
    on_host.host = "10.0.0.7".into();
    let a = authorizer(&[
        on_host,
        acl(TOPIC, "*", LITERAL, "User:carol", DESCRIBE, ALLOW),
        acl(TOPIC, "secret", LITERAL, "User:nobody", READ, ALLOW),
    ]);
    let carol = caller("User:carol");
    assert!(a.authorize(&carol, READ, GROUP, "mirror-east"));
    assert!(!a.authorize(&carol, READ, GROUP, "other"));
    let elsewhere = Caller {
        host: "10.0.0.8".parse().unwrap(),
        ..carol.clone()
    };
    assert!(!a.authorize(&elsewhere, READ, GROUP, "mirror-east"));
    assert!(a.authorize(&carol, DESCRIBE, TOPIC, "anything"));
    assert!(a.authorize(&carol, DESCRIBE, TOPIC, "secret"));
    assert_eq!(
        a.authorized_operations(&carol, TOPIC, "x"),
        1 << DESCRIBE,
        "the bitfield holds what is allowed"
    );
}

#[test]
fn write_on_any_topic_follows_kafkas_authorize_by_resource_type() {
    let alice = caller("User:alice");
    assert!(!authorizer(&[]).authorize_any(&alice, WRITE, TOPIC));
    let a = authorizer(&[acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW)]);
    assert!(a.authorize_any(&alice, WRITE, TOPIC));
    let a = authorizer(&[
        acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW),
        acl(TOPIC, "ord", PREFIXED, "User:alice", WRITE, DENY),
    ]);
    assert!(
        !a.authorize_any(&alice, WRITE, TOPIC),
        "the deny prefix covers it"
    );
    let a = authorizer(&[
        acl(TOPIC, "orders", LITERAL, "User:alice", ALL, ALLOW),
        acl(TOPIC, "*", LITERAL, "User:alice", WRITE, DENY),
    ]);
    assert!(!a.authorize_any(&alice, WRITE, TOPIC));
}

#[test]
fn filters_match_as_kafkas_acl_binding_filter() {
    let lit = acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW);
    let pre = acl(TOPIC, "ord", PREFIXED, "User:bob", WRITE, DENY);
    let star = acl(TOPIC, "*", LITERAL, "User:carol", DESCRIBE, ALLOW);
    let filter = |pattern_type: i8, name: Option<&str>| AclFilter {
        resource_type: resource::ANY,
        resource_name: name.map(str::to_string),
        pattern_type,
        principal: None,
        host: None,
        operation: op::ANY,
        permission: permission::ANY,
    };
    let matching =
        |f: &AclFilter| -> Vec<bool> { [&lit, &pre, &star].iter().map(|a| f.matches(a)).collect() };
    assert_eq!(
        matching(&filter(pattern::MATCH, Some("orders"))),
        [true, true, true]
    );
    assert_eq!(
        matching(&filter(pattern::ANY, Some("orders"))),
        [true, false, false]
    );
    assert_eq!(matching(&filter(LITERAL, None)), [true, false, true]);
    assert_eq!(
        matching(&filter(PREFIXED, Some("ord"))),
        [false, true, false]
    );
    let mut by_principal = filter(pattern::ANY, None);
    by_principal.principal = Some("User:bob".into());
    assert_eq!(matching(&by_principal), [false, true, false]);
}

#[test]
fn acls_persist_and_invalid_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authorizer::open(vec![], Some(dir.path())).unwrap();
    let orders = acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW);
    a.create(&[orders.clone(), orders.clone()]).unwrap();
    let reopened = Authorizer::open(vec![], Some(dir.path())).unwrap();
    assert_eq!(
        reopened.describe(&AclFilter::any()),
        std::slice::from_ref(&orders)
    );
    let removed = reopened.delete(&[AclFilter::any()]).unwrap();
    assert_eq!(removed, [vec![orders]]);
    let reopened = Authorizer::open(vec![], Some(dir.path())).unwrap();
    assert!(reopened.describe(&AclFilter::any()).is_empty());

    let bad = |f: fn(&mut AclBinding)| {
        let mut b = acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW);
        f(&mut b);
        b.validate().unwrap_err()
    };
    assert_eq!(
        bad(|b| {
            b.resource_type = CLUSTER;
            b.resource_name = "c".into()
        }),
        "The only valid name for the CLUSTER resource is kafka-cluster"
    );
    assert_eq!(
        bad(|b| b.resource_name.clear()),
        "Invalid empty resource name"
    );
    assert_eq!(
        bad(|b| b.pattern_type = pattern::MATCH),
        "Invalid patternType 2"
    );
    assert_eq!(bad(|b| b.operation = op::ANY), "Invalid operation 1");
    assert!(bad(|b| b.principal = "alice".into()).contains("Type:name"));
    assert!(bad(|b| b.host = "example.com".into()).contains("IP address"));
}

#[test]
fn super_users_split_on_semicolons_or_before_a_principal_type() {
    assert_eq!(
        parse_super_users("User:admin,User:CN=kmirror,O=ops;User:bob").unwrap(),
        ["User:admin", "User:CN=kmirror,O=ops", "User:bob"]
    );
    assert!(parse_super_users("admin").is_err());
}

#[test]
fn hosts_compare_as_addresses_like_javas() {
    let mut deny = acl(TOPIC, "orders", LITERAL, "User:*", READ, DENY);
    deny.host = "10.0.0.7".into();
    let mut loopback = acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW);
    loopback.host = "0:0:0:0:0:0:0:1".into();
    let a = authorizer(&[
        deny,
        loopback,
        acl(TOPIC, "orders", LITERAL, "User:bob", READ, ALLOW),
    ]);
    // An IPv4 client seen through an IPv6 socket is still 10.0.0.7: the DENY holds.
    let bob = Caller {
        principal: "User:bob".into(),
        host: "::ffff:10.0.0.7".parse().unwrap(),
    };
    assert!(!a.authorize(&bob, READ, TOPIC, "orders"));
    let alice = Caller {
        principal: "User:alice".into(),
        host: "::1".parse().unwrap(),
    };
    assert!(
        a.authorize(&alice, READ, TOPIC, "orders"),
        "Java's form of ::1"
    );
}
