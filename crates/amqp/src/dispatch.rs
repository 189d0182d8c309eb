//! A queue's dispatcher: one task per queue with consumers, which acquires messages for all
//! of the queue's AMQP consumers as one share member (`amqp/<queue>`) and hands them out
//! round-robin among the consumers with room under their prefetch (RabbitMQ's dispatch:
//! without `basic.qos` strictly in turn, with it to whoever has credit). Kafka share
//! consumers of the queue are other members of the same share group and compete with the
//! dispatcher for records.
//!
//! A delivery is registered as unacknowledged on its channel before its frames are sent;
//! settlements go to the dispatcher's session task (so the member's session epochs stay in
//! order however many channels settle). Removing a consumer waits for the round in flight,
//! so nothing is delivered to it after `basic.cancel-ok`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amq_protocol::protocol::basic;
use amq_protocol::protocol::AMQPClass;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::frame;
use crate::message;
use crate::model::Queue;
use crate::queues;
use crate::session::{self, Outcome, SessionOp, Sessions, Settle};
use crate::Amqp;

/// Messages a consumer without a prefetch limit (or with `no_ack`) is given per round.
pub const UNLIMITED_ROUND: usize = 256;

/// A delivery not yet settled, as its channel keeps it.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// `None` for `basic.get`.
    pub consumer_tag: Option<String>,
    pub member: String,
    pub queue: String,
    pub key: (String, i32),
    pub offset: i64,
    /// The session task that settles it.
    pub sessions: Sessions,
    /// Woken when it is settled (the dispatcher has room again), if any.
    pub wake: Option<Arc<Notify>>,
}

/// What a channel shares with the dispatchers delivering to it.
#[derive(Debug, Default)]
pub struct Shared {
    pub next_tag: u64,
    pub unacked: std::collections::BTreeMap<u64, Unacked>,
    pub per_consumer: std::collections::HashMap<String, u32>,
    /// `channel.flow`: false pauses deliveries.
    pub paused: bool,
    /// `basic.qos` with `global=true` (0 = none).
    pub channel_prefetch: u32,
}

/// One consumer as its queue's dispatcher sees it.
pub struct Subscriber {
    pub connection_id: u64,
    pub channel: u16,
    pub tag: String,
    pub no_ack: bool,
    /// `basic.qos` per consumer (0 = none).
    pub prefetch: u32,
    pub shared: Arc<Mutex<Shared>>,
    pub out: mpsc::Sender<Vec<u8>>,
    pub frame_max: usize,
}

impl Subscriber {
    fn room(&self) -> usize {
        if self.no_ack {
            return UNLIMITED_ROUND;
        }
        let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.paused {
            return 0;
        }
        let mine = s.per_consumer.get(&self.tag).copied().unwrap_or(0);
        let own = if self.prefetch == 0 {
            UNLIMITED_ROUND
        } else {
            self.prefetch.saturating_sub(mine) as usize
        };
        let channel = if s.channel_prefetch == 0 {
            UNLIMITED_ROUND
        } else {
            s.channel_prefetch.saturating_sub(s.unacked.len() as u32) as usize
        };
        own.min(channel)
    }

    fn same(&self, connection_id: u64, channel: u16, tag: &str) -> bool {
        self.connection_id == connection_id && self.channel == channel && self.tag == tag
    }
}

enum Ctl {
    Add(Subscriber),
    Remove {
        connection_id: u64,
        channel: u16,
        tag: String,
        done: oneshot::Sender<()>,
    },
}

/// What the dispatch loop keeps of its handle (not the control sender: the loop ends when
/// the last handle is dropped).
struct Parts {
    sessions: Sessions,
    member: String,
    wake: Arc<Notify>,
}

/// The handle of a queue's dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    ctl: mpsc::UnboundedSender<Ctl>,
    /// Its share member's session task (settlements of its deliveries go here).
    pub sessions: Sessions,
    /// Its share member id.
    pub member: String,
    /// Wakes it when credit returns (a settlement, `basic.qos`, `channel.flow`).
    pub wake: Arc<Notify>,
}

impl Dispatcher {
    /// Starts the dispatcher of queue `q`. Errors: 541 INTERNAL_ERROR if its share session
    /// cannot be opened.
    pub async fn start(amqp: Arc<Amqp>, q: Queue) -> crate::error::AmqpResult<Self> {
        let connection_id = amqp.next_connection_id();
        let sessions = session::spawn(Arc::clone(&amqp), connection_id);
        let member = format!("amqp/{}", q.name);
        let (tx, rx) = oneshot::channel();
        let _ = sessions.send(SessionOp::Open {
            member: member.clone(),
            queue: q.clone(),
            reply: tx,
        });
        rx.await
            .map_err(|_| crate::error::AmqpError::internal("session task gone"))??;
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let d = Self {
            ctl,
            sessions,
            member,
            wake,
        };
        tokio::spawn(run(
            amqp,
            q,
            d.sessions.clone(),
            d.member.clone(),
            Arc::clone(&d.wake),
            ctl_rx,
        ));
        Ok(d)
    }

    /// Adds a consumer (its `basic.consume-ok` must already be on its way).
    pub fn add(&self, s: Subscriber) {
        let _ = self.ctl.send(Ctl::Add(s));
        self.wake.notify_one();
    }

