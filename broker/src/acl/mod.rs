//! Kafka's ACL authorizer (`--authorizer acl`): ACL bindings (resource pattern + entry),
//! their matching rules, super users, and persistence in the data directory
//! (`acls.json`). The rules follow Kafka's StandardAuthorizer
//! (`StandardAuthorizerData.findAclRule`): DENY beats ALLOW; an ALLOW of READ, WRITE,
//! DELETE or ALTER implies DESCRIBE and an ALLOW of ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS (never for DENY); ALL matches every operation; `User:*` is the only
//! principal wildcard; a host is `*` or an exact IP address; a LITERAL `*` pattern matches
//! every name and a PREFIXED pattern every name it starts; a resource with no ACL at all
//! is denied (`allow.everyone.if.no.acl.found=false`); super users are allowed everything.
//!
//! Which request needs which operation is [`crate::authz`]'s business.

mod store;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

pub use store::AclStoreError;

/// The one name of the CLUSTER resource (Kafka: `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// Kafka: `KafkaPrincipal.ANONYMOUS`.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub use kmirror_wire::acl::{op, operation_name, pattern, permission, resource};

/// Kafka's name of a resource type code (`ResourceType`).
pub fn resource_type_name(code: i8) -> &'static str {
    const NAMES: [&str; 8] = [
        "UNKNOWN",
        "ANY",
        "TOPIC",
        "GROUP",
        "CLUSTER",
        "TRANSACTIONAL_ID",
        "DELEGATION_TOKEN",
        "USER",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// The operations Kafka's `AclEntry.supportedOperations` lists for a resource type.
pub const fn supported_operations(resource_type: i8) -> &'static [i8] {
    use op::*;
    match resource_type {
        resource::TOPIC => &[
            READ,
            WRITE,
            CREATE,
            DESCRIBE,
            DELETE,
            ALTER,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        resource::GROUP => &[READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS],
        resource::CLUSTER => &[
            CREATE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
            ALTER,
            DESCRIBE,
        ],
        resource::TRANSACTIONAL_ID => &[DESCRIBE, WRITE],
        resource::DELEGATION_TOKEN => &[DESCRIBE],
        resource::USER => &[CREATE_TOKENS, DESCRIBE_TOKENS],
        _ => &[],
    }
}

/// One ACL: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Kafka: AclControlManager.validateNewAcl and AclApis.handleCreateAcls; the message of
    /// the INVALID_REQUEST answer.
    pub fn validate(&self) -> Result<(), String> {
        if !(resource::TOPIC..=resource::USER).contains(&self.resource_type) {
            return Err(format!("Invalid resourceType {}", self.resource_type));
        }
        if self.pattern_type != pattern::LITERAL && self.pattern_type != pattern::PREFIXED {
            return Err(format!("Invalid patternType {}", self.pattern_type));
        }
        if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Err(format!("Invalid operation {}", self.operation));
        }
        if self.permission != permission::ALLOW && self.permission != permission::DENY {
            return Err(format!("Invalid permissionType {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return Err("Invalid empty resource name".into());
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Err("The only valid name for the CLUSTER resource is kafka-cluster".into());
        }
        // Kafka stores any principal and fails at authorization time on one without a
        // type; refusing it here is stricter and loses nothing.
        if !self.principal.contains(':') {
            return Err(format!(
                "Invalid principal {:?}: expected Type:name, e.g. User:alice",
                self.principal
            ));
        }
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return Err(format!(
                "Invalid host {:?}: expected * or an IP address",
                self.host
            ));
        }
        Ok(())
    }

    /// Whether this ACL applies to `name` of its resource type.
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            pattern::LITERAL => self.resource_name == name || self.resource_name == "*",
            pattern::PREFIXED => name.starts_with(&self.resource_name),
            _ => false,
        }
    }
}

