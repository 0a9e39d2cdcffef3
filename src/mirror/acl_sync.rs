//! `sync_acls: true`: the source's topic ACLs, for the topics a flow mirrors, copied to
//! their target names with MirrorMaker 2's rules (`MirrorSourceConnector.syncTopicAcls`):
//! LITERAL patterns only; ALLOW WRITE is never copied (only the mirror writes a mirrored
//! topic); ALLOW ALL becomes ALLOW READ; DENY entries are copied as they are. ACLs are only
//! added on the target, never removed. Checked at start and every discovery interval.
//!
//! A source or target without an authorizer stops the sync with one INFO line; a refusal
//! (the principal may not describe or create ACLs, of the whole request or of one ACL) is
//! reported once per change of reason and retried.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kmirror_wire::acl::op::{ALL, READ, WRITE};
use kmirror_wire::acl::pattern::LITERAL;
use kmirror_wire::acl::permission::{ALLOW, DENY};

use crate::client::acls::TopicAcl;
use crate::client::ClusterClient;
use crate::config::Flow;

/// The target's copy of a source ACL, or `None` where MirrorMaker 2's rules do not copy it.
pub fn target_acl(flow: &Flow, acl: &TopicAcl) -> Option<TopicAcl> {
    if acl.pattern_type != LITERAL || acl.topic == "*" || !flow.matches(&acl.topic) {
        return None;
    }
    if acl.permission == ALLOW && acl.operation == WRITE {
        return None;
    }
    let operation = if acl.permission == ALLOW && acl.operation == ALL {
        READ
    } else {
        acl.operation
    };
    Some(TopicAcl {
        topic: flow.rename(&acl.topic),
        operation,
        ..acl.clone()
    })
}

pub struct AclSync {
    flow: Flow,
    source: Arc<ClusterClient>,
    target: Arc<ClusterClient>,
    /// ACLs the target refused, with the reason last reported.
    refused: BTreeMap<TopicAcl, String>,
}

/// An ACL's operation and permission as Kafka names them (AclOperation, AclPermissionType).
fn names(acl: &TopicAcl) -> (&'static str, &'static str) {
    (
        kmirror_wire::acl::operation_name(acl.operation),
        kmirror_wire::acl::permission_name(acl.permission),
    )
}

impl AclSync {
    pub fn new(flow: Flow, source: Arc<ClusterClient>, target: Arc<ClusterClient>) -> Self {
        Self {
            flow,
            source,
            target,
            refused: BTreeMap::new(),
        }
    }

    /// Syncs until the task is aborted, or until either cluster turns out to have no
    /// authorizer.
    pub async fn run(mut self) {
        let mut last_error = String::new();
        tracing::debug!(flow = %self.flow.name, "Topic ACL sync started.");
        loop {
            match self.round().await {
                Ok(true) => {
                    last_error.clear();
                    tracing::debug!(flow = %self.flow.name, refused = self.refused.len(), "Topic ACLs compared with the target's.");
                }
                Ok(false) => return,
                Err(e) if e != last_error => {
                    tracing::warn!(flow = %self.flow.name, error = %e, "Cannot sync topic ACLs; retrying every discovery interval.");
                    last_error = e;
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.flow.discovery_interval).await;
        }
    }

    /// One comparison and the creations it calls for; `Ok(false)`: nothing to sync with.
    async fn round(&mut self) -> Result<bool, String> {
        let Some(source) = self.source.topic_acls().await.map_err(|e| e.to_string())? else {
            tracing::info!(flow = %self.flow.name, cluster = %self.flow.source, "The source cluster has no authorizer: no topic ACLs to sync.");
            return Ok(false);
        };
        let wanted: BTreeSet<TopicAcl> = source
            .iter()
            .filter_map(|a| target_acl(&self.flow, a))
            .collect();
        if wanted.is_empty() {
            return Ok(true);
        }
        let Some(present) = self.target.topic_acls().await.map_err(|e| e.to_string())? else {
            tracing::info!(flow = %self.flow.name, cluster = %self.flow.target, "The target cluster has no authorizer: topic ACLs are not synced.");
            return Ok(false);
        };
        let present: BTreeSet<TopicAcl> = present.into_iter().collect();
        let missing: Vec<TopicAcl> = wanted.difference(&present).cloned().collect();
        // Refusals of ACLs since synced, or no longer wanted, are forgotten.
        self.refused.retain(|acl, _| missing.contains(acl));
        if missing.is_empty() {
            return Ok(true);
        }
        let own = self.target.own_principal();
        let results = self
            .target
            .create_topic_acls(&missing)
            .await
            .map_err(|e| e.to_string())?;
        for (acl, error) in missing.iter().zip(results) {
            let (operation, permission) = names(acl);
            // Only a DENY that names this daemon's principal (or every principal) can
            // refuse its writes; with TLS alone its principal is not known here.
            let denies_us = own
                .as_deref()
                .is_none_or(|own| acl.principal == own || acl.principal == "User:*");
            if error.is_none()
                && acl.permission == DENY
                && (acl.operation == WRITE || acl.operation == ALL)
                && denies_us
            {
                tracing::warn!(flow = %self.flow.name, topic = %acl.topic, principal = %acl.principal, "A synced DENY of writes on a mirrored topic also refuses this daemon's writes unless its principal is a super user of the target.");
            }
            match error {
                None => {
                    tracing::info!(flow = %self.flow.name, topic = %acl.topic, principal = %acl.principal, operation, permission, "Topic ACL synced.")
                }
                Some(e) => {
                    let reason = e.to_string();
                    if self.refused.get(acl) != Some(&reason) {
                        tracing::warn!(flow = %self.flow.name, topic = %acl.topic, principal = %acl.principal, operation, permission, error = %reason, "Could not sync a topic ACL; tried again every discovery interval (said again only if the reason changes).");
                        self.refused.insert(acl.clone(), reason);
                    }
                }
            }
        }
        Ok(true)
    }
}
