//! ACL checks that decide a whole request before its handler runs, with the error Kafka's
//! KafkaApis answers (GROUP_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
//! CLUSTER_AUTHORIZATION_FAILED). Checks per topic or partition (Metadata, Produce, Fetch,
//! ListOffsets, OffsetForLeaderEpoch, OffsetCommit, OffsetFetch, CreateTopics, DeleteTopics)
//! live in their handlers.
//!
//! With an authorizer configured, the APIs whose per-resource checks are not written yet
//! ([`needs_cluster_alter`]) are served only to principals with ALTER on the cluster (super
//! users included); for anyone else the connection is closed, so no request goes unchecked.

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::{allowed, cluster_allowed, code, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::state::Broker;

/// APIs served to ALTER-on-cluster principals only while an authorizer is on.
pub fn needs_cluster_alter(api: ApiKey) -> bool {
    use ApiKey::*;
    matches!(
        api,
        DescribeTopicPartitions
            | DescribeProducers
            | DescribeTransactions
            | ListTransactions
            | OffsetDelete
            | DescribeShareGroupOffsets
            | AlterShareGroupOffsets
            | DeleteShareGroupOffsets
            | ElectLeaders
            | AlterPartitionReassignments
            | ListPartitionReassignments
            | AlterReplicaLogDirs
            | DescribeLogDirs
            | WriteTxnMarkers
    )
}

fn group(broker: &Broker, ctx: &RequestContext, op: Operation, id: &str) -> bool {
    allowed(broker, ctx, op, ResourceType::Group, id)
}

fn txn(broker: &Broker, ctx: &RequestContext, id: &str) -> bool {
    allowed(
        broker,
        ctx,
        Operation::Write,
        ResourceType::TransactionalId,
        id,
    )
}

/// GROUP_AUTHORIZATION_FAILED without READ on `group`, else TOPIC_AUTHORIZATION_FAILED when a
/// topic (by id; unknown ids are the handler's business) may not be READ; `None` if allowed.
fn share_denied(
    broker: &Broker,
    ctx: &RequestContext,
    group_id: Option<&str>,
    topics: impl Iterator<Item = uuid::Uuid>,
) -> Option<i16> {
    if !group(broker, ctx, Operation::Read, group_id.unwrap_or("")) {
        return Some(code::GROUP_AUTHORIZATION_FAILED);
    }
    let mut topics = topics;
    topics
        .any(|id| {
            broker.topics.get_by_id(id).is_some_and(|t| {
                !allowed(broker, ctx, Operation::Read, ResourceType::Topic, &t.name)
            })
        })
        .then_some(code::TOPIC_AUTHORIZATION_FAILED)
}

/// The answer to a request refused as a whole, or `None` to run its handler. `Err` closes
/// the connection (an API in [`needs_cluster_alter`] from a principal without ALTER on the
/// cluster).
///
/// Errors: the reason the connection is closed.
pub fn check(
    broker: &Broker,
    ctx: &RequestContext,
    api: ApiKey,
    request: &RequestKind,
) -> Result<Option<ResponseKind>, String> {
    use kafka_protocol::messages::*;
    if !broker.authorizer.config.enabled {
        return Ok(None);
    }
    if needs_cluster_alter(api) && !cluster_allowed(broker, ctx, Operation::Alter) {
        return Err(format!(
            "{} may not send {api:?}: with an authorizer, Shoal serves it to principals with ALTER on the cluster only",
            ctx.principal
        ));
    }
    const GROUP_DENIED: i16 = code::GROUP_AUTHORIZATION_FAILED;
    const TXN_DENIED: i16 = code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    let refused = match request {
        RequestKind::JoinGroup(r) if !group(broker, ctx, Operation::Read, &r.group_id) => {
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(GROUP_DENIED))
        }
        RequestKind::SyncGroup(r) if !group(broker, ctx, Operation::Read, &r.group_id) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(GROUP_DENIED))
        }
        RequestKind::Heartbeat(r) if !group(broker, ctx, Operation::Read, &r.group_id) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(GROUP_DENIED))
        }
        RequestKind::LeaveGroup(r) if !group(broker, ctx, Operation::Read, &r.group_id) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(GROUP_DENIED))
        }
        RequestKind::ConsumerGroupHeartbeat(r)
            if !group(broker, ctx, Operation::Read, &r.group_id) =>
        {
            ResponseKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED),
            )
        }
        RequestKind::ShareGroupHeartbeat(r)
            if !group(broker, ctx, Operation::Read, &r.group_id) =>
        {
            ResponseKind::ShareGroupHeartbeat(
                ShareGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED),
            )
        }
        RequestKind::FindCoordinator(r) => {
            let key_type = r.key_type;
            let denied = |key: &str| match key_type {
                1 => !allowed(
                    broker,
                    ctx,
                    Operation::Describe,
                    ResourceType::TransactionalId,
                    key,
                ),
                _ => !group(broker, ctx, Operation::Describe, key),
            };
            let error = if key_type == 1 {
                TXN_DENIED
            } else {
                GROUP_DENIED
            };
            if ctx.api_version >= 4 {
                // Batched keys: refused only when every key is (others are answered).
                if r.coordinator_keys.iter().all(|k| denied(k)) && !r.coordinator_keys.is_empty() {
                    ResponseKind::FindCoordinator(
                        FindCoordinatorResponse::default().with_coordinators(
                            r.coordinator_keys
                                .iter()
                                .map(|k| {
                                    find_coordinator_response::Coordinator::default()
                                        .with_key(k.clone())
                                        .with_node_id(BrokerId(-1))
                                        .with_port(-1)
                                        .with_error_code(error)
                                })
                                .collect(),
                        ),
                    )
                } else {
                    return Ok(None);
                }
            } else if denied(&r.key) {
                ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default()
                        .with_error_code(error)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                )
            } else {
                return Ok(None);
            }
        }
        RequestKind::InitProducerId(r) => match r.transactional_id.as_ref() {
            Some(id) if !txn(broker, ctx, id) => ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(TXN_DENIED)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
            None if !cluster_allowed(broker, ctx, Operation::IdempotentWrite)
                && !broker.authorizer.authorize_any(
                    &ctx.principal,
                    ctx.peer.ip(),
                    Operation::Write,
                    ResourceType::Topic,
                ) =>
            {
                ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )
            }
            _ => return Ok(None),
        },
        RequestKind::AddOffsetsToTxn(r) if !txn(broker, ctx, &r.transactional_id) => {
            ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(TXN_DENIED),
            )
        }
        RequestKind::AddOffsetsToTxn(r) if !group(broker, ctx, Operation::Read, &r.group_id) => {
            ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(GROUP_DENIED),
            )
        }
        RequestKind::EndTxn(r) if !txn(broker, ctx, &r.transactional_id) => {
            ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(TXN_DENIED))
        }
        RequestKind::TxnOffsetCommit(r) => {
            let error = if !txn(broker, ctx, &r.transactional_id) {
                TXN_DENIED
            } else if !group(broker, ctx, Operation::Read, &r.group_id) {
                GROUP_DENIED
            } else if r
                .topics
                .iter()
                .any(|t| !allowed(broker, ctx, Operation::Read, ResourceType::Topic, &t.name))
            {
                code::TOPIC_AUTHORIZATION_FAILED
            } else {
                return Ok(None);
            };
            ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(error)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        RequestKind::OffsetFetch(r)
            if ctx.api_version < 8 && !group(broker, ctx, Operation::Describe, &r.group_id) =>
        {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(GROUP_DENIED))
        }
        // v4+ is sent by brokers (verify only): CLUSTER_ACTION on the cluster.
        RequestKind::AddPartitionsToTxn(_)
            if ctx.api_version >= 4 && !cluster_allowed(broker, ctx, Operation::ClusterAction) =>
        {
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default()
                    .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
            )
        }
        // v0-3: WRITE on the transactional id, then on each topic (Kafka answers the others
        // OPERATION_NOT_ATTEMPTED).
        RequestKind::AddPartitionsToTxn(r) if ctx.api_version < 4 => {
            let id_denied = !txn(broker, ctx, &r.v3_and_below_transactional_id);
            let topic_denied =
                |name: &str| !allowed(broker, ctx, Operation::Write, ResourceType::Topic, name);
            if !id_denied && !r.v3_and_below_topics.iter().any(|t| topic_denied(&t.name)) {
                return Ok(None);
            }
            let results = r
                .v3_and_below_topics
                .iter()
                .map(|t| {
                    let error = if id_denied {
                        TXN_DENIED
                    } else if topic_denied(&t.name) {
                        code::TOPIC_AUTHORIZATION_FAILED
                    } else {
                        code::OPERATION_NOT_ATTEMPTED
                    };
                    add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect();
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
            )
        }
        // Share groups (KIP-932): READ on the group, then READ on every topic named (Shoal
        // refuses the whole request when one topic is denied).
        RequestKind::ShareFetch(r) => {
            let error = share_denied(
                broker,
                ctx,
                r.group_id.as_ref().map(|g| &*g.0),
                r.topics.iter().map(|t| t.topic_id),
            );
            match error {
                Some(e) => {
                    ResponseKind::ShareFetch(ShareFetchResponse::default().with_error_code(e))
                }
                None => return Ok(None),
            }
        }
        RequestKind::ShareAcknowledge(r) => {
            let error = share_denied(
                broker,
                ctx,
                r.group_id.as_ref().map(|g| &*g.0),
                r.topics.iter().map(|t| t.topic_id),
            );
            match error {
                Some(e) => ResponseKind::ShareAcknowledge(
                    ShareAcknowledgeResponse::default().with_error_code(e),
                ),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(refused))
}

/// OffsetFetch after its handler: a v8+ group the principal may not DESCRIBE answers
/// GROUP_AUTHORIZATION_FAILED with no topics; topics it may not DESCRIBE answer
/// TOPIC_AUTHORIZATION_FAILED per partition (offset -1) when named, and are left out when
/// the request asked for every topic (as Kafka filters them).
pub fn filter_offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    asked_all: &[bool],
    mut resp: kafka_protocol::messages::OffsetFetchResponse,
) -> kafka_protocol::messages::OffsetFetchResponse {
    if !broker.authorizer.config.enabled {
        return resp;
    }
    let topic_ok =
        |name: &str| allowed(broker, ctx, Operation::Describe, ResourceType::Topic, name);
    let all0 = asked_all.first().copied().unwrap_or(false);
    resp.topics.retain(|t| !all0 || topic_ok(&t.name));
    for t in &mut resp.topics {
        if !topic_ok(&t.name) {
            for p in &mut t.partitions {
                p.error_code = code::TOPIC_AUTHORIZATION_FAILED;
                p.committed_offset = -1;
                p.metadata = None;
            }
        }
    }
    for (i, g) in resp.groups.iter_mut().enumerate() {
        if !group(broker, ctx, Operation::Describe, &g.group_id) {
            g.error_code = code::GROUP_AUTHORIZATION_FAILED;
            g.topics.clear();
            continue;
        }
        let all = asked_all.get(i).copied().unwrap_or(false);
        g.topics.retain(|t| !all || topic_ok(&t.name));
        for t in &mut g.topics {
            if !topic_ok(&t.name) {
                for p in &mut t.partitions {
                    p.error_code = code::TOPIC_AUTHORIZATION_FAILED;
                    p.committed_offset = -1;
                    p.metadata = None;
                }
            }
        }
    }
    resp
}

