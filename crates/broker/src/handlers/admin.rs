//! Topic administration and cluster description: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, DescribeCluster.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{code, RequestContext};
use crate::state::Broker;
use crate::topics::{TopicError, TopicManager};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn topic_error_code(e: &TopicError) -> i16 {
    match e {
        TopicError::AlreadyExists => code::TOPIC_ALREADY_EXISTS,
        TopicError::InvalidName(_) | TopicError::Internal => code::INVALID_TOPIC_EXCEPTION,
        TopicError::Unknown => code::UNKNOWN_TOPIC_OR_PARTITION,
        TopicError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
        TopicError::InvalidReplicationFactor(_) => code::INVALID_REPLICATION_FACTOR,
        TopicError::InvalidConfig(_) => code::INVALID_CONFIG,
        TopicError::Storage(_) | TopicError::Other(_) => code::KAFKA_STORAGE_ERROR,
    }
}

/// Checks a manual replica assignment (CreateTopics `assignments`) the way a one-node Kafka
/// does and returns the partition count it implies: partitions numbered 0..n in any order,
/// each with the same non-empty replica list, which may only name this node.
///
/// Errors: `(INVALID_REQUEST, ..)` when a partition count or replication factor is given as
/// well; `(INVALID_REPLICA_ASSIGNMENT, ..)` otherwise.
fn check_assignment(
    node_id: i32,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment],
) -> Result<i32, (i16, String)> {
    if num_partitions != -1 || replication_factor != -1 {
        return Err((
            code::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time."
                .into(),
        ));
    }
    let mut indexes: Vec<i32> = assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes
        .iter()
        .enumerate()
        .any(|(i, p)| i64::from(*p) != i as i64)
    {
        return Err((
            code::INVALID_REPLICA_ASSIGNMENT,
            "Partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    for a in assignments {
        let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        if ids.is_empty() {
            return Err((
                code::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "The manual partition assignment of partition {} is empty.",
                    a.partition_index
                ),
            ));
        }
        if let Some(other) = ids.iter().find(|id| **id != node_id) {
            return Err((
                code::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "The manual partition assignment includes broker {other}, but no such broker is registered."
                ),
            ));
        }
        if ids.len() > 1 {
            return Err((
                code::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "The manual partition assignment of partition {} includes a duplicate replica {node_id}.",
                    a.partition_index
                ),
            ));
        }
    }
    i32::try_from(assignments.len()).map_err(|_| {
        (
            code::INVALID_REPLICA_ASSIGNMENT,
            "too many partitions".to_string(),
        )
    })
}

