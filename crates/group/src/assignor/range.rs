//! The `range` assignor (Kafka's server-side `RangeAssignor`): for each topic, the members
//! subscribed to it, ordered by `member_id`, get contiguous ranges of partitions; the first
//! `partitions % members` members get one extra. Members with the same subscriptions therefore
//! get the same partition numbers of co-partitioned topics.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{MemberSpec, TopicMetadata, TopicPartitions};

/// The name clients ask for with `group.remote.assignor`.
pub const NAME: &str = "range";

/// See the module docs.
pub fn assign(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, TopicMetadata>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> = members
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (id, meta) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(id))
            .map(|(k, _)| k)
            .collect();
        if subs.is_empty() || meta.partitions <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let per = meta.partitions / n;
        let extra = meta.partitions % n;
        let mut next = 0;
        for (i, m) in subs.into_iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            if take == 0 {
                continue;
            }
            let set: BTreeSet<i32> = (next..next + take).collect();
            next += take;
            if let Some(a) = out.get_mut(m) {
                a.insert(*id, set);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::tests::{assert_exactly_one_owner, member, topic};
    use super::*;

    #[test]
    fn range_gives_contiguous_ranges_with_extras_first() {
        let topics: BTreeMap<_, _> = [topic(1, 7)].into_iter().collect();
        let members: BTreeMap<_, _> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), member(&[1])))
            .collect();
        let r = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &r);
        let t = Uuid::from_bytes([1; 16]);
        assert_eq!(r["a"][&t], (0..3).collect());
        assert_eq!(r["b"][&t], (3..5).collect());
        assert_eq!(r["c"][&t], (5..7).collect());
    }

    #[test]
    fn range_assigns_each_topic_only_among_its_subscribers() {
        let topics: BTreeMap<_, _> = [topic(1, 4), topic(2, 2)].into_iter().collect();
        let members: BTreeMap<_, _> = [("a", member(&[1])), ("b", member(&[1, 2]))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let r = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &r);
        assert_eq!(super::super::count(&r["b"]), 4);
    }
}