/// A DescribeAcls or DeleteAcls filter (Kafka: `AclBindingFilter.matches`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Matches every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        }
    }

    /// Kafka refuses filters with UNKNOWN (or unknown) elements (DeleteAclsRequest
    /// .normalizeAndValidate, DescribeAclsRequest.normalizeAndValidate).
    pub fn validate(&self) -> Result<(), String> {
        let known = (resource::ANY..=resource::USER).contains(&self.resource_type)
            && (pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type)
            && (op::ANY..=op::DESCRIBE_TOKENS).contains(&self.operation)
            && (permission::ANY..=permission::ALLOW).contains(&self.permission);
        if known {
            Ok(())
        } else {
            Err("Filters contain UNKNOWN elements".into())
        }
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == resource::ANY || self.resource_type == acl.resource_type;
        let pattern_ok = match (self.pattern_type, &self.resource_name) {
            (pattern::ANY, None) => true,
            (pattern::ANY, Some(name)) => &acl.resource_name == name,
            // MATCH: every ACL that affects resource `name`.
            (pattern::MATCH, None) => true,
            (pattern::MATCH, Some(name)) => acl.covers(name),
            (p, name) => {
                acl.pattern_type == p && name.as_ref().is_none_or(|n| &acl.resource_name == n)
            }
        };
        let principal_ok = self.principal.as_ref().is_none_or(|p| p == &acl.principal);
        let host_ok = self.host.as_ref().is_none_or(|h| h == &acl.host);
        let op_ok = self.operation == op::ANY || self.operation == acl.operation;
        let perm_ok = self.permission == permission::ANY || self.permission == acl.permission;
        type_ok && pattern_ok && principal_ok && host_ok && op_ok && perm_ok
    }
}

/// Who is asking: Kafka's session principal (`User:alice`) and client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub host: IpAddr,
}

/// The ACLs and super users of this broker process, shared by every node and listener.
#[derive(Debug)]
pub struct Authorizer {
    super_users: Vec<String>,
    acls: RwLock<Vec<AclBinding>>,
    /// Held by a change while it is written to disk, so `acls` is locked only to swap
    /// the new set in (authorization never waits for an fsync).
    writer: std::sync::Mutex<()>,
    path: Option<PathBuf>,
}

