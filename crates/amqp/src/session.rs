//! The share sessions of one AMQP channel (or of a queue's expiry task): one task per owner
//! that talks to the share-group coordinator in order, so each share member's session epochs
//! advance one at a time (KIP-932's ShareFetch/ShareAcknowledge epochs, which the AMQP side
//! never sees).
//!
//! Ops: [`SessionOp::Open`] (epoch 0: the member's session on every partition of the queue),
//! [`SessionOp::Settle`] (acknowledgements: accept, release, reject, or dead-letter, which
//! publishes to the queue's `x-dead-letter-exchange`, waits until that copy is durable, then
//! accepts the original), [`SessionOp::Close`] (epoch -1: the session ends and every record
//! the member still holds is released at once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use shoal_group::api::{FetchStart, PartitionAcks, ShareFetchOpen, SharePartitionKey};
use shoal_group::share::{AckBatch, AckType};
use tokio::sync::{mpsc, oneshot};

use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::model::Queue;
use crate::Amqp;

/// How a delivered message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `basic.ack`: done (counted as an acknowledgement, [`crate::stats`]).
    Accept,
    /// Done without a client's acknowledgement (a delivery to a `no_ack` consumer, a
    /// purged message): as [`Outcome::Accept`] for the share-partition, not counted.
    AutoAccept,
    /// `basic.nack`/`basic.reject` with `requeue=true`, `basic.recover`: delivered again.
    Release,
    /// `requeue=false` without a dead-letter exchange, or expired: dropped.
    Reject,
    /// A message that has no record (compacted offset, control record): skipped.
    Gap,
    /// Dead-lettered with RabbitMQ's reason (`rejected`, `expired`, `maxlen`).
    DeadLetter(&'static str),
}

/// One settled delivery.
#[derive(Debug, Clone)]
pub struct Settle {
    pub key: SharePartitionKey,
    pub offset: i64,
    pub outcome: Outcome,
}

/// Work for a session task.
pub enum SessionOp {
    Open {
        member: String,
        queue: Queue,
        reply: oneshot::Sender<AmqpResult<Vec<(SharePartitionKey, FetchStart)>>>,
    },
    Settle {
        member: String,
        queue: Queue,
        items: Vec<Settle>,
        done: Option<oneshot::Sender<()>>,
    },
    /// [`SessionOp::Settle`] that wakes `wake` (a dispatcher) once applied, so what it
    /// released is there to deliver again.
    SettleAndWake {
        member: String,
        queue: Queue,
        items: Vec<Settle>,
        wake: Arc<tokio::sync::Notify>,
    },
    Close {
        member: String,
        queue: String,
        done: Option<oneshot::Sender<()>>,
    },
    /// Answered once every op sent before it is done.
    Barrier { done: oneshot::Sender<()> },
}

/// Sends to a session task.
pub type Sessions = mpsc::UnboundedSender<SessionOp>;