/// Group listings and descriptions after their handlers (Kafka's rules): ListGroups keeps
/// only the groups the principal may DESCRIBE (all with DESCRIBE on the cluster);
/// DescribeGroups, ConsumerGroupDescribe and ShareGroupDescribe answer
/// GROUP_AUTHORIZATION_FAILED, with nothing else, for a group it may not DESCRIBE.
pub fn filter_groups(broker: &Broker, ctx: &RequestContext, resp: ResponseKind) -> ResponseKind {
    use kafka_protocol::messages::*;
    if !broker.authorizer.config.enabled {
        return resp;
    }
    let visible = |id: &str| group(broker, ctx, Operation::Describe, id);
    // A described group the principal may not DESCRIBE becomes its id and the error only.
    macro_rules! deny_groups {
        ($groups:expr, $ty:ty) => {
            for g in &mut $groups {
                if !visible(&g.group_id) {
                    *g = <$ty>::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code::GROUP_AUTHORIZATION_FAILED);
                }
            }
        };
    }
    match resp {
        ResponseKind::ListGroups(mut r) => {
            if !cluster_allowed(broker, ctx, Operation::Describe) {
                r.groups.retain(|g| visible(&g.group_id));
            }
            ResponseKind::ListGroups(r)
        }
        ResponseKind::DescribeGroups(mut r) => {
            deny_groups!(r.groups, describe_groups_response::DescribedGroup);
            ResponseKind::DescribeGroups(r)
        }
        ResponseKind::ConsumerGroupDescribe(mut r) => {
            deny_groups!(r.groups, consumer_group_describe_response::DescribedGroup);
            ResponseKind::ConsumerGroupDescribe(r)
        }
        ResponseKind::ShareGroupDescribe(mut r) => {
            deny_groups!(r.groups, share_group_describe_response::DescribedGroup);
            ResponseKind::ShareGroupDescribe(r)
        }
        other => other,
    }
}

