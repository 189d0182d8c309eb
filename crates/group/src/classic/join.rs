//! JoinGroup for classic groups and the join phase of a rebalance, after Kafka's
//! `GroupMetadataManager.classicGroupJoin` and `completeClassicGroupJoin`.
//!
//! - A new member is added and a rebalance starts (or the running join phase takes it in).
//!   Until its JoinGroup is answered it is *new*: its session timer is the new-member join
//!   timeout (`CoordinatorConfig::new_member_join_timeout_ms`, Kafka's 5 min), after which it
//!   is removed.
//! - With JoinGroup v4+ (KIP-394) a member without an id first gets `MEMBER_ID_REQUIRED` and
//!   an id, and is *pending* until it joins with it or its session timeout expires; a join
//!   phase waits for pending members and leaves them pending when it completes.
//! - The first rebalance of an `Empty` group waits `group.initial.rebalance.delay.ms`, again
//!   as long as new members keep arriving, at most the rebalance timeout in total (Kafka's
//!   `tryCompleteInitialRebalanceElseSchedule`).
//! - The join phase ends when every member and pending member has joined, or when the
//!   rebalance timeout fires; members that did not rejoin are then removed.
//! - A static member (KIP-345) rejoining with a new id replaces its old incarnation; in
//!   `Stable` with unchanged protocols it gets the current assignment back without a
//!   rebalance.

use bytes::Bytes;

use super::{join_key, session_key, ClassicCtx, ClassicGroup, ClassicMember};
use crate::api::{JoinMember, JoinRequest, JoinResponse, SyncResponse};
use crate::error::GroupError;
use crate::state::GroupState;
use crate::types::{GroupEvent, RemovalReason, Reply, RequestId, TimerKey};

impl ClassicGroup {
    fn reply_join_error(
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        e: GroupError,
        member_id: &str,
    ) {
        cx.out
            .replies
            .push((req_id, Reply::Join(JoinResponse::error(e, member_id))));
    }

    /// JoinGroup for this group (already checked: the group accepts the member's protocol
    /// type and protocols and is below `group.max.size`). `new_member_id` is called once if
    /// the member needs an id.
    pub(crate) fn join(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        req: JoinRequest,
        new_member_id: impl FnOnce(&str) -> String,
    ) -> Result<(), GroupError> {
        if req.member_id.is_empty() {
            self.join_unknown_member(cx, req_id, req, new_member_id)
        } else {
            self.join_known_member(cx, req_id, req)
        }
    }

