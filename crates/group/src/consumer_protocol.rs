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