/// DeleteGroups before its handler: the groups the principal may not DELETE are taken out of
/// the request and returned, to be answered GROUP_AUTHORIZATION_FAILED ([`deleted_groups`]).
pub fn undeletable_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: &mut kafka_protocol::messages::DeleteGroupsRequest,
) -> Vec<kafka_protocol::messages::GroupId> {
    if !broker.authorizer.config.enabled {
        return Vec::new();
    }
    let (denied, kept) = std::mem::take(&mut req.groups_names)
        .into_iter()
        .partition(|g| !group(broker, ctx, Operation::Delete, g));
    req.groups_names = kept;
    denied
}

/// DeleteGroups after its handler: the refused groups answered GROUP_AUTHORIZATION_FAILED.
pub fn deleted_groups(
    mut resp: kafka_protocol::messages::DeleteGroupsResponse,
    refused: Vec<kafka_protocol::messages::GroupId>,
) -> kafka_protocol::messages::DeleteGroupsResponse {
    resp.results.extend(refused.into_iter().map(|g| {
        kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(code::GROUP_AUTHORIZATION_FAILED)
    }));
    resp
}

/// Takes out of `items` the topics (named by `name`) on which the principal may not do `op`
/// and returns them, for the caller to answer TOPIC_AUTHORIZATION_FAILED.
pub fn refuse_topics<T>(
    broker: &Broker,
    ctx: &RequestContext,
    op: Operation,
    items: &mut Vec<T>,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    if !broker.authorizer.config.enabled {
        return Vec::new();
    }
    let (denied, kept) = std::mem::take(items)
        .into_iter()
        .partition(|t| !allowed(broker, ctx, op, ResourceType::Topic, name(t)));
    *items = kept;
    denied
}

