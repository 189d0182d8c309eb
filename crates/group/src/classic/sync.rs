//! SyncGroup for classic groups, after Kafka's `classicGroupSync`: followers are parked until
//! the leader's SyncGroup brings the assignment, which completes the rebalance (`Stable`) and
//! is written as the group's `GroupMetadata` record before anyone is answered.

use std::collections::HashMap;

use bytes::Bytes;

use super::{session_key, ClassicGroup};
use crate::api::{SyncRequest, SyncResponse};
use crate::error::GroupError;
use crate::state::GroupState;
use crate::types::{GroupEvent, Output, RebalanceEvent, Reply, RequestId};

impl ClassicGroup {
    /// SyncGroup; the reply to `req_id` is in `out` now or later (followers wait for the
    /// leader). Errors (in the reply): COORDINATOR_NOT_AVAILABLE, UNKNOWN_MEMBER_ID,
    /// FENCED_INSTANCE_ID, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL,
    /// REBALANCE_IN_PROGRESS.
    pub(crate) fn sync(
        &mut self,
        req_id: RequestId,
        req: SyncRequest,
        now_ms: i64,
        out: &mut Output,
    ) -> Result<(), GroupError> {
        let err = if self.is(GroupState::Dead) {
            Some(GroupError::CoordinatorNotAvailable)
        } else if let Some(e) = self.check_member(&req.member_id, req.group_instance_id.as_deref())
        {
            Some(e)
        } else if req.generation_id != self.generation_id {
            Some(GroupError::IllegalGeneration)
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|p| Some(p) != self.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol_name.as_ref())
        {
            Some(GroupError::InconsistentGroupProtocol)
        } else {
            match self.state() {
                GroupState::Empty => Some(GroupError::UnknownMemberId),
                GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
                _ => None,
            }
        };
        if let Some(e) = err {
            out.replies
                .push((req_id, Reply::Sync(SyncResponse::error(e))));
            return Ok(());
        }
        self.pending_sync.remove(&req.member_id);
        if let Some(m) = self.members.get(&req.member_id) {
            out.set_timer(
                session_key(&self.group_id, &req.member_id),
                now_ms + i64::from(m.session_timeout_ms),
            );
        }
        if self.is(GroupState::Stable) {
            let assignment = self
                .members
                .get(&req.member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            out.replies.push((
                req_id,
                Reply::Sync(SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                }),
            ));
            return Ok(());
        }
        // CompletingRebalance
        if let Some(m) = self.members.get_mut(&req.member_id) {
            if let Some(old) = m.awaiting_sync.replace(req_id) {
                out.replies.push((
                    old,
                    Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                ));
            }
        }
        if self.leader_id.as_deref() != Some(req.member_id.as_str()) {
            return Ok(());
        }
        self.transition_to(GroupState::Stable, now_ms)?;
        let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
        }
        if let Some(t) = self.rebalance_started_ms.take() {
            out.rebalances.push(RebalanceEvent {
                group_id: self.group_id.clone(),
                protocol: "classic",
                duration_ms: now_ms - t,
            });
        }
        out.events.push(GroupEvent::Stabilized {
            group_id: self.group_id.clone(),
            generation_id: self.generation_id,
        });
        self.write_metadata(out);
        for m in self.members.values_mut() {
            if let Some(r) = m.awaiting_sync.take() {
                out.replies.push((
                    r,
                    Reply::Sync(SyncResponse {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    }),
                ));
            }
        }
        Ok(())
    }
}