/// CreateTopics (v2-v7). Replication factor must be -1 or 1 (one node):
/// `INVALID_REPLICATION_FACTOR` otherwise. A manual replica assignment may name only this
/// node, one replica per partition (`[[0], [0], ...]`), as a one-node Kafka accepts; others
/// answer `INVALID_REPLICA_ASSIGNMENT` ([`check_assignment`]).
pub fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
    mutations: &mut super::quotas::Mutations<'_>,
) -> CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let mut result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let assigned = (!t.assignments.is_empty()).then(|| {
                check_assignment(
                    broker.config.node_id,
                    t.num_partitions,
                    t.replication_factor,
                    &t.assignments,
                )
            });
            let partitions = match &assigned {
                Some(Ok(n)) => *n,
                _ if t.num_partitions == -1 => broker.config.num_partitions,
                _ => t.num_partitions,
            };
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            // ACLs: CREATE on the cluster or on the topic.
            if !super::cluster_allowed(broker, ctx, crate::auth::acl::Operation::Create)
                && !super::allowed(
                    broker,
                    ctx,
                    crate::auth::acl::Operation::Create,
                    crate::auth::acl::ResourceType::Topic,
                    &name,
                )
            {
                return result.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
            }
            if let Some(Err((code, msg))) = assigned {
                return result
                    .with_error_code(code)
                    .with_error_message(Some(s(msg)));
            }
            let outcome = if !(t.replication_factor == -1 || t.replication_factor == 1) {
                Err(TopicError::InvalidReplicationFactor(format!(
                    "replication factor {} is larger than the 1 available broker",
                    t.replication_factor
                )))
            } else if !req.validate_only
                && partitions > 0
                && broker.topics.get(&name).is_none()
                && crate::topics::validate_topic_name(&name).is_ok()
            {
                // The controller mutation quota (KIP-599): one token per partition.
                if let Err((code, msg)) = mutations.take(partitions.unsigned_abs()) {
                    return result
                        .with_error_code(code)
                        .with_error_message(Some(s(msg)));
                }
                broker
                    .topics
                    .create(&name, partitions, configs.clone(), false)
                    .map(Some)
            } else if req.validate_only {
                crate::topics::validate_topic_name(&name)
                    .and_then(|_| TopicManager::validate_configs(&configs))
                    .and_then(|_| {
                        if broker.topics.get(&name).is_some() {
                            Err(TopicError::AlreadyExists)
                        } else {
                            Ok(())
                        }
                    })
                    .and_then(|_| {
                        if partitions < 1 {
                            Err(TopicError::InvalidPartitions(format!("{partitions}")))
                        } else {
                            Ok(())
                        }
                    })
                    .map(|_| None)
            } else {
                broker
                    .topics
                    .create(&name, partitions, configs.clone(), false)
                    .map(Some)
            };
            match outcome {
                Ok(created) => {
                    if let Some(topic) = created {
                        result = result.with_topic_id(topic.id);
                    }
                    result = result
                        .with_error_code(code::NONE)
                        .with_num_partitions(partitions)
                        .with_replication_factor(1);
                    if ctx.api_version >= 5 {
                        result = result.with_configs(Some(
                            super::config_catalog::topic_entries(&configs, &broker.config)
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(s(e.name))
                                        .with_value(e.value.map(s))
                                        .with_read_only(e.read_only)
                                        .with_config_source(e.source)
                                        .with_is_sensitive(e.sensitive)
                                })
                                .collect(),
                        ));
                    }
                    result
                }
                Err(e) => result
                    .with_error_code(topic_error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// DeleteTopics (v1-v6), by name or (v6) by topic id.
pub async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
    mutations: &mut super::quotas::Mutations<'_>,
) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    if ctx.api_version >= 6 {
        targets.extend(
            req.topics
                .into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
        );
    }
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let result = {
            let resolved = match &name {
                Some(n) => Some(n.clone()),
                None => broker.topics.get_by_id(id).map(|t| t.name.clone()),
            };
            let base = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(s(n))))
                .with_topic_id(id);
            // ACLs: DELETE on the topic (TOPIC_AUTHORIZATION_FAILED, existing or not).
            let denied = |n: &str| {
                !super::allowed(
                    broker,
                    ctx,
                    crate::auth::acl::Operation::Delete,
                    crate::auth::acl::ResourceType::Topic,
                    n,
                )
            };
            if resolved
                .as_deref()
                .map_or(name.is_none() && broker.authorizer.config.enabled, denied)
            {
                responses.push(base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            // The controller mutation quota (KIP-599): one token per partition deleted.
            let partitions = resolved
                .as_deref()
                .and_then(|n| broker.topics.get(n))
                .map(|t| t.partitions.len());
            if let Some(n) = partitions {
                if let Err((code, msg)) = mutations.take(u32::try_from(n).unwrap_or(u32::MAX)) {
                    responses.push(base.with_error_code(code).with_error_message(Some(s(msg))));
                    continue;
                }
            }
            match resolved.map(|n| (broker.topics.delete(&n), n)) {
                None => base.with_error_code(code::UNKNOWN_TOPIC_ID),
                Some((Ok(id), n)) => {
                    // Committed offsets of the deleted topic go too (as in Kafka).
                    if let Err(e) = broker.groups.topic_deleted(n.clone()).await {
                        tracing::warn!(topic = %n, error = %e, "could not remove the deleted topic's offsets");
                    }
                    base.with_name(Some(TopicName(s(n))))
                        .with_topic_id(id)
                        .with_error_code(code::NONE)
                }
                Some((Err(e), _)) => base
                    .with_error_code(topic_error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            }
        };
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions (v0-v3): grows a topic; `INVALID_PARTITIONS` when not larger.
pub fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
    mutations: &mut super::quotas::Mutations<'_>,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            // The controller mutation quota (KIP-599): one token per partition added.
            let added = broker.topics.get(&t.name.0).map_or(0, |topic| {
                i64::from(t.count) - topic.partitions.len() as i64
            });
            if added > 0 && !req.validate_only {
                if let Err((code, msg)) = mutations.take(u32::try_from(added).unwrap_or(u32::MAX)) {
                    return r.with_error_code(code).with_error_message(Some(s(msg)));
                }
            }
            match broker
                .topics
                .add_partitions(&t.name.0, t.count, req.validate_only)
            {
                Ok(()) => r.with_error_code(code::NONE),
                Err(e) => r
                    .with_error_code(topic_error_code(&e))
                    .with_error_message(Some(s(e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Kafka's `ConfigResource.Type`: TOPIC, BROKER, BROKER_LOGGER, GROUP.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const BROKER_LOGGER_RESOURCE: i8 = 8;
const GROUP_RESOURCE: i8 = 32;

/// A group's configs for DescribeConfigs: each served group config, set (source
/// GROUP_CONFIG, 8) or the broker's default (DEFAULT_CONFIG, 5).
fn group_entries(broker: &Broker, set: &BTreeMap<String, String>) -> Vec<(String, String, i8)> {
    let c = &broker.config.group_share;
    let defaults = [
        ("share.auto.offset.reset", "latest".to_string()),
        (
            "share.record.lock.duration.ms",
            c.record_lock_duration_ms.to_string(),
        ),
        ("share.session.timeout.ms", c.session_timeout_ms.to_string()),
        (
            "share.heartbeat.interval.ms",
            c.heartbeat_interval_ms.to_string(),
        ),
        (
            "share.delivery.count.limit",
            c.delivery_count_limit.to_string(),
        ),
    ];
    defaults
        .into_iter()
        .map(|(k, d)| match set.get(k) {
            Some(v) => (k.to_string(), v.clone(), 8),
            None => (k.to_string(), d, 5),
        })
        .collect()
}

/// DescribeConfigs (v1-v4) for topics (resource type 2), this broker (type 4) and groups
/// (type 32, Kafka 4.x group configs): every config Kafka lists for the resource
/// ([`super::config_catalog`]), with its type, source and sensitivity, the synonyms when
/// `include_synonyms`, the documentation when `include_documentation`. A broker resource
/// names this node's id (or is empty, the cluster default); another id answers
/// INVALID_REQUEST as a one-node Kafka does.
pub async fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    use super::config_catalog::{self as catalog, Entry};
    let mut groups: BTreeMap<String, Result<BTreeMap<String, String>, i16>> = BTreeMap::new();
    for res in &req.resources {
        if res.resource_type == GROUP_RESOURCE {
            let name = res.resource_name.to_string();
            let got = broker
                .groups
                .group_configs(name.clone())
                .await
                .map_err(|e| e.code());
            groups.insert(name, got);
        }
    }
    let node = broker.config.node_id.to_string();
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let keys: Option<Vec<String>> = res
                .configuration_keys
                .map(|k| k.iter().map(|x| x.to_string()).collect());
            let entries: Vec<Entry> = match res.resource_type {
                TOPIC_RESOURCE => match broker.topics.get(res.resource_name.as_str()) {
                    Some(t) => catalog::topic_entries(&t.configs, &broker.config),
                    None => {
                        return base
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s("unknown topic")))
                    }
                },
                BROKER_RESOURCE => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != node {
                        return base
                            .with_error_code(code::INVALID_REQUEST)
                            .with_error_message(Some(s(format!(
                                "unexpected broker id {name}: this is node {node}"
                            ))));
                    }
                    catalog::broker_entries(&broker.config)
                }
                GROUP_RESOURCE => match groups.get(res.resource_name.as_str()) {
                    Some(Ok(set)) => group_entries(broker, set)
                        .into_iter()
                        .map(|(name, value, source)| Entry {
                            config_type: if name == "share.auto.offset.reset" {
                                catalog::ty::STRING
                            } else {
                                catalog::ty::INT
                            },
                            synonyms: vec![catalog::Synonym {
                                name: name.clone(),
                                value: Some(value.clone()),
                                source,
                            }],
                            name,
                            value: Some(value),
                            source,
                            read_only: false,
                            sensitive: false,
                            doc: "",
                        })
                        .collect(),
                    Some(Err(code)) => {
                        return base
                            .with_error_code(*code)
                            .with_error_message(Some(s("group coordinator unavailable")))
                    }
                    None => Vec::new(),
                },
                _ => {
                    return base
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(s("unsupported resource type")))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|e| keys.as_ref().is_none_or(|ks| ks.contains(&e.name)))
                .map(|e| {
                    let synonyms = if req.include_synonyms {
                        e.synonyms
                            .into_iter()
                            .map(|x| {
                                DescribeConfigsSynonym::default()
                                    .with_name(s(x.name))
                                    .with_value(x.value.map(s))
                                    .with_source(x.source)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(s(e.name))
                        .with_value(e.value.map(s))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source)
                        .with_is_sensitive(e.sensitive)
                        .with_synonyms(synonyms)
                        .with_config_type(e.config_type)
                        .with_documentation(
                            (req.include_documentation && !e.doc.is_empty()).then(|| s(e.doc)),
                        )
                })
                .collect();
            base.with_error_code(code::NONE).with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// DescribeCluster (v0-v1): this node, as controller too.
pub fn describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = broker.config.advertised_for(&ctx.listener);
    let node = BrokerId(broker.config.node_id);
    DescribeClusterResponse::default()
        .with_error_code(code::NONE)
        .with_cluster_id(s(broker.config.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(s(host))
            .with_port(port)])
        .with_cluster_authorized_operations(i32::MIN)
}

/// IncrementalAlterConfigs on a group (resource type 32): SET (0) and DELETE (1) of the
/// group configs in `shoal_group::share::GROUP_CONFIGS`, persisted in `__consumer_offsets`.
/// Errors: INVALID_CONFIG (unknown key, bad value, APPEND/SUBTRACT), and
/// COORDINATOR_NOT_AVAILABLE.
async fn alter_group_configs(
    broker: &Broker,
    res: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let mut changes = Vec::with_capacity(res.configs.len());
    for c in &res.configs {
        let key = c.name.to_string();
        match c.config_operation {
            0 => changes.push((
                key,
                Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
            )),
            1 => changes.push((key, None)),
            op => {
                return Err((
                    code::INVALID_CONFIG,
                    format!("operation {op} does not apply to group config {key}"),
                ))
            }
        }
    }
    match broker
        .groups
        .alter_group_configs(res.resource_name.to_string(), changes, validate_only)
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(msg)) => Err((code::INVALID_CONFIG, msg)),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

/// IncrementalAlterConfigs (v0-v1, KIP-339) for topics: operations SET (0), DELETE (1),
/// APPEND (2) and SUBTRACT (3, list configs: `cleanup.policy`); for groups (type 32) SET and
/// DELETE of the group configs. Broker configs are static in Shoal (set at start) and answer
/// INVALID_REQUEST. Errors per resource: UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG (unknown
/// key, bad value, APPEND to a non-list), INVALID_REQUEST (internal topics, other resource
/// types).
pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    const LIST_CONFIGS: &[&str] = &["cleanup.policy"];
    let mut group_results: Vec<Result<(), (i16, String)>> = Vec::new();
    for res in &req.resources {
        if res.resource_type == GROUP_RESOURCE {
            group_results.push(alter_group_configs(broker, res, req.validate_only).await);
        }
    }
    let mut group_results = group_results.into_iter();
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: i16, msg: String| {
                base.clone()
                    .with_error_code(code)
                    .with_error_message(Some(s(msg)))
            };
            if res.resource_type == GROUP_RESOURCE {
                return match group_results.next() {
                    Some(Ok(())) | None => base.with_error_code(code::NONE),
                    Some(Err((code, msg))) => fail(code, msg),
                };
            }
            if res.resource_type != 2 {
                return fail(
                    code::INVALID_REQUEST,
                    "only topic configs can be altered; broker settings are set at start".into(),
                );
            }
            let name = res.resource_name.to_string();
            let Some(topic) = broker.topics.get(&name) else {
                return fail(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic {name}"),
                );
            };
            if topic.internal {
                return fail(code::INVALID_REQUEST, format!("{name} is internal"));
            }
            let mut configs = topic.configs.clone();
            for c in &res.configs {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                let is_list = LIST_CONFIGS.contains(&key.as_str());
                match c.config_operation {
                    0 => {
                        configs.insert(key, value);
                    }
                    1 => {
                        configs.remove(&key);
                    }
                    2 | 3 if !is_list => {
                        return fail(
                            code::INVALID_CONFIG,
                            format!("{key} is not a list config: APPEND/SUBTRACT do not apply"),
                        );
                    }
                    2 => {
                        let mut items: Vec<String> = configs
                            .get(&key)
                            .map(|v| v.split(',').map(|x| x.trim().to_string()).collect())
                            .unwrap_or_else(|| vec!["delete".to_string()]);
                        for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                            if !items.iter().any(|x| x == v) {
                                items.push(v.to_string());
                            }
                        }
                        configs.insert(key, items.join(","));
                    }
                    3 => {
                        let remove: Vec<&str> = value.split(',').map(str::trim).collect();
                        let items: Vec<String> = configs
                            .get(&key)
                            .map(|v| {
                                v.split(',')
                                    .map(|x| x.trim().to_string())
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|x| !remove.contains(&x.as_str()))
                            .collect();
                        if items.is_empty() {
                            configs.remove(&key);
                        } else {
                            configs.insert(key, items.join(","));
                        }
                    }
                    op => {
                        return fail(
                            code::INVALID_REQUEST,
                            format!("unknown config operation {op}"),
                        )
                    }
                }
            }
            if let Err(e) = crate::topics::TopicManager::validate_configs(&configs) {
                return fail(code::INVALID_CONFIG, e.to_string());
            }
            if req.validate_only {
                return base.with_error_code(code::NONE);
            }
            match broker.topics.alter_configs(&name, configs) {
                Ok(()) => base.with_error_code(code::NONE),
                Err(e) => fail(code::KAFKA_STORAGE_ERROR, e.to_string()),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs (v0-v2), the non-incremental form (librdkafka's `rd_kafka_AlterConfigs`,
/// older tools): a topic's dynamic configs become exactly the ones sent (null values are
/// skipped; configs not sent return to their defaults), after the whole set is validated;
/// `validate_only` checks without applying. Broker configs are static in Shoal: a broker
/// resource (this node's id, or empty for the cluster default) with configs answers
/// INVALID_REQUEST as Kafka does for configs it cannot update dynamically, and without
/// configs succeeds (there is nothing dynamic to reset). Errors per resource:
/// UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG (unknown key, bad value), INVALID_REQUEST
/// (internal topics, other resource types, another broker id).
pub fn alter_configs(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let node = broker.config.node_id.to_string();
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: i16, msg: String| {
                base.clone()
                    .with_error_code(code)
                    .with_error_message(Some(s(msg)))
            };
            let configs: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            match res.resource_type {
                TOPIC_RESOURCE => {}
                BROKER_RESOURCE => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != node {
                        return fail(
                            code::INVALID_REQUEST,
                            format!("unexpected broker id {name}: this is node {node}"),
                        );
                    }
                    if configs.is_empty() {
                        return base.with_error_code(code::NONE);
                    }
                    let keys: Vec<&str> = configs.keys().map(String::as_str).collect();
                    return fail(
                        code::INVALID_REQUEST,
                        format!(
                            "Invalid config value for resource ConfigResource(type=BROKER, name='{name}'): \
                             Cannot update these configs dynamically: {}",
                            keys.join(", ")
                        ),
                    );
                }
                BROKER_LOGGER_RESOURCE => {
                    return fail(
                        code::INVALID_REQUEST,
                        "AlterConfigs does not support the BROKER_LOGGER resource type".into(),
                    )
                }
                other => {
                    return fail(
                        code::INVALID_REQUEST,
                        format!("unsupported resource type {other}"),
                    )
                }
            }
            let name = res.resource_name.to_string();
            let Some(topic) = broker.topics.get(&name) else {
                return fail(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic {name}"),
                );
            };
            if topic.internal {
                return fail(code::INVALID_REQUEST, format!("{name} is internal"));
            }
            if let Err(e) = TopicManager::validate_configs(&configs) {
                return fail(code::INVALID_CONFIG, e.to_string());
            }
            if req.validate_only {
                return base.with_error_code(code::NONE);
            }
            match broker.topics.alter_configs(&name, configs) {
                Ok(()) => base.with_error_code(code::NONE),
                Err(e) => fail(topic_error_code(&e), e.to_string()),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
