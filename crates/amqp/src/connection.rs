//! One AMQP 0-9-1 connection: the protocol header, negotiation (`connection.start` with
//! RabbitMQ's capabilities, PLAIN/AMQPLAIN, `connection.tune`, `connection.open` on vhost
//! `/`), heartbeats, and the channels with their methods (AMQP 0-9-1 §2.2-2.3, RabbitMQ's
//! extensions: publisher confirms, `basic.nack`, exchange-to-exchange bindings, consumer
//! cancel notification, per-consumer QoS).
//!
//! Tasks: this one reads and dispatches frames; a writer task owns the socket's write half
//! and coalesces what it is sent; each consumer has a delivery task; each channel has a
//! confirm task (publisher confirms in order, each sent once its message is durable) and
//! the connection one session task ([`crate::session`]).
//!
//! Publishes are gathered while the input buffer holds whole frames and appended as one
//! batch per queue partition when it is drained (or before any other method), so a burst of
//! publishes costs one append, and its confirms one fsync.
//!
//! Invariants: per connection at most `frame_max` bytes of a partial frame and
//! `max_message_size` bytes of a message being assembled are buffered; when the connection
//! ends, however it ends, every channel's consumers stop and their unsettled deliveries are
//! released, and its exclusive queues are deleted.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{
    access, channel, confirm, connection, exchange, queue, tx, AMQPClass,
};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use bytes::BytesMut;
use shoal_broker::topics::Partition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::dispatch::{Dispatcher, Shared, Subscriber, Unacked};
use crate::error::{AmqpError, AmqpResult, Scope};
use crate::frame::{self, FrameError, PROTOCOL_HEADER};
use crate::message::{self, Message};
use crate::model::{self, Binding, Exchange, ExchangeKind, Queue, Registry};
use crate::queues;
use crate::session::{self, Outcome, SessionOp, Sessions, Settle};
use crate::{Amqp, ConsumerRef};

/// Things other tasks tell a connection.
#[derive(Debug)]
pub enum Event {
    /// The consumer's queue was deleted: stop it and tell the client (`basic.cancel`).
    CancelConsumer { channel: u16, consumer_tag: String },
}

/// How long the client has for each step of the handshake (RabbitMQ's
/// `handshake_timeout`, 10 s).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A short string from `s`, cut at 255 bytes (on a character boundary) if longer.
pub(crate) fn short(s: &str) -> ShortString {
    ShortString::try_new(s.to_string()).unwrap_or_else(|_| {
        let mut cut = 255.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        ShortString::from(s[..cut].to_string())
    })
}

fn ss(s: impl Into<String>) -> ShortString {
    short(&s.into())
}

fn method_ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

struct Consumer {
    queue: String,
    dispatcher: Dispatcher,
}

/// A publish being assembled from its method, header and body frames.
struct Content {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    properties: Option<AMQPProperties>,
    size: u64,
    body: BytesMut,
}

/// A complete publish waiting for the end of the burst.
pub(crate) struct Publish {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    mandatory: bool,
    pub(crate) message: Message,
    /// Its publisher-confirm sequence number.
    seq: Option<u64>,
}

/// One step of a channel's confirm stream: sequence numbers `first..=last` confirmed once
/// `parts` are durable; `nacks` are refused.
struct ConfirmItem {
    first: u64,
    last: u64,
    parts: Vec<Arc<Partition>>,
    nacks: Vec<u64>,
}

struct Channel {
    /// Set when the server closed the channel: everything but `channel.close(-ok)` is
    /// dropped until the client answers.
    closing: bool,
    content: Option<Content>,
    publishes: Vec<Publish>,
    /// Next publisher-confirm sequence number (confirm mode).
    confirm_seq: Option<u64>,
    confirms: Option<mpsc::UnboundedSender<ConfirmItem>>,
    tx_mode: bool,
    tx_publishes: Vec<Publish>,
    tx_settles: Vec<(u64, bool, Outcome)>,
    /// `basic.qos` with `global=false`: the limit of consumers started after it.
    consumer_prefetch: u32,
    shared: Arc<Mutex<Shared>>,
    consumers: HashMap<String, Consumer>,
    /// Share members opened on this channel: `(member, queue)`, closed with the channel.
    members: Vec<(String, String)>,
    /// `basic.get`'s member per queue.
    get_members: HashMap<String, String>,
    /// The queue last declared (an empty queue name means it, as RabbitMQ).
    last_queue: Option<String>,
}

impl Channel {
    fn new() -> Self {
        Self {
            closing: false,
            content: None,
            publishes: Vec::new(),
            confirm_seq: None,
            confirms: None,
            tx_mode: false,
            tx_publishes: Vec::new(),
            tx_settles: Vec::new(),
            consumer_prefetch: 0,
            shared: Arc::new(Mutex::new(Shared {
                next_tag: 1,
                ..Shared::default()
            })),
            consumers: HashMap::new(),
            members: Vec::new(),
            get_members: HashMap::new(),
            last_queue: None,
        }
    }

