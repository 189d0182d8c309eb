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
    DescribeConfigsResourceResult, DescribeConfigsResult,
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

/// The effective topic configs: explicit ones, then broker defaults, as `(name, value,
/// is_default)`.
fn effective_configs(
    broker: &Broker,
    configs: &BTreeMap<String, String>,
) -> Vec<(String, String, bool)> {
    let c = &broker.config;
    let defaults: [(&str, String); 9] = [
        ("cleanup.policy", "delete".into()),
        ("retention.ms", c.log_retention_ms.to_string()),
        ("retention.bytes", c.log_retention_bytes.to_string()),
        ("segment.bytes", c.log_segment_bytes.to_string()),
        ("segment.ms", c.log_roll_ms.to_string()),
        ("max.message.bytes", c.message_max_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".into()),
        ("min.insync.replicas", "1".into()),
        ("compression.type", "producer".into()),
    ];
    defaults
        .into_iter()
        .map(|(k, d)| match configs.get(k) {
            Some(v) => (k.to_string(), v.clone(), false),
            None => (k.to_string(), d, true),
        })
        .collect()
}

/// CreateTopics (v2-v7). Replication factor must be -1 or 1 (one node):
/// `INVALID_REPLICATION_FACTOR` otherwise.
pub fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
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
            let partitions = if t.num_partitions == -1 {
                broker.config.num_partitions
            } else {
                t.num_partitions
            };
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let outcome = if !(t.replication_factor == -1 || t.replication_factor == 1) {
                Err(TopicError::InvalidReplicationFactor(format!(
                    "replication factor {} is larger than the 1 available broker",
                    t.replication_factor
                )))
            } else if !t.assignments.is_empty() {
                Err(TopicError::InvalidPartitions(
                    "manual replica assignment is not supported".into(),
                ))
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
                            effective_configs(broker, &configs)
                                .into_iter()
                                .map(|(k, v, is_default)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(s(k))
                                        .with_value(Some(s(v)))
                                        .with_config_source(if is_default { 5 } else { 1 })
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
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
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

/// Kafka's `ConfigResource.Type.GROUP`.
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
/// (type 32, Kafka 4.x group configs).
pub async fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
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
            let entries: Vec<(String, String, i8)> = match res.resource_type {
                2 => match broker.topics.get(res.resource_name.as_str()) {
                    Some(t) => effective_configs(broker, &t.configs)
                        .into_iter()
                        .map(|(k, v, d)| (k, v, if d { 5 } else { 1 }))
                        .collect(),
                    None => {
                        return base
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s("unknown topic")))
                    }
                },
                4 => broker_configs(broker)
                    .into_iter()
                    .map(|(k, v)| (k, v, 4))
                    .collect(),
                GROUP_RESOURCE => match groups.get(res.resource_name.as_str()) {
                    Some(Ok(set)) => group_entries(broker, set),
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
                .filter(|(k, _, _)| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                .map(|(k, v, src)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                        .with_read_only(res.resource_type == 4)
                        .with_config_source(src)
                })
                .collect();
            base.with_error_code(code::NONE).with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(broker: &Broker) -> Vec<(String, String)> {
    let c = &broker.config;
    vec![
        ("node.id".into(), c.node_id.to_string()),
        ("num.partitions".into(), c.num_partitions.to_string()),
        (
            "auto.create.topics.enable".into(),
            c.auto_create_topics_enable.to_string(),
        ),
        (
            "default.replication.factor".into(),
            c.default_replication_factor.to_string(),
        ),
        ("message.max.bytes".into(), c.message_max_bytes.to_string()),
        (
            "socket.request.max.bytes".into(),
            c.socket_request_max_bytes.to_string(),
        ),
        ("log.segment.bytes".into(), c.log_segment_bytes.to_string()),
        ("log.retention.ms".into(), c.log_retention_ms.to_string()),
        (
            "log.retention.bytes".into(),
            c.log_retention_bytes.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms".into(),
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
        (
            "group.min.session.timeout.ms".into(),
            c.group_min_session_timeout_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms".into(),
            c.group_max_session_timeout_ms.to_string(),
        ),
        (
            "offsets.retention.minutes".into(),
            c.offsets_retention_minutes.to_string(),
        ),
    ]
}

/// DescribeCluster (v0-v1): this node, as controller too.
pub fn describe_cluster(broker: &Broker, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = broker.config.advertised();
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
