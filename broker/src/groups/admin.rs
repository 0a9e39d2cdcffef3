//! Group administration APIs: DescribeGroups, ListGroups and DeleteGroups.
//!
//! Read-mostly views of the coordinator's groups; DeleteGroups removes Empty groups and
//! their offsets (durably). Not here: the membership protocol itself.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::state::GroupState;
use super::store::Record;
use super::Inner;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

impl Inner {
    /// Fires overdue timers of one group so that views are current.
    fn refresh(&mut self, now: Instant, group_id: &str) {
        let outcomes = self.on_group(now, group_id, |_| Vec::new());
        self.dispatch(outcomes);
    }

    pub(super) fn describe_groups(
        &mut self,
        now: Instant,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let req_include_authorized_operations = req.include_authorized_operations;
        let groups = req
            .groups
            .into_iter()
            .map(|group_id| {
                self.refresh(now, &group_id);
                match self.groups.get(group_id.as_str()) {
                    Some(g) if g.state() != GroupState::Dead => {
                        let stable = g.state() == GroupState::Stable;
                        let members = g
                            .member_summaries()
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.group_instance_id.map(s)
                                    } else {
                                        None
                                    })
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect();
                        DescribedGroup::default()
                            .with_group_id(group_id)
                            .with_group_state(s(g.state().as_str()))
                            .with_protocol_type(s(g.protocol_type().unwrap_or_default()))
                            .with_protocol_data(s(if stable {
                                g.protocol_name().unwrap_or_default()
                            } else {
                                ""
                            }))
                            .with_members(members)
                    }
                    _ => {
                        let described = DescribedGroup::default()
                            .with_group_state(s(GroupState::Dead.as_str()));
                        if version >= 6 {
                            // KIP-1043: v6 reports unknown groups as an error.
                            described
                                .with_error_code(ResponseError::GroupIdNotFound.code())
                                .with_error_message(Some(s(format!(
                                    "Group {} not found.",
                                    group_id.as_str()
                                ))))
                                .with_group_id(group_id)
                        } else {
                            described.with_group_id(group_id)
                        }
                    }
                }
            })
            .collect::<Vec<DescribedGroup>>();
        let mut groups = groups;
        // Kafka: KafkaApis.handleDescribeGroupsRequest (v3+, when asked, for every group
        // answered without an error)
        if version >= 3 && req_include_authorized_operations {
            for g in groups.iter_mut().filter(|g| g.error_code == 0) {
                g.authorized_operations = crate::handlers::acls::GROUP_OPERATIONS;
            }
        }
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub(super) fn list_groups(
        &mut self,
        now: Instant,
        req: ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in &ids {
            self.refresh(now, id);
        }
        let filter = self.config.group.states_filter;
        let states = if version >= 4 {
            filter.normalise(req.states_filter.iter().map(|s| s.as_str()))
        } else {
            Vec::new()
        };
        let classic_wanted = version < 5
            || req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case("classic"));
        let groups = self
            .groups
            .values()
            .filter(|g| g.state() != GroupState::Dead && classic_wanted)
            .filter(|g| states.is_empty() || filter.matches(&states, g.state().as_str()))
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(g.id())))
                    .with_protocol_type(s(g.protocol_type().unwrap_or_default()))
                    .with_group_state(s(if version >= 4 { g.state().as_str() } else { "" }))
                    .with_group_type(s(if version >= 5 { "classic" } else { "" }))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    /// Deletes `group_id` (an Empty group) and its offsets, persisted first; a failure to
    /// persist is logged, and nothing is deleted.
    pub(super) fn delete_group(&mut self, group_id: &str) -> Result<(), ()> {
        let record = Record::GroupDelete {
            group: group_id.to_string(),
        };
        if let Err(error) = self.store.append(&[record]) {
            tracing::error!(group = %group_id, %error, "Cannot persist a group deletion.");
            return Err(());
        }
        if let Some(mut g) = self.groups.remove(group_id) {
            g.mark_dead();
        }
        self.offsets.remove_group(group_id);
        Ok(())
    }

    pub(super) fn delete_groups(
        &mut self,
        now: Instant,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let results = req
            .groups_names
            .into_iter()
            .map(|group_id| {
                self.refresh(now, &group_id);
                let error = match self.groups.get(group_id.as_str()).map(|g| g.state()) {
                    None | Some(GroupState::Dead) => ResponseError::GroupIdNotFound.code(),
                    Some(GroupState::Empty) => match self.delete_group(&group_id) {
                        Ok(()) => 0,
                        // Kafka: CoordinatorOperationExceptionHelper.handleOperationException
                        // (a storage error is NOT_COORDINATOR)
                        Err(()) => ResponseError::NotCoordinator.code(),
                    },
                    Some(_) => ResponseError::NonEmptyGroup.code(),
                };
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(error)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }
}