    /// Removes a consumer; returns once nothing more will be delivered to it.
    pub async fn remove(&self, connection_id: u64, channel: u16, tag: &str) {
        let (tx, rx) = oneshot::channel();
        if self
            .ctl
            .send(Ctl::Remove {
                connection_id,
                channel,
                tag: tag.to_string(),
                done: tx,
            })
            .is_ok()
        {
            self.wake.notify_one();
            let _ = rx.await;
        }
    }
}

/// The dispatch loop; ends (closing its session, which releases what it holds) when every
/// handle is gone.
async fn run(
    amqp: Arc<Amqp>,
    q: Queue,
    sessions: Sessions,
    member: String,
    wake: Arc<Notify>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) {
    let d = Parts {
        sessions,
        member,
        wake,
    };
    let broker = Arc::clone(&amqp.broker);
    let mut appended = broker.appended.subscribe();
    let mut released = broker.groups.share_released.subscribe();
    let lock = amqp.config.consumer_timeout_ms;
    let ttl = q.int_arg("x-message-ttl");
    let dlx = q.arguments.inner().contains_key("x-dead-letter-exchange");
    let mut subs: Vec<Subscriber> = Vec::new();
    let mut next = 0usize;
    loop {
        // Control first: a removal is answered between rounds.
        loop {
            match ctl.try_recv() {
                Ok(Ctl::Add(s)) => subs.push(s),
                Ok(Ctl::Remove {
                    connection_id,
                    channel,
                    tag,
                    done,
                }) => {
                    subs.retain(|s| !s.same(connection_id, channel, &tag));
                    let _ = done.send(());
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    let _ = d.sessions.send(SessionOp::Close {
                        member: d.member.clone(),
                        queue: q.name.clone(),
                        done: None,
                    });
                    return;
                }
            }
        }
        subs.retain(|s| !s.out.is_closed());
        let rooms: Vec<usize> = subs.iter().map(Subscriber::room).collect();
        let total: usize = rooms.iter().sum();
        if total == 0 {
            tokio::select! {
                () = d.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        appended.mark_unchanged();
        released.mark_unchanged();
        let got = match queues::acquire(&broker, &q, &d.member, total, lock).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(queue = %q.name, error = %e.text, "AMQP delivery failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if got.is_empty() {
            tokio::select! {
                _ = appended.changed() => {}
                _ = released.changed() => {}
                () = d.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let now = shoal_broker::clock::now_ms();
        let mut rooms = rooms;
        let mut frames: Vec<Vec<u8>> = subs.iter().map(|_| Vec::new()).collect();
        let mut settles = Vec::new();
        let mut delivered = 0u64;
        for a in got {
            if a.message.timestamp_ms < 0 {
                settles.push(Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome: Outcome::Gap,
                });
                continue;
            }
            if message::expires_at(&a.message, ttl).is_some_and(|t| t <= now) {
                let outcome = if dlx {
                    Outcome::DeadLetter("expired")
                } else {
                    Outcome::Reject
                };
                settles.push(Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome,
                });
                continue;
            }
            // The next consumer in turn with room (there is one: total > acquired so far).
            let n = subs.len();
            let Some(i) = (0..n).map(|k| (next + k) % n).find(|&i| rooms[i] > 0) else {
                settles.push(Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome: Outcome::Release,
                });
                continue;
            };
            next = (i + 1) % n;
            rooms[i] -= 1;
            let s = &subs[i];
            let tag = {
                let mut sh = s.shared.lock().unwrap_or_else(|e| e.into_inner());
                let t = sh.next_tag;
                sh.next_tag += 1;
                if !s.no_ack {
                    sh.unacked.insert(
                        t,
                        Unacked {
                            consumer_tag: Some(s.tag.clone()),
                            member: d.member.clone(),
                            queue: q.name.clone(),
                            key: a.key.clone(),
                            offset: a.offset,
                            sessions: d.sessions.clone(),
                            wake: Some(Arc::clone(&d.wake)),
                        },
                    );
                    *sh.per_consumer.entry(s.tag.clone()).or_insert(0) += 1;
                }
                t
            };
            frame::write_message(
                &mut frames[i],
                s.channel,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: crate::connection::short(&s.tag),
                    delivery_tag: tag,
                    redelivered: a.delivery_count > 1,
                    exchange: crate::connection::short(&a.message.exchange),
                    routing_key: crate::connection::short(&a.message.routing_key),
                })),
                a.message.properties.clone(),
                &a.message.body,
                s.frame_max,
            );
            delivered += 1;
            if s.no_ack {
                settles.push(Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome: Outcome::AutoAccept,
                });
            }
        }
        if delivered > 0 {
            amqp.stats.queue(&q.name).delivered(delivered);
        }
        for (s, f) in subs.iter().zip(frames) {
            // A consumer whose connection is gone: its channel's cleanup releases what it
            // was given.
            if !f.is_empty() {
                let _ = s.out.send(f).await;
            }
        }
        if !settles.is_empty() {
            let _ = d.sessions.send(SessionOp::Settle {
                member: d.member.clone(),
                queue: q.clone(),
                items: settles,
                done: None,
            });
        }
    }
}
