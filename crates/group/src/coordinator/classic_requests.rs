//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: routed to the classic group, or to the
//! consumer group a classic member belongs to during an online migration.
use super::*;

impl GroupCoordinator {
    // ----- JoinGroup -----------------------------------------------------------------------

    /// Handles JoinGroup. The reply to `req_id` is in the returned [`Output`] now or in a later
    /// one (when the join phase completes). Errors are in [`JoinResponse::error`].
    pub fn join(&mut self, req_id: RequestId, req: JoinRequest, now_ms: i64) -> Output {
        self.join_with(req_id, req, &NoTopics, now_ms)
    }

    /// [`GroupCoordinator::join`] with the broker's topics, which a classic member joining
    /// a consumer-protocol group (online migration) needs to map its topic names to ids.
    /// Errors (in the reply): INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, UNKNOWN_MEMBER_ID,
    /// COORDINATOR_NOT_AVAILABLE, INCONSISTENT_GROUP_PROTOCOL, GROUP_MAX_SIZE_REACHED,
    /// MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID.
    pub fn join_with(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> Output {
        let mut out = Output::default();
        if let Some(e) = self.validate_join(&req) {
            answer_join_if_unanswered(req_id, &req.member_id, e, &mut out);
            return out;
        }
        let group_id = req.group_id.clone();
        match self.groups.get_mut(&group_id) {
            None if !req.member_id.is_empty() => {
                answer_join_if_unanswered(
                    req_id,
                    &req.member_id,
                    GroupError::UnknownMemberId,
                    &mut out,
                );
                return out;
            }
            None => {
                self.groups.insert(
                    group_id.clone(),
                    Group::Classic(ClassicGroup::new(&group_id, now_ms)),
                );
            }
            Some(Group::Consumer(c)) if !c.is_empty() => {
                self.join_consumer_group(req_id, req, catalog, now_ms, &mut out);
                return out;
            }
            Some(Group::Consumer(c)) => {
                // An empty consumer group becomes a classic group (keeping its offsets).
                c.write_tombstones(&group_id, &mut out);
                self.groups.insert(
                    group_id.clone(),
                    Group::Classic(ClassicGroup::new(&group_id, now_ms)),
                );
            }
            Some(Group::Classic(_)) => {}
            Some(Group::Share(_)) => {
                // Kafka: a share group's id used by a classic member.
                answer_join_if_unanswered(
                    req_id,
                    &req.member_id,
                    GroupError::InconsistentGroupProtocol,
                    &mut out,
                );
                return out;
            }
        }
        let max_size = self.config.max_size;
        let has_offsets = self.offsets.has_offsets(&group_id);
        let mut next_id = self.next_id;
        let incarnation = self.incarnation;
        let Some(Group::Classic(group)) = self.groups.get_mut(&group_id) else {
            return out;
        };
        let refusal = if group.is(GroupState::Dead) {
            Some(GroupError::CoordinatorNotAvailable)
        } else if !group.supports(&req.protocol_type, &req.protocols) {
            Some(GroupError::InconsistentGroupProtocol)
        } else if !group.members.contains_key(&req.member_id)
            && group.members.len() + group.pending_members.len() >= max_size
        {
            Some(GroupError::GroupMaxSizeReached)
        } else {
            None
        };
        if let Some(e) = refusal {
            answer_join_if_unanswered(req_id, &req.member_id, e, &mut out);
            return out;
        }
        let member_id = req.member_id.clone();
        let mut cx = ClassicCtx {
            config: &self.config,
            now_ms,
            out: &mut out,
            has_offsets,
        };
        let result = group.join(&mut cx, req_id, req, |prefix| {
            next_id += 1;
            member_id_from(incarnation, next_id, prefix)
        });
        self.next_id = next_id;
        if let Err(e) = result {
            refused(&group_id, e, &mut out);
            answer_join_if_unanswered(req_id, &member_id, e, &mut out);
        }
        out
    }

    fn validate_join(&self, req: &JoinRequest) -> Option<GroupError> {
        if req.group_id.is_empty() {
            return Some(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Some(GroupError::InvalidSessionTimeout);
        }
        None
    }

    /// A classic member joins a consumer-protocol group with members: served by the consumer
    /// group (online migration) unless `group.consumer.migration.policy` is `disabled` and the
    /// member is not already in the group (INCONSISTENT_GROUP_PROTOCOL, as Kafka).
    fn join_consumer_group(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        out: &mut Output,
    ) {
        let known = match self.groups.get(&req.group_id) {
            Some(Group::Consumer(c)) => c.has_classic_member(&req.member_id),
            _ => false,
        };
        if self.config.consumer.migration_policy == MigrationPolicy::Disabled && !known {
            answer_join_if_unanswered(
                req_id,
                &req.member_id,
                GroupError::InconsistentGroupProtocol,
                out,
            );
            return;
        }
        let member_id = if req.member_id.is_empty() {
            let id = self.new_member_id(&req.client_id);
            if req.require_known_member_id {
                answer_join_if_unanswered(req_id, &id, GroupError::MemberIdRequired, out);
                return;
            }
            id
        } else {
            req.member_id.clone()
        };
        let Some(Group::Consumer(c)) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let resp = c.classic_join(
            &req.group_id,
            &req,
            member_id,
            catalog,
            &self.config.consumer,
            now_ms,
            out,
        );
        c.track_rebalance(&req.group_id, now_ms, out);
        out.replies.push((req_id, Reply::Join(resp)));
    }

    // ----- SyncGroup -----------------------------------------------------------------------

    /// Handles SyncGroup; the reply may come later (followers wait for the leader).
    pub fn sync(&mut self, req_id: RequestId, req: SyncRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        match self.groups.get_mut(&req.group_id) {
            Some(Group::Consumer(c)) if !c.is_empty() => {
                let resp = c.classic_sync(
                    &req.group_id,
                    &req.member_id,
                    req.generation_id,
                    req.protocol_type.as_deref(),
                    req.protocol_name.as_deref(),
                    now_ms,
                    &mut out,
                );
                out.replies.push((req_id, Reply::Sync(resp)));
            }
            Some(Group::Classic(g)) => {
                let group_id = req.group_id.clone();
                if let Err(e) = g.sync(req_id, req, now_ms, &mut out) {
                    refused(&group_id, e, &mut out);
                    if !out.replies.iter().any(|(id, _)| *id == req_id) {
                        out.replies
                            .push((req_id, Reply::Sync(SyncResponse::error(e))));
                    }
                }
            }
            _ => out.replies.push((
                req_id,
                Reply::Sync(SyncResponse::error(GroupError::UnknownMemberId)),
            )),
        }
        out
    }

    // ----- Heartbeat / LeaveGroup ----------------------------------------------------------

    /// Handles Heartbeat: `None` keeps the member alive; `REBALANCE_IN_PROGRESS` tells it to
    /// rejoin. Errors: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION,
    /// COORDINATOR_NOT_AVAILABLE.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> (Option<GroupError>, Output) {
        let mut out = Output::default();
        let err = match self.groups.get(group_id) {
            None => Some(GroupError::UnknownMemberId),
            Some(Group::Consumer(c)) if !c.is_empty() => {
                c.classic_heartbeat(group_id, member_id, generation_id, now_ms, &mut out)
            }
            Some(Group::Consumer(_) | Group::Share(_)) => Some(GroupError::UnknownMemberId),
            Some(Group::Classic(g)) => g.heartbeat(
                member_id,
                group_instance_id,
                generation_id,
                now_ms,
                &mut out,
            ),
        };
        (err, out)
    }

    /// Handles LeaveGroup for each `(member_id, group_instance_id)`; returns a per-member
    /// error. A static member may leave by instance id alone (KIP-345).
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Vec<Option<GroupError>>, Output) {
        let mut out = Output::default();
        let has_offsets = self.offsets.has_offsets(group_id);
        let errors = match self.groups.get_mut(group_id) {
            Some(Group::Consumer(c)) if !c.is_empty() => {
                let errors = members
                    .iter()
                    .map(|(member_id, _)| {
                        if c.has_classic_member(member_id) {
                            c.remove_member(
                                group_id,
                                member_id,
                                crate::types::RemovalReason::Leave,
                                &self.config.consumer,
                                &mut out,
                            );
                            None
                        } else {
                            Some(GroupError::UnknownMemberId)
                        }
                    })
                    .collect();
                c.track_rebalance(group_id, now_ms, &mut out);
                self.maybe_downgrade(group_id, now_ms, has_offsets, &mut out);
                errors
            }
            Some(Group::Classic(g)) => {
                let mut cx = ClassicCtx {
                    config: &self.config,
                    now_ms,
                    out: &mut out,
                    has_offsets,
                };
                match g.leave(&mut cx, members) {
                    Ok(errors) => errors,
                    Err(e) => {
                        refused(group_id, e, &mut out);
                        members.iter().map(|_| Some(e)).collect()
                    }
                }
            }
            _ => members
                .iter()
                .map(|_| Some(GroupError::UnknownMemberId))
                .collect(),
        };
        (errors, out)
    }
}