    fn wake_dispatchers(&self) {
        for c in self.consumers.values() {
            c.dispatcher.wake.notify_one();
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the connection ends.
enum End {
    /// The peer went away or closed cleanly.
    Closed,
    /// A hard error: `connection.close` was sent.
    Error(AmqpError),
}

struct Conn {
    amqp: Arc<Amqp>,
    id: u64,
    peer: SocketAddr,
    out: mpsc::Sender<Vec<u8>>,
    frame_max: usize,
    channel_max: u16,
    channels: HashMap<u16, Channel>,
    events: mpsc::UnboundedSender<Event>,
    sessions: Sessions,
    /// Session tasks sent settlements since the last [`Connection::settled_applied`]: a
    /// `basic.consume` or `basic.get` waits until they are applied, so a message requeued
    /// before it is at its place again (AMQP 0-9-1 processes a channel's methods in order).
    unapplied: Vec<Sessions>,
    exclusive_queues: Vec<String>,
    /// The client takes `connection.blocked`/`unblocked`.
    blocked_capable: bool,
    /// It has published (a resource alarm stops reading from publishing connections).
    published: bool,
}

/// The receiving half of a connection: TCP, or TLS over TCP.
pub type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
/// The sending half of a connection.
pub type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// Serves one connection until it ends; always cleans up after it.
pub async fn run(
    amqp: Arc<Amqp>,
    (mut reader, writer): (Reader, Writer),
    peer: SocketAddr,
    id: u64,
    shutdown: watch::Receiver<bool>,
) {
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer_task = tokio::spawn(write_loop(writer, out_rx));
    let mut buf = BytesMut::with_capacity(64 << 10);
    let tuned = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT * 3,
        handshake(&amqp, &mut reader, &mut buf, &out_tx, peer),
    )
    .await
    {
        Ok(Ok(t)) => Some(t),
        Ok(Err(why)) => {
            tracing::debug!(%peer, reason = %why, "AMQP handshake ended");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "AMQP handshake timed out");
            None
        }
    };
    let Some(Tuned {
        frame_max,
        channel_max,
        heartbeat,
        blocked_capable,
    }) = tuned
    else {
        drop(out_tx);
        let _ = writer_task.await;
        return;
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let sessions = session::spawn(Arc::clone(&amqp), id);
    let mut conn = Conn {
        amqp,
        id,
        peer,
        out: out_tx,
        frame_max,
        channel_max,
        channels: HashMap::new(),
        events: events_tx,
        sessions,
        unapplied: Vec::new(),
        exclusive_queues: Vec::new(),
        blocked_capable,
        published: false,
    };
    tracing::debug!(%peer, connection = id, "AMQP connection open");
    let end = conn
        .serve(&mut reader, &mut buf, events_rx, heartbeat, shutdown)
        .await;
    if let End::Error(e) = &end {
        tracing::debug!(%peer, code = e.code, text = %e.text, "AMQP connection closed by the broker");
    }
    conn.cleanup().await;
    drop(conn);
    let _ = writer_task.await;
}

async fn write_loop(mut w: Writer, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut chunk) = rx.recv().await {
        while chunk.len() < (256 << 10) {
            match rx.try_recv() {
                Ok(more) => chunk.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        // TLS holds records until flushed; plain TCP has nothing to flush.
        if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads until a whole frame is buffered. `Ok(None)`: the peer closed.
async fn read_frame(
    reader: &mut Reader,
    buf: &mut BytesMut,
    frame_max: usize,
) -> Result<Option<AMQPFrame>, FrameError> {
    loop {
        if let Some(f) = frame::take_frame(buf, frame_max)? {
            return Ok(Some(f));
        }
        buf.reserve(8192);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "per_consumer_qos",
        "authentication_failure_close",
    ] {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut t = FieldTable::default();
    t.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    let s = |v: &str| AMQPValue::LongString(v.into());
    t.insert("product".into(), s("Shoal"));
    t.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    t.insert("platform".into(), s("Rust"));
    t.insert("cluster_name".into(), s("shoal"));
    t.insert(
        "information".into(),
        s("Shoal: Kafka and AMQP 0-9-1 on one log"),
    );
    t
}

/// The user and password of a `connection.start-ok` response.
fn credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            // The response is a field table's content without its length prefix.
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
            let get = |k: &str| table.inner().get(k).and_then(model::as_string);
            Some((get("LOGIN")?, get("PASSWORD")?))
        }
        _ => None,
    }
}

async fn send(out: &mpsc::Sender<Vec<u8>>, channel: u16, m: AMQPClass) -> Result<(), String> {
    let mut b = Vec::with_capacity(64);
    frame::write_method(&mut b, channel, m);
    out.send(b).await.map_err(|_| "writer gone".to_string())
}

async fn close_connection(out: &mpsc::Sender<Vec<u8>>, e: &AmqpError) {
    let _ = send(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: e.code,
            reply_text: ss(e.text.clone()),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    )
    .await;
}

/// The handshake up to `connection.open-ok`. Returns `(frame_max, channel_max, heartbeat
/// seconds)` as negotiated. Errors: why it failed (the client was told when AMQP says so).
async fn handshake(
    amqp: &Amqp,
    reader: &mut Reader,
    buf: &mut BytesMut,
    out: &mpsc::Sender<Vec<u8>>,
    peer: SocketAddr,
) -> Result<Tuned, String> {
    while buf.len() < 8 {
        buf.reserve(64);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err("no protocol header".into()),
        }
    }
    if &buf[..8] != PROTOCOL_HEADER {
        // AMQP 0-9-1 §4.2.2: answer with the version we speak, then close.
        let _ = out.send(PROTOCOL_HEADER.to_vec()).await;
        return Err(format!("protocol header {:?}", &buf[..8]));
    }
    let _ = buf.split_to(8);
    send(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongString::from("PLAIN AMQPLAIN"),
            locales: LongString::from("en_US"),
        })),
    )
    .await?;
    let start_ok = match read_frame(reader, buf, 0).await {
        Ok(Some(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(s)),
        ))) => s,
        Ok(Some(_)) => return Err("expected connection.start-ok".into()),
        Ok(None) => return Err("closed before connection.start-ok".into()),
        Err(e) => return Err(e.to_string()),
    };
    let mechanism = start_ok.mechanism.as_str().to_string();
    let blocked_capable = match start_ok.client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => {
            matches!(
                t.inner().get("connection.blocked"),
                Some(AMQPValue::Boolean(true))
            )
        }
        _ => false,
    };
    let ok = credentials(&mechanism, start_ok.response.as_bytes()).is_some_and(|(u, p)| {
        u == amqp.config.default_user
            && p == amqp.config.default_pass
            && (!amqp.config.loopback_only || peer.ip().is_loopback())
    });
    if !ok {
        let e = AmqpError::connection_access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ));
        close_connection(out, &e).await;
        tracing::warn!(%peer, mechanism, "AMQP login refused");
        return Err("login refused".into());
    }
    send(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: amqp.config.channel_max,
            frame_max: amqp.config.frame_max,
            heartbeat: amqp.config.heartbeat_s,
        })),
    )
    .await?;
    let tune_ok = match read_frame(reader, buf, amqp.config.frame_max as usize).await {
        Ok(Some(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)),
        ))) => t,
        Ok(Some(_)) => return Err("expected connection.tune-ok".into()),
        Ok(None) => return Err("closed before connection.tune-ok".into()),
        Err(e) => return Err(e.to_string()),
    };
    let negotiate = |ours: u32, theirs: u32| match (ours, theirs) {
        (0, t) => t,
        (o, 0) => o,
        (o, t) => o.min(t),
    };
    let frame_max = negotiate(amqp.config.frame_max, tune_ok.frame_max).max(4096) as usize;
    let channel_max = negotiate(
        u32::from(amqp.config.channel_max),
        u32::from(tune_ok.channel_max),
    )
    .min(u32::from(u16::MAX)) as u16;
    let heartbeat = tune_ok.heartbeat;
    match read_frame(reader, buf, frame_max).await {
        Ok(Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Open(o))))) => {
            if o.virtual_host.as_str() != "/" {
                let e =
                    AmqpError::not_allowed(format!("vhost {} not found", o.virtual_host.as_str()))
                        .on(10, 40);
                close_connection(out, &e).await;
                return Err("unknown vhost".into());
            }
        }
        Ok(Some(_)) => return Err("expected connection.open".into()),
        Ok(None) => return Err("closed before connection.open".into()),
        Err(e) => return Err(e.to_string()),
    }
    send(
        out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await?;
    Ok(Tuned {
        frame_max,
        channel_max,
        heartbeat,
        blocked_capable,
    })
}

/// What the handshake settled: `frame_max` (bytes), `channel_max`, `heartbeat` (s), and
/// whether the client takes `connection.blocked` (its `capabilities`).
struct Tuned {
    frame_max: usize,
    channel_max: u16,
    heartbeat: u16,
    blocked_capable: bool,
}

fn server_name(prefix: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut s = String::from(prefix);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            s.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        s.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    s
}

