//! Reading the topics out of a classic consumer's `Subscription` (the JoinGroup protocol
//! metadata when `protocol_type` is `consumer`): `version i16, topics [string], user_data
//! bytes, ...` (Kafka `ConsumerProtocolSubscription`). Used to refuse OffsetDelete on a
//! topic the group still subscribes to (`GROUP_SUBSCRIBED_TO_TOPIC`). Never panics.

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
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
