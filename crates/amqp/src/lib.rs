//! Shoal's AMQP 0-9-1 front end (RabbitMQ's dialect): the seeds' pika programs, and what
//! people write against RabbitMQ, run against the same broker that serves Kafka clients.
//!
//! Layers: [`frame`] (bounded framing over `amq-protocol`'s codec) → [`connection`]
//! (negotiation, heartbeats, channels and their methods) → [`model`] (exchanges, queues,
//! bindings, routing) and [`queues`] (a queue's topic, appends, counts, acquisition through
//! the share group named after the queue) → the broker (`shoal-broker`: topics, the
//! share-group coordinator, group-commit durability). [`session`] keeps the share sessions of
//! a channel in order; [`message`] maps messages to records and back.
//!
//! Invariants: a delivery is an acquisition in the queue's share-partition (KIP-932 states),
//! so AMQP consumers and Kafka share consumers of one queue compete for the same records;
//! a publisher confirm is sent only once the message is on disk (the flusher's fsync); a
//! channel or connection that closes releases every delivery it has not settled.
//!
//! Operator surface: [`admin`] serves `/api/v1/queues` and `/api/v1/exchanges` and the
//! `rabbitmq_*` metrics on the broker's admin HTTP port (through the broker's
//! `http::Extension` seam, registered by [`admin::register`]); [`stats`] counts messages
//! published, delivered and acknowledged per queue and turns the counts into rates.

pub mod admin;
pub mod connection;
pub mod declare;
pub mod dispatch;
pub mod error;
pub mod frame;
pub mod message;
pub mod model;
pub mod queues;
pub mod session;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_broker::topics::Partition;
use shoal_broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::message::Message;
use crate::model::{Queue, Registry, Store};

/// Settings of the AMQP listener (RabbitMQ's names and defaults where it has them).
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// The user and password that `connection.start-ok` must present (PLAIN or AMQPLAIN).
    pub default_user: String,
    pub default_pass: String,
    /// `loopback_users`: the default user may connect only from a loopback address.
    pub loopback_only: bool,
    /// Offered in `connection.tune` (`channel_max`, 2047 as RabbitMQ).
    pub channel_max: u16,
    /// Offered in `connection.tune` (`frame_max`, bytes; 131072 as RabbitMQ).
    pub frame_max: u32,
    /// Offered in `connection.tune` (`heartbeat`, seconds; 60 as RabbitMQ).
    pub heartbeat_s: u16,
    /// `consumer_timeout` (ms): how long a delivery stays locked to its consumer without a
    /// settlement before it is released (RabbitMQ closes the channel instead).
    pub consumer_timeout_ms: i64,
    /// `max_message_size` (bytes).
    pub max_message_size: u64,
    /// The largest number of connections served at once (more are refused).
    pub max_connections: usize,
    /// `disk_free_limit.absolute` (bytes, RabbitMQ's default 50 MB): below this much free
    /// space on the data directory's file system, publishing connections are blocked
    /// (`connection.blocked`) until it is back.
    pub disk_free_limit: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            default_user: "guest".into(),
            default_pass: "guest".into(),
            loopback_only: true,
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat_s: 60,
            consumer_timeout_ms: 1_800_000,
            max_message_size: 16 << 20,
            max_connections: 10_000,
            disk_free_limit: 50_000_000,
        }
    }
}

/// A consumer as the registry knows it, so that deleting its queue can cancel it on its own
/// connection (`basic.cancel` from the server).
#[derive(Debug, Clone)]
pub struct ConsumerRef {
    pub connection_id: u64,
    pub channel: u16,
    pub consumer_tag: String,
    pub events: mpsc::UnboundedSender<connection::Event>,
}

/// The front end's shared state: the broker, the registry, the consumers by queue.
pub struct Amqp {
    pub broker: Arc<Broker>,
    pub config: AmqpConfig,
    registry: Mutex<Registry>,
    consumers: Mutex<HashMap<String, Vec<ConsumerRef>>>,
    dispatchers: tokio::sync::Mutex<HashMap<String, dispatch::Dispatcher>>,
    next_connection: AtomicU64,
    /// Messages published, delivered and acknowledged per queue (the admin API's rates).
    pub stats: stats::Stats,
    /// AMQP connections open now (`rabbitmq_connections`).
    open_connections: AtomicUsize,
    /// The resource alarm: `Some(reason)` while publishers are blocked.
    pub alarm: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp").finish_non_exhaustive()
    }
}

/// The registry's store: `__shoal_metadata` extension records.
struct MetadataStore<'a>(&'a Broker);

