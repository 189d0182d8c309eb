//! Exchanges, queues and bindings (AMQP 0-9-1 §3.1) and how a message is routed: the
//! registry every connection shares. Durable exchanges, queues and the bindings between
//! durable ends are records in `__shoal_metadata` (keys under `ext/amqp/`), replayed at
//! start; transient ones live in memory and their queues' topics are deleted at start, as
//! RabbitMQ drops non-durable queues on restart.
//!
//! A queue named `Q` is stored as the topic [`topic_for`]`(Q)` (the queue name itself when
//! it is a legal Kafka topic name) and consumed as the share group `Q`.
//!
//! Routing follows RabbitMQ: the default exchange `""` routes to the queue named by the
//! routing key; `direct` by equal key, `fanout` to all, `topic` by `*`/`#` word patterns,
//! `headers` by `x-match` (`all`, `any`, `all-with-x`, `any-with-x`); exchange-to-exchange
//! bindings are followed once each (cycles end).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use amq_protocol::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};

use crate::error::{AmqpError, AmqpResult};

/// Exchange types Shoal routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// Parses an `exchange.declare` type. Errors: 503 COMMAND_INVALID for another type, as
    /// RabbitMQ (`unknown exchange type 'x'`).
    pub fn parse(s: &str) -> AmqpResult<Self> {
        match s {
            "direct" => Ok(Self::Direct),
            "fanout" => Ok(Self::Fanout),
            "topic" => Ok(Self::Topic),
            "headers" => Ok(Self::Headers),
            other => Err(AmqpError::command_invalid(format!(
                "unknown exchange type '{other}'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

/// An exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub name: String,
    /// The Kafka topic holding its messages.
    pub topic: String,
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    #[serde(skip)]
    pub exclusive_owner: Option<u64>,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Whether it ever had a consumer (auto-delete applies only after one, as RabbitMQ).
    #[serde(skip)]
    pub had_consumer: bool,
    /// Consumers now attached.
    #[serde(skip)]
    pub consumers: u32,
    /// When it was last used (`x-expires`), ms since the epoch.
    #[serde(skip)]
    pub last_used_ms: i64,
}

impl Queue {
    /// An integer queue argument (`x-message-ttl`, `x-expires`, `x-max-length`, ...).
    pub fn int_arg(&self, key: &str) -> Option<i64> {
        self.arguments.inner().get(key).and_then(as_i64)
    }

    /// A string queue argument (`x-dead-letter-exchange`, `x-overflow`, ...).
    pub fn str_arg(&self, key: &str) -> Option<String> {
        self.arguments.inner().get(key).and_then(as_string)
    }
}

/// A binding from exchange `source` to a queue or an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub source: String,
    pub destination: String,
    /// True: `destination` is an exchange (`exchange.bind`).
    pub to_exchange: bool,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl Binding {
    fn key(&self) -> String {
        format!(
            "ext/amqp/binding/{}\u{0}{}{}\u{0}{}\u{0}{}",
            self.source,
            if self.to_exchange { "e" } else { "q" },
            self.destination,
            self.routing_key,
            serde_json::to_string(&self.arguments).unwrap_or_default()
        )
    }
}

/// An integer AMQP value of any width.
pub fn as_i64(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => i64::from(*x),
        AMQPValue::ShortShortUInt(x) => i64::from(*x),
        AMQPValue::ShortInt(x) => i64::from(*x),
        AMQPValue::ShortUInt(x) => i64::from(*x),
        AMQPValue::LongInt(x) => i64::from(*x),
        AMQPValue::LongUInt(x) => i64::from(*x),
        AMQPValue::LongLongInt(x) => *x,
        AMQPValue::Timestamp(x) => i64::try_from(*x).ok()?,
        _ => return None,
    })
}

/// A string AMQP value (long or short string).
pub fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The topic that stores queue `name`: the name itself when it is a legal Kafka topic name
/// (letters, digits, `.`, `_`, `-`; at most 249 bytes; not starting with `__`), otherwise
/// `amqp-` and the name with other characters as `_`, then `-` and a hash of the name.
pub fn topic_for(name: &str) -> String {
    if shoal_broker::topics::validate_topic_name(name).is_ok() && !name.starts_with("__") {
        return name.to_string();
    }
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    // FNV-1a: stable across builds (unlike the std hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("amqp-{clean}-{h:016x}")
}

/// Whether a topic-exchange binding `pattern` matches `key` (words split on `.`; `*` is one
/// word, `#` zero or more).
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&w, rest)) => match k.split_first() {
                Some((kw, krest)) => (w == "*" || w == *kw) && go(rest, krest),
                None => false,
            },
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    // An empty pattern matches only the empty key.
    if pattern.is_empty() {
        return key.is_empty();
    }
    go(&p, &k)
}