impl Conn {
    async fn serve(
        &mut self,
        reader: &mut Reader,
        buf: &mut BytesMut,
        mut events: mpsc::UnboundedReceiver<Event>,
        heartbeat: u16,
        mut shutdown: watch::Receiver<bool>,
    ) -> End {
        let beat = if heartbeat == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(u64::from(heartbeat) * 500)
        };
        let mut tick = tokio::time::interval(beat);
        tick.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        let mut buffered = !buf.is_empty();
        let mut alarm = self.amqp.alarm.subscribe();
        let mut blocked = alarm.borrow_and_update().clone();
        // `connection.blocked` was sent and no `connection.unblocked` since.
        let mut notified = false;
        loop {
            // A resource alarm holds publishing connections: nothing more is read from them,
            // heartbeats and deliveries go on. As in RabbitMQ, only a connection that
            // publishes is blocked and told so (`connection.blocked`, once per alarm); one
            // that only consumes is neither held nor notified.
            let hold = blocked.is_some() && self.published;
            if hold && !notified && self.blocked_capable {
                self.send_blocked(blocked.as_deref()).await;
                notified = true;
            }
            tokio::select! {
                biased;
                _ = alarm.changed() => {
                    let now = alarm.borrow_and_update().clone();
                    if now.is_none() && notified {
                        self.send_blocked(None).await;
                        notified = false;
                    }
                    blocked = now;
                }
                read = reader.read_buf(buf), if !buffered && !hold => {
                    match read {
                        Ok(0) | Err(_) => return End::Closed,
                        Ok(_) => {}
                    }
                    last_heard = tokio::time::Instant::now();
                    buffered = true;
                }
                () = std::future::ready(()), if buffered && !hold => {
                    // Frames already in the buffer (a client may send its first channel
                    // methods with connection.open): handled before reading more.
                    buffered = false;
                    loop {
                        let frame = match frame::take_frame(buf, self.frame_max) {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) => {
                                let err = AmqpError {
                                    scope: Scope::Connection,
                                    code: e.reply_code(),
                                    text: e.to_string(),
                                    class_id: 0,
                                    method_id: 0,
                                };
                                return self.fail(reader, buf, err).await;
                            }
                        };
                        match self.on_frame(frame).await {
                            Ok(true) => {}
                            Ok(false) => return End::Closed,
                            Err(e) => return self.fail(reader, buf, e).await,
                        }
                    }
                    if let Err(e) = self.flush_all().await {
                        return self.fail(reader, buf, e).await;
                    }
                    if buf.capacity() - buf.len() < 4096 {
                        buf.reserve(64 << 10);
                    }
                }
                ev = events.recv() => {
                    if let Some(Event::CancelConsumer { channel, consumer_tag }) = ev {
                        self.server_cancel(channel, &consumer_tag).await;
                    }
                }
                _ = tick.tick() => {
                    if hold {
                        // Nothing is read from a held connection, so its heartbeats cannot
                        // be heard: monitoring pauses while it is blocked (as in RabbitMQ).
                        last_heard = tokio::time::Instant::now();
                    }
                    if heartbeat > 0 {
                        let mut b = Vec::new();
                        frame::write_heartbeat(&mut b);
                        let _ = self.out.send(b).await;
                        if last_heard.elapsed() > beat * 4 {
                            tracing::info!(peer = %self.peer, "AMQP client missed heartbeats; closing");
                            return End::Closed;
                        }
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        let e = AmqpError::connection_forced("broker forced connection closure with reason 'shutdown'");
                        return self.fail(reader, buf, e).await;
                    }
                }
            }
        }
    }

    /// Sends `connection.close` for `e` and waits (briefly) for `close-ok`.
    async fn fail(&mut self, reader: &mut Reader, buf: &mut BytesMut, e: AmqpError) -> End {
        close_connection(&self.out, &e).await;
        let wait = async {
            loop {
                match read_frame(reader, buf, self.frame_max).await {
                    Ok(Some(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
                    ))) => return,
                    Ok(Some(_)) => continue,
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        End::Error(e)
    }

    async fn send(&self, channel: u16, m: AMQPClass) {
        let _ = send(&self.out, channel, m).await;
    }

    /// `connection.blocked` with `reason`, or `connection.unblocked` for `None`.
    async fn send_blocked(&self, reason: Option<&str>) {
        let m = match reason {
            Some(r) => connection::AMQPMethod::Blocked(connection::Blocked { reason: ss(r) }),
            None => connection::AMQPMethod::Unblocked(connection::Unblocked {}),
        };
        self.send(0, AMQPClass::Connection(m)).await;
    }

    /// Handles one frame. `Ok(false)`: the connection closed cleanly.
    async fn on_frame(&mut self, f: AMQPFrame) -> AmqpResult<bool> {
        match f {
            AMQPFrame::Heartbeat => Ok(true),
            AMQPFrame::ProtocolHeader(_) => {
                Err(AmqpError::unexpected_frame("protocol header after start"))
            }
            AMQPFrame::InvalidHeartbeat(ch) => {
                Err(AmqpError::frame_error(format!("heartbeat on channel {ch}")))
            }
            AMQPFrame::Method(0, m) => self.on_connection_method(m).await,
            AMQPFrame::Method(ch, m) => {
                let ids = method_ids(&m);
                let r = self.on_channel_method(ch, m).await;
                self.channel_result(
                    ch,
                    r.map_err(|e| {
                        if e.class_id == 0 {
                            e.on(ids.0, ids.1)
                        } else {
                            e
                        }
                    }),
                )
                .await?;
                Ok(true)
            }
            AMQPFrame::Header(ch, h) => {
                let r = self.on_header(ch, h);
                self.channel_result(ch, r).await?;
                Ok(true)
            }
            AMQPFrame::Body(ch, b) => {
                let r = self.on_body(ch, &b);
                self.channel_result(ch, r).await?;
                Ok(true)
            }
        }
    }

    /// A channel error closes the channel (`channel.close`); a connection error is returned.
    async fn channel_result(&mut self, ch: u16, r: AmqpResult<()>) -> AmqpResult<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.scope == Scope::Connection => Err(e),
            Err(e) => {
                tracing::debug!(channel = ch, code = e.code, text = %e.text, "AMQP channel error");
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.closing = true;
                    c.content = None;
                }
                self.flush_channel(ch).await.ok();
                self.release_channel(ch).await;
                self.send(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                        reply_code: e.code,
                        reply_text: ss(e.text.clone()),
                        class_id: e.class_id,
                        method_id: e.method_id,
                    })),
                )
                .await;
                Ok(())
            }
        }
    }

    async fn on_connection_method(&mut self, m: AMQPClass) -> AmqpResult<bool> {
        match m {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.flush_all().await.ok();
                self.cleanup().await;
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                )
                .await;
                Ok(false)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(false),
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                )
                .await;
                Ok(true)
            }
            AMQPClass::Connection(connection::AMQPMethod::Blocked(_))
            | AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => Ok(true),
            other => {
                let (c, mth) = method_ids(&other);
                Err(AmqpError::command_invalid(format!(
                    "connection method {c}.{mth} not allowed on channel 0"
                ))
                .on(c, mth))
            }
        }
    }

    fn on_header(&mut self, ch: u16, h: amq_protocol::frame::AMQPContentHeader) -> AmqpResult<()> {
        let max = self.amqp.config.max_message_size;
        let Some(c) = self.channels.get_mut(&ch) else {
            return Err(AmqpError::channel_error(format!("unknown channel {ch}")));
        };
        if c.closing {
            return Ok(());
        }
        let Some(content) = c.content.as_mut() else {
            return Err(AmqpError::unexpected_frame(format!(
                "content header for channel {ch} without basic.publish"
            )));
        };
        if content.properties.is_some() {
            return Err(AmqpError::unexpected_frame("second content header"));
        }
        if h.body_size > max {
            c.content = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {max}",
                h.body_size
            ))
            .on(60, 40));
        }
        content.size = h.body_size;
        content.properties = Some(h.properties);
        if h.body_size == 0 {
            self.complete_publish(ch)?;
        }
        Ok(())
    }

    fn on_body(&mut self, ch: u16, b: &[u8]) -> AmqpResult<()> {
        let Some(c) = self.channels.get_mut(&ch) else {
            return Err(AmqpError::channel_error(format!("unknown channel {ch}")));
        };
        if c.closing {
            return Ok(());
        }
        let Some(content) = c.content.as_mut().filter(|c| c.properties.is_some()) else {
            return Err(AmqpError::unexpected_frame(format!(
                "content body for channel {ch} without a content header"
            )));
        };
        if content.body.len() as u64 + b.len() as u64 > content.size {
            return Err(AmqpError::frame_error(
                "content body larger than its header said",
            ));
        }
        content.body.extend_from_slice(b);
        if content.body.len() as u64 == content.size {
            self.complete_publish(ch)?;
        }
        Ok(())
    }

    fn complete_publish(&mut self, ch: u16) -> AmqpResult<()> {
        // Marked once a whole message is in, so a resource alarm never holds a connection
        // with half a message read.
        self.published = true;
        let Some(c) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let Some(content) = c.content.take() else {
            return Ok(());
        };
        let message = Message {
            exchange: content.exchange.clone(),
            routing_key: content.routing_key.clone(),
            properties: content.properties.unwrap_or_default(),
            body: content.body.freeze(),
            timestamp_ms: shoal_broker::clock::now_ms(),
        };
        let seq = c.confirm_seq;
        if let Some(s) = seq {
            c.confirm_seq = Some(s + 1);
        }
        let p = Publish {
            exchange: content.exchange,
            routing_key: content.routing_key,
            mandatory: content.mandatory,
            message,
            seq,
        };
        if c.tx_mode {
            c.tx_publishes.push(p);
        } else {
            c.publishes.push(p);
        }
        Ok(())
    }

    /// Appends every channel's gathered publishes (end of a burst).
    async fn flush_all(&mut self) -> AmqpResult<()> {
        let ids: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.publishes.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let r = self.flush_channel(id).await;
            self.channel_result(id, r).await?;
        }
        Ok(())
    }

    /// Appends one channel's gathered publishes; sends `basic.return` for unroutable
    /// mandatory ones and queues the confirms.
    async fn flush_channel(&mut self, ch: u16) -> AmqpResult<()> {
        let Some(c) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let publishes = std::mem::take(&mut c.publishes);
        let confirms = c.confirms.clone();
        self.publish(ch, publishes, confirms).await
    }

    async fn publish(
        &mut self,
        ch: u16,
        publishes: Vec<Publish>,
        confirms: Option<mpsc::UnboundedSender<ConfirmItem>>,
    ) -> AmqpResult<()> {
        if publishes.is_empty() {
            return Ok(());
        }
        // Publishes to an exchange that is gone fail the channel, as RabbitMQ; those before
        // it are kept.
        let mut error = None;
        let mut kept = Vec::with_capacity(publishes.len());
        {
            let reg = self.amqp.registry();
            for p in publishes {
                if let Err(e) = reg.route(&p.exchange, "", None).map(|_| ()) {
                    error = Some(e.on(60, 40));
                    break;
                }
                kept.push(p);
            }
        }
        let first = kept.iter().find_map(|p| p.seq);
        let last = kept.iter().rev().find_map(|p| p.seq);
        // `x-overflow=reject-publish`: what a full queue refuses is nacked.
        let refused = self.amqp.overflow_refusals(&kept).await;
        let batch: Vec<_> = kept
            .iter()
            .zip(&refused)
            .filter(|(_, r)| !**r)
            .map(|(p, _)| (p.exchange.clone(), p.routing_key.clone(), p.message.clone()))
            .collect();
        let result = self.amqp.route_and_append(batch);
        let (parts, routed, failed) = match result {
            Ok((parts, routed_kept)) => {
                let mut it = routed_kept.into_iter();
                let routed: Vec<bool> = refused
                    .iter()
                    .map(|r| if *r { true } else { it.next().unwrap_or(false) })
                    .collect();
                (parts, routed, false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "AMQP publish failed");
                (Vec::new(), vec![false; kept.len()], true)
            }
        };
        let mut returns = Vec::new();
        for (p, ok) in kept.iter().zip(&routed) {
            if !ok && p.mandatory && !failed {
                write_return(&mut returns, ch, p, self.frame_max);
            }
        }
        if !returns.is_empty() {
            let _ = self.out.send(returns).await;
        }
        if let (Some(tx), Some(first), Some(last)) = (confirms, first, last) {
            let nacks = if failed {
                (first..=last).collect()
            } else {
                kept.iter()
                    .zip(&refused)
                    .filter(|(_, r)| **r)
                    .filter_map(|(p, _)| p.seq)
                    .collect()
            };
            let _ = tx.send(ConfirmItem {
                first,
                last,
                parts,
                nacks,
            });
        } else if failed {
            return Err(AmqpError::internal("cannot store the message"));
        }
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn on_channel_method(&mut self, ch: u16, m: AMQPClass) -> AmqpResult<()> {
        if ch > self.channel_max {
            return Err(AmqpError::channel_error(format!(
                "channel {ch} exceeds negotiated channel_max {}",
                self.channel_max
            )));
        }
        if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = m {
            if self.channels.contains_key(&ch) {
                return Err(AmqpError::channel_error(format!(
                    "channel {ch} already open"
                )));
            }
            self.channels.insert(ch, Channel::new());
            self.send(
                ch,
                AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
            )
            .await;
            return Ok(());
        }
        let Some(c) = self.channels.get(&ch) else {
            return Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {ch}"
            )));
        };
        if c.closing {
            return match m {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    self.channels.remove(&ch);
                    Ok(())
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.channels.remove(&ch);
                    self.send(
                        ch,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    )
                    .await;
                    Ok(())
                }
                _ => Ok(()),
            };
        }
        if c.content.is_some() {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header or body on channel {ch}"
            )));
        }
        // Everything but a publish or a settlement sees the publishes before it.
        let keeps_burst = matches!(
            m,
            AMQPClass::Basic(basic::AMQPMethod::Publish(_))
                | AMQPClass::Basic(basic::AMQPMethod::Ack(_))
                | AMQPClass::Basic(basic::AMQPMethod::Nack(_))
                | AMQPClass::Basic(basic::AMQPMethod::Reject(_))
        );
        if !keeps_burst {
            self.flush_all().await?;
        }
        match m {
            AMQPClass::Channel(m) => self.on_channel(ch, m).await,
            AMQPClass::Basic(m) => self.on_basic(ch, m).await,
            AMQPClass::Queue(m) => self.on_queue(ch, m).await,
            AMQPClass::Exchange(m) => self.on_exchange(ch, m).await,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                let out = self.out.clone();
                let broker = Arc::clone(&self.amqp.broker);
                let Some(c) = self.channels.get_mut(&ch) else {
                    return Ok(());
                };
                if c.tx_mode {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                if c.confirm_seq.is_none() {
                    c.confirm_seq = Some(1);
                    c.confirms = Some(spawn_confirms(broker, out, ch));
                }
                if !s.nowait {
                    self.send(
                        ch,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.on_tx(ch, m).await,
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.send(
                    ch,
                    AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                )
                .await;
                Ok(())
            }
            other => {
                let (c, mth) = method_ids(&other);
                Err(AmqpError::command_invalid(format!(
                    "method {c}.{mth} is not one a client sends"
                )))
            }
        }
    }

    async fn on_channel(&mut self, ch: u16, m: channel::AMQPMethod) -> AmqpResult<()> {
        match m {
            channel::AMQPMethod::Close(_) => {
                self.release_channel(ch).await;
                self.channels.remove(&ch);
                self.send(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                )
                .await;
                Ok(())
            }
            channel::AMQPMethod::CloseOk(_) => Ok(()),
            channel::AMQPMethod::Flow(f) => {
                if let Some(c) = self.channels.get(&ch) {
                    c.shared().paused = !f.active;
                    c.wake_dispatchers();
                }
                self.send(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: f.active,
                    })),
                )
                .await;
                Ok(())
            }
            channel::AMQPMethod::FlowOk(_) => Ok(()),
            _ => Err(AmqpError::command_invalid("unexpected channel method")),
        }
    }

    async fn on_tx(&mut self, ch: u16, m: tx::AMQPMethod) -> AmqpResult<()> {
        let Some(c) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        match m {
            tx::AMQPMethod::Select(_) => {
                if c.confirm_seq.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                c.tx_mode = true;
                self.send(ch, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})))
                    .await;
                Ok(())
            }
            tx::AMQPMethod::Commit(_) => {
                if !c.tx_mode {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                let publishes = std::mem::take(&mut c.tx_publishes);
                let settles = std::mem::take(&mut c.tx_settles);
                let batch: Vec<_> = publishes
                    .iter()
                    .map(|p| (p.exchange.clone(), p.routing_key.clone(), p.message.clone()))
                    .collect();
                {
                    let reg = self.amqp.registry();
                    for p in &publishes {
                        reg.route(&p.exchange, "", None).map_err(|e| e.on(90, 20))?;
                    }
                }
                let (parts, routed) = self.amqp.route_and_append(batch)?;
                let mut returns = Vec::new();
                for (p, ok) in publishes.iter().zip(&routed) {
                    if !ok && p.mandatory {
                        write_return(&mut returns, ch, p, self.frame_max);
                    }
                }
                if !returns.is_empty() {
                    let _ = self.out.send(returns).await;
                }
                self.amqp
                    .broker
                    .flusher
                    .sync(parts)
                    .await
                    .map_err(AmqpError::internal)?;
                for (tag, multiple, outcome) in settles {
                    self.settle(ch, tag, multiple, outcome, false).await?;
                }
                self.send(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})))
                    .await;
                Ok(())
            }
            tx::AMQPMethod::Rollback(_) => {
                if !c.tx_mode {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                c.tx_publishes.clear();
                c.tx_settles.clear();
                self.send(
                    ch,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                )
                .await;
                Ok(())
            }
            _ => Err(AmqpError::command_invalid("unexpected tx method")),
        }
    }

    /// The queue an empty name means (the channel's last declared), or `name`.
    fn queue_name(&self, ch: u16, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.channels
            .get(&ch)
            .and_then(|c| c.last_queue.clone())
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// Queue `name`, usable by this connection. Errors: 404 NOT_FOUND; 405 RESOURCE_LOCKED
    /// for another connection's exclusive queue.
    fn usable_queue(&self, name: &str) -> AmqpResult<Queue> {
        let q = self
            .amqp
            .queue(name)
            .ok_or_else(|| AmqpError::not_found(format!("no queue '{name}' in vhost '/'")))?;
        if q.exclusive_owner.is_some_and(|o| o != self.id) {
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
            )));
        }
        Ok(q)
    }

    async fn on_queue(&mut self, ch: u16, m: queue::AMQPMethod) -> AmqpResult<()> {
        match m {
            queue::AMQPMethod::Declare(d) => {
                let (name, count, consumers) = self.declare_queue(d.clone()).await?;
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.last_queue = Some(name.clone());
                }
                if !d.nowait {
                    self.send(
                        ch,
                        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                            queue: ss(name),
                            message_count: count,
                            consumer_count: consumers,
                        })),
                    )
                    .await;
                }
                Ok(())
            }
            queue::AMQPMethod::Bind(b) => {
                let qname = self.queue_name(ch, b.queue.as_str())?;
                self.usable_queue(&qname)?;
                self.apply_binding(
                    Binding {
                        source: b.exchange.as_str().to_string(),
                        destination: qname,
                        to_exchange: false,
                        routing_key: b.routing_key.as_str().to_string(),
                        arguments: b.arguments.clone(),
                    },
                    true,
                )?;
                if !b.nowait {
                    self.send(
                        ch,
                        AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            queue::AMQPMethod::Unbind(b) => {
                let qname = self.queue_name(ch, b.queue.as_str())?;
                self.usable_queue(&qname)?;
                self.apply_binding(
                    Binding {
                        source: b.exchange.as_str().to_string(),
                        destination: qname,
                        to_exchange: false,
                        routing_key: b.routing_key.as_str().to_string(),
                        arguments: b.arguments.clone(),
                    },
                    false,
                )?;
                self.send(
                    ch,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                )
                .await;
                Ok(())
            }
            queue::AMQPMethod::Purge(p) => {
                let qname = self.queue_name(ch, p.queue.as_str())?;
                let q = self.usable_queue(&qname)?;
                let n = self.purge(&q).await?;
                if !p.nowait {
                    self.send(
                        ch,
                        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                            message_count: u32::try_from(n).unwrap_or(u32::MAX),
                        })),
                    )
                    .await;
                }
                Ok(())
            }
            queue::AMQPMethod::Delete(d) => {
                let qname = self.queue_name(ch, d.queue.as_str())?;
                let n = match self.amqp.queue(&qname) {
                    // Deleting a queue that does not exist succeeds (RabbitMQ 3.x).
                    None => 0,
                    Some(_) => {
                        self.usable_queue(&qname)?;
                        self.amqp
                            .delete_queue(&qname, d.if_unused, d.if_empty)
                            .await?
                    }
                };
                self.exclusive_queues.retain(|x| x != &qname);
                if !d.nowait {
                    self.send(
                        ch,
                        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                            message_count: u32::try_from(n).unwrap_or(u32::MAX),
                        })),
                    )
                    .await;
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid("unexpected queue method")),
        }
    }

    /// Adds (`bind`) or removes a binding after checking its ends ([`Conn::check_binding`]).
    /// Errors: those, and storage.
    fn apply_binding(&self, binding: Binding, bind: bool) -> AmqpResult<()> {
        self.check_binding(&binding)?;
        let store = self.amqp.store();
        let mut reg = self.amqp.registry();
        if bind {
            reg.bind(&store, binding)
        } else {
            reg.unbind(&store, &binding)
        }
    }

    /// Errors of a binding's ends: 404 for a missing exchange or queue, 403 for the default
    /// exchange.
    fn check_binding(&self, b: &Binding) -> AmqpResult<()> {
        if b.source.is_empty() || (b.to_exchange && b.destination.is_empty()) {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let reg = self.amqp.registry();
        if !reg.exchanges.contains_key(&b.source) {
            return Err(AmqpError::not_found(format!(
                "no exchange '{}' in vhost '/'",
                b.source
            )));
        }
        if b.to_exchange && !reg.exchanges.contains_key(&b.destination) {
            return Err(AmqpError::not_found(format!(
                "no exchange '{}' in vhost '/'",
                b.destination
            )));
        }
        Ok(())
    }

    /// `queue.declare`: returns the name, ready messages and consumers. Errors: RabbitMQ's
    /// (403 reserved `amq.` names, 404 passive on a missing queue, 405 another connection's
    /// exclusive queue, 406 inequivalent flags or arguments or invalid arguments).
    async fn declare_queue(&mut self, d: queue::Declare) -> AmqpResult<(String, u32, u32)> {
        let mut name = d.queue.as_str().to_string();
        if d.passive {
            let q = self.usable_queue(&name)?;
            let (ready, _) = queues::counts(&self.amqp.broker, &q).await;
            return Ok((name, u32::try_from(ready).unwrap_or(u32::MAX), q.consumers));
        }
        let server_named = name.is_empty();
        if server_named {
            name = server_name("amq.gen-");
        }
        let (q, created) = self
            .amqp
            .declare_queue(crate::declare::Declare {
                name: name.clone(),
                durable: d.durable,
                exclusive_owner: d.exclusive.then_some(self.id),
                auto_delete: d.auto_delete,
                arguments: d.arguments.clone(),
                server_named,
            })
            .await?;
        if created && d.exclusive {
            self.exclusive_queues.push(name.clone());
        }
        let (ready, _) = queues::counts(&self.amqp.broker, &q).await;
        Ok((name, u32::try_from(ready).unwrap_or(u32::MAX), q.consumers))
    }

    /// Takes every ready message of `q` off it; returns how many.
    async fn purge(&mut self, q: &Queue) -> AmqpResult<u64> {
        let member = format!("amqp/{}/purge/{}", self.id, q.name);
        let plan = self.open_member(&member, q).await?;
        let mut total = 0u64;
        let mut plan = Some(plan);
        loop {
            let got = match plan.take() {
                Some(p) => {
                    queues::acquire_planned(&self.amqp.broker, q, &member, p, 10_000, 60_000, None)
                        .await?
                }
                None => queues::acquire(&self.amqp.broker, q, &member, 10_000, 60_000).await?,
            };
            if got.is_empty() {
                break;
            }
            total += got.len() as u64;
            let items = got
                .into_iter()
                .map(|a| Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome: Outcome::AutoAccept,
                })
                .collect();
            crate::session::settle_and_wait(&self.sessions, member.clone(), q.clone(), items).await;
        }
        let (tx, rx) = oneshot::channel();
        let _ = self.sessions.send(SessionOp::Close {
            member,
            queue: q.name.clone(),
            done: Some(tx),
        });
        let _ = rx.await;
        Ok(total)
    }

    async fn open_member(
        &self,
        member: &str,
        q: &Queue,
    ) -> AmqpResult<
        Vec<(
            shoal_group::api::SharePartitionKey,
            shoal_group::api::FetchStart,
        )>,
    > {
        let (tx, rx) = oneshot::channel();
        self.sessions
            .send(SessionOp::Open {
                member: member.to_string(),
                queue: q.clone(),
                reply: tx,
            })
            .map_err(|_| AmqpError::internal("session task gone"))?;
        rx.await
            .map_err(|_| AmqpError::internal("session task gone"))?
    }

    async fn on_exchange(&mut self, ch: u16, m: exchange::AMQPMethod) -> AmqpResult<()> {
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str().to_string();
                let existing = self.amqp.registry().exchanges.get(&name).cloned();
                if d.passive {
                    if existing.is_none() {
                        return Err(AmqpError::not_found(format!(
                            "no exchange '{name}' in vhost '/'"
                        )));
                    }
                } else {
                    if name.is_empty() {
                        return Err(AmqpError::access_refused(
                            "operation not permitted on the default exchange",
                        ));
                    }
                    let kind = ExchangeKind::parse(d.kind.as_str())?;
                    match existing {
                        Some(e) => {
                            if e.kind != kind {
                                return Err(AmqpError::precondition_failed(format!(
                                    "inequivalent arg 'type' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                                    kind.name(),
                                    e.kind.name()
                                )));
                            }
                            if e.durable != d.durable {
                                return Err(AmqpError::precondition_failed(format!(
                                    "inequivalent arg 'durable' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                                    d.durable, e.durable
                                )));
                            }
                        }
                        None => {
                            if name.starts_with("amq.") {
                                return Err(AmqpError::access_refused(format!(
                                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                                )));
                            }
                            let e = Exchange {
                                name: name.clone(),
                                kind,
                                durable: d.durable,
                                auto_delete: d.auto_delete,
                                internal: d.internal,
                                arguments: d.arguments.clone(),
                            };
                            Registry::save_exchange(&self.amqp.store(), &e)?;
                            self.amqp.registry().exchanges.insert(name.clone(), e);
                        }
                    }
                }
                if !d.nowait {
                    self.send(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    )
                    .await;
                }
                Ok(())
            }
            exchange::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str().to_string();
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "operation not permitted on exchange '{name}'"
                    )));
                }
                let store = self.amqp.store();
                {
                    let mut reg = self.amqp.registry();
                    if let Some(e) = reg.exchanges.get(&name).cloned() {
                        if d.if_unused && reg.exchange_in_use(&name) {
                            return Err(AmqpError::precondition_failed(format!(
                                "exchange '{name}' in vhost '/' in use"
                            )));
                        }
                        reg.unbind_all(&store, &name, true)?;
                        reg.exchanges.remove(&name);
                        Registry::forget_exchange(&store, &e)?;
                    }
                }
                if !d.nowait {
                    self.send(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            exchange::AMQPMethod::Bind(b) => {
                self.apply_binding(
                    Binding {
                        source: b.source.as_str().to_string(),
                        destination: b.destination.as_str().to_string(),
                        to_exchange: true,
                        routing_key: b.routing_key.as_str().to_string(),
                        arguments: b.arguments.clone(),
                    },
                    true,
                )?;
                if !b.nowait {
                    self.send(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            exchange::AMQPMethod::Unbind(b) => {
                self.apply_binding(
                    Binding {
                        source: b.source.as_str().to_string(),
                        destination: b.destination.as_str().to_string(),
                        to_exchange: true,
                        routing_key: b.routing_key.as_str().to_string(),
                        arguments: b.arguments.clone(),
                    },
                    false,
                )?;
                if !b.nowait {
                    self.send(
                        ch,
                        AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid("unexpected exchange method")),
        }
    }

    async fn on_basic(&mut self, ch: u16, m: basic::AMQPMethod) -> AmqpResult<()> {
        match m {
            basic::AMQPMethod::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true").on(60, 40));
                }
                let exchange = p.exchange.as_str().to_string();
                let known = self.amqp.registry().route(&exchange, "", None).map(|_| ());
                if let Err(e) = known {
                    // Checked when the whole message is in (RabbitMQ too): drop its frames.
                    if let Some(c) = self.channels.get_mut(&ch) {
                        c.closing = true;
                    }
                    self.flush_channel(ch).await.ok();
                    if let Some(c) = self.channels.get_mut(&ch) {
                        c.closing = false;
                    }
                    return Err(e.on(60, 40));
                }
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.content = Some(Content {
                        exchange,
                        routing_key: p.routing_key.as_str().to_string(),
                        mandatory: p.mandatory,
                        properties: None,
                        size: 0,
                        body: BytesMut::new(),
                    });
                }
                Ok(())
            }
            basic::AMQPMethod::Qos(q) => {
                if let Some(c) = self.channels.get_mut(&ch) {
                    if q.global {
                        c.shared().channel_prefetch = u32::from(q.prefetch_count);
                    } else {
                        c.consumer_prefetch = u32::from(q.prefetch_count);
                    }
                    c.wake_dispatchers();
                }
                self.send(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                )
                .await;
                Ok(())
            }
            basic::AMQPMethod::Consume(c) => self.consume(ch, c).await,
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str().to_string();
                self.cancel(ch, &tag).await;
                if !c.nowait {
                    self.send(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        })),
                    )
                    .await;
                }
                Ok(())
            }
            basic::AMQPMethod::Get(g) => self.get(ch, g).await,
            basic::AMQPMethod::Ack(a) => {
                self.settle_or_hold(ch, a.delivery_tag, a.multiple, Outcome::Accept)
                    .await
            }
            basic::AMQPMethod::Nack(n) => {
                let o = if n.requeue {
                    Outcome::Release
                } else {
                    Outcome::Reject
                };
                self.settle_or_hold(ch, n.delivery_tag, n.multiple, o).await
            }
            basic::AMQPMethod::Reject(r) => {
                let o = if r.requeue {
                    Outcome::Release
                } else {
                    Outcome::Reject
                };
                self.settle_or_hold(ch, r.delivery_tag, false, o).await
            }
            basic::AMQPMethod::Recover(_) | basic::AMQPMethod::RecoverAsync(_) => {
                let tags: Vec<u64> = match self.channels.get(&ch) {
                    Some(c) => c.shared().unacked.keys().copied().collect(),
                    None => Vec::new(),
                };
                if let Some(last) = tags.last() {
                    self.settle(ch, *last, true, Outcome::Release, false)
                        .await?;
                }
                if matches!(m, basic::AMQPMethod::Recover(_)) {
                    self.send(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                    )
                    .await;
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid("unexpected basic method")),
        }
    }

    async fn settle_or_hold(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        o: Outcome,
    ) -> AmqpResult<()> {
        if let Some(c) = self.channels.get_mut(&ch) {
            if c.tx_mode {
                // Checked now, applied at tx.commit.
                let known = multiple || c.shared().unacked.contains_key(&tag);
                if !known {
                    return Err(AmqpError::precondition_failed(format!(
                        "unknown delivery tag {tag}"
                    )));
                }
                c.tx_settles.push((tag, multiple, o));
                return Ok(());
            }
        }
        self.settle(ch, tag, multiple, o, true).await
    }

    /// Settles deliveries `tag` (and with `multiple` every earlier one; tag 0 with
    /// `multiple` = all). Errors: 406 PRECONDITION_FAILED for an unknown tag (checked when
    /// `strict`).
    async fn settle(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        o: Outcome,
        strict: bool,
    ) -> AmqpResult<()> {
        let Some(c) = self.channels.get(&ch) else {
            return Ok(());
        };
        let taken: Vec<Unacked> = {
            let mut s = c.shared();
            let tags: Vec<u64> = if multiple {
                let upto = if tag == 0 { u64::MAX } else { tag };
                s.unacked.range(..=upto).map(|(t, _)| *t).collect()
            } else if s.unacked.contains_key(&tag) {
                vec![tag]
            } else {
                Vec::new()
            };
            if tags.is_empty() && strict && !(multiple && tag == 0) {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            let mut out = Vec::with_capacity(tags.len());
            for t in tags {
                if let Some(u) = s.unacked.remove(&t) {
                    if let Some(ct) = &u.consumer_tag {
                        if let Some(n) = s.per_consumer.get_mut(ct) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    out.push(u);
                }
            }
            out
        };
        type Group = (Sessions, Option<Arc<Notify>>, Vec<Settle>);
        let mut by_member: BTreeMap<(String, String), Group> = BTreeMap::new();
        for u in taken {
            let outcome = match o {
                Outcome::Reject => {
                    let dlx = self.amqp.registry().queues.get(&u.queue).is_some_and(|q| {
                        q.arguments.inner().contains_key("x-dead-letter-exchange")
                    });
                    if dlx {
                        Outcome::DeadLetter("rejected")
                    } else {
                        Outcome::Reject
                    }
                }
                o => o,
            };
            by_member
                .entry((u.member, u.queue))
                .or_insert_with(|| (u.sessions.clone(), u.wake.clone(), Vec::new()))
                .2
                .push(Settle {
                    key: u.key,
                    offset: u.offset,
                    outcome,
                });
        }
        for ((member, qname), (sessions, wake, items)) in by_member {
            let Some(queue) = self.amqp.queue(&qname) else {
                continue;
            };
            // A release wakes the dispatcher once applied (the message is there to deliver
            // again, at its place); other settlements return credit at once.
            let releases = items.iter().any(|i| i.outcome == Outcome::Release);
            let op = match wake {
                Some(wake) if !releases => {
                    wake.notify_one();
                    SessionOp::Settle {
                        member,
                        queue,
                        items,
                        done: None,
                    }
                }
                Some(wake) => SessionOp::SettleAndWake {
                    member,
                    queue,
                    items,
                    wake,
                },
                None => SessionOp::Settle {
                    member,
                    queue,
                    items,
                    done: None,
                },
            };
            if !self.unapplied.iter().any(|u| u.same_channel(&sessions)) {
                self.unapplied.push(sessions.clone());
            }
            let _ = sessions.send(op);
        }
        Ok(())
    }

    /// Returns once every settlement this connection sent so far is applied by its session
    /// task (its own and the dispatchers').
    async fn settled_applied(&mut self) {
        let mut waits = Vec::new();
        for s in std::iter::once(self.sessions.clone()).chain(self.unapplied.drain(..)) {
            let (tx, rx) = oneshot::channel();
            if s.send(SessionOp::Barrier { done: tx }).is_ok() {
                waits.push(rx);
            }
        }
        for rx in waits {
            let _ = rx.await;
        }
    }

    async fn consume(&mut self, ch: u16, c: basic::Consume) -> AmqpResult<()> {
        let qname = self.queue_name(ch, c.queue.as_str())?;
        let q = self.usable_queue(&qname)?;
        let mut tag = c.consumer_tag.as_str().to_string();
        if tag.is_empty() {
            tag = server_name("amq.ctag-");
        }
        let Some(chan) = self.channels.get(&ch) else {
            return Ok(());
        };
        if chan.consumers.contains_key(&tag) {
            return Err(
                AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")).on(60, 20),
            );
        }
        if c.exclusive && q.consumers > 0 {
            return Err(AmqpError::access_refused(format!(
                "queue '{qname}' in vhost '/' in exclusive use"
            )));
        }
        let prefetch = chan.consumer_prefetch;
        let shared = Arc::clone(&chan.shared);
        let dispatcher = self.amqp.dispatcher(&q).await?;
        // Messages this channel requeued before the consume are back at their places before
        // the new consumer is given any (else it could get later ones first).
        self.settled_applied().await;
        if !c.nowait {
            self.send(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: ss(tag.clone()),
                })),
            )
            .await;
        }
        self.amqp.add_consumer(
            &qname,
            ConsumerRef {
                connection_id: self.id,
                channel: ch,
                consumer_tag: tag.clone(),
                events: self.events.clone(),
            },
        );
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .per_consumer
            .insert(tag.clone(), 0);
        dispatcher.add(Subscriber {
            connection_id: self.id,
            channel: ch,
            tag: tag.clone(),
            no_ack: c.no_ack,
            prefetch,
            shared,
            out: self.out.clone(),
            frame_max: self.frame_max,
        });
        if let Some(chan) = self.channels.get_mut(&ch) {
            chan.consumers.insert(
                tag,
                Consumer {
                    queue: qname,
                    dispatcher,
                },
            );
        }
        Ok(())
    }

    /// Stops consumer `tag` (its deliveries stay settleable on the channel); an
    /// auto-delete queue left without consumers is deleted.
    async fn cancel(&mut self, ch: u16, tag: &str) {
        let Some(chan) = self.channels.get_mut(&ch) else {
            return;
        };
        let Some(consumer) = chan.consumers.remove(tag) else {
            return;
        };
        consumer.dispatcher.remove(self.id, ch, tag).await;
        if self.amqp.remove_consumer(&consumer.queue, self.id, ch, tag) {
            let _ = self.amqp.delete_queue(&consumer.queue, false, false).await;
        }
    }

    /// The queue of consumer `tag` was deleted: stop it and tell the client.
    async fn server_cancel(&mut self, ch: u16, tag: &str) {
        let Some(chan) = self.channels.get_mut(&ch) else {
            return;
        };
        let Some(consumer) = chan.consumers.remove(tag) else {
            return;
        };
        consumer.dispatcher.remove(self.id, ch, tag).await;
        self.send(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: ss(tag.to_string()),
                nowait: true,
            })),
        )
        .await;
    }

    async fn get(&mut self, ch: u16, g: basic::Get) -> AmqpResult<()> {
        let qname = self.queue_name(ch, g.queue.as_str())?;
        let q = self.usable_queue(&qname)?;
        let existing = self
            .channels
            .get(&ch)
            .and_then(|c| c.get_members.get(&qname).cloned());
        let (member, plan) = match existing {
            Some(m) => (m, None),
            None => {
                let m = format!("amqp/{}/{}/get/{}", self.id, ch, qname);
                let plan = self.open_member(&m, &q).await?;
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.get_members.insert(qname.clone(), m.clone());
                    c.members.push((m.clone(), qname.clone()));
                }
                (m, Some(plan))
            }
        };
        if let Some(rec) = self.amqp.registry().queues.get_mut(&qname) {
            rec.last_used_ms = shoal_broker::clock::now_ms();
        }
        let lock = self.amqp.config.consumer_timeout_ms;
        // Settlements sent before this basic.get are applied first (a requeued message is
        // there to get again).
        self.settled_applied().await;
        loop {
            let got = match &plan {
                Some(p) => {
                    queues::acquire_planned(
                        &self.amqp.broker,
                        &q,
                        &member,
                        p.clone(),
                        1,
                        lock,
                        None,
                    )
                    .await?
                }
                None => queues::acquire(&self.amqp.broker, &q, &member, 1, lock).await?,
            };
            let Some(a) = got.into_iter().next() else {
                self.send(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                )
                .await;
                return Ok(());
            };
            let now = shoal_broker::clock::now_ms();
            let ttl = q.int_arg("x-message-ttl");
            let expired = a.message.timestamp_ms < 0
                || message::expires_at(&a.message, ttl).is_some_and(|t| t <= now);
            if expired {
                let outcome = if a.message.timestamp_ms < 0 {
                    Outcome::Gap
                } else if q.arguments.inner().contains_key("x-dead-letter-exchange") {
                    Outcome::DeadLetter("expired")
                } else {
                    Outcome::Reject
                };
                let (tx, rx) = oneshot::channel();
                let _ = self.sessions.send(SessionOp::Settle {
                    member: member.clone(),
                    queue: q.clone(),
                    items: vec![Settle {
                        key: a.key,
                        offset: a.offset,
                        outcome,
                    }],
                    done: Some(tx),
                });
                let _ = rx.await;
                continue;
            }
            let (ready, _) = queues::counts(&self.amqp.broker, &q).await;
            let Some(c) = self.channels.get(&ch) else {
                return Ok(());
            };
            let tag = {
                let mut s = c.shared();
                let t = s.next_tag;
                s.next_tag += 1;
                if !g.no_ack {
                    s.unacked.insert(
                        t,
                        Unacked {
                            consumer_tag: None,
                            member: member.clone(),
                            queue: qname.clone(),
                            key: a.key.clone(),
                            offset: a.offset,
                            sessions: self.sessions.clone(),
                            wake: None,
                        },
                    );
                }
                t
            };
            let mut b = Vec::new();
            frame::write_message(
                &mut b,
                ch,
                AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                    delivery_tag: tag,
                    redelivered: a.delivery_count > 1,
                    exchange: ss(a.message.exchange.clone()),
                    routing_key: ss(a.message.routing_key.clone()),
                    message_count: u32::try_from(ready).unwrap_or(u32::MAX),
                })),
                a.message.properties.clone(),
                &a.message.body,
                self.frame_max,
            );
            let _ = self.out.send(b).await;
            self.amqp.stats.queue(&q.name).delivered(1);
            if g.no_ack {
                let _ = self.sessions.send(SessionOp::Settle {
                    member,
                    queue: q,
                    items: vec![Settle {
                        key: a.key,
                        offset: a.offset,
                        outcome: Outcome::AutoAccept,
                    }],
                    done: None,
                });
            }
            return Ok(());
        }
    }

    /// Stops a channel's consumers and releases everything it has not settled (each
    /// delivery back to its queue at once, redelivered with `redelivered=true`).
    async fn release_channel(&mut self, ch: u16) {
        let Some(chan) = self.channels.get_mut(&ch) else {
            return;
        };
        let consumers: Vec<(String, Consumer)> = chan.consumers.drain().collect();
        let members = std::mem::take(&mut chan.members);
        chan.get_members.clear();
        chan.confirms = None;
        let shared = Arc::clone(&chan.shared);
        let mut auto_delete = Vec::new();
        for (tag, c) in consumers {
            c.dispatcher.remove(self.id, ch, &tag).await;
            if self.amqp.remove_consumer(&c.queue, self.id, ch, &tag) {
                auto_delete.push(c.queue.clone());
            }
        }
        let unacked: Vec<Unacked> = {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.per_consumer.clear();
            std::mem::take(&mut s.unacked).into_values().collect()
        };
        let mut by_member: BTreeMap<(String, String), (Sessions, Vec<Settle>)> = BTreeMap::new();
        for u in unacked {
            if let Some(w) = &u.wake {
                w.notify_one();
            }
            by_member
                .entry((u.member, u.queue))
                .or_insert_with(|| (u.sessions.clone(), Vec::new()))
                .1
                .push(Settle {
                    key: u.key,
                    offset: u.offset,
                    outcome: Outcome::Release,
                });
        }
        let mut waits = Vec::new();
        for ((member, qname), (sessions, items)) in by_member {
            let Some(queue) = self.amqp.queue(&qname) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            let _ = sessions.send(SessionOp::Settle {
                member,
                queue,
                items,
                done: Some(tx),
            });
            waits.push(rx);
        }
        for (member, queue) in members {
            let (tx, rx) = oneshot::channel();
            let _ = self.sessions.send(SessionOp::Close {
                member,
                queue,
                done: Some(tx),
            });
            waits.push(rx);
        }
        for w in waits {
            let _ = w.await;
        }
        auto_delete.sort();
        auto_delete.dedup();
        for q in auto_delete {
            let _ = self.amqp.delete_queue(&q, false, false).await;
        }
    }

    /// Everything a closed connection leaves: channels released, exclusive queues deleted.
    async fn cleanup(&mut self) {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for ch in ids {
            self.release_channel(ch).await;
        }
        self.channels.clear();
        for q in std::mem::take(&mut self.exclusive_queues) {
            let _ = self.amqp.delete_queue(&q, false, false).await;
        }
    }
}

