//! Heartbeat and LeaveGroup for classic groups, member removal, and the classic timers
//! (session expiry, sync timeout), after Kafka's `classicGroupHeartbeat`,
//! `classicGroupLeave` and `onExpireHeartbeat`.
//!
//! A member parked in JoinGroup or SyncGroup counts as alive (Kafka's
//! `hasSatisfiedHeartbeat`), except a *new* member, whose timer is the new-member join
//! timeout. Every removal is reported as a `GroupEvent::MemberRemoved` with its reason.

use super::{session_key, ClassicCtx, ClassicGroup};
use crate::error::GroupError;
use crate::state::GroupState;
use crate::types::{Output, RemovalReason};

impl ClassicGroup {
    /// Heartbeat: `None` keeps the member alive; `REBALANCE_IN_PROGRESS` tells it to rejoin.
    /// Errors: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION,
    /// COORDINATOR_NOT_AVAILABLE.
    pub(crate) fn heartbeat(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
        out: &mut Output,
    ) -> Option<GroupError> {
        if self.is(GroupState::Dead) {
            return Some(GroupError::CoordinatorNotAvailable);
        }
        if let Some(e) = self.check_member(member_id, group_instance_id) {
            return Some(e);
        }
        if generation_id != self.generation_id && !self.is(GroupState::PreparingRebalance) {
            return Some(GroupError::IllegalGeneration);
        }
        if let Some(m) = self.members.get(member_id) {
            if m.awaiting_join.is_none() {
                out.set_timer(
                    session_key(&self.group_id, member_id),
                    now_ms + i64::from(m.session_timeout_ms),
                );
            }
        }
        match self.state() {
            GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
            GroupState::Empty => Some(GroupError::UnknownMemberId),
            _ => None,
        }
    }

    /// LeaveGroup for each `(member_id, group_instance_id)`; returns a per-member error. A
    /// static member may leave by instance id alone (KIP-345).
    pub(crate) fn leave(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let resolved = match instance_id {
                Some(iid) => match self.static_members.get(iid) {
                    Some(current) if member_id.is_empty() || current == member_id => {
                        Ok(current.clone())
                    }
                    Some(_) => Err(GroupError::FencedInstanceId),
                    None => Err(GroupError::UnknownMemberId),
                },
                None => Ok(member_id.clone()),
            };
            match resolved {
                Err(e) => errors.push(Some(e)),
                Ok(id) if self.pending_members.remove(&id) => {
                    cx.out.cancel_timer(session_key(&self.group_id, &id));
                    self.removed_event(&id, RemovalReason::Leave, cx.out);
                    self.maybe_complete_join(cx)?;
                    errors.push(None);
                }
                Ok(id) if self.members.contains_key(&id) => {
                    self.remove_member_and_rebalance(cx, &id, RemovalReason::Leave)?;
                    errors.push(None);
                }
                Ok(_) => errors.push(Some(GroupError::UnknownMemberId)),
            }
        }
        Ok(errors)
    }

    /// Removes a member without starting a rebalance; answers its parked requests.
    pub(crate) fn remove_member_only(
        &mut self,
        member_id: &str,
        reason: RemovalReason,
        out: &mut Output,
    ) {
        out.cancel_timer(session_key(&self.group_id, member_id));
        let Some(mut m) = self.members.remove(member_id) else {
            return;
        };
        self.removed_event(member_id, reason, out);
        if let Some(iid) = &m.group_instance_id {
            if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                self.static_members.remove(iid);
            }
        }
        self.pending_sync.remove(member_id);
        m.fail_parked(GroupError::UnknownMemberId, out);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
    }

    /// Removes a member and rebalances the rest (LeaveGroup, session expiry).
    pub(crate) fn remove_member_and_rebalance(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        member_id: &str,
        reason: RemovalReason,
    ) -> Result<(), GroupError> {
        self.remove_member_only(member_id, reason, cx.out);
        match self.state() {
            GroupState::Dead | GroupState::Empty => Ok(()),
            GroupState::PreparingRebalance => self.maybe_complete_join(cx),
            GroupState::Stable | GroupState::CompletingRebalance => {
                let why = format!("removing member {member_id}: {}", reason.as_str());
                self.prepare_rebalance(cx, &why)
            }
        }
    }

    /// A member's (or pending member's) session timer fired.
    pub(crate) fn on_session_timer(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        member_id: &str,
    ) -> Result<(), GroupError> {
        if self.pending_members.remove(member_id) {
            self.removed_event(member_id, RemovalReason::SessionTimeout, cx.out);
            return self.maybe_complete_join(cx);
        }
        let Some(m) = self.members.get(member_id) else {
            return Ok(());
        };
        if m.is_new && m.awaiting_join.is_some() {
            // Kafka: new members can be expired even while awaiting join.
            return self.remove_member_and_rebalance(
                cx,
                member_id,
                RemovalReason::NewMemberJoinTimeout,
            );
        }
        if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
            // Parked in JoinGroup/SyncGroup counts as alive (Kafka's `hasSatisfiedHeartbeat`);
            // the rebalance timeout governs it. Re-arm.
            let deadline = cx.now_ms + i64::from(m.session_timeout_ms);
            cx.out
                .set_timer(session_key(&self.group_id, member_id), deadline);
            return Ok(());
        }
        self.remove_member_and_rebalance(cx, member_id, RemovalReason::SessionTimeout)
    }

    /// The sync timer of `generation_id` fired: members that got their JoinGroup answer but
    /// never sent SyncGroup are removed (Kafka's pending-sync timeout) and the rest rebalance.
    pub(crate) fn on_sync_timer(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.generation_id != generation_id
            || !(self.is(GroupState::CompletingRebalance) || self.is(GroupState::Stable))
            || self.pending_sync.is_empty()
        {
            return Ok(());
        }
        let mut laggards: Vec<String> = self.pending_sync.drain().collect();
        laggards.sort();
        for id in &laggards {
            self.remove_member_only(id, RemovalReason::SyncTimeout, cx.out);
        }
        if self.is(GroupState::Stable) || self.is(GroupState::CompletingRebalance) {
            let why = format!(
                "removing members {} on pending sync request expiration",
                laggards.join(", ")
            );
            self.prepare_rebalance(cx, &why)?;
        }
        Ok(())
    }
}
