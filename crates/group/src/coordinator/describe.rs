//! DescribeGroups, ListGroups and the state of a group.
use super::*;

impl GroupCoordinator {
    // ----- describe ------------------------------------------------------------------------

    /// DescribeGroups for one group; an unknown group is reported `Dead` with no members, as
    /// Kafka does. Member metadata and assignment are included only in `Stable`.
    /// Errors: GROUP_ID_NOT_FOUND for a consumer-protocol group (as Kafka: "not a classic
    /// group"; use ConsumerGroupDescribe).
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(_) | Group::Share(_)) => Err(GroupError::GroupIdNotFound),
            Some(Group::Classic(g)) => Ok(g.describe()),
            None => Ok(GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation_id: -1,
                members: Vec::new(),
            }),
        }
    }

    /// ListGroups: every group that is not `Dead`, sorted by id.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .iter()
            .filter_map(|(id, g)| match g {
                Group::Consumer(c) => Some(GroupListing {
                    group_id: id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: c.state().as_str(),
                    group_type: "consumer",
                }),
                Group::Share(s) => Some(GroupListing {
                    group_id: id.clone(),
                    protocol_type: "share".to_string(),
                    state: s.state(),
                    group_type: "share",
                }),
                Group::Classic(g) if g.is(GroupState::Dead) => None,
                Group::Classic(g) => Some(GroupListing {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state().as_str(),
                    group_type: "classic",
                }),
            })
            .collect()
    }

    /// The classic state of a group, if it exists (`Empty` for a consumer group, whose state
    /// is [`crate::state::ConsumerGroupState`]).
    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| match g {
            Group::Classic(g) => g.state(),
            Group::Consumer(_) | Group::Share(_) => GroupState::Empty,
        })
    }
}
