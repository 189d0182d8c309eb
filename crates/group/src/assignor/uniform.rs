//! The `uniform` assignor (Kafka's server-side `UniformAssignor`, the default): spreads the
//! partitions so member partition counts differ by at most one wherever subscriptions allow it,
//! and keeps every member's previous partitions where that stays balanced (sticky), so a
//! rebalance moves as few partitions as it can.
//!
//! Algorithm: (1) each member keeps the previous partitions it still subscribes to (a partition
//! claimed twice goes to the first member by `member_id`); (2) each unowned partition, in topic
//! and partition order, goes to the least-loaded subscriber; (3) while some member has at least
//! two more partitions than a subscriber of one of its topics, one partition moves from the
//! former to the latter. Each move lowers the sum of squared counts, so (3) terminates.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

use super::{MemberSpec, TopicMetadata, TopicPartitions};

/// The name clients ask for with `group.remote.assignor`.
pub const NAME: &str = "uniform";

/// See the module docs.
pub fn assign(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, TopicMetadata>,
) -> BTreeMap<String, TopicPartitions> {
    let ids: Vec<&String> = members.keys().collect();
    let specs: Vec<&MemberSpec> = members.values().collect();
    // Subscribers of each topic, as indexes into `ids`.
    let mut subscribers: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (i, m) in specs.iter().enumerate() {
        for t in &m.subscribed {
            if topics.contains_key(t) {
                subscribers.entry(*t).or_default().push(i);
            }
        }
    }
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); ids.len()];
    let mut taken: HashSet<(Uuid, i32)> = HashSet::new();
    // (1) stickiness.
    for (i, m) in specs.iter().enumerate() {
        for (t, ps) in &m.previous {
            let Some(meta) = topics.get(t) else { continue };
            if !m.subscribed.contains(t) {
                continue;
            }
            for p in ps {
                if *p >= 0 && *p < meta.partitions && taken.insert((*t, *p)) {
                    if let Some(set) = owned.get_mut(i) {
                        set.insert((*t, *p));
                    }
                }
            }
        }
    }
    // (2) unowned partitions to the least-loaded subscriber.
    for (t, subs) in &subscribers {
        let Some(meta) = topics.get(t) else { continue };
        for p in 0..meta.partitions {
            if taken.contains(&(*t, p)) {
                continue;
            }
            let target = subs
                .iter()
                .copied()
                .min_by_key(|i| (owned.get(*i).map_or(usize::MAX, BTreeSet::len), *i));
            if let Some(i) = target {
                if let Some(set) = owned.get_mut(i) {
                    set.insert((*t, p));
                    taken.insert((*t, p));
                }
            }
        }
    }
    // (3) balance.
    loop {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(owned.get(*i).map_or(0, BTreeSet::len)));
        let mut moved = None;
        'donors: for &d in &order {
            let dn = owned.get(d).map_or(0, BTreeSet::len);
            if dn < 2 {
                break;
            }
            let Some(donor_set) = owned.get(d) else {
                continue;
            };
            // Give away the highest-numbered partitions first, so low ones stay put.
            for &(t, p) in donor_set.iter().rev() {
                let receiver = subscribers.get(&t).and_then(|subs| {
                    subs.iter()
                        .copied()
                        .filter(|r| {
                            *r != d && owned.get(*r).map_or(usize::MAX, BTreeSet::len) + 2 <= dn
                        })
                        .min_by_key(|r| (owned.get(*r).map_or(usize::MAX, BTreeSet::len), *r))
                });
                if let Some(r) = receiver {
                    moved = Some((d, r, t, p));
                    break 'donors;
                }
            }
        }
        let Some((d, r, t, p)) = moved else { break };
        if let Some(s) = owned.get_mut(d) {
            s.remove(&(t, p));
        }
        if let Some(s) = owned.get_mut(r) {
            s.insert((t, p));
        }
    }
    ids.into_iter()
        .zip(owned)
        .map(|(id, set)| {
            let mut a = TopicPartitions::new();
            for (t, p) in set {
                a.entry(t).or_default().insert(p);
            }
            (id.clone(), a)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::count;
    use super::super::tests::{assert_exactly_one_owner, member, topic};
    use super::*;

    fn counts(r: &BTreeMap<String, TopicPartitions>) -> Vec<usize> {
        r.values().map(count).collect()
    }

    #[test]
    fn uniform_balances_within_one_partition() {
        let topics: BTreeMap<_, _> = [topic(1, 10), topic(2, 3)].into_iter().collect();
        let members: BTreeMap<_, _> = (0..4).map(|i| (format!("m{i}"), member(&[1, 2]))).collect();
        let r = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &r);
        let c = counts(&r);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let topics: BTreeMap<_, _> = [topic(1, 6)].into_iter().collect();
        let mut members: BTreeMap<_, _> = (0..2).map(|i| (format!("m{i}"), member(&[1]))).collect();
        let first = assign(&members, &topics);
        for (k, v) in &first {
            members.get_mut(k).unwrap().previous = v.clone();
        }
        members.insert("m2".into(), member(&[1]));
        let second = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &second);
        assert_eq!(counts(&second), vec![2, 2, 2]);
        // Nobody lost a partition it could keep: each old member keeps 2 of its 3.
        for k in ["m0", "m1"] {
            let kept = first[k]
                .values()
                .flatten()
                .filter(|p| second[k].values().flatten().any(|q| q == *p))
                .count();
            assert_eq!(kept, 2, "{k}");
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let topics: BTreeMap<_, _> = [topic(1, 4), topic(2, 4)].into_iter().collect();
        let members: BTreeMap<_, _> = [
            ("a", member(&[1])),
            ("b", member(&[1, 2])),
            ("c", member(&[2])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let r = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &r);
        let c = counts(&r);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn uniform_handles_200_members_and_more_members_than_partitions() {
        let topics: BTreeMap<_, _> = [topic(1, 50)].into_iter().collect();
        let members: BTreeMap<_, _> = (0..200)
            .map(|i| (format!("m{i:03}"), member(&[1])))
            .collect();
        let r = assign(&members, &topics);
        assert_exactly_one_owner(&members, &topics, &r);
        assert_eq!(counts(&r).iter().filter(|c| **c == 1).count(), 50);
    }
}
