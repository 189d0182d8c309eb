//! How an AMQP message is stored as a Kafka record, and back (docs/compatibility.md, "AMQP
//! messages as Kafka records").
//!
//! AMQP → record: value = body; key = the publish routing key (empty bytes for an empty
//! key); timestamp =
//! the publish time (ms); headers:
//! - `amqp.properties`: the content header's property list as AMQP encodes it (the exact
//!   round trip for AMQP consumers: typed header values, every property);
//! - `amqp.exchange`: the exchange published to;
//! - readable copies for Kafka consumers: each `headers` table entry whose value is a
//!   string, number or boolean, as text, under its own name; and the properties as
//!   `amqp.content-type`, `amqp.content-encoding`, `amqp.delivery-mode`, `amqp.priority`,
//!   `amqp.correlation-id`, `amqp.reply-to`, `amqp.expiration`, `amqp.message-id`,
//!   `amqp.timestamp`, `amqp.type`, `amqp.user-id`, `amqp.app-id`.
//!
//! Record → AMQP, for a record without `amqp.properties` (a Kafka producer's): body = value;
//! every header not starting with `amqp.` becomes a `headers` entry (long string); the
//! `amqp.*` text headers above set the matching property; routing key = the record key
//! (UTF-8) or, if none, the queue name; exchange = `amqp.exchange` or `""`.

use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};

/// Header holding the encoded AMQP properties.
pub const PROPERTIES_HEADER: &str = "amqp.properties";
/// Header naming the exchange a message was published to.
pub const EXCHANGE_HEADER: &str = "amqp.exchange";

/// A message as AMQP sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    pub properties: AMQPProperties,
    pub body: Bytes,
    /// Publish time (ms since the epoch).
    pub timestamp_ms: i64,
}

fn text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        v => crate::model::as_i64(v)?.to_string(),
    })
}

/// The property text headers, in the order of the AMQP property list.
fn property_texts(p: &AMQPProperties) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut s = |name: &'static str, v: &Option<ShortString>| {
        if let Some(v) = v {
            out.push((name, v.as_str().to_string()));
        }
    };
    s("amqp.content-type", p.content_type());
    s("amqp.content-encoding", p.content_encoding());
    s("amqp.correlation-id", p.correlation_id());
    s("amqp.reply-to", p.reply_to());
    s("amqp.expiration", p.expiration());
    s("amqp.message-id", p.message_id());
    s("amqp.type", p.kind());
    s("amqp.user-id", p.user_id());
    s("amqp.app-id", p.app_id());
    if let Some(m) = p.delivery_mode() {
        out.push(("amqp.delivery-mode", m.to_string()));
    }
    if let Some(m) = p.priority() {
        out.push(("amqp.priority", m.to_string()));
    }
    if let Some(t) = p.timestamp() {
        out.push(("amqp.timestamp", t.to_string()));
    }
    out
}

/// Encodes AMQP properties as the content header carries them.
pub fn encode_properties(p: &AMQPProperties) -> Vec<u8> {
    cookie_factory::gen_simple(gen_properties(p), Vec::new()).unwrap_or_default()
}

/// The record for `m` (offset and sequence set by the caller's batch).
pub fn to_record(m: &Message, offset: i64) -> Record {
    let mut headers = indexmap::IndexMap::<StrBytes, Option<Bytes>>::new();
    headers.insert(
        StrBytes::from_static_str(PROPERTIES_HEADER),
        Some(Bytes::from(encode_properties(&m.properties))),
    );
    headers.insert(
        StrBytes::from_static_str(EXCHANGE_HEADER),
        Some(Bytes::from(m.exchange.clone())),
    );
    if let Some(h) = m.properties.headers() {
        for (k, v) in h.inner() {
            if k.as_str().starts_with("amqp.") {
                continue;
            }
            if let Some(t) = text(v) {
                headers.insert(
                    StrBytes::from_string(k.as_str().to_string()),
                    Some(t.into()),
                );
            }
        }
    }
    for (k, v) in property_texts(&m.properties) {
        headers.insert(StrBytes::from_static_str(k), Some(Bytes::from(v)));
    }
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32 - 1,
        timestamp: m.timestamp_ms,
        key: Some(Bytes::from(m.routing_key.clone())),
        value: Some(m.body.clone()),
        headers,
    }
}

