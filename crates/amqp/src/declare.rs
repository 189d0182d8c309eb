//! `queue.declare`'s rules, shared by AMQP channels and the admin API: reserved names,
//! argument validation, equivalence with an existing queue (RabbitMQ's "inequivalent arg"
//! errors), and the creation of a queue's topic, share-group configs and record.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::error::{AmqpError, AmqpResult};
use crate::model::{self, Queue, Registry};
use crate::queues;
use crate::Amqp;

/// What a declaration asks for.
#[derive(Debug, Clone)]
pub struct Declare {
    pub name: String,
    pub durable: bool,
    /// The connection that owns it, for an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// The broker chose the name (`amq.gen-*`): the reserved prefix is allowed.
    pub server_named: bool,
}

/// The queue arguments whose values must match on a redeclare (as `queue.declare`).
const EQUIVALENCE_KEYS: [&str; 8] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-queue-type",
    "x-overflow",
    "x-delivery-limit",
];

/// Checks declare arguments as `queue.declare` does. Errors: 406 PRECONDITION_FAILED with
/// RabbitMQ's text.
pub(crate) fn validate_arguments(
    name: &str,
    durable: bool,
    exclusive: bool,
    args: &FieldTable,
) -> AmqpResult<()> {
    let invalid = |key: &str, why: String| {
        AmqpError::precondition_failed(format!(
            "invalid arg '{key}' for queue '{name}' in vhost '/': {why}"
        ))
    };
    let args = args.inner();
    for key in [
        "x-message-ttl",
        "x-expires",
        "x-max-length",
        "x-delivery-limit",
    ] {
        if let Some(v) = args.get(key) {
            match model::as_i64(v) {
                Some(n) if n < 0 => return Err(invalid(key, format!("{{value_negative,{n}}}"))),
                Some(0) if key == "x-expires" => {
                    return Err(invalid(key, "{value_zero,0}".to_string()))
                }
                Some(_) => {}
                None => return Err(invalid(key, format!("{{unacceptable_type,{v:?}}}"))),
            }
        }
    }
    if let Some(v) = args.get("x-overflow") {
        let s = model::as_string(v).unwrap_or_default();
        if !matches!(
            s.as_str(),
            "drop-head" | "reject-publish" | "reject-publish-dlx"
        ) {
            return Err(invalid(
                "x-overflow",
                format!("{{unknown_overflow,<<\"{s}\">>}}"),
            ));
        }
    }
    if let Some(v) = args.get("x-queue-type") {
        match model::as_string(v).unwrap_or_default().as_str() {
            "classic" => {}
            "quorum" if !durable => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid property 'non-durable' for queue '{name}' in vhost '/'"
                )))
            }
            "quorum" if exclusive => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid property 'exclusive-owner' for queue '{name}' in vhost '/'"
                )))
            }
            "quorum" => {}
            other => {
                return Err(invalid(
                    "x-queue-type",
                    format!("{{unsupported_type,<<\"{other}\">>}}"),
                ))
            }
        }
    }
    Ok(())
}

/// Whether two argument values are the same (integers of any width compare as numbers,
/// short and long strings as text).
fn same_value(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => match (model::as_i64(x), model::as_i64(y)) {
            (Some(i), Some(j)) => i == j,
            _ => match (model::as_string(x), model::as_string(y)) {
                (Some(s), Some(t)) => s == t,
                _ => x == y,
            },
        },
        _ => false,
    }
}

