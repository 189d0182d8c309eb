//! Reading a classic consumer's `Subscription` and `Assignment`. The topics out of a
//! `Subscription` (the JoinGroup protocol
//! metadata when `protocol_type` is `consumer`): `version i16, topics [string], user_data
//! bytes, ...` (Kafka `ConsumerProtocolSubscription`). Used to refuse OffsetDelete on a
//! topic the group still subscribes to (`GROUP_SUBSCRIBED_TO_TOPIC`); the partitions out of an
//! `Assignment` show who owns what (lag). Never panics.

/// Topics named in a consumer Subscription; `None` when the bytes are not a valid one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let version = i16::from_be_bytes(metadata.get(0..2)?.try_into().ok()?);
    let mut pos = 2usize;
    let flexible = version >= 4; // KIP-848 added no flexible version for classic; guard anyway
    if flexible {
        return None;
    }
    let n = i32::from_be_bytes(metadata.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    let mut topics = Vec::new();
    for _ in 0..n.max(0) {
        let len = i16::from_be_bytes(metadata.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let name = metadata.get(pos..pos + len)?;
        pos += len;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
    }
    Some(topics)
}

/// Partitions in a classic consumer `Assignment` (the SyncGroup assignment when
/// `protocol_type` is `consumer`): `version i16, assigned_partitions [topic string,
/// partitions [i32]], user_data bytes` (Kafka `ConsumerProtocolAssignment` v0-v3). `None` when
/// the bytes are not a valid one; an empty assignment is `Some(vec![])`.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let version = i16::from_be_bytes(assignment.get(0..2)?.try_into().ok()?);
    if !(0..=3).contains(&version) {
        return None;
    }
    let mut pos = 2usize;
    let n = i32::from_be_bytes(assignment.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let len = i16::from_be_bytes(assignment.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let name = String::from_utf8(assignment.get(pos..pos + len)?.to_vec()).ok()?;
        pos += len;
        let count = i32::from_be_bytes(assignment.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        let count = usize::try_from(count).ok()?;
        if count > assignment.len() / 4 {
            return None;
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            parts.push(i32::from_be_bytes(
                assignment.get(pos..pos + 4)?.try_into().ok()?,
            ));
            pos += 4;
        }
        out.push((name, parts));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    #[test]
    fn reads_partitions_from_an_assignment_and_refuses_garbage() {
        let mut v = 1i16.to_be_bytes().to_vec();
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&(1i16).to_be_bytes());
        v.extend_from_slice(b"t");
        v.extend_from_slice(&2i32.to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&3i32.to_be_bytes());
        v.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            assigned_partitions(&v),
            Some(vec![("t".to_string(), vec![0, 3])])
        );
        assert_eq!(assigned_partitions(&v[..9]), None);
        assert_eq!(assigned_partitions(&[0, 9, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(assigned_partitions(&[]), Some(vec![]));
    }

    use super::*;

    fn subscription(version: i16, topics: &[&str]) -> Vec<u8> {
        let mut v = version.to_be_bytes().to_vec();
        v.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            v.extend_from_slice(&(t.len() as i16).to_be_bytes());
            v.extend_from_slice(t.as_bytes());
        }
        v.extend_from_slice(&(-1i32).to_be_bytes()); // user_data: null
        v
    }

    #[test]
    fn reads_topics_from_subscription_versions_0_to_3() {
        for version in 0..=3 {
            assert_eq!(
                subscribed_topics(&subscription(version, &["a", "orders"])),
                Some(vec!["a".to_string(), "orders".to_string()])
            );
        }
    }

    #[test]
    fn malformed_subscriptions_give_none_without_panicking() {
        let good = subscription(1, &["orders"]);
        for cut in 0..good.len() - 4 {
            let _ = subscribed_topics(&good[..cut]);
        }
        assert_eq!(subscribed_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[]), None);
    }
}
