//! Read-only views of a group (DescribeGroups members, subscribed topics) and its
//! durable record (what the store keeps and a restart restores).

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::time::Instant;

use super::super::store::{GroupRecord, MemberRecord, ProtocolRecord};
use super::{millis, Group, GroupConfig, GroupState, Member, MemberSummary};

impl Group {
    /// DescribeGroups view of the members.
    pub fn member_summaries(&self) -> Vec<MemberSummary> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                // GroupMetadataManager.describeGroups (Kafka 4): the assignment stays while
                // the group rebalances; GroupCoordinator (before 4.0) blanks it.
                assignment: if stable || self.config.assignments_while_rebalancing {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect()
    }

    /// Topics the members subscribe to, if this is a "consumer" group whose metadata
    /// parses; `None` means "unknown" (callers treat it as subscribed to everything).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in &self.members {
            let mut buf = m.metadata(protocol);
            if buf.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([buf[0], buf[1]]).clamp(0, 3);
            let _ = bytes::Buf::get_i16(&mut buf);
            let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    // ---- persistence -----------------------------------------------------------------

    /// The durable view: members are included only once their assignment is known
    /// (Stable), so a restart never serves a generation without assignments.
    pub fn to_record(&self) -> GroupRecord {
        let members = if self.state == GroupState::Stable {
            self.members
                .iter()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(name, md)| ProtocolRecord {
                            name: name.clone(),
                            metadata: md.to_vec(),
                        })
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect()
        } else {
            Vec::new()
        };
        GroupRecord {
            group: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            protocol_name: if members.is_empty() {
                None
            } else {
                self.protocol_name.clone()
            },
            generation: self.generation,
            leader: if members.is_empty() {
                None
            } else {
                self.leader.clone()
            },
            members,
        }
    }

    /// Rebuilds a group after a restart: Stable with its members (whose sessions start
    /// now) if it had any, else Empty.
    pub fn from_record(record: &GroupRecord, config: GroupConfig, now: Instant) -> Self {
        let mut g = Group::new(record.group.clone(), config);
        g.generation = record.generation;
        g.protocol_type = record.protocol_type.clone();
        if record.members.is_empty() {
            return g;
        }
        g.protocol_name = record.protocol_name.clone();
        g.state = GroupState::Stable;
        for m in &record.members {
            let session_timeout = millis(m.session_timeout_ms);
            if let Some(instance) = &m.group_instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            g.members.push(Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout,
                rebalance_timeout: millis(m.rebalance_timeout_ms),
                protocols: m
                    .protocols
                    .iter()
                    .map(|p| (p.name.clone(), Bytes::from(p.metadata.clone())))
                    .collect(),
                assignment: Bytes::from(m.assignment.clone()),
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: now + session_timeout,
            });
        }
        g.leader = record
            .leader
            .clone()
            .filter(|l| g.has_member(l))
            .or_else(|| g.members.first().map(|m| m.id.clone()));
        g
    }
}