impl Amqp {
    /// Declares a queue (`queue.declare` without `passive`): returns it and whether it was
    /// created. An existing queue must be equivalent: same `durable`, `auto_delete`,
    /// `exclusive` and the arguments in [`EQUIVALENCE_KEYS`].
    ///
    /// Errors: 403 ACCESS_REFUSED for an `amq.` name; 405 RESOURCE_LOCKED for another
    /// connection's exclusive queue; 406 PRECONDITION_FAILED for a name over 255 bytes,
    /// invalid arguments or an inequivalent redeclaration; 541 INTERNAL_ERROR when storage
    /// refuses.
    pub async fn declare_queue(self: &Arc<Self>, d: Declare) -> AmqpResult<(Queue, bool)> {
        let name = d.name.as_str();
        if name.is_empty() || name.len() > 255 {
            return Err(AmqpError::precondition_failed(
                "a queue name is 1 to 255 bytes",
            ));
        }
        if name.starts_with("amq.") && !d.server_named {
            return Err(AmqpError::access_refused(format!(
                "queue name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        let exclusive = d.exclusive_owner.is_some();
        validate_arguments(name, d.durable, exclusive, &d.arguments)?;
        if let Some(existing) = self.queue(name) {
            if existing.exclusive_owner.is_some() && existing.exclusive_owner != d.exclusive_owner {
                return Err(AmqpError::resource_locked(format!(
                    "cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
                )));
            }
            let ineq = |what: &str, got: String, cur: String| {
                AmqpError::precondition_failed(format!(
                    "inequivalent arg '{what}' for queue '{name}' in vhost '/': received '{got}' but current is '{cur}'"
                ))
            };
            if existing.durable != d.durable {
                return Err(ineq(
                    "durable",
                    d.durable.to_string(),
                    existing.durable.to_string(),
                ));
            }
            if existing.auto_delete != d.auto_delete {
                return Err(ineq(
                    "auto_delete",
                    d.auto_delete.to_string(),
                    existing.auto_delete.to_string(),
                ));
            }
            if existing.exclusive != exclusive {
                return Err(ineq(
                    "exclusive",
                    exclusive.to_string(),
                    existing.exclusive.to_string(),
                ));
            }
            for key in EQUIVALENCE_KEYS {
                let got = d.arguments.inner().get(key);
                let cur = existing.arguments.inner().get(key);
                let classic = |v: Option<&AMQPValue>| {
                    v.and_then(model::as_string).as_deref() == Some("classic")
                };
                let type_default = key == "x-queue-type"
                    && ((got.is_none() && classic(cur)) || (cur.is_none() && classic(got)));
                if !same_value(got, cur) && !type_default {
                    let show = |v: Option<&AMQPValue>| {
                        v.map_or("none".into(), |v| {
                            crate::admin::value_to_json(v).to_string()
                        })
                    };
                    return Err(ineq(key, show(got), show(cur)));
                }
            }
            if let Some(q) = self.registry().queues.get_mut(name) {
                q.last_used_ms = shoal_broker::clock::now_ms();
            }
            return Ok((existing, false));
        }
        let q = Queue {
            topic: model::topic_for(name),
            name: name.to_string(),
            durable: d.durable,
            exclusive_owner: d.exclusive_owner,
            exclusive,
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
            had_consumer: false,
            consumers: 0,
            last_used_ms: shoal_broker::clock::now_ms(),
        };
        queues::ensure_storage(&self.broker, &q).await?;
        Registry::save_queue(&self.store(), &q)?;
        let mut reg = self.registry();
        if let Some(other) = reg.queues.get(name) {
            // Declared meanwhile elsewhere: that one stands.
            return Ok((other.clone(), false));
        }
        reg.queues.insert(name.to_string(), q.clone());
        drop(reg);
        tracing::debug!(queue = name, topic = %q.topic, durable = q.durable, "declared queue");
        Ok((q, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeclare_compares_integer_widths_and_string_kinds_as_equal() {
        assert!(same_value(
            Some(&AMQPValue::LongInt(5)),
            Some(&AMQPValue::LongLongInt(5))
        ));
        assert!(same_value(
            Some(&AMQPValue::ShortString("a".into())),
            Some(&AMQPValue::LongString("a".into()))
        ));
        assert!(!same_value(Some(&AMQPValue::LongInt(5)), None));
    }

    #[test]
    fn invalid_arguments_are_refused_with_rabbitmqs_text() {
        let mut t = FieldTable::default();
        t.insert("x-expires".into(), AMQPValue::LongInt(0));
        let e = validate_arguments("q", true, false, &t).err();
        assert!(e.is_some_and(|e| e.code == 406 && e.text.contains("value_zero")));
        let mut t = FieldTable::default();
        t.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        assert!(validate_arguments("q", false, false, &t).is_err());
        assert!(validate_arguments("q", true, false, &t).is_ok());
    }
}