impl Authorizer {
    /// Loads `acls.json` from `data_dir` (none: an empty set kept in memory).
    pub fn open(
        super_users: Vec<String>,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Self, AclStoreError> {
        let path = data_dir.map(|d| d.join(store::FILE));
        let acls = match &path {
            Some(p) => store::load(p)?,
            None => Vec::new(),
        };
        Ok(Self {
            super_users,
            acls: RwLock::new(acls),
            writer: std::sync::Mutex::new(()),
            path,
        })
    }

    /// Kafka: StandardAuthorizerData.authorize (super users, then findAclRule).
    pub fn authorize(&self, caller: &Caller, operation: i8, resource_type: i8, name: &str) -> bool {
        if self.super_users.iter().any(|s| s == &caller.principal) {
            return true;
        }
        let acls = self.acls.read().expect("acl lock");
        let mut allowed = false;
        for acl in acls
            .iter()
            .filter(|a| a.resource_type == resource_type && a.covers(name))
        {
            let principal_ok = acl.principal == caller.principal || acl.principal == "User:*";
            if !principal_ok || !host_matches(&acl.host, caller.host) {
                continue;
            }
            match acl.permission {
                permission::DENY if acl.operation == op::ALL || acl.operation == operation => {
                    return false;
                }
                permission::ALLOW if implies(acl.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed
    }

    /// Kafka: Authorizer.authorizeByResourceType: whether `operation` is allowed on some
    /// resource of the type (InitProducerId's "WRITE on any topic", KIP-679).
    pub fn authorize_any(&self, caller: &Caller, operation: i8, resource_type: i8) -> bool {
        if self.super_users.iter().any(|s| s == &caller.principal) {
            return true;
        }
        let acls = self.acls.read().expect("acl lock");
        let applies = |a: &&AclBinding| {
            a.resource_type == resource_type
                && (a.principal == caller.principal || a.principal == "User:*")
                && host_matches(&a.host, caller.host)
                && (a.operation == op::ALL || a.operation == operation)
        };
        let denies: Vec<&AclBinding> = acls
            .iter()
            .filter(applies)
            .filter(|a| a.permission == permission::DENY)
            .collect();
        if denies
            .iter()
            .any(|d| d.pattern_type == pattern::LITERAL && d.resource_name == "*")
        {
            return false;
        }
        // An ALLOW counts unless a DENY covers every name it allows.
        acls.iter()
            .filter(applies)
            .filter(|a| a.permission == permission::ALLOW)
            .any(|allow| {
                !denies.iter().any(|d| match d.pattern_type {
                    pattern::LITERAL => {
                        allow.pattern_type == pattern::LITERAL
                            && d.resource_name == allow.resource_name
                    }
                    pattern::PREFIXED => allow.resource_name.starts_with(&d.resource_name),
                    _ => false,
                })
            })
    }

    /// Kafka: AuthHelper.authorizedOperations: the bitfield of the operations `caller`
    /// may perform on the resource.
    pub fn authorized_operations(&self, caller: &Caller, resource_type: i8, name: &str) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|&&o| self.authorize(caller, o, resource_type, name))
            .fold(0, |bits, &o| bits | 1 << o)
    }

    /// The ACLs `filter` matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let acls = self.acls.read().expect("acl lock");
        acls.iter().filter(|a| filter.matches(a)).cloned().collect()
    }

    /// Adds ACLs (an existing one is kept once) and persists them.
    pub fn create(&self, new: &[AclBinding]) -> Result<(), AclStoreError> {
        let _writer = self.writer.lock().expect("acl writer lock");
        let mut next = self.acls.read().expect("acl lock").clone();
        for acl in new {
            if !next.contains(acl) {
                next.push(acl.clone());
            }
        }
        self.persist(&next)?;
        *self.acls.write().expect("acl lock") = next;
        Ok(())
    }

    /// Removes what each filter matches, all or nothing; returns each filter's matches.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AclStoreError> {
        let _writer = self.writer.lock().expect("acl writer lock");
        let acls = self.acls.read().expect("acl lock").clone();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| acls.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = acls
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        if next.len() != acls.len() {
            self.persist(&next)?;
            *self.acls.write().expect("acl lock") = next;
        }
        Ok(matched)
    }

    fn persist(&self, acls: &[AclBinding]) -> Result<(), AclStoreError> {
        match &self.path {
            Some(p) => store::save(p, acls),
            None => Ok(()),
        }
    }
}

/// Whether an ACL's host (`*` or an IP address) is the client's: compared as addresses,
/// so `0:0:0:0:0:0:0:1` (Java's form) is `::1` and an IPv4 client seen through an IPv6
/// socket (`::ffff:10.0.0.5`) is `10.0.0.5` (Kafka: StandardAuthorizerData.findResult).
fn host_matches(acl_host: &str, client: IpAddr) -> bool {
    acl_host == "*"
        || acl_host
            .parse::<IpAddr>()
            .is_ok_and(|h| h.to_canonical() == client.to_canonical())
}

/// Whether an ALLOW of `granted` allows `wanted` (Kafka: StandardAuthorizerData
/// IMPLIES_DESCRIBE, IMPLIES_DESCRIBE_CONFIGS).
fn implies(granted: i8, wanted: i8) -> bool {
    granted == op::ALL
        || granted == wanted
        || (wanted == op::DESCRIBE
            && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// Parses `--super-users`: principals separated by `;` (Kafka's `super.users`) or by `,`
/// before a `Type:` (so `User:CN=a,O=b` stays one principal).
pub fn parse_super_users(value: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in value.split(';') {
        for piece in part.split(',') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let starts_principal = piece
                .split_once(':')
                .is_some_and(|(t, _)| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphabetic()));
            match out.last_mut() {
                Some(last) if !starts_principal => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ if starts_principal => out.push(piece.to_string()),
                _ => {
                    return Err(format!(
                        "{piece:?} is not a principal (Type:name, e.g. User:admin)"
                    ))
                }
            }
        }
    }
    Ok(out)
}
