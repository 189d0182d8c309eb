//! `shoal topic list|create|describe|delete|alter-config`: what `kafka-topics.sh` and
//! `kafka-configs.sh --entity-type topics` do, over the Kafka protocol (Metadata,
//! CreateTopics, DeleteTopics, DescribeConfigs, IncrementalAlterConfigs, ListOffsets).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::Client;
use super::kafka_error;

/// `DescribeConfigs`/`IncrementalAlterConfigs` resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// `config_source` of a setting given on the topic itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One partition as `describe` shows it, with its offsets.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionInfo {
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    pub(crate) log_start_offset: Option<i64>,
    pub(crate) log_end_offset: Option<i64>,
}

/// A topic from Metadata.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TopicInfo {
    pub(crate) name: String,
    pub(crate) topic_id: String,
    pub(crate) internal: bool,
    pub(crate) partitions: i32,
    pub(crate) replication_factor: usize,
    pub(crate) partition_details: Vec<PartitionInfo>,
    /// Settings set on the topic (not defaults).
    pub(crate) configs: BTreeMap<String, String>,
    /// A per-topic error (for example UNKNOWN_TOPIC_OR_PARTITION).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Metadata for `topics` (all when `None`), sorted by name.
pub(crate) async fn metadata(
    client: &mut Client,
    topics: Option<&[String]>,
) -> anyhow::Result<Vec<TopicInfo>> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect()
        }));
    let (resp, _) = client.call(req, 12).await?;
    let mut out: Vec<TopicInfo> = resp
        .topics
        .into_iter()
        .map(|t| {
            let mut parts: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    log_start_offset: None,
                    log_end_offset: None,
                })
                .collect();
            parts.sort_by_key(|p| p.partition);
            TopicInfo {
                name: t.name.map(|n| n.to_string()).unwrap_or_default(),
                topic_id: t.topic_id.to_string(),
                internal: t.is_internal,
                partitions: i32::try_from(parts.len()).unwrap_or(i32::MAX),
                replication_factor: parts.first().map_or(0, |p| p.replicas.len()),
                partition_details: parts,
                configs: BTreeMap::new(),
                error: kafka_error(t.error_code),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Topic names (internal topics only with `include_internal`).
pub(crate) async fn list(
    client: &mut Client,
    include_internal: bool,
) -> anyhow::Result<Vec<String>> {
    Ok(metadata(client, None)
        .await?
        .into_iter()
        .filter(|t| include_internal || !t.internal)
        .map(|t| t.name)
        .collect())
}

/// CreateTopics for one topic. `partitions` -1 and `replication_factor` -1 take the broker's
/// defaults; `configs` are `(name, value)`. Errors: TOPIC_ALREADY_EXISTS,
/// INVALID_PARTITIONS, INVALID_CONFIG, ...
pub(crate) async fn create(
    client: &mut Client,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    // v7: a controller mutation quota refuses with THROTTLING_QUOTA_EXCEEDED (v6+, KIP-599)
    // instead of throttling silently.
    let (resp, _) = client.call(req, 7).await?;
    for t in resp.topics {
        if let Some(e) = kafka_error(t.error_code) {
            let detail = t
                .error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            bail!("cannot create topic {name}: {e}{detail}");
        }
    }
    Ok(())
}

/// DeleteTopics for `names`. Errors: UNKNOWN_TOPIC_OR_PARTITION, ...
pub(crate) async fn delete(client: &mut Client, names: &[String]) -> anyhow::Result<()> {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topic_names(names.iter().map(|n| TopicName(s(n))).collect());
    let (resp, _) = client.call(req, 4).await?;
    for r in resp.responses {
        if let Some(e) = kafka_error(r.error_code) {
            bail!(
                "cannot delete topic {}: {e}",
                r.name.map(|n| n.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Metadata, settings set on the topic, and each partition's log start and end offsets.
pub(crate) async fn describe(
    client: &mut Client,
    names: &[String],
) -> anyhow::Result<Vec<TopicInfo>> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let wanted = if names.is_empty() { None } else { Some(names) };
    let mut topics: Vec<TopicInfo> = metadata(client, wanted)
        .await?
        .into_iter()
        .filter(|t| wanted.is_some() || !t.internal)
        .collect();
    for t in &topics {
        if let Some(e) = &t.error {
            bail!("topic {}: {e}", t.name);
        }
    }
    let req = DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(&t.name))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    if let Ok((resp, _)) = client.call(req, 4).await {
        for r in resp.results {
            if let Some(t) = topics
                .iter_mut()
                .find(|t| t.name == r.resource_name.as_str())
            {
                t.configs = r
                    .configs
                    .into_iter()
                    .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.value.map(|v| v.to_string()).unwrap_or_default(),
                        )
                    })
                    .collect();
            }
        }
    }
    let parts: BTreeSet<(String, i32)> = topics
        .iter()
        .flat_map(|t| {
            t.partition_details
                .iter()
                .map(|p| (t.name.clone(), p.partition))
        })
        .collect();
    let starts = super::offsets::list_offsets(client, &parts, -2).await?;
    let ends = super::offsets::list_offsets(client, &parts, -1).await?;
    for t in &mut topics {
        for p in &mut t.partition_details {
            let key = (t.name.clone(), p.partition);
            p.log_start_offset = starts.get(&key).copied();
            p.log_end_offset = ends.get(&key).copied();
        }
    }
    Ok(topics)
}

/// `describe` as `kafka-topics.sh --describe` prints it, plus each partition's offsets.
pub(crate) fn describe_text(topics: &[TopicInfo]) -> String {
    let join = |v: &[i32]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = String::new();
    for t in topics {
        let configs = t
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            t.name, t.topic_id, t.partitions, t.replication_factor, configs
        ));
        for p in &t.partition_details {
            let off = |o: Option<i64>| o.map_or("-".to_string(), |v| v.to_string());
            out.push_str(&format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tLogStartOffset: {}\tLogEndOffset: {}\n",
                t.name,
                p.partition,
                p.leader,
                join(&p.replicas),
                join(&p.isr),
                off(p.log_start_offset),
                off(p.log_end_offset)
            ));
        }
    }
    out
}

/// IncrementalAlterConfigs on topic `name`: `set` pairs (operation SET) and `delete` names
/// (operation DELETE, back to the default). Errors: INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) async fn alter_config(
    client: &mut Client,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set key=value or --delete key");
    }
    let configs = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .chain(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(1)
                .with_value(None)
        }))
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let (resp, _) = client.call(req, 1).await?;
    for r in resp.responses {
        if let Some(e) = kafka_error(r.error_code) {
            let detail = r
                .error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            bail!("cannot change topic {name}: {e}{detail}");
        }
    }
    Ok(())
}
