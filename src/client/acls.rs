//! The ACL calls of `sync_acls`: DescribeAcls for a cluster's topic ACLs, CreateAcls for
//! new ones. A cluster without an authorizer answers SECURITY_DISABLED: `None`, not an
//! error.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kmirror_wire::errors::ResponseError;

use super::{ClientError, ClusterClient};

use kmirror_wire::acl::{op, pattern, permission, resource::TOPIC};

/// One topic ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicAcl {
    pub topic: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl ClusterClient {
    /// This client's principal on the cluster when its settings tell it: `User:<name>`
    /// with SASL, `User:ANONYMOUS` over plaintext; `None` over TLS without SASL (the broker
    /// may take it from a client certificate).
    pub fn own_principal(&self) -> Option<String> {
        let m = &self.config.messenger;
        match (&m.sasl, &m.tls) {
            (Some(sasl), _) => Some(format!("User:{}", sasl.username)),
            (None, None) => Some("User:ANONYMOUS".to_string()),
            (None, Some(_)) => None,
        }
    }

    /// Every topic ACL of the cluster, as MirrorMaker 2 lists them
    /// (MirrorSourceConnector.listTopicAclBindings: TOPIC, any name, any pattern); `None`
    /// when it has no authorizer (Kafka: AclApis.handleDescribeAcls, SECURITY_DISABLED).
    pub async fn topic_acls(&self) -> Result<Option<Vec<TopicAcl>>, ClientError> {
        // kafka-protocol's defaults for the nullable filters are "" (matching nothing).
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(pattern::ANY)
            .with_operation(op::ANY)
            .with_permission_type(permission::ANY);
        let m = self.any_broker().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        if resp.error_code == ResponseError::SecurityDisabled.code() {
            return Ok(None);
        }
        if let Some(e) = ClientError::from_code(
            self.name(),
            "listing topic ACLs",
            resp.error_code,
            resp.error_message.as_deref(),
        ) {
            return Err(e);
        }
        let mut acls = Vec::new();
        for r in resp.resources {
            for a in r.acls {
                acls.push(TopicAcl {
                    topic: r.resource_name.to_string(),
                    pattern_type: r.pattern_type,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                });
            }
        }
        Ok(Some(acls))
    }

    /// Creates topic ACLs; each one's error, if the cluster refused it.
    pub async fn create_topic_acls(
        &self,
        acls: &[TopicAcl],
    ) -> Result<Vec<Option<ClientError>>, ClientError> {
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let req = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(TOPIC)
                        .with_resource_name(s(&a.topic))
                        .with_resource_pattern_type(a.pattern_type)
                        .with_principal(s(&a.principal))
                        .with_host(s(&a.host))
                        .with_operation(a.operation)
                        .with_permission_type(a.permission)
                })
                .collect(),
        );
        let m = self.controller().await?;
        let (resp, _) = m.send(&req).await.map_err(|e| self.request(e))?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                ClientError::from_code(
                    self.name(),
                    "creating an ACL",
                    r.error_code,
                    r.error_message.as_deref(),
                )
            })
            .collect())
    }
}
