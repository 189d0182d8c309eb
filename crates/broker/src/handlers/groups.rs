//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups. Translation only: the decisions are made by the
//! sans-IO coordinator in `shoal-group`, driven by [`crate::coordinator`].

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_group::api::{JoinRequest, SyncRequest};
use shoal_group::{code_of, GroupError};

use super::{code, RequestContext};
use crate::state::Broker;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// FindCoordinator: this node coordinates every group (key type 0) and every transactional id
/// (key type 1). v4 batches keys.
pub fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (host, port) = broker.config.advertised_for(&ctx.listener);
    let node = BrokerId(broker.config.node_id);
    if ctx.api_version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(s(host.clone()))
                    .with_port(port)
                    .with_error_code(code::NONE)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code::NONE)
        .with_node_id(node)
        .with_host(s(host))
        .with_port(port)
}

/// JoinGroup (v0-v9). Parks until the join phase completes.
pub async fn join(
    broker: &Broker,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let session = req.session_timeout_ms;
    let rebalance = if ctx.api_version >= 1 {
        req.rebalance_timeout_ms
    } else {
        session
    };
    let jr = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|g| g.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: session,
        rebalance_timeout_ms: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: ctx.api_version >= 4,
    };
    let member_id = jr.member_id.clone();
    let group_id = jr.group_id.clone();
    match broker.groups.join(jr, catalog(broker)).await {
        Ok(r) => {
            if r.error.is_none() && !r.members.is_empty() {
                // Only the leader's reply lists the members: one line per completed join phase.
                tracing::info!(
                    group = %group_id,
                    generation_id = r.generation_id,
                    members = r.members.len(),
                    protocol = r.protocol_name.as_deref().unwrap_or(""),
                    leader = %r.leader,
                    "group rebalanced"
                );
            }
            JoinGroupResponse::default()
                .with_error_code(code_of(r.error))
                .with_generation_id(r.generation_id)
                .with_protocol_type(r.protocol_type.map(s))
                .with_protocol_name(
                    r.protocol_name
                        .map(s)
                        .or_else(|| (ctx.api_version < 7).then(|| s(""))),
                )
                .with_leader(s(r.leader))
                .with_member_id(s(r.member_id))
                .with_members(
                    r.members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(s))
                                .with_metadata(m.metadata)
                        })
                        .collect(),
                )
        }
        Err(e) => JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1)
            .with_member_id(s(member_id))
            .with_protocol_name((ctx.api_version < 7).then(|| s(""))),
    }
}

/// SyncGroup (v0-v5). Followers park until the leader's assignment arrives.
pub async fn sync(broker: &Broker, req: SyncGroupRequest) -> SyncGroupResponse {
    let sr = SyncRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        generation_id: req.generation_id,
        group_instance_id: req.group_instance_id.map(|g| g.to_string()),
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match broker.groups.sync(sr).await {
        Ok(r) => SyncGroupResponse::default()
            .with_error_code(code_of(r.error))
            .with_protocol_type(r.protocol_type.map(s))
            .with_protocol_name(r.protocol_name.map(s))
            .with_assignment(r.assignment),
        Err(e) => SyncGroupResponse::default()
            .with_error_code(e.code())
            .with_assignment(Bytes::new()),
    }
}

/// Heartbeat (v0-v4).
pub async fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    let r = broker
        .groups
        .heartbeat(
            req.group_id.0.to_string(),
            req.member_id.to_string(),
            req.group_instance_id.map(|g| g.to_string()),
            req.generation_id,
        )
        .await;
    let err = r.unwrap_or_else(Some);
    HeartbeatResponse::default().with_error_code(code_of(err))
}

/// LeaveGroup: v0-v2 one member by id; v3+ a batch of members by id or instance id.
pub async fn leave(
    broker: &Broker,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if ctx.api_version < 3 {
        let r = broker
            .groups
            .leave(group_id, vec![(req.member_id.to_string(), None)])
            .await;
        let err = match r {
            Ok(v) => v.into_iter().next().flatten(),
            Err(e) => Some(e),
        };
        return LeaveGroupResponse::default().with_error_code(code_of(err));
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|g| g.to_string()),
            )
        })
        .collect();
    match broker.groups.leave(group_id, members.clone()).await {
        Ok(errs) => LeaveGroupResponse::default()
            .with_error_code(code::NONE)
            .with_members(
                members
                    .into_iter()
                    .zip(errs)
                    .map(|((id, iid), e)| {
                        MemberResponse::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(iid.map(s))
                            .with_error_code(code_of(e))
                    })
                    .collect(),
            ),
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
    }
}

/// ListGroups (v0-v5, with the v4 state filter and the v5 type filter, KIP-848).
pub async fn list(broker: &Broker, req: ListGroupsRequest) -> ListGroupsResponse {
    match broker.groups.list().await {
        Ok(groups) => {
            let filter: Vec<String> = req.states_filter.iter().map(|x| x.to_lowercase()).collect();
            let types: Vec<String> = req.types_filter.iter().map(|x| x.to_lowercase()).collect();
            ListGroupsResponse::default()
                .with_error_code(code::NONE)
                .with_groups(
                    groups
                        .into_iter()
                        .filter(|g| {
                            (filter.is_empty() || filter.contains(&g.state.to_lowercase()))
                                && (types.is_empty() || types.iter().any(|t| t == g.group_type))
                        })
                        .map(|g| {
                            ListedGroup::default()
                                .with_group_id(GroupId(s(g.group_id)))
                                .with_protocol_type(s(g.protocol_type))
                                .with_group_state(s(g.state))
                                .with_group_type(s(g.group_type))
                        })
                        .collect(),
                )
        }
        Err(e) => ListGroupsResponse::default().with_error_code(e.code()),
    }
}

