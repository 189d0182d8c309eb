//! ConsumerGroupHeartbeat (KIP-848): finds or creates the consumer group (converting an empty
//! classic group, or upgrading one with members), runs the heartbeat, keeps a new group only
//! if the heartbeat wrote records, and downgrades after a leave; ConsumerGroupDescribe.
use std::collections::BTreeMap;

use super::*;

impl GroupCoordinator {
    // ----- consumer protocol (KIP-848) -----------------------------------------------------

    /// Handles ConsumerGroupHeartbeat (see [`crate::consumer`]). The group is created on a
    /// join (epoch 0); an empty classic group becomes a consumer group, keeping its offsets;
    /// a classic group with members is upgraded if `group.consumer.migration.policy` allows.
    /// A group that a failed join would have created is not kept.
    /// Errors (in the response): INVALID_GROUP_ID, INVALID_REQUEST (a new member with no
    /// subscription), GROUP_ID_NOT_FOUND (a classic group with members), UNKNOWN_MEMBER_ID,
    /// FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID, UNSUPPORTED_ASSIGNOR,
    /// GROUP_MAX_SIZE_REACHED, INVALID_REGULAR_EXPRESSION.
    pub fn consumer_heartbeat(
        &mut self,
        req: HeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> (HeartbeatResponse, Output) {
        let mut out = Output::default();
        if req.group_id.is_empty() {
            return (
                HeartbeatResponse::error(GroupError::InvalidGroupId, "GroupId can't be empty"),
                out,
            );
        }
        // Kafka answers INVALID_REQUEST to a join (epoch 0) without RebalanceTimeoutMs or with
        // a null TopicPartitions. Shoal accepts both (the member keeps its previous rebalance
        // timeout, or gets `max.poll.interval.ms`'s default): librdkafka 2.12 sends such a
        // join when it rejoins within a millisecond of leaving, and treats INVALID_REQUEST as
        // fatal (docs/compatibility.md).
        let joining = req.member_epoch == 0;
        let leaving = req.member_epoch < 0;
        let group_id = req.group_id.clone();
        let unknown_member = || {
            HeartbeatResponse::error(
                GroupError::UnknownMemberId,
                format!("group {} has no member {}", req.group_id, req.member_id),
            )
        };
        // The group to run the heartbeat on, and whether it is new (kept only if the
        // heartbeat wrote something).
        let (mut group, created) = match self.groups.remove(&group_id) {
            Some(Group::Consumer(c)) => (c, false),
            Some(g @ Group::Share(_)) => {
                self.groups.insert(group_id.clone(), g);
                let resp = HeartbeatResponse::error(
                    GroupError::GroupIdNotFound,
                    format!("group {} is not a consumer group", req.group_id),
                );
                return (resp, out);
            }
            None if !joining => return (unknown_member(), out),
            None => (ConsumerGroup::new(now_ms), true),
            Some(Group::Classic(mut g)) => {
                let upgradable = self.config.consumer.migration_policy.allows_upgrade()
                    && joining
                    && g.protocol_type.as_deref() == Some("consumer")
                    && !g.is(GroupState::Empty)
                    && g.members.len() < self.config.consumer.max_size;
                if upgradable {
                    let c = migration::upgrade(&mut g, catalog, &self.config, now_ms, &mut out);
                    (c, false)
                } else {
                    let resp = if !g.is(GroupState::Empty) {
                        HeartbeatResponse::error(
                            GroupError::GroupIdNotFound,
                            format!("group {} is not a consumer group", req.group_id),
                        )
                    } else if g.is(GroupState::Empty) && !joining {
                        unknown_member()
                    } else {
                        // An empty classic group becomes a consumer group.
                        let fresh = ConsumerGroup::new(now_ms);
                        self.groups.insert(group_id.clone(), Group::Classic(g));
                        return self.run_consumer_heartbeat(req, fresh, true, catalog, now_ms, out);
                    };
                    self.groups.insert(group_id, Group::Classic(g));
                    return (resp, out);
                }
            }
        };
        if created {
            // Not in the map yet: put nothing back on failure.
            return self.run_consumer_heartbeat(req, group, true, catalog, now_ms, out);
        }
        let was_empty = group.is_empty();
        let (resp, out) = self.heartbeat_on(req, &mut group, catalog, now_ms, out);
        if group.is_empty() != was_empty {
            group.state_timestamp_ms = now_ms;
        }
        self.groups.insert(group_id.clone(), Group::Consumer(group));
        let mut out = out;
        if leaving {
            let has_offsets = self.offsets.has_offsets(&group_id);
            self.maybe_downgrade(&group_id, now_ms, has_offsets, &mut out);
        }
        (resp, out)
    }

    /// Runs a heartbeat on a group that is not in the map yet (new, or replacing an empty
    /// classic group): it is inserted only if the heartbeat wrote records.
    fn run_consumer_heartbeat(
        &mut self,
        req: HeartbeatRequest,
        mut group: ConsumerGroup,
        _created: bool,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        out: Output,
    ) -> (HeartbeatResponse, Output) {
        let group_id = req.group_id.clone();
        let (resp, out) = self.heartbeat_on(req, &mut group, catalog, now_ms, out);
        if !out.records.is_empty() {
            group.state_timestamp_ms = now_ms;
            self.groups.insert(group_id, Group::Consumer(group));
        }
        (resp, out)
    }

    fn heartbeat_on(
        &mut self,
        req: HeartbeatRequest,
        group: &mut ConsumerGroup,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        mut out: Output,
    ) -> (HeartbeatResponse, Output) {
        let new_id = self.new_member_id("consumer");
        let group_id = req.group_id.clone();
        let resp = group.heartbeat(
            req,
            || new_id,
            catalog,
            &self.config.consumer,
            now_ms,
            &mut out,
        );
        group.track_rebalance(&group_id, now_ms, &mut out);
        (resp, out)
    }

    /// ConsumerGroupDescribe for one group. Errors: GROUP_ID_NOT_FOUND (unknown group, or a
    /// classic group with members: "not a consumer group").
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(c)) => Ok(c.describe(group_id)),
            Some(Group::Classic(g)) if g.is(GroupState::Empty) => {
                Ok(ConsumerGroup::default().describe(group_id))
            }
            _ => Err(GroupError::GroupIdNotFound),
        }
    }

    /// OffsetFetch v9+ checks a consumer-protocol member's id and epoch (KIP-848); `None`
    /// when the fetch may proceed. Errors: UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH,
    /// FENCED_MEMBER_EPOCH.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<GroupError> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(c)) => c.validate_fetch(member_id, member_epoch),
            _ => None,
        }
    }

    /// Each consumer-protocol member's current assignment (for tests and the admin API).
    pub fn consumer_assignments(&self, group_id: &str) -> BTreeMap<String, TopicPartitions> {
        match self.groups.get(group_id) {
            Some(Group::Consumer(c)) => c.assignments(),
            _ => BTreeMap::new(),
        }
    }
}