impl Store for MetadataStore<'_> {
    fn put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), String> {
        self.0
            .topics
            .put_extension(key, value)
            .map_err(|e| e.to_string())
    }
}

impl Amqp {
    /// Replays the registry from the broker's metadata; transient queues of the last run are
    /// deleted with their topics (RabbitMQ drops non-durable queues on restart).
    pub fn new(broker: Arc<Broker>, config: AmqpConfig) -> Arc<Self> {
        let (registry, transient) = Registry::replay(broker.topics.extensions("ext/amqp/"));
        for q in transient {
            if broker.topics.get(&q.topic).is_some() {
                if let Err(e) = broker.topics.delete(&q.topic) {
                    tracing::warn!(queue = %q.name, error = %e, "cannot delete a transient queue's topic");
                }
            }
            let _ = Registry::forget_queue(&MetadataStore(&broker), &q.name);
        }
        Arc::new(Self {
            broker,
            config,
            registry: Mutex::new(registry),
            consumers: Mutex::new(HashMap::new()),
            dispatchers: tokio::sync::Mutex::new(HashMap::new()),
            // Apart from the Kafka listener's connection ids (counted from 1).
            next_connection: AtomicU64::new(1 << 48),
            stats: stats::Stats::default(),
            open_connections: AtomicUsize::new(0),
            alarm: watch::channel(None).0,
        })
    }

