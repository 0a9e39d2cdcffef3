//! Which request needs which ACL, as Kafka's KafkaApis and ControllerApis check them
//! (`--authorizer acl`): each wrapper takes a decoded request, answers the parts the
//! caller may not touch with Kafka's error (TOPIC_AUTHORIZATION_FAILED,
//! GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED, ...), passes the rest to the
//! handler and merges the two answers. Authorization comes before existence, as in Kafka:
//! a denied topic that does not exist is TOPIC_AUTHORIZATION_FAILED, never
//! UNKNOWN_TOPIC_OR_PARTITION. Without an authorizer every wrapper calls its handler as is.
//!
//! The ACLs themselves and their matching rules are [`crate::acl`]'s.

pub mod admin;
pub mod groups;
pub mod topics;
pub mod transactions;

use kafka_protocol::error::ResponseError;

use crate::acl::{resource, Authorizer, Caller, CLUSTER_NAME};
use crate::state::Broker;

pub const TOPIC_DENIED: i16 = 29;
pub const GROUP_DENIED: i16 = 30;
pub const CLUSTER_DENIED: i16 = 31;

/// The caller of one request and the broker's authorizer, if any.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    authorizer: Option<&'a Authorizer>,
    pub caller: &'a Caller,
    /// The emulated Kafka release, where refusals are shaped by release.
    pub release: crate::versions::KafkaRelease,
}

impl<'a> Guard<'a> {
    pub fn new(broker: &'a Broker, caller: &'a Caller) -> Self {
        Self {
            authorizer: broker.authorizer.as_deref(),
            caller,
            release: broker.versions.release(),
        }
    }

    /// No authorizer: everything is allowed.
    pub fn open(&self) -> bool {
        self.authorizer.is_none()
    }

    /// Kafka: AuthHelper.authorize.
    pub fn allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        let Some(a) = self.authorizer else {
            return true;
        };
        let allowed = a.authorize(self.caller, operation, resource_type, name);
        if !allowed {
            tracing::info!(
                principal = %self.caller.principal,
                host = %self.caller.host,
                operation = %crate::acl::operation_name(operation),
                resource_type = %crate::acl::resource_type_name(resource_type),
                resource = name,
                "Access denied."
            );
        }
        allowed
    }

    /// [`Self::allows`] without the denial in the log (Kafka's `logIfDenied = false`,
    /// for checks whose denial falls back to another check).
    pub fn quietly_allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        self.authorizer
            .is_none_or(|a| a.authorize(self.caller, operation, resource_type, name))
    }

    pub fn allows_topic(&self, operation: i8, topic: &str) -> bool {
        self.allows(operation, resource::TOPIC, topic)
    }

    pub fn allows_group(&self, operation: i8, group: &str) -> bool {
        self.allows(operation, resource::GROUP, group)
    }

    pub fn allows_cluster(&self, operation: i8) -> bool {
        self.allows(operation, resource::CLUSTER, CLUSTER_NAME)
    }

    /// Kafka: Authorizer.authorizeByResourceType.
    pub fn allows_any(&self, operation: i8, resource_type: i8) -> bool {
        self.authorizer
            .is_none_or(|a| a.authorize_any(self.caller, operation, resource_type))
    }

    /// Kafka: AuthHelper.authorizedOperations; `all` without an authorizer.
    pub fn operations(&self, resource_type: i8, name: &str, all: i32) -> i32 {
        match self.authorizer {
            Some(a) => a.authorized_operations(self.caller, resource_type, name),
            None => all,
        }
    }
}

/// The message Kafka's `Errors` gives a code by default.
pub fn default_message(code: i16) -> Option<kafka_protocol::protocol::StrBytes> {
    let message = match ResponseError::try_from_code(code)? {
        ResponseError::TopicAuthorizationFailed => "Topic authorization failed.",
        ResponseError::GroupAuthorizationFailed => "Group authorization failed.",
        ResponseError::ClusterAuthorizationFailed => "Cluster authorization failed.",
        _ => return None,
    };
    Some(kafka_protocol::protocol::StrBytes::from_static_str(message))
}

/// Splits `items` into those `allowed` keeps and the rest.
fn split<T>(items: Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(|t| allowed(t))
}