/// Takes out of `items` the config resources (`(resource_type, name)` by `key`, Kafka's
/// `ConfigResource.Type`) on which the principal may not do `op` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS: on the topic, on the cluster for a broker or broker logger, on the group),
/// returning `(resource_type, name, error)`: TOPIC_, CLUSTER_ or GROUP_AUTHORIZATION_FAILED.
/// Unknown resource types are left for the handler.
pub fn refuse_config_resources<T>(
    broker: &Broker,
    ctx: &RequestContext,
    op: Operation,
    items: &mut Vec<T>,
    key: impl Fn(&T) -> (i8, &str),
) -> Vec<(i8, kafka_protocol::protocol::StrBytes, i16)> {
    if !broker.authorizer.config.enabled {
        return Vec::new();
    }
    let mut denied = Vec::new();
    items.retain(|item| {
        let (t, name) = key(item);
        let (resource, resource_name, error) = match t {
            2 => (ResourceType::Topic, name, code::TOPIC_AUTHORIZATION_FAILED),
            4 | 8 => (
                ResourceType::Cluster,
                "kafka-cluster",
                code::CLUSTER_AUTHORIZATION_FAILED,
            ),
            32 => (ResourceType::Group, name, code::GROUP_AUTHORIZATION_FAILED),
            _ => return true,
        };
        if allowed(broker, ctx, op, resource, resource_name) {
            return true;
        }
        denied.push((
            t,
            kafka_protocol::protocol::StrBytes::from_string(name.to_string()),
            error,
        ));
        false
    });
    denied
}
