//! Metadata: brokers (this node), topics and partitions, with auto-creation when the request
//! allows it and `auto.create.topics.enable` is set. Every partition is led by this node with
//! `leader_epoch` 0.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{allowed, cluster_allowed, code, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::state::Broker;
use crate::topics::{Topic, TopicError};

fn topic_entry(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    MetadataResponseTopic::default()
        .with_error_code(code::NONE)
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.internal)
        .with_partitions(
            t.partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_error_code(code::NONE)
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
        .with_topic_authorized_operations(i32::MIN)
}

/// Answers Metadata. Unknown topics get `UNKNOWN_TOPIC_OR_PARTITION` unless auto-created;
/// invalid names get `INVALID_TOPIC_EXCEPTION`.
///
/// ACLs (as Kafka's KafkaApis): listing all topics shows only those the principal may
/// DESCRIBE; a topic asked for by name or id without DESCRIBE, existing or not, answers
/// `TOPIC_AUTHORIZATION_FAILED`; auto-creation needs CREATE on the cluster or the topic
/// (`TOPIC_AUTHORIZATION_FAILED` otherwise).
pub fn metadata(broker: &Broker, ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let (host, port) = broker.config.advertised_for(&ctx.listener);
    let node = BrokerId(broker.config.node_id);
    let all = req.topics.as_ref().is_none()
        || (ctx.api_version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let topics: Vec<MetadataResponseTopic> = if all {
        broker
            .topics
            .list()
            .iter()
            .filter(|t| {
                allowed(
                    broker,
                    ctx,
                    Operation::Describe,
                    ResourceType::Topic,
                    &t.name,
                )
            })
            .map(|t| topic_entry(broker, t))
            .collect()
    } else {
        let allow = broker.config.auto_create_topics_enable
            && (ctx.api_version < 4 || req.allow_auto_topic_creation);
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|rt| {
                let by_id = (!rt.topic_id.is_nil())
                    .then(|| broker.topics.get_by_id(rt.topic_id))
                    .flatten();
                let name = rt.name.map(|n| n.0.to_string()).unwrap_or_default();
                let missing = |code: i16| {
                    MetadataResponseTopic::default()
                        .with_error_code(code)
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                        .with_topic_id(rt.topic_id)
                };
                let found = by_id.or_else(|| broker.topics.get(&name));
                let described = found.as_ref().map_or(name.as_str(), |t| t.name.as_str());
                if !allowed(
                    broker,
                    ctx,
                    Operation::Describe,
                    ResourceType::Topic,
                    described,
                ) {
                    let denied = missing(code::TOPIC_AUTHORIZATION_FAILED);
                    // Asked by id: the name is not revealed.
                    return if name.is_empty() {
                        denied.with_name(None)
                    } else {
                        denied
                    };
                }
                if let Some(t) = found {
                    return topic_entry(broker, &t);
                }
                if !allow || name.is_empty() {
                    return missing(code::UNKNOWN_TOPIC_OR_PARTITION);
                }
                if !cluster_allowed(broker, ctx, Operation::Create)
                    && !allowed(broker, ctx, Operation::Create, ResourceType::Topic, &name)
                {
                    return missing(code::TOPIC_AUTHORIZATION_FAILED);
                }
                match broker.topics.create(
                    &name,
                    broker.config.num_partitions,
                    Default::default(),
                    false,
                ) {
                    Ok(t) => topic_entry(broker, &t),
                    Err(TopicError::AlreadyExists) => broker.topics.get(&name).map_or_else(
                        || missing(code::UNKNOWN_TOPIC_OR_PARTITION),
                        |t| topic_entry(broker, &t),
                    ),
                    Err(TopicError::InvalidName(_)) => missing(code::INVALID_TOPIC_EXCEPTION),
                    Err(e) => {
                        tracing::warn!(topic = %name, error = %e, "auto-create failed");
                        missing(code::UNKNOWN_TOPIC_OR_PARTITION)
                    }
                }
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_id(Some(StrBytes::from_string(
            broker.config.cluster_id.clone(),
        )))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}
