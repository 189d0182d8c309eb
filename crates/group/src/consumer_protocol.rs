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

/// The partitions a consumer Subscription says the member owns (`owned_partitions`, v1+:
/// `version, topics, user_data, owned_partitions [topic, partitions [i32]], ...`). `Some(vec![])`
/// for v0 (which has no such field); `None` when the bytes are not a valid Subscription.
pub fn owned_partitions(metadata: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = Cursor(metadata);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let n = r.i32()?;
    for _ in 0..n.max(0) {
        r.string()?;
    }
    r.nullable_bytes()?; // user_data
    if version < 1 {
        return Some(Vec::new());
    }
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let topic = r.string()?;
        let count = usize::try_from(r.i32()?).ok()?;
        if count > r.0.len() / 4 {
            return None;
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            parts.push(r.i32()?);
        }
        out.push((topic, parts));
    }
    Some(out)
}

/// A consumer `Assignment` (`ConsumerProtocolAssignment`) of `version` (clamped to 0-3), with
/// no user data: what SyncGroup returns to a classic member of a consumer-protocol group.
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> Vec<u8> {
    let mut v = version.clamp(0, 3).to_be_bytes().to_vec();
    v.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (topic, ps) in partitions {
        let name = topic
            .as_bytes()
            .get(..topic.len().min(i16::MAX as usize))
            .unwrap_or_default();
        v.extend_from_slice(&(name.len() as i16).to_be_bytes());
        v.extend_from_slice(name);
        v.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            v.extend_from_slice(&p.to_be_bytes());
        }
    }
    v.extend_from_slice(&(-1i32).to_be_bytes()); // user_data: null
    v
}

/// The version of a consumer Subscription (its first two bytes).
pub fn subscription_version(metadata: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(metadata.get(0..2)?.try_into().ok()?))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn nullable_bytes(&mut self) -> Option<()> {
        let n = self.i32()?;
        if n >= 0 {
            self.take(usize::try_from(n).ok()?)?;
        }
        Some(())
    }
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
    fn reads_owned_partitions_and_round_trips_assignments() {
        let mut v = subscription(1, &["orders"]);
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&6i16.to_be_bytes());
        v.extend_from_slice(b"orders");
        v.extend_from_slice(&2i32.to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&4i32.to_be_bytes());
        assert_eq!(
            owned_partitions(&v),
            Some(vec![("orders".to_string(), vec![1, 4])])
        );
        assert_eq!(
            owned_partitions(&subscription(0, &["orders"])),
            Some(vec![])
        );
        assert_eq!(owned_partitions(&v[..v.len() - 2]), None);
        let parts = vec![
            ("orders".to_string(), vec![0, 2]),
            ("t".to_string(), vec![]),
        ];
        assert_eq!(
            assigned_partitions(&encode_assignment(1, &parts)),
            Some(parts)
        );
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
