//! OffsetCommit (validated against the group's members and generation or epochs),
//! OffsetFetch, OffsetDelete, DeleteGroups, offset retention and deleted topics.
use std::collections::HashSet;

use super::*;

impl GroupCoordinator {
    // ----- offsets -------------------------------------------------------------------------

    /// Handles OffsetCommit; returns one result per partition, in request order.
    /// Errors (for every partition): INVALID_GROUP_ID, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
    /// ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, and for consumer
    /// groups STALE_MEMBER_EPOCH, FENCED_MEMBER_EPOCH, UNSUPPORTED_VERSION; per partition:
    /// OFFSET_METADATA_TOO_LARGE.
    pub fn commit(&mut self, req: CommitRequest, now_ms: i64) -> (Vec<Option<GroupError>>, Output) {
        let mut out = Output::default();
        let n = req.partitions.len();
        let fail = |e| (vec![Some(e); n], Output::default());
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId);
        }
        match self.groups.get(&req.group_id) {
            None if req.generation_id >= 0 => {
                // A generation of a group that does not exist: Kafka rejects the commit
                // without creating the group.
                return fail(GroupError::IllegalGeneration);
            }
            None => {
                self.groups.insert(
                    req.group_id.clone(),
                    Group::Classic(ClassicGroup::new(&req.group_id, now_ms)),
                );
            }
            Some(Group::Share(_)) => return fail(GroupError::GroupIdNotFound),
            Some(Group::Consumer(c)) => {
                if let Some(e) =
                    c.validate_commit(&req.member_id, req.generation_id, req.api_version)
                {
                    return fail(e);
                }
            }
            Some(Group::Classic(g)) => {
                if g.is(GroupState::Dead) {
                    return fail(GroupError::CoordinatorNotAvailable);
                }
                if !(req.generation_id < 0 && g.is(GroupState::Empty)) {
                    // Not a commit from a consumer using manual assignment: the member must
                    // be in the current generation.
                    if let Some(e) =
                        g.check_member(&req.member_id, req.group_instance_id.as_deref())
                    {
                        return fail(e);
                    }
                    if req.generation_id != g.generation_id {
                        return fail(GroupError::IllegalGeneration);
                    }
                    if g.is(GroupState::CompletingRebalance) {
                        return fail(GroupError::RebalanceInProgress);
                    }
                    if let Some(m) = g.members.get(&req.member_id) {
                        if m.awaiting_join.is_none() {
                            out.set_timer(
                                crate::classic::session_key(&req.group_id, &req.member_id),
                                now_ms + i64::from(m.session_timeout_ms),
                            );
                        }
                    }
                }
            }
        }
        let errors = self.offsets.commit(
            &req.group_id,
            req.partitions,
            self.config.offset_metadata_max_bytes,
            now_ms,
            &mut out,
        );
        (errors, out)
    }

    /// Committed offsets of a group: for the listed `(topic, partition)`s, or all when `None`.
    /// A partition with no committed offset is returned with `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> OffsetList {
        self.offsets.fetch(group_id, partitions)
    }

    /// OffsetDelete: removes committed offsets of an empty group, or of topics the group does
    /// not subscribe to. Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP (a non-consumer
    /// protocol group with members; whole request), GROUP_SUBSCRIBED_TO_TOPIC (per
    /// partition).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        _now_ms: i64,
    ) -> Result<(Vec<Option<GroupError>>, Output), GroupError> {
        let mut out = Output::default();
        let subscribed: HashSet<String> = match self.groups.get(group_id) {
            None => return Err(GroupError::GroupIdNotFound),
            Some(Group::Classic(g)) if g.is(GroupState::Dead) => {
                return Err(GroupError::GroupIdNotFound)
            }
            Some(Group::Share(_)) => return Err(GroupError::GroupIdNotFound),
            Some(g) if g.is_empty() => HashSet::new(),
            Some(Group::Consumer(c)) => c.subscribed_topic_names().into_iter().collect(),
            Some(Group::Classic(g)) => g.subscribed_topics().ok_or(GroupError::NonEmptyGroup)?,
        };
        let errors = self
            .offsets
            .delete(group_id, partitions, &subscribed, &mut out);
        Ok((errors, out))
    }

    /// DeleteGroups for one group. Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP.
    pub fn delete_group(&mut self, group_id: &str, now_ms: i64) -> Result<Output, GroupError> {
        let mut out = Output::default();
        match self.groups.get(group_id) {
            None => return Err(GroupError::GroupIdNotFound),
            Some(Group::Classic(g)) if g.is(GroupState::Dead) => {
                return Err(GroupError::GroupIdNotFound)
            }
            Some(g) if !g.is_empty() => return Err(GroupError::NonEmptyGroup),
            Some(Group::Share(_)) => {
                self.delete_share_group(group_id, &mut out);
                return Ok(out);
            }
            Some(_) => {}
        }
        self.tombstone_group(group_id, now_ms, &mut out);
        Ok(out)
    }

    /// Writes the tombstones of every record of a group and removes it.
    fn tombstone_group(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        if let Some(Group::Consumer(c)) = self.groups.get_mut(group_id) {
            c.write_tombstones(group_id, out);
        }
        self.offsets.delete_group(group_id, out);
        out.records.push(Record::GroupMetadata {
            group_id: group_id.to_string(),
            value: None,
        });
        if let Some(Group::Classic(g)) = self.groups.get_mut(group_id) {
            if let Err(e) = g.transition_to(GroupState::Dead, now_ms) {
                refused(group_id, e, out);
            }
        }
        self.groups.remove(group_id);
    }

    /// Offset retention (KIP-211): a group that has been empty for `offsets.retention.ms`
    /// loses its committed offsets and is removed. Groups with members are never expired.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let retention = self.config.offsets_retention_ms;
        let expired: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.is_empty() && now_ms - g.state_timestamp_ms() >= retention)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.tombstone_group(&id, now_ms, &mut out);
        }
        out
    }

    /// A topic was deleted: every group's committed offsets for it are removed (tombstones),
    /// as Kafka does, so a re-created topic of the same name starts without stale positions;
    /// share groups forget its share-partitions.
    pub fn delete_topic_offsets(&mut self, topic: &str, _now_ms: i64) -> Output {
        let mut out = Output::default();
        self.offsets.delete_topic(topic, &mut out);
        self.share_topic_deleted(topic, &mut out);
        out
    }
}
