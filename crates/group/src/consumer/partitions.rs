//! Set operations on [`TopicPartitions`] (topic id -> partitions) that reconciliation needs.
//! A map may hold empty partition sets; [`normalize`] drops them, as the records do.

use uuid::Uuid;

use crate::assignor::TopicPartitions;

/// `a` (which may hold empty partition sets) holds the same partitions as `b` (normalized).
pub(crate) fn same_partitions(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter().filter(|(_, ps)| !ps.is_empty()).eq(b.iter())
}

pub(crate) fn intersects(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

pub(crate) fn is_subset(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|qs| ps.is_subset(qs)))
}

pub(crate) fn normalize(a: &TopicPartitions) -> TopicPartitions {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

pub(crate) fn pairs(a: &TopicPartitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

/// Builds a [`TopicPartitions`] from `(topic_id, partition)` pairs.
pub fn from_pairs(it: impl IntoIterator<Item = (Uuid, i32)>) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, p) in it {
        out.entry(t).or_default().insert(p);
    }
    out
}