    /// The registry (short critical sections only: never held across an await).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MetadataStore<'_> {
        MetadataStore(&self.broker)
    }

    /// The dispatcher of queue `q`, started on first use. Errors: 541 INTERNAL_ERROR if
    /// its share session cannot be opened.
    pub async fn dispatcher(
        self: &Arc<Self>,
        q: &Queue,
    ) -> error::AmqpResult<dispatch::Dispatcher> {
        let mut map = self.dispatchers.lock().await;
        if let Some(d) = map.get(&q.name) {
            return Ok(d.clone());
        }
        let d = dispatch::Dispatcher::start(Arc::clone(self), q.clone()).await?;
        map.insert(q.name.clone(), d.clone());
        Ok(d)
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// A copy of queue `name`.
    pub fn queue(&self, name: &str) -> Option<Queue> {
        self.registry().queues.get(name).cloned()
    }

    /// Every queue, with its counts (ready, unacknowledged) and consumers, for the
    /// operator surface.
    pub async fn queue_stats(&self) -> Vec<(Queue, u64, u64)> {
        let queues: Vec<Queue> = self.registry().queues.values().cloned().collect();
        let mut out = Vec::with_capacity(queues.len());
        for q in queues {
            let (ready, unacked) = queues::counts(&self.broker, &q).await;
            out.push((q, ready, unacked));
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    fn add_consumer(&self, queue: &str, c: ConsumerRef) {
        let mut m = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(queue.to_string()).or_default().push(c);
        drop(m);
        if let Some(q) = self.registry().queues.get_mut(queue) {
            q.consumers += 1;
            q.had_consumer = true;
        }
    }

    /// Forgets a consumer; returns whether its queue is now an auto-delete queue without
    /// consumers (to be deleted).
    fn remove_consumer(&self, queue: &str, connection_id: u64, channel: u16, tag: &str) -> bool {
        let mut m = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = m.get_mut(queue) {
            list.retain(|c| {
                !(c.connection_id == connection_id && c.channel == channel && c.consumer_tag == tag)
            });
        }
        drop(m);
        let mut reg = self.registry();
        match reg.queues.get_mut(queue) {
            Some(q) => {
                q.consumers = q.consumers.saturating_sub(1);
                q.last_used_ms = shoal_broker::clock::now_ms();
                q.auto_delete && q.had_consumer && q.consumers == 0
            }
            None => false,
        }
    }

    fn take_consumers(&self, queue: &str) -> Vec<ConsumerRef> {
        let mut m = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(queue).unwrap_or_default()
    }

    /// Deletes queue `name`: its consumers are cancelled (server-sent `basic.cancel`), its
    /// bindings, record, share group state and topic go. Returns the messages it held.
    /// Errors: 404 NOT_FOUND; 406 PRECONDITION_FAILED for `if_unused`/`if_empty` unmet.
    pub async fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> error::AmqpResult<u64> {
        let Some(q) = self.queue(name) else {
            return Err(error::AmqpError::not_found(format!(
                "no queue '{name}' in vhost '/'"
            )));
        };
        let (ready, unacked) = queues::counts(&self.broker, &q).await;
        if if_unused && q.consumers > 0 {
            return Err(error::AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '/' in use"
            )));
        }
        if if_empty && ready + unacked > 0 {
            return Err(error::AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '/' is not empty"
            )));
        }
        for c in self.take_consumers(name) {
            let _ = c.events.send(connection::Event::CancelConsumer {
                channel: c.channel,
                consumer_tag: c.consumer_tag,
            });
        }
        {
            let mut reg = self.registry();
            reg.unbind_all(&self.store(), name, false)?;
            reg.queues.remove(name);
        }
        self.dispatchers.lock().await.remove(name);
        self.stats.forget(name);
        Registry::forget_queue(&self.store(), name)?;
        if self.broker.topics.get(&q.topic).is_some() {
            if let Err(e) = self.broker.topics.delete(&q.topic) {
                tracing::warn!(queue = name, error = %e, "cannot delete the queue's topic");
            }
            let _ = self.broker.groups.topic_deleted(q.topic.clone()).await;
        }
        let _ = self.broker.groups.delete_group(name.to_string()).await;
        tracing::info!(queue = name, "deleted queue");
        Ok(ready)
    }

    /// Routes and appends `messages` (`(exchange, routing key, message)`), one batch per
    /// partition. Returns the partitions written (to sync for durability) and, per message,
    /// whether it reached a queue. Errors: the first routing error (unknown exchange) or
    /// storage failure; nothing after it is appended.
    pub fn route_and_append(
        &self,
        messages: Vec<(String, String, Message)>,
    ) -> error::AmqpResult<(Vec<Arc<Partition>>, Vec<bool>)> {
        let mut by_partition: Vec<(Arc<Partition>, Vec<Message>)> = Vec::new();
        let mut routed = Vec::with_capacity(messages.len());
        // Messages per queue, counted as published once the burst is appended.
        let mut published: Vec<(String, u64)> = Vec::new();
        {
            let reg = self.registry();
            for (exchange, key, m) in messages {
                let qs = reg.route(&exchange, &key, m.properties.headers().as_ref())?;
                routed.push(!qs.is_empty());
                for qname in qs {
                    let Some(q) = reg.queues.get(&qname) else {
                        continue;
                    };
                    let Some(p) = queues::partition_for(&self.broker, q, &key) else {
                        continue;
                    };
                    match published.iter_mut().find(|(n, _)| *n == qname) {
                        Some((_, c)) => *c += 1,
                        None => published.push((qname.clone(), 1)),
                    }
                    match by_partition.iter_mut().find(|(x, _)| Arc::ptr_eq(x, &p)) {
                        Some((_, list)) => list.push(m.clone()),
                        None => by_partition.push((p, vec![m.clone()])),
                    }
                }
            }
        }
        let mut parts = Vec::with_capacity(by_partition.len());
        for (p, list) in by_partition {
            queues::append(&self.broker, &p, &list)?;
            parts.push(p);
        }
        for (q, n) in published {
            self.stats.queue(&q).published(n);
        }
        Ok((parts, routed))
    }

    /// Which of `publishes` a full queue refuses (`x-max-length` with `x-overflow` =
    /// `reject-publish` or `reject-publish-dlx`): a message is refused when any queue it
    /// routes to already holds `x-max-length` ready messages (counting those accepted
    /// earlier in the same burst), as RabbitMQ.
    pub(crate) async fn overflow_refusals(&self, publishes: &[connection::Publish]) -> Vec<bool> {
        let mut limited: HashMap<String, (Queue, i64)> = HashMap::new();
        let mut routes: Vec<Vec<String>> = Vec::with_capacity(publishes.len());
        {
            let reg = self.registry();
            for p in publishes {
                let qs = reg
                    .route(
                        &p.exchange,
                        &p.routing_key,
                        p.message.properties.headers().as_ref(),
                    )
                    .unwrap_or_default();
                for q in &qs {
                    if let Some(rec) = reg.queues.get(q) {
                        let reject = matches!(
                            rec.str_arg("x-overflow").as_deref(),
                            Some("reject-publish") | Some("reject-publish-dlx")
                        );
                        if let (true, Some(max)) = (reject, rec.int_arg("x-max-length")) {
                            limited.entry(q.clone()).or_insert((rec.clone(), max));
                        }
                    }
                }
                routes.push(qs);
            }
        }
        if limited.is_empty() {
            return vec![false; publishes.len()];
        }
        let mut room: HashMap<String, i64> = HashMap::new();
        for (name, (q, max)) in &limited {
            let (ready, _) = queues::counts(&self.broker, q).await;
            room.insert(name.clone(), max - i64::try_from(ready).unwrap_or(i64::MAX));
        }
        routes
            .iter()
            .map(|qs| {
                let full = qs.iter().any(|q| room.get(q).is_some_and(|r| *r <= 0));
                if !full {
                    for q in qs {
                        if let Some(r) = room.get_mut(q) {
                            *r -= 1;
                        }
                    }
                }
                full
            })
            .collect()
    }

    /// Publishes dead-letter copies (`(index, (exchange, routing key, message))`) and waits
    /// until they are durable. Returns the indexes that could not be written.
    pub async fn publish_dead_letters(
        &self,
        from: &Queue,
        copies: Vec<(usize, (String, String, Message))>,
    ) -> Vec<usize> {
        let idx: Vec<usize> = copies.iter().map(|(i, _)| *i).collect();
        let msgs = copies.into_iter().map(|(_, c)| c).collect();
        match self.route_and_append(msgs) {
            Ok((parts, _)) => match self.broker.flusher.sync(parts).await {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::warn!(queue = %from.name, error = %e, "dead-letter copies not durable");
                    idx
                }
            },
            Err(e) => {
                // RabbitMQ drops a dead letter whose exchange is missing.
                tracing::warn!(queue = %from.name, error = %e, "dead-letter exchange unusable; messages dropped");
                Vec::new()
            }
        }
    }
}