/// Whether a headers-exchange binding's `args` match a message's `headers`.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = args
        .inner()
        .get("x-match")
        .and_then(as_string)
        .unwrap_or_else(|| "all".to_string());
    let with_x = mode.ends_with("-with-x");
    let any = mode.starts_with("any");
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty).inner();
    let mut wanted = args
        .inner()
        .iter()
        .filter(|(k, _)| with_x || !k.as_str().starts_with("x-"))
        .filter(|(k, _)| k.as_str() != "x-match")
        .peekable();
    if wanted.peek().is_none() {
        return !any;
    }
    let mut hit = |(k, v): (&amq_protocol::types::ShortString, &AMQPValue)| match headers.get(k) {
        Some(h) => matches!(v, AMQPValue::Void) || values_equal(h, v),
        None => false,
    };
    if any {
        wanted.any(&mut hit)
    } else {
        wanted.all(&mut hit)
    }
}

fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (as_i64(a), as_i64(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (as_string(a), as_string(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The built-in exchanges every vhost has (RabbitMQ's defaults).
fn builtin() -> Vec<Exchange> {
    let mk = |name: &str, kind| Exchange {
        name: name.to_string(),
        kind,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::default(),
    };
    vec![
        mk("", ExchangeKind::Direct),
        mk("amq.direct", ExchangeKind::Direct),
        mk("amq.fanout", ExchangeKind::Fanout),
        mk("amq.topic", ExchangeKind::Topic),
        mk("amq.headers", ExchangeKind::Headers),
        mk("amq.match", ExchangeKind::Headers),
    ]
}

/// What the registry persisted changes to.
pub trait Store: Send + Sync {
    /// Writes (`Some`) or deletes (`None`) the record `key` durably. Errors: the reason.
    fn put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), String>;
}

/// The exchanges, queues and bindings (one vhost, `/`).
#[derive(Debug, Default)]
pub struct Registry {
    pub exchanges: HashMap<String, Exchange>,
    pub queues: HashMap<String, Queue>,
    /// Bindings by source exchange.
    pub bindings: HashMap<String, Vec<Binding>>,
}

impl Registry {
    /// A registry with the built-in exchanges and the replayed `records` (`(key, value)`
    /// under `ext/amqp/`). Returns it and the transient queues found (their topics are to
    /// be deleted: they do not survive a restart).
    pub fn replay(records: Vec<(String, Vec<u8>)>) -> (Self, Vec<Queue>) {
        let mut r = Registry::default();
        for e in builtin() {
            r.exchanges.insert(e.name.clone(), e);
        }
        let mut transient = Vec::new();
        for (key, value) in records {
            if key.starts_with("ext/amqp/exchange/") {
                if let Ok(e) = serde_json::from_slice::<Exchange>(&value) {
                    r.exchanges.insert(e.name.clone(), e);
                }
            } else if key.starts_with("ext/amqp/queue/") {
                if let Ok(q) = serde_json::from_slice::<Queue>(&value) {
                    if q.durable {
                        r.queues.insert(q.name.clone(), q);
                    } else {
                        transient.push(q);
                    }
                }
            } else if key.starts_with("ext/amqp/binding/") {
                if let Ok(b) = serde_json::from_slice::<Binding>(&value) {
                    r.bindings.entry(b.source.clone()).or_default().push(b);
                }
            }
        }
        // Bindings whose ends are gone (a transient queue) go too.
        let queues: BTreeSet<String> = r.queues.keys().cloned().collect();
        let exchanges: BTreeSet<String> = r.exchanges.keys().cloned().collect();
        for list in r.bindings.values_mut() {
            list.retain(|b| {
                if b.to_exchange {
                    exchanges.contains(&b.destination)
                } else {
                    queues.contains(&b.destination)
                }
            });
        }
        (r, transient)
    }

    /// The persisted record of queue `q` (every queue has one, so a restart can drop the
    /// transient ones' topics).
    pub fn save_queue(store: &dyn Store, q: &Queue) -> AmqpResult<()> {
        let v = serde_json::to_vec(q).map_err(|e| AmqpError::internal(e.to_string()))?;
        store
            .put(&format!("ext/amqp/queue/{}", q.name), Some(v))
            .map_err(AmqpError::internal)
    }

    pub fn forget_queue(store: &dyn Store, name: &str) -> AmqpResult<()> {
        store
            .put(&format!("ext/amqp/queue/{name}"), None)
            .map_err(AmqpError::internal)
    }

    pub fn save_exchange(store: &dyn Store, e: &Exchange) -> AmqpResult<()> {
        if !e.durable {
            return Ok(());
        }
        let v = serde_json::to_vec(e).map_err(|e| AmqpError::internal(e.to_string()))?;
        store
            .put(&format!("ext/amqp/exchange/{}", e.name), Some(v))
            .map_err(AmqpError::internal)
    }

    pub fn forget_exchange(store: &dyn Store, e: &Exchange) -> AmqpResult<()> {
        if !e.durable {
            return Ok(());
        }
        store
            .put(&format!("ext/amqp/exchange/{}", e.name), None)
            .map_err(AmqpError::internal)
    }

    fn durable_binding(&self, b: &Binding) -> bool {
        let src = self.exchanges.get(&b.source).is_some_and(|e| e.durable);
        let dst = if b.to_exchange {
            self.exchanges
                .get(&b.destination)
                .is_some_and(|e| e.durable)
        } else {
            self.queues.get(&b.destination).is_some_and(|q| q.durable)
        };
        src && dst
    }

    /// Adds a binding (idempotent). Errors: storage.
    pub fn bind(&mut self, store: &dyn Store, b: Binding) -> AmqpResult<()> {
        let list = self.bindings.entry(b.source.clone()).or_default();
        if list.contains(&b) {
            return Ok(());
        }
        list.push(b.clone());
        if self.durable_binding(&b) {
            let v = serde_json::to_vec(&b).map_err(|e| AmqpError::internal(e.to_string()))?;
            store.put(&b.key(), Some(v)).map_err(AmqpError::internal)?;
        }
        Ok(())
    }

    /// Removes a binding (absent: nothing happens, as RabbitMQ). Errors: storage.
    pub fn unbind(&mut self, store: &dyn Store, b: &Binding) -> AmqpResult<()> {
        let durable = self.durable_binding(b);
        if let Some(list) = self.bindings.get_mut(&b.source) {
            let before = list.len();
            list.retain(|x| x != b);
            if list.len() != before && durable {
                store.put(&b.key(), None).map_err(AmqpError::internal)?;
            }
        }
        Ok(())
    }

    /// Removes every binding to or from queue/exchange `name`. Errors: storage.
    pub fn unbind_all(&mut self, store: &dyn Store, name: &str, exchange: bool) -> AmqpResult<()> {
        let mut gone = Vec::new();
        for list in self.bindings.values_mut() {
            list.retain(|b| {
                let hit = (b.destination == name && b.to_exchange == exchange)
                    || (exchange && b.source == name);
                if hit {
                    gone.push(b.clone());
                }
                !hit
            });
        }
        if exchange {
            self.bindings.remove(name);
        }
        for b in gone {
            // Persisted only if it was durable; deleting an absent key is harmless.
            store.put(&b.key(), None).map_err(AmqpError::internal)?;
        }
        Ok(())
    }

    /// Whether exchange `name` is the source of any binding, or the destination of one.
    pub fn exchange_in_use(&self, name: &str) -> bool {
        self.bindings.get(name).is_some_and(|l| !l.is_empty())
            || self
                .bindings
                .values()
                .flatten()
                .any(|b| b.to_exchange && b.destination == name)
    }

    /// Bindings to queue `name`, for the operator surface.
    pub fn bindings_of_queue(&self, name: &str) -> Vec<Binding> {
        self.bindings
            .values()
            .flatten()
            .filter(|b| !b.to_exchange && b.destination == name)
            .cloned()
            .collect()
    }

    /// The queues a message published to `exchange` with `routing_key` and `headers` reaches
    /// (each once). Errors: 404 NOT_FOUND for an unknown exchange, 403 ACCESS_REFUSED for
    /// publishing to an internal one.
    pub fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
    ) -> AmqpResult<Vec<String>> {
        let Some(x) = self.exchanges.get(exchange) else {
            return Err(AmqpError::not_found(format!(
                "no exchange '{exchange}' in vhost '/'"
            )));
        };
        if x.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '/'"
            )));
        }
        let mut out = BTreeMap::new();
        if exchange.is_empty() {
            if self.queues.contains_key(routing_key) {
                out.insert(routing_key.to_string(), ());
            }
            return Ok(out.into_keys().collect());
        }
        let mut seen = BTreeSet::new();
        self.route_from(exchange, routing_key, headers, &mut seen, &mut out);
        Ok(out.into_keys().collect())
    }

    fn route_from(
        &self,
        exchange: &str,
        key: &str,
        headers: Option<&FieldTable>,
        seen: &mut BTreeSet<String>,
        out: &mut BTreeMap<String, ()>,
    ) {
        if !seen.insert(exchange.to_string()) {
            return;
        }
        let Some(x) = self.exchanges.get(exchange) else {
            return;
        };
        let Some(list) = self.bindings.get(exchange) else {
            return;
        };
        for b in list {
            let hit = match x.kind {
                ExchangeKind::Direct => b.routing_key == key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => topic_matches(&b.routing_key, key),
                ExchangeKind::Headers => headers_match(&b.arguments, headers),
            };
            if !hit {
                continue;
            }
            if b.to_exchange {
                self.route_from(&b.destination, key, headers, seen, out);
            } else if self.queues.contains_key(&b.destination) {
                out.insert(b.destination.clone(), ());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_words_as_rabbitmq() {
        assert!(topic_matches("*.orange.*", "quick.orange.rabbit"));
        assert!(!topic_matches("*.orange.*", "quick.orange.male.rabbit"));
        assert!(topic_matches("lazy.#", "lazy"));
        assert!(topic_matches("lazy.#", "lazy.orange.male.rabbit"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#", "a.b"));
        assert!(topic_matches("*.*.rabbit", "quick.orange.rabbit"));
        assert!(!topic_matches("*.*.rabbit", "orange"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.*", "a"));
    }

    #[test]
    fn headers_bindings_match_all_or_any() {
        let mut args = FieldTable::default();
        args.insert("x-match".into(), AMQPValue::LongString("any".into()));
        args.insert("format".into(), AMQPValue::LongString("pdf".into()));
        args.insert("type".into(), AMQPValue::LongString("report".into()));
        let mut h = FieldTable::default();
        h.insert("format".into(), AMQPValue::LongString("pdf".into()));
        assert!(headers_match(&args, Some(&h)));
        args.insert("x-match".into(), AMQPValue::LongString("all".into()));
        assert!(!headers_match(&args, Some(&h)));
        h.insert("type".into(), AMQPValue::LongString("report".into()));
        assert!(headers_match(&args, Some(&h)));
    }

    #[test]
    fn illegal_topic_characters_are_mapped_to_a_stable_name() {
        assert_eq!(topic_for("task_queue"), "task_queue");
        let t = topic_for("orders:created/v1");
        assert!(t.starts_with("amqp-orders_created_v1-"));
        assert_eq!(t, topic_for("orders:created/v1"));
        assert!(shoal_broker::topics::validate_topic_name(&t).is_ok());
        assert_ne!(topic_for("__x"), "__x");
    }
}
