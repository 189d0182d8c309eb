//! Offsets by partition over the Kafka protocol, shared by the `topic` and `group` verbs:
//! ListOffsets for a set of partitions, and the per-topic grouping requests need.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::client::Client;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Groups `(topic, partition, value)` by topic and builds one request topic per group with
/// `make(topic, [(partition, value)])`, topics in name order.
pub(crate) fn per_topic<'a, T>(
    items: impl IntoIterator<Item = (&'a str, i32, i64)>,
    make: impl Fn(&str, Vec<(i32, i64)>) -> T,
) -> Vec<T> {
    let mut by: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (t, p, v) in items {
        by.entry(t).or_default().push((p, v));
    }
    by.into_iter().map(|(t, ps)| make(t, ps)).collect()
}

/// ListOffsets at `timestamp` (-1 latest, -2 earliest, else ms): (topic, partition) -> offset.
pub(crate) async fn list_offsets(
    client: &mut Client,
    partitions: &BTreeSet<(String, i32)>,
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let topics = per_topic(
        partitions.iter().map(|(t, p)| (t.as_str(), *p, timestamp)),
        |t, ps| {
            ListOffsetsTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, ts)| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(ts)
                        })
                        .collect(),
                )
        },
    );
    let req = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(topics);
    let (resp, _) = client.call(req, 7).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}