/// Binds the AMQP listener. Errors: the address cannot be bound (the message names the
/// `--amqp-addr` flag, so a port taken by a local RabbitMQ is plain).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} (--amqp-addr): {e}"),
        )
    })
}

/// Serves AMQP connections on `listener` until `shutdown` turns true; then open
/// connections get `connection.close` 320 CONNECTION_FORCED. With `tls` (the `AMQP` entry of
/// `listener.security.protocol.map` is SSL: RabbitMQ's `amqps`), each connection first
/// completes a TLS handshake within the AMQP handshake timeout; one that fails is closed and
/// counted in `shoal_failed_authentication_total`.
pub async fn serve(
    amqp: Arc<Amqp>,
    listener: TcpListener,
    tls: Option<shoal_broker::server::tls::TlsListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(connection::expiry_loop(Arc::clone(&amqp), shutdown.clone()));
    tokio::spawn(alarm_loop(Arc::clone(&amqp), shutdown.clone()));
    tokio::spawn(stats::sample_loop(Arc::clone(&amqp), shutdown.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "AMQP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if amqp.open_connections.load(Ordering::Relaxed) >= amqp.config.max_connections {
                    tracing::warn!(%peer, "AMQP connection refused: max connections reached");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let id = amqp.next_connection_id();
                let a = Arc::clone(&amqp);
                let sd = shutdown.clone();
                amqp.open_connections.fetch_add(1, Ordering::Relaxed);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let halves: (connection::Reader, connection::Writer) = match tls {
                        None => {
                            let (r, w) = stream.into_split();
                            (Box::new(r), Box::new(w))
                        }
                        Some(tls) => match tls.handshake(stream, connection::HANDSHAKE_TIMEOUT).await {
                            Ok((s, _principal)) => {
                                let (r, w) = tokio::io::split(s);
                                (Box::new(r), Box::new(w))
                            }
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "AMQP TLS connection refused");
                                if e.is_failure() {
                                    a.broker.metrics.failed_authentication();
                                }
                                a.open_connections.fetch_sub(1, Ordering::Relaxed);
                                return;
                            }
                        },
                    };
                    connection::run(Arc::clone(&a), halves, peer, id, sd).await;
                    a.open_connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

/// Free bytes on the file system holding `dir` (for unprivileged users); `None` if unknown.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The resource alarm (RabbitMQ's disk alarm): every second, free space on the data
/// directory's file system below `disk_free_limit` raises it (`connection.blocked` to
/// publishers that take it, and their input held); back above, it clears.
async fn alarm_loop(amqp: Arc<Amqp>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
        let dir = amqp.broker.config.data_dir.clone();
        let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
            .await
            .ok()
            .flatten();
        let Some(free) = free else { continue };
        let low = free < amqp.config.disk_free_limit;
        let raised = amqp.alarm.borrow().is_some();
        if low && !raised {
            tracing::warn!(
                free,
                limit = amqp.config.disk_free_limit,
                "disk alarm: free space below disk_free_limit; publishers are blocked"
            );
            amqp.alarm.send_replace(Some("low on disk".to_string()));
        } else if !low && raised {
            tracing::info!(free, "disk alarm cleared");
            amqp.alarm.send_replace(None);
        }
    }
}