    fn join_unknown_member(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        req: JoinRequest,
        new_member_id: impl FnOnce(&str) -> String,
    ) -> Result<(), GroupError> {
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let new_id = new_member_id(&prefix);
        if let Some(instance_id) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance_id).cloned() {
                return self.replace_static_member(cx, req_id, &req, &old_id, new_id);
            }
            self.static_members.insert(instance_id, new_id.clone());
            return self.add_member_and_rebalance(cx, req_id, req, new_id);
        }
        if req.require_known_member_id {
            self.pending_members.insert(new_id.clone());
            cx.out.set_timer(
                session_key(&self.group_id, &new_id),
                cx.now_ms + i64::from(req.session_timeout_ms),
            );
            Self::reply_join_error(cx, req_id, GroupError::MemberIdRequired, &new_id);
            return Ok(());
        }
        self.add_member_and_rebalance(cx, req_id, req, new_id)
    }

    /// KIP-345: a static member rejoining with an unknown member id replaces its old
    /// incarnation. In `Stable` with unchanged protocols no rebalance happens: it gets the
    /// current generation and assignment back.
    fn replace_static_member(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        req: &JoinRequest,
        old_id: &str,
        new_id: String,
    ) -> Result<(), GroupError> {
        let Some(mut member) = self.members.remove(old_id) else {
            // Stale mapping: treat as a new static member.
            if let Some(iid) = &req.group_instance_id {
                self.static_members.insert(iid.clone(), new_id.clone());
            }
            return self.add_member_and_rebalance(cx, req_id, req.clone(), new_id);
        };
        cx.out.cancel_timer(session_key(&self.group_id, old_id));
        self.removed_event(old_id, RemovalReason::FencedStaticMember, cx.out);
        // The old incarnation's parked requests are fenced.
        member.fail_parked(GroupError::FencedInstanceId, cx.out);
        let protocols_changed = !member.same_protocols(&req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if let Some(iid) = &req.group_instance_id {
            self.static_members.insert(iid.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        cx.out.set_timer(
            session_key(&self.group_id, &new_id),
            cx.now_ms + i64::from(req.session_timeout_ms),
        );
        match self.state() {
            GroupState::Stable if !protocols_changed => {
                self.write_metadata(cx.out);
                let resp = JoinResponse {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: self.leader_id.clone().unwrap_or_default(),
                    member_id: new_id,
                    members: Vec::new(),
                };
                cx.out.replies.push((req_id, Reply::Join(resp)));
                Ok(())
            }
            state => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(req_id);
                }
                if state == GroupState::PreparingRebalance {
                    self.maybe_complete_join(cx)
                } else {
                    let reason = format!("static member {old_id} replaced by {new_id}");
                    self.prepare_rebalance(cx, &reason)
                }
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        req: JoinRequest,
        member_id: String,
    ) -> Result<(), GroupError> {
        let join_seq = self
            .members
            .values()
            .map(|m| m.join_seq + 1)
            .max()
            .unwrap_or(0);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.pending_members.remove(&member_id);
        self.members.insert(
            member_id.clone(),
            ClassicMember {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_seq,
                awaiting_join: Some(req_id),
                awaiting_sync: None,
                is_new: true,
            },
        );
        self.new_member_added = true;
        // Until its JoinGroup is answered, a new member is governed by the new-member join
        // timeout (Kafka schedules it on the member's heartbeat key).
        cx.out.set_timer(
            session_key(&self.group_id, &member_id),
            cx.now_ms + cx.config.new_member_join_timeout_ms,
        );
        if self.is(GroupState::PreparingRebalance) {
            self.maybe_complete_join(cx)
        } else {
            let reason = match &req.group_instance_id {
                Some(iid) => format!("adding new member {member_id} with group instance id {iid}"),
                None => format!("adding new member {member_id}"),
            };
            self.prepare_rebalance(cx, &reason)
        }
    }

    fn join_known_member(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        req_id: RequestId,
        req: JoinRequest,
    ) -> Result<(), GroupError> {
        if self.pending_members.contains(&req.member_id) {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(cx, req_id, req, id);
        }
        if let Some(e) = self.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            Self::reply_join_error(cx, req_id, e, &req.member_id);
            return Ok(());
        }
        let state = self.state();
        let is_leader = self.leader_id.as_deref() == Some(req.member_id.as_str());
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Ok(());
        };
        // A member re-sending JoinGroup while parked: the newer request replaces the old one.
        if let Some(old) = member.awaiting_join.take() {
            cx.out.replies.push((
                old,
                Reply::Join(JoinResponse::error(
                    GroupError::RebalanceInProgress,
                    &req.member_id,
                )),
            ));
        }
        let unchanged = member.same_protocols(&req.protocols);
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        match state {
            GroupState::PreparingRebalance => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(req_id);
                if !member.is_new {
                    // Parked in JoinGroup counts as alive; the join phase's timer governs it.
                    cx.out
                        .cancel_timer(session_key(&self.group_id, &req.member_id));
                }
                self.maybe_complete_join(cx)
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // Nothing changed: answer with the current generation (Kafka does the same).
                let protocol = self.protocol_name.clone().unwrap_or_default();
                let members = if is_leader {
                    self.join_members(&protocol)
                } else {
                    Vec::new()
                };
                let resp = JoinResponse {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: self.leader_id.clone().unwrap_or_default(),
                    member_id: req.member_id.clone(),
                    members,
                };
                cx.out.replies.push((req_id, Reply::Join(resp)));
                cx.out.set_timer(
                    session_key(&self.group_id, &req.member_id),
                    cx.now_ms + i64::from(req.session_timeout_ms),
                );
                Ok(())
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(req_id);
                cx.out
                    .cancel_timer(session_key(&self.group_id, &req.member_id));
                let reason = if is_leader && unchanged {
                    format!(
                        "leader {} re-joining group during {}",
                        req.member_id,
                        state.as_str()
                    )
                } else {
                    format!(
                        "updating metadata for member {} during {}",
                        req.member_id,
                        state.as_str()
                    )
                };
                self.prepare_rebalance(cx, &reason)
            }
            GroupState::Empty | GroupState::Dead => {
                Self::reply_join_error(cx, req_id, GroupError::UnknownMemberId, &req.member_id);
                Ok(())
            }
        }
    }

    pub(crate) fn join_members(&self, protocol: &str) -> Vec<JoinMember> {
        self.sorted_members()
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    /// Starts a rebalance (`PreparingRebalance`), Kafka's `prepareRebalance`: members waiting
    /// for an assignment must rejoin; from `Empty` the join phase waits the initial delay.
    pub(crate) fn prepare_rebalance(
        &mut self,
        cx: &mut ClassicCtx<'_>,
        reason: &str,
    ) -> Result<(), GroupError> {
        let from_empty = self.is(GroupState::Empty);
        let from_completing = self.is(GroupState::CompletingRebalance);
        let previous_generation = self.generation_id;
        self.transition_to(GroupState::PreparingRebalance, cx.now_ms)?;
        if from_completing {
            // Members waiting for their assignment must rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(r) = m.awaiting_sync.take() {
                    cx.out.replies.push((
                        r,
                        Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                    ));
                }
            }
        }
        self.pending_sync.clear();
        cx.out.cancel_timer(TimerKey::Sync {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
        });
        self.rebalance_started_ms.get_or_insert(cx.now_ms);
        cx.out.events.push(GroupEvent::RebalanceStarted {
            group_id: self.group_id.clone(),
            generation_id: previous_generation,
            reason: reason.to_string(),
        });
        let rebalance_timeout = self.max_rebalance_timeout_ms();
        let key = join_key(&self.group_id);
        let delay = cx.config.initial_rebalance_delay_ms;
        if from_empty && delay > 0 {
            // Kafka's initial delayed join: the full delay first, then up to the rebalance
            // timeout in further steps while new members keep arriving.
            self.initial_delay_ms = delay;
            self.initial_delay_remaining_ms = Some((rebalance_timeout - delay).max(0));
            self.new_member_added = false;
            cx.out.set_timer(key, cx.now_ms + delay);
            Ok(())
        } else {
            self.initial_delay_remaining_ms = None;
            cx.out.set_timer(key, cx.now_ms + rebalance_timeout);
            self.maybe_complete_join(cx)
        }
    }

    /// Completes the join phase if every member (and pending member) has joined, unless the
    /// initial delay is still running.
    pub(crate) fn maybe_complete_join(
        &mut self,
        cx: &mut ClassicCtx<'_>,
    ) -> Result<(), GroupError> {
        if self.is(GroupState::PreparingRebalance)
            && self.initial_delay_remaining_ms.is_none()
            && self.all_members_joined()
        {
            self.complete_join(cx)?;
        }
        Ok(())
    }

    /// The join timer fired: extends the initial delay if new members arrived during it and
    /// time remains, else completes the join phase.
    pub(crate) fn on_join_timer(&mut self, cx: &mut ClassicCtx<'_>) -> Result<(), GroupError> {
        if !self.is(GroupState::PreparingRebalance) {
            return Ok(());
        }
        if let Some(remaining) = self.initial_delay_remaining_ms {
            if self.new_member_added && remaining > 0 {
                let delay = cx.config.initial_rebalance_delay_ms.min(remaining);
                self.initial_delay_remaining_ms = Some((remaining - self.initial_delay_ms).max(0));
                self.initial_delay_ms = delay;
                self.new_member_added = false;
                cx.out
                    .set_timer(join_key(&self.group_id), cx.now_ms + delay);
                return Ok(());
            }
        }
        self.complete_join(cx)
    }

    /// Ends the join phase (Kafka's `completeClassicGroupJoin`): removes members that did not
    /// rejoin, starts the next generation and answers every parked JoinGroup (the leader gets
    /// the member list). Pending members stay pending.
    fn complete_join(&mut self, cx: &mut ClassicCtx<'_>) -> Result<(), GroupError> {
        cx.out.cancel_timer(join_key(&self.group_id));
        self.initial_delay_remaining_ms = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member_only(&id, RemovalReason::RebalanceTimeout, cx.out);
        }
        let next = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::CompletingRebalance
        };
        // Refuse before changing anything if the move is illegal.
        if !self.state().can_transition_to(next) {
            return self.transition_to(next, cx.now_ms);
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            // An empty group keeps its protocol type only while it still has offsets.
            if !cx.has_offsets {
                self.protocol_type = None;
            }
            self.leader_id = None;
            self.transition_to(GroupState::Empty, cx.now_ms)?;
            self.join_completed_event(cx);
            self.write_metadata(cx.out);
            return Ok(());
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader_id
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader_id = self.sorted_members().first().map(|m| m.member_id.clone());
        }
        self.transition_to(GroupState::CompletingRebalance, cx.now_ms)?;
        self.join_completed_event(cx);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader_id.clone().unwrap_or_default();
        let all = self.join_members(&protocol);
        let mut max_rebalance = 0i64;
        for m in self.members.values_mut() {
            m.is_new = false;
            max_rebalance = max_rebalance.max(i64::from(m.rebalance_timeout_ms));
            let Some(r) = m.awaiting_join.take() else {
                continue;
            };
            let resp = JoinResponse {
                error: None,
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: leader.clone(),
                member_id: m.member_id.clone(),
                members: if m.member_id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            };
            cx.out.replies.push((r, Reply::Join(resp)));
            cx.out.set_timer(
                session_key(&self.group_id, &m.member_id),
                cx.now_ms + i64::from(m.session_timeout_ms),
            );
        }
        self.pending_sync = self.members.keys().cloned().collect();
        cx.out.set_timer(
            TimerKey::Sync {
                group_id: self.group_id.clone(),
                generation_id: self.generation_id,
            },
            cx.now_ms + max_rebalance,
        );
        Ok(())
    }

    fn join_completed_event(&self, cx: &mut ClassicCtx<'_>) {
        cx.out.events.push(GroupEvent::JoinCompleted {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
            members: self.members.len(),
            leader: self.leader_id.clone(),
            protocol: self.protocol_name.clone(),
        });
    }
}
