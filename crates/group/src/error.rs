//! The coordinator's domain errors, each the Kafka error a client receives
//! (`org.apache.kafka.common.protocol.Errors`); [`GroupError::code`] gives the wire code.

/// A group operation's failure, named as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the group id is invalid")]
    InvalidGroupId,
    #[error("the session timeout is outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("the group member's protocols are incompatible with the group")]
    InconsistentGroupProtocol,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("a member id is required: rejoin with the returned member id (KIP-394)")]
    MemberIdRequired,
    #[error("the static member was replaced by a newer instance (KIP-345)")]
    FencedInstanceId,
    #[error("the group has reached group.max.size")]
    GroupMaxSizeReached,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the offset metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the member epoch is fenced by the group coordinator (KIP-848)")]
    FencedMemberEpoch,
    #[error("the member epoch is older than the member's current epoch (KIP-848)")]
    StaleMemberEpoch,
    #[error("the static member's instance id is still held by a live member (KIP-848)")]
    UnreleasedInstanceId,
    #[error("the assignor is not one of group.consumer.assignors")]
    UnsupportedAssignor,
    #[error("the request is invalid")]
    InvalidRequest,
    #[error("the request version is not supported for this group")]
    UnsupportedVersion,
    #[error("the regular expression is invalid")]
    InvalidRegularExpression,
    #[error("the record is not acquired by this member (KIP-932)")]
    InvalidRecordState,
    #[error("the share session was not found (KIP-932)")]
    ShareSessionNotFound,
    #[error("the share session epoch is invalid (KIP-932)")]
    InvalidShareSessionEpoch,
    #[error("the limit of share sessions has been reached (KIP-932)")]
    ShareSessionLimitReached,
    #[error("the topic or partition does not exist")]
    UnknownTopicOrPartition,
    /// A state transition the group's state machine does not allow: a coordinator bug,
    /// refused instead of applied (Kafka's `IllegalStateException`, UNKNOWN_SERVER_ERROR).
    #[error("illegal group state transition {from:?} -> {to:?}")]
    IllegalStateTransition {
        from: crate::state::GroupState,
        to: crate::state::GroupState,
    },
}

impl GroupError {
    /// The Kafka wire error code.
    pub fn code(self) -> i16 {
        match self {
            GroupError::CoordinatorNotAvailable => 15,
            GroupError::InvalidGroupId => 24,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::UnknownMemberId => 25,
            GroupError::IllegalGeneration => 22,
            GroupError::RebalanceInProgress => 27,
            GroupError::MemberIdRequired => 79,
            GroupError::FencedInstanceId => 82,
            GroupError::GroupMaxSizeReached => 81,
            GroupError::GroupIdNotFound => 69,
            GroupError::NonEmptyGroup => 68,
            GroupError::OffsetMetadataTooLarge => 12,
            GroupError::GroupSubscribedToTopic => 86,
            GroupError::FencedMemberEpoch => 110,
            GroupError::StaleMemberEpoch => 113,
            GroupError::UnreleasedInstanceId => 111,
            GroupError::UnsupportedAssignor => 112,
            GroupError::InvalidRequest => 42,
            GroupError::UnsupportedVersion => 35,
            GroupError::InvalidRegularExpression => 128,
            GroupError::InvalidRecordState => 121,
            GroupError::ShareSessionNotFound => 122,
            GroupError::InvalidShareSessionEpoch => 123,
            GroupError::ShareSessionLimitReached => 133,
            GroupError::UnknownTopicOrPartition => 3,
            GroupError::IllegalStateTransition { .. } => -1,
        }
    }
}

/// Wire code for an optional error (`0` = NONE).
pub fn code_of(e: Option<GroupError>) -> i16 {
    e.map_or(0, GroupError::code)
}