/// The AMQP message of a stored record, delivered from queue `queue`.
pub fn from_record(r: &Record, queue: &str) -> Message {
    let header = |name: &str| {
        r.headers
            .get(&StrBytes::from_string(name.to_string()))
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let encoded = r
        .headers
        .get(&StrBytes::from_static_str(PROPERTIES_HEADER))
        .and_then(|v| v.as_ref())
        .and_then(|b| parse_properties(&b[..]).ok().map(|(_, p)| p));
    let properties = encoded.unwrap_or_else(|| {
        let mut p = AMQPProperties::default();
        let mut table = FieldTable::default();
        for (k, v) in &r.headers {
            let name: &str = k;
            let value = v.as_ref().map(|b| b.to_vec()).unwrap_or_default();
            let as_text = || String::from_utf8_lossy(&value).into_owned();
            let short = || ShortString::try_new(as_text()).ok();
            match name {
                "amqp.content-type" => {
                    p = short().map_or(p.clone(), |s| p.clone().with_content_type(s))
                }
                "amqp.content-encoding" => {
                    p = short().map_or(p.clone(), |s| p.clone().with_content_encoding(s))
                }
                "amqp.correlation-id" => {
                    p = short().map_or(p.clone(), |s| p.clone().with_correlation_id(s))
                }
                "amqp.reply-to" => p = short().map_or(p.clone(), |s| p.clone().with_reply_to(s)),
                "amqp.expiration" => {
                    p = short().map_or(p.clone(), |s| p.clone().with_expiration(s))
                }
                "amqp.message-id" => {
                    p = short().map_or(p.clone(), |s| p.clone().with_message_id(s))
                }
                "amqp.type" => p = short().map_or(p.clone(), |s| p.clone().with_type(s)),
                "amqp.user-id" => p = short().map_or(p.clone(), |s| p.clone().with_user_id(s)),
                "amqp.app-id" => p = short().map_or(p.clone(), |s| p.clone().with_app_id(s)),
                "amqp.delivery-mode" => {
                    if let Ok(m) = as_text().parse::<u8>() {
                        p = p.with_delivery_mode(m);
                    }
                }
                "amqp.priority" => {
                    if let Ok(m) = as_text().parse::<u8>() {
                        p = p.with_priority(m);
                    }
                }
                "amqp.timestamp" => {
                    if let Ok(t) = as_text().parse::<u64>() {
                        p = p.with_timestamp(t);
                    }
                }
                n if n.starts_with("amqp.") => {}
                n => {
                    if let Ok(key) = ShortString::try_new(n.to_string()) {
                        table.insert(key, AMQPValue::LongString(value.into()));
                    }
                }
            }
        }
        if !table.inner().is_empty() {
            p = p.with_headers(table);
        }
        p
    });
    Message {
        exchange: header(EXCHANGE_HEADER).unwrap_or_default(),
        routing_key: r
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_else(|| queue.to_string()),
        properties,
        body: r.value.clone().unwrap_or_default(),
        timestamp_ms: r.timestamp,
    }
}

/// When `m` expires (ms since the epoch): the earlier of its `expiration` property and the
/// queue's `x-message-ttl` (`queue_ttl_ms`), counted from the publish time; `None` if never.
pub fn expires_at(m: &Message, queue_ttl_ms: Option<i64>) -> Option<i64> {
    let own = m
        .properties
        .expiration()
        .as_ref()
        .and_then(|e| e.as_str().parse::<i64>().ok());
    let ttl = match (own, queue_ttl_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }?;
    Some(m.timestamp_ms.saturating_add(ttl.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amqp_message_survives_the_record_round_trip_with_typed_headers() {
        let mut h = FieldTable::default();
        h.insert("x-retry".into(), AMQPValue::LongInt(3));
        h.insert("who".into(), AMQPValue::LongString("me".into()));
        let m = Message {
            exchange: "logs".into(),
            routing_key: "info".into(),
            properties: AMQPProperties::default()
                .with_delivery_mode(2)
                .with_correlation_id("c-1".into())
                .with_headers(h),
            body: Bytes::from_static(b"hello"),
            timestamp_ms: 1_700_000_000_000,
        };
        let r = to_record(&m, 0);
        assert_eq!(r.key.as_deref(), Some(&b"info"[..]));
        let text = |k: &str| {
            r.headers
                .get(&StrBytes::from_string(k.to_string()))
                .cloned()
                .flatten()
        };
        assert_eq!(text("x-retry").as_deref(), Some(&b"3"[..]));
        assert_eq!(text("amqp.correlation-id").as_deref(), Some(&b"c-1"[..]));
        assert_eq!(text("amqp.delivery-mode").as_deref(), Some(&b"2"[..]));
        assert_eq!(from_record(&r, "q"), m);
    }

    #[test]
    fn a_kafka_record_becomes_a_message_with_text_headers() {
        let mut headers = indexmap::IndexMap::<StrBytes, Option<Bytes>>::new();
        headers.insert(
            StrBytes::from_static_str("trace"),
            Some(Bytes::from_static(b"t1")),
        );
        headers.insert(
            StrBytes::from_static_str("amqp.content-type"),
            Some(Bytes::from_static(b"text/plain")),
        );
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 5,
            sequence: -1,
            timestamp: 42,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers,
        };
        let m = from_record(&r, "orders");
        assert_eq!(m.routing_key, "orders");
        assert_eq!(m.body, Bytes::from_static(b"v"));
        assert_eq!(
            m.properties.content_type().as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
        let h = m.properties.headers().clone().expect("headers");
        assert_eq!(
            h.inner().get("trace"),
            Some(&AMQPValue::LongString("t1".into()))
        );
    }

    #[test]
    fn expiry_takes_the_earlier_of_message_and_queue_ttl() {
        let m = Message {
            exchange: String::new(),
            routing_key: String::new(),
            properties: AMQPProperties::default().with_expiration("500".into()),
            body: Bytes::new(),
            timestamp_ms: 1000,
        };
        assert_eq!(expires_at(&m, None), Some(1500));
        assert_eq!(expires_at(&m, Some(100)), Some(1100));
        let plain = Message {
            properties: AMQPProperties::default(),
            ..m
        };
        assert_eq!(expires_at(&plain, None), None);
    }
}