/// Appends the `basic.return` (312 NO_ROUTE) of an unroutable mandatory publish.
fn write_return(out: &mut Vec<u8>, ch: u16, p: &Publish, frame_max: usize) {
    frame::write_message(
        out,
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: ss("NO_ROUTE"),
            exchange: ss(p.exchange.clone()),
            routing_key: ss(p.routing_key.clone()),
        })),
        p.message.properties.clone(),
        &p.message.body,
        frame_max,
    );
}

/// A channel's confirm stream: each item confirmed once its partitions are durable, in
/// order (so `multiple=true` never covers a message not yet durable).
fn spawn_confirms(
    broker: Arc<shoal_broker::Broker>,
    out: mpsc::Sender<Vec<u8>>,
    ch: u16,
) -> mpsc::UnboundedSender<ConfirmItem> {
    let (tx, mut rx) = mpsc::unbounded_channel::<ConfirmItem>();
    tokio::spawn(async move {
        while let Some(mut item) = rx.recv().await {
            // Items that arrived meanwhile share one fsync.
            let mut more = Vec::new();
            while let Ok(next) = rx.try_recv() {
                more.push(next);
            }
            let mut parts = std::mem::take(&mut item.parts);
            for m in &mut more {
                parts.append(&mut m.parts);
            }
            let synced = parts.is_empty() || broker.flusher.sync(parts).await.is_ok();
            let mut b = Vec::new();
            for it in std::iter::once(item).chain(more) {
                if synced && it.nacks.is_empty() {
                    frame::write_method(
                        &mut b,
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: it.last,
                            multiple: it.last > it.first,
                        })),
                    );
                } else {
                    for seq in it.first..=it.last {
                        let nack = !synced || it.nacks.contains(&seq);
                        let m = if nack {
                            basic::AMQPMethod::Nack(basic::Nack {
                                delivery_tag: seq,
                                multiple: false,
                                requeue: false,
                            })
                        } else {
                            basic::AMQPMethod::Ack(basic::Ack {
                                delivery_tag: seq,
                                multiple: false,
                            })
                        };
                        frame::write_method(&mut b, ch, AMQPClass::Basic(m));
                    }
                }
            }
            if out.send(b).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// Every 100 ms until `shutdown`: expires messages at the head of queues with
/// `x-message-ttl` or a dead-letter exchange (dead-lettered with reason `expired`, or
/// dropped), drops the oldest ready messages of queues over `x-max-length` (drop-head;
/// reason `maxlen`), and deletes queues unused for their `x-expires`.
pub async fn expiry_loop(amqp: Arc<Amqp>, mut shutdown: watch::Receiver<bool>) {
    let sessions = session::spawn(Arc::clone(&amqp), 0);
    let mut opened: HashMap<String, String> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
        let now = shoal_broker::clock::now_ms();
        let queues: Vec<Queue> = amqp.registry().queues.values().cloned().collect();
        for q in queues {
            if let Some(expires) = q.int_arg("x-expires") {
                if q.consumers == 0 && now - q.last_used_ms >= expires {
                    tracing::info!(queue = %q.name, "queue unused for x-expires; deleting");
                    let _ = amqp.delete_queue(&q.name, false, false).await;
                    opened.remove(&q.name);
                    continue;
                }
            }
            let ttl = q.int_arg("x-message-ttl");
            let dlx = q.arguments.inner().contains_key("x-dead-letter-exchange");
            let drop_head = match q.str_arg("x-overflow").as_deref() {
                None | Some("drop-head") => q.int_arg("x-max-length"),
                _ => None,
            };
            if ttl.is_none() && !dlx && drop_head.is_none() {
                continue;
            }
            let member = match opened.get(&q.name) {
                Some(m) => m.clone(),
                None => {
                    let m = format!("amqp/expiry/{}", q.name);
                    let (tx, rx) = oneshot::channel();
                    let _ = sessions.send(SessionOp::Open {
                        member: m.clone(),
                        queue: q.clone(),
                        reply: tx,
                    });
                    if !matches!(rx.await, Ok(Ok(_))) {
                        continue;
                    }
                    opened.insert(q.name.clone(), m.clone());
                    m
                }
            };
            if let Some(max) = drop_head {
                // `x-max-length` (drop-head): the oldest ready messages over the limit go,
                // dead-lettered with reason `maxlen` when the queue has a dead-letter exchange.
                let (ready, _) = queues::counts(&amqp.broker, &q).await;
                let excess = i64::try_from(ready).unwrap_or(i64::MAX) - max;
                if excess > 0 {
                    let n = usize::try_from(excess).unwrap_or(0).min(10_000);
                    if let Ok(got) = queues::acquire(&amqp.broker, &q, &member, n, 60_000).await {
                        let items: Vec<Settle> = got
                            .into_iter()
                            .map(|a| Settle {
                                key: a.key,
                                offset: a.offset,
                                outcome: if dlx {
                                    Outcome::DeadLetter("maxlen")
                                } else {
                                    Outcome::Reject
                                },
                            })
                            .collect();
                        if !items.is_empty() {
                            crate::session::settle_and_wait(
                                &sessions,
                                member.clone(),
                                q.clone(),
                                items,
                            )
                            .await;
                        }
                    }
                }
                if ttl.is_none() && !dlx {
                    continue;
                }
            }
            let plan = match amqp
                .broker
                .groups
                .share_plan(q.name.clone(), member.clone())
                .await
            {
                Ok(p) => p,
                Err(_) => continue,
            };
            let expired = |m: &Message| message::expires_at(m, ttl).is_some_and(|t| t <= now);
            let got = match queues::acquire_planned(
                &amqp.broker,
                &q,
                &member,
                plan,
                1000,
                60_000,
                Some(&expired),
            )
            .await
            {
                Ok(g) => g,
                Err(_) => continue,
            };
            if got.is_empty() {
                continue;
            }
            let items = got
                .into_iter()
                .map(|a| Settle {
                    key: a.key,
                    offset: a.offset,
                    outcome: if dlx {
                        Outcome::DeadLetter("expired")
                    } else {
                        Outcome::Reject
                    },
                })
                .collect();
            let (tx, rx) = oneshot::channel();
            let _ = sessions.send(SessionOp::Settle {
                member,
                queue: q.clone(),
                items,
                done: Some(tx),
            });
            let _ = rx.await;
        }
        opened.retain(|name, _| amqp.registry().queues.contains_key(name));
    }
}