/// DescribeGroups (v0-v5): unknown groups are `Dead` with no members, as in Kafka.
pub async fn describe(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut out = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let id = g.0.to_string();
        let entry = match broker.groups.describe(id.clone()).await {
            Ok(d) => DescribedGroup::default()
                .with_error_code(code::NONE)
                .with_group_id(g)
                .with_group_state(s(d.state.as_str()))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol_name))
                .with_authorized_operations(i32::MIN)
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(s))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            Err(e) => DescribedGroup::default()
                .with_error_code(e.code())
                .with_group_id(g)
                .with_group_state(s("Dead")),
        };
        out.push(entry);
    }
    DescribeGroupsResponse::default().with_groups(out)
}

/// DeleteGroups (v0-v2): `GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP` per group.
pub async fn delete(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let err: Option<GroupError> = match broker.groups.delete_group(g.0.to_string()).await {
            Ok(e) => e,
            Err(e) => Some(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code_of(err)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

fn to_wire_partitions(
    a: &shoal_group::assignor::TopicPartitions,
) -> Vec<consumer_group_heartbeat_response::TopicPartitions> {
    a.iter()
        .map(|(id, ps)| {
            consumer_group_heartbeat_response::TopicPartitions::default()
                .with_topic_id(*id)
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

/// ConsumerGroupHeartbeat (v0-v1, KIP-848): join (epoch 0), heartbeat, leave (-1, or -2 for a
/// static member); the broker assigns partitions (see `shoal_group::consumer`). Errors are
/// in the response: see [`shoal_group::GroupCoordinator::consumer_heartbeat`].
pub async fn consumer_heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    use shoal_group::consumer::{from_pairs, HeartbeatRequest};
    if ctx.api_version >= 1 && req.member_id.is_empty() {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(GroupError::InvalidRequest.code())
            .with_error_message(Some(s(
                "MemberId can't be empty (ConsumerGroupHeartbeat v1+)",
            )))
            .with_member_epoch(-1);
    }
    let catalog = catalog(broker);
    let hreq = HeartbeatRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|x| x.to_string()),
        rack_id: req.rack_id.map(|x| x.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|x| x.to_string()),
        server_assignor: req.server_assignor.map(|x| x.to_string()),
        owned: req.topic_partitions.map(|tps| {
            from_pairs(
                tps.into_iter()
                    .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic_id, p))),
            )
        }),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    match broker.groups.consumer_heartbeat(hreq, catalog).await {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code_of(r.error))
            .with_error_message(r.error_message.map(s))
            .with_member_id(r.member_id.map(s))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                consumer_group_heartbeat_response::Assignment::default()
                    .with_topic_partitions(to_wire_partitions(&a))
            })),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_member_epoch(-1),
    }
}

/// ConsumerGroupDescribe (v0-v1, KIP-848): members with their epochs, current and target
/// assignments. Errors per group: GROUP_ID_NOT_FOUND (unknown, or a classic group).
pub async fn consumer_describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
    let mut out = Vec::with_capacity(req.group_ids.len());
    for g in req.group_ids {
        let id = g.0.to_string();
        let entry = match broker.groups.consumer_describe(id.clone()).await {
            Ok(d) => {
                let wire = |a: &shoal_group::assignor::TopicPartitions| {
                    Assignment::default().with_topic_partitions(
                        a.iter()
                            .map(|(tid, ps)| {
                                let name = topic_name(broker, &d.topic_names, tid);
                                TopicPartitions::default()
                                    .with_topic_id(*tid)
                                    .with_topic_name(TopicName(s(name)))
                                    .with_partitions(ps.iter().copied().collect())
                            })
                            .collect(),
                    )
                };
                let members = d
                    .members
                    .iter()
                    .map(|m| {
                        let mut member = Member::default()
                            .with_member_id(s(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(s))
                            .with_rack_id(m.rack_id.clone().map(s))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(s(m.client_id.clone()))
                            .with_client_host(s(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|n| TopicName(s(n.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(s))
                            .with_assignment(wire(&m.assignment))
                            .with_target_assignment(wire(&m.target_assignment));
                        if ctx.api_version >= 1 {
                            // 1 = consumer (KIP-1099); 0 would be a classic member.
                            member = member.with_member_type(1);
                        }
                        member
                    })
                    .collect();
                DescribedGroup::default()
                    .with_error_code(code::NONE)
                    .with_group_id(g)
                    .with_group_state(s(d.state.as_str()))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(s(d.assignor_name.clone()))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            }
            Err(e) => DescribedGroup::default()
                .with_error_code(e.code())
                .with_error_message(Some(s(format!("group {id} is not a consumer group"))))
                .with_group_id(g)
                .with_group_state(s("Dead")),
        };
        out.push(entry);
    }
    ConsumerGroupDescribeResponse::default().with_groups(out)
}

/// A topic id's name: as the group's assignment metadata has it, else as the broker knows it
/// now, else "".
pub(crate) fn topic_name(
    broker: &Broker,
    names: &std::collections::BTreeMap<uuid::Uuid, String>,
    id: &uuid::Uuid,
) -> String {
    names
        .get(id)
        .cloned()
        .or_else(|| broker.topics.get_by_id(*id).map(|t| t.name.clone()))
        .unwrap_or_default()
}

/// The broker's non-internal topics, for the coordinator to resolve names to ids.
pub(crate) fn catalog(broker: &Broker) -> crate::coordinator::CatalogSnapshot {
    let mut catalog = crate::coordinator::CatalogSnapshot::default();
    for t in broker.topics.list() {
        if t.internal {
            continue;
        }
        catalog.topics.insert(
            t.name.clone(),
            shoal_group::assignor::TopicMetadata {
                topic_id: t.id,
                name: t.name.clone(),
                partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            },
        );
    }
    catalog
}