/// Starts a session task for connection `connection_id`; it ends when every sender is gone.
pub fn spawn(amqp: Arc<Amqp>, connection_id: u64) -> Sessions {
    let (tx, mut rx) = mpsc::unbounded_channel::<SessionOp>();
    tokio::spawn(async move {
        let mut epochs: HashMap<String, i32> = HashMap::new();
        let mut held: Option<SessionOp> = None;
        loop {
            let op = match held.take() {
                Some(op) => op,
                None => match rx.recv().await {
                    Some(op) => op,
                    None => break,
                },
            };
            // Settlements queued behind this one for the same member and queue join it: one
            // acknowledgement round (and one fsync) for all that arrived meanwhile.
            let op = match split_settle(op) {
                Ok((member, queue, mut items, mut dones, mut wakes)) => {
                    while items.len() < 100_000 {
                        match rx.try_recv().map(split_settle) {
                            Ok(Ok((m, q, i, d, w))) => {
                                if m == member && q.name == queue.name {
                                    items.extend(i);
                                    dones.extend(d);
                                    wakes.extend(w);
                                } else {
                                    held = Some(join_settle(m, q, i, d, w));
                                    break;
                                }
                            }
                            Ok(Err(other)) => {
                                held = Some(*other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    settle(&amqp, &mut epochs, connection_id, &member, &queue, items).await;
                    for d in dones {
                        let _ = d.send(());
                    }
                    let mut woken: Vec<Arc<tokio::sync::Notify>> = Vec::new();
                    for w in wakes {
                        if !woken.iter().any(|x| Arc::ptr_eq(x, &w)) {
                            w.notify_one();
                            woken.push(w);
                        }
                    }
                    continue;
                }
                Err(op) => *op,
            };
            match op {
                SessionOp::Open {
                    member,
                    queue,
                    reply,
                } => {
                    let added = crate::queues::partitions(&amqp.broker, &queue);
                    let req = ShareFetchOpen {
                        group_id: queue.name.clone(),
                        member_id: member.clone(),
                        share_session_epoch: 0,
                        added,
                        connection_id,
                        ..ShareFetchOpen::default()
                    };
                    let r = match amqp.broker.groups.share_open(req).await {
                        Ok(Ok(plan)) => {
                            epochs.insert(member, 1);
                            Ok(plan.partitions)
                        }
                        Ok(Err(e)) | Err(e) => Err(AmqpError::internal(format!(
                            "cannot open share session on queue '{}': {e}",
                            queue.name
                        ))),
                    };
                    let _ = reply.send(r);
                }
                SessionOp::Settle {
                    member,
                    queue,
                    items,
                    done,
                } => {
                    settle(&amqp, &mut epochs, connection_id, &member, &queue, items).await;
                    if let Some(d) = done {
                        let _ = d.send(());
                    }
                }
                SessionOp::SettleAndWake {
                    member,
                    queue,
                    items,
                    wake,
                } => {
                    settle(&amqp, &mut epochs, connection_id, &member, &queue, items).await;
                    wake.notify_one();
                }
                SessionOp::Barrier { done } => {
                    let _ = done.send(());
                }
                SessionOp::Close {
                    member,
                    queue,
                    done,
                } => {
                    if epochs.remove(&member).is_some() {
                        let req = ShareFetchOpen {
                            group_id: queue,
                            member_id: member,
                            share_session_epoch: -1,
                            connection_id,
                            acknowledge_only: true,
                            ..ShareFetchOpen::default()
                        };
                        let _ = amqp.broker.groups.share_open(req).await;
                    }
                    if let Some(d) = done {
                        let _ = d.send(());
                    }
                }
            }
        }
    });
    tx
}

/// A settlement op's parts: member, queue, items, completion senders, dispatchers to wake.
type SettleParts = (
    String,
    Queue,
    Vec<Settle>,
    Vec<oneshot::Sender<()>>,
    Vec<Arc<tokio::sync::Notify>>,
);

fn split_settle(op: SessionOp) -> Result<SettleParts, Box<SessionOp>> {
    Ok(match op {
        SessionOp::Settle {
            member,
            queue,
            items,
            done,
        } => (member, queue, items, done.into_iter().collect(), Vec::new()),
        SessionOp::SettleAndWake {
            member,
            queue,
            items,
            wake,
        } => (member, queue, items, Vec::new(), vec![wake]),
        other => return Err(Box::new(other)),
    })
}

/// Back into one op (the parts of a settlement that could not join the one before it).
fn join_settle(
    member: String,
    queue: Queue,
    items: Vec<Settle>,
    mut dones: Vec<oneshot::Sender<()>>,
    mut wakes: Vec<Arc<tokio::sync::Notify>>,
) -> SessionOp {
    match (dones.pop(), wakes.pop()) {
        (Some(done), _) => SessionOp::Settle {
            member,
            queue,
            items,
            done: Some(done),
        },
        (None, Some(wake)) => SessionOp::SettleAndWake {
            member,
            queue,
            items,
            wake,
        },
        (None, None) => SessionOp::Settle {
            member,
            queue,
            items,
            done: None,
        },
    }
}

/// Sends a settlement to `sessions` and waits until it is applied.
pub async fn settle_and_wait(
    sessions: &Sessions,
    member: String,
    queue: Queue,
    items: Vec<Settle>,
) {
    let (tx, rx) = oneshot::channel();
    let _ = sessions.send(SessionOp::Settle {
        member,
        queue,
        items,
        done: Some(tx),
    });
    let _ = rx.await;
}

fn ack_type(o: Outcome) -> AckType {
    match o {
        Outcome::Accept | Outcome::AutoAccept | Outcome::DeadLetter(_) => AckType::Accept,
        Outcome::Release => AckType::Release,
        Outcome::Reject => AckType::Reject,
        Outcome::Gap => AckType::Gap,
    }
}

/// Acknowledgement batches of one partition: offsets ascending, one batch per run of
/// consecutive offsets with one type.
fn batches(mut items: Vec<(i64, AckType)>) -> Vec<AckBatch> {
    items.sort_by_key(|(o, _)| *o);
    items.dedup_by_key(|(o, _)| *o);
    let mut out: Vec<AckBatch> = Vec::new();
    for (o, t) in items {
        match out.last_mut() {
            Some(b) if b.last_offset + 1 == o && b.types == [t] => b.last_offset = o,
            _ => out.push(AckBatch {
                first_offset: o,
                last_offset: o,
                types: vec![t],
            }),
        }
    }
    out
}

async fn settle(
    amqp: &Arc<Amqp>,
    epochs: &mut HashMap<String, i32>,
    connection_id: u64,
    member: &str,
    queue: &Queue,
    items: Vec<Settle>,
) {
    let Some(epoch) = epochs.get(member).copied() else {
        return;
    };
    let mut items = items;
    // Dead letters first: their copies must be durable before the originals are accepted.
    let dead: Vec<(usize, &'static str)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s.outcome {
            Outcome::DeadLetter(r) => Some((i, r)),
            _ => None,
        })
        .collect();
    if !dead.is_empty() {
        let mut copies = Vec::new();
        for (i, reason) in &dead {
            let s = &items[*i];
            if let Some(m) =
                crate::queues::read_message(&amqp.broker, &s.key, s.offset, &queue.name)
            {
                copies.push((*i, dead_letter_copy(queue, m, reason)));
            }
        }
        let failed = amqp.publish_dead_letters(queue, copies).await;
        for i in failed {
            // Not written: the message stays in the queue (released) rather than be lost.
            items[i].outcome = Outcome::Release;
        }
    }
    let accepted = items
        .iter()
        .filter(|s| s.outcome == Outcome::Accept)
        .count() as u64;
    let mut by_key: BTreeMap<SharePartitionKey, Vec<(i64, AckType)>> = BTreeMap::new();
    for s in &items {
        by_key
            .entry(s.key.clone())
            .or_default()
            .push((s.offset, ack_type(s.outcome)));
    }
    let acks = by_key
        .into_iter()
        .map(|(key, list)| PartitionAcks {
            key,
            batches: batches(list),
        })
        .collect();
    let req = ShareFetchOpen {
        group_id: queue.name.clone(),
        member_id: member.to_string(),
        share_session_epoch: epoch,
        acks,
        connection_id,
        acknowledge_only: true,
        ..ShareFetchOpen::default()
    };
    match amqp.broker.groups.share_open(req).await {
        Ok(Ok(plan)) => {
            epochs.insert(member.to_string(), next_epoch(epoch));
            if accepted > 0 {
                amqp.stats.queue(&queue.name).acked(accepted);
            }
            for (key, e) in plan.ack_errors {
                if let Some(e) = e {
                    tracing::debug!(queue = %queue.name, topic = %key.0, partition = key.1, error = %e, "acknowledgement refused");
                }
            }
        }
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(queue = %queue.name, member, error = %e, "cannot settle deliveries");
        }
    }
}

fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

/// The copy of `m` that a dead-letter exchange receives (RabbitMQ's `x-death`): the newest
/// death first, counted per (queue, reason); `x-first-death-*` set once; `expiration`
/// removed (kept as `original-expiration` in the death entry).
pub fn dead_letter_copy(queue: &Queue, m: Message, reason: &str) -> (String, String, Message) {
    let dlx = queue.str_arg("x-dead-letter-exchange").unwrap_or_default();
    let routing_key = queue
        .str_arg("x-dead-letter-routing-key")
        .unwrap_or_else(|| m.routing_key.clone());
    let mut headers = m.properties.headers().clone().unwrap_or_default();
    let now_s = u64::try_from(shoal_broker::clock::now_ms() / 1000).unwrap_or(0);
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |v: &AMQPValue| match v {
        AMQPValue::FieldTable(t) => {
            t.inner()
                .get("queue")
                .and_then(crate::model::as_string)
                .as_deref()
                == Some(queue.name.as_str())
                && t.inner()
                    .get("reason")
                    .and_then(crate::model::as_string)
                    .as_deref()
                    == Some(reason)
        }
        _ => false,
    };
    let previous = deaths.iter().position(same).map(|i| deaths.remove(i));
    let count = match &previous {
        Some(AMQPValue::FieldTable(t)) => t
            .inner()
            .get("count")
            .and_then(crate::model::as_i64)
            .unwrap_or(0),
        _ => 0,
    } + 1;
    let mut entry = FieldTable::default();
    entry.insert("count".into(), AMQPValue::LongLongInt(count));
    entry.insert("reason".into(), AMQPValue::LongString(reason.into()));
    entry.insert(
        "queue".into(),
        AMQPValue::LongString(queue.name.as_str().into()),
    );
    entry.insert("time".into(), AMQPValue::Timestamp(now_s));
    entry.insert(
        "exchange".into(),
        AMQPValue::LongString(m.exchange.as_str().into()),
    );
    let mut keys = FieldArray::default();
    keys.push(AMQPValue::LongString(m.routing_key.as_str().into()));
    entry.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
    if let Some(e) = m.properties.expiration() {
        entry.insert(
            "original-expiration".into(),
            AMQPValue::LongString(e.as_str().into()),
        );
    }
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert("x-death".into(), AMQPValue::FieldArray(deaths.into()));
    if !headers.inner().contains_key("x-first-death-reason") {
        headers.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            "x-first-death-queue".into(),
            AMQPValue::LongString(queue.name.as_str().into()),
        );
        headers.insert(
            "x-first-death-exchange".into(),
            AMQPValue::LongString(m.exchange.as_str().into()),
        );
    }
    headers.insert(
        "x-last-death-reason".into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-last-death-queue".into(),
        AMQPValue::LongString(queue.name.as_str().into()),
    );
    headers.insert(
        "x-last-death-exchange".into(),
        AMQPValue::LongString(m.exchange.as_str().into()),
    );
    let p = &m.properties;
    let mut props = amq_protocol::protocol::basic::AMQPProperties::default().with_headers(headers);
    macro_rules! keep {
        ($get:ident, $set:ident) => {
            if let Some(v) = p.$get().clone() {
                props = props.$set(v);
            }
        };
    }
    keep!(content_type, with_content_type);
    keep!(content_encoding, with_content_encoding);
    keep!(delivery_mode, with_delivery_mode);
    keep!(priority, with_priority);
    keep!(correlation_id, with_correlation_id);
    keep!(reply_to, with_reply_to);
    keep!(message_id, with_message_id);
    keep!(timestamp, with_timestamp);
    keep!(kind, with_type);
    keep!(user_id, with_user_id);
    keep!(app_id, with_app_id);
    keep!(cluster_id, with_cluster_id);
    let copy = Message {
        exchange: dlx.clone(),
        routing_key: routing_key.clone(),
        properties: props,
        body: m.body,
        timestamp_ms: shoal_broker::clock::now_ms(),
    };
    (dlx, routing_key, copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settlements_become_ascending_runs_per_type() {
        let b = batches(vec![
            (5, AckType::Accept),
            (3, AckType::Accept),
            (4, AckType::Accept),
            (6, AckType::Release),
            (9, AckType::Release),
        ]);
        let got: Vec<(i64, i64, Vec<AckType>)> = b
            .into_iter()
            .map(|b| (b.first_offset, b.last_offset, b.types))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, 5, vec![AckType::Accept]),
                (6, 6, vec![AckType::Release]),
                (9, 9, vec![AckType::Release]),
            ]
        );
    }
}
