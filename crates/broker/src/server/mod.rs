//! The Kafka listener: accepts connections and runs, per connection, a reader that takes
//! length-prefixed frames and hands each to [`crate::handlers::dispatch`], and a writer that
//! writes the responses in request order.
//!
//! Pipelining: a Produce is appended by the reader at once, in arrival order, and its answer
//! (which waits for the fsync when acks=-1) is queued for the writer; the reader goes on with
//! the next request while earlier Produce requests wait for durability, so one connection
//! keeps the disk busy. Other requests are handled one at a time. At most
//! [`MAX_IN_FLIGHT`] answers wait per connection; beyond that the reader stops reading (the
//! client sees back-pressure instead of the broker buffering without bound).
//!
//! Bounds: a frame larger than `socket.request.max.bytes` (or negative, or too small to hold a
//! header) closes the connection before anything is allocated for it; connections beyond
//! `max.connections`, or beyond `max.connections.per.ip` (`max.connections.per.ip.overrides`)
//! from one address, are closed at accept; a connection idle for `connections.max.idle.ms`
//! (or that takes that long to send one frame) is closed; a TLS handshake, and on SASL
//! listeners the authentication, must finish within `connections.handshake.timeout.ms` of the
//! accept; a frame's buffer grows with the bytes that arrive, not with the length claimed;
//! with `queued.max.request.bytes` set, a frame that has arrived is handled only once the
//! requests read and not yet handled, over all connections, leave room for it (a frame larger
//! than the whole limit waits for all of it). Refusals are counted in
//! `shoal_connections_refused_total{reason}`.
//!
//! Frames are read into one buffer per connection and split off it without copying; a
//! Produce's batches are written to the log straight from that buffer. A Fetch answer may
//! come in parts, stored batches among them as file ranges, which the writer sends with
//! `sendfile`.
//!
//! Listeners ([`listener`]): one accept loop per `listeners` entry, all sharing
//! `max.connections`. On SSL listeners ([`tls`]) the TLS handshake must finish within
//! `connections.max.idle.ms`; a Fetch's stored batches then go through the TLS stream in
//! 256 KiB reads instead of `sendfile` (as Kafka, which also loses zero-copy under TLS). The
//! connection's principal ([`crate::auth::principal`]) is `User:ANONYMOUS` unless a client
//! certificate names it.
//!
//! Client quotas ([`crate::auth::quota`]): a request a quota throttles is answered at once
//! with its `throttle_time_ms`, then the connection reads no further request for that long
//! (KIP-219: muted, as Kafka's `KafkaChannel` is while throttled).
//!
//! Graceful shutdown (after mini-redis's `server.rs`): when `shutdown` turns true the listener
//! stops accepting and is closed; every connection stops reading new requests (a frame not yet
//! fully received is dropped with the connection), finishes the requests it is handling and
//! writes their answers, then closes. [`serve`] returns once every connection task has ended,
//! or after [`SHUTDOWN_DRAIN_TIMEOUT`], whichever comes first; the caller then syncs the logs.

pub mod listener;
pub mod sasl;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::auth::principal::KafkaPrincipal;
use crate::handlers::{self, ConnInfo, Outcome};
use crate::state::Broker;
use listener::{Endpoint, SecurityProtocol};

/// A bound `listeners` entry, ready to accept.
#[derive(Debug)]
pub struct BoundListener {
    /// Its entry, with the port it is bound to.
    pub endpoint: Endpoint,
    pub protocol: SecurityProtocol,
    pub tcp: TcpListener,
    /// Set for SSL and SASL_SSL.
    pub tls: Option<tls::TlsListener>,
}

/// Smallest valid request: api_key, api_version, correlation_id, client_id length.
const MIN_FRAME: i32 = 10;

/// Answers that may be pending per connection (pipelined Produce requests).
pub const MAX_IN_FLIGHT: usize = 64;

/// How long shutdown waits for connections to finish the requests they are handling (a
/// long-poll Fetch waits up to its `max_wait_ms`, an acks=-1 Produce for its fsync). Longer
/// waits (a JoinGroup parked for a rebalance) are cut off: their clients retry elsewhere or
/// after the restart, as after a crash. Well under the 30 s that service managers (systemd's
/// `TimeoutStopSec`, Kubernetes' grace period) give before SIGKILL, leaving time for the final
/// log sync.
pub const SHUTDOWN_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connection ids, unique in this process (share sessions remember theirs).
static NEXT_CONNECTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Accepts connections on every listener until `shutdown` becomes true, then waits (at most
/// [`SHUTDOWN_DRAIN_TIMEOUT`]) for the open connections to answer the requests they are
/// handling and close.
pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<BoundListener>,
    shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let limits = Arc::new(Limits::new(&broker.config));
    // Every connection task holds a clone; `recv` returns `None` once all are dropped.
    let (running, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(accept(
                Arc::clone(&broker),
                l,
                Arc::clone(&open),
                Arc::clone(&limits),
                running.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for a in accepting {
        let _ = a.await;
    }
    drop(running);
    let busy = open.load(Ordering::Relaxed);
    if busy > 0 {
        tracing::info!(
            connections = busy,
            "stopped accepting; waiting for open connections to finish their requests"
        );
    }
    if tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open.load(Ordering::Relaxed),
            timeout_ms = SHUTDOWN_DRAIN_TIMEOUT.as_millis() as u64,
            "connections still busy at the shutdown timeout; their requests are abandoned"
        );
    }
}

/// Limits shared by every listener's connections.
struct Limits {
    /// Open connections per peer address.
    per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// `queued.max.request.bytes` as permits, one per byte of a frame being read or handled.
    queued: Option<Arc<tokio::sync::Semaphore>>,
    queued_max: u32,
}

impl Limits {
    fn new(config: &crate::config::BrokerConfig) -> Self {
        let queued_max = u32::try_from(config.queued_max_request_bytes.max(0))
            .unwrap_or(u32::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS as u32);
        Self {
            per_ip: Default::default(),
            queued: (config.queued_max_request_bytes > 0)
                .then(|| Arc::new(tokio::sync::Semaphore::new(queued_max as usize))),
            queued_max,
        }
    }

    /// Counts a connection from `ip`; false (nothing counted) if it would exceed the
    /// address's limit.
    fn admit(&self, config: &crate::config::BrokerConfig, ip: std::net::IpAddr) -> bool {
        let limit = config
            .max_connections_per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(config.max_connections_per_ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: std::net::IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// One listener's accept loop; returns (closing the listener) once `shutdown` is true.
async fn accept(
    broker: Arc<Broker>,
    listener: BoundListener,
    open: Arc<AtomicUsize>,
    limits: Arc<Limits>,
    running: tokio::sync::mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name: Arc<str> = Arc::from(listener.endpoint.name.as_str());
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, listener = %name, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.load(Ordering::Relaxed) >= broker.config.max_connections {
                    tracing::debug!(%peer, "max.connections reached; closing new connection");
                    broker.metrics.connection_refused("max.connections");
                    drop(stream);
                    continue;
                }
                if !limits.admit(&broker.config, peer.ip()) {
                    tracing::debug!(%peer, "max.connections.per.ip reached; closing new connection");
                    broker.metrics.connection_refused("max.connections.per.ip");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::Relaxed);
                broker.metrics.connection_opened();
                let broker = Arc::clone(&broker);
                let open = Arc::clone(&open);
                let shutdown = shutdown.clone();
                let running = running.clone();
                let tls = listener.tls.clone();
                let limits = Arc::clone(&limits);
                let sasl = listener.protocol.sasl();
                let conn = ConnInfo {
                    peer,
                    id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                    listener: Arc::clone(&name),
                    principal: Arc::new(KafkaPrincipal::anonymous()),
                    mute_ms: Default::default(),
                };
                tokio::spawn(async move {
                    let metrics = Arc::clone(&broker.metrics);
                    let groups = broker.groups.clone();
                    let id = conn.id;
                    let conn_limits = Arc::clone(&limits);
                    if let Err(e) = connection(broker, stream, conn, tls, sasl, &conn_limits, shutdown).await {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    conn_limits.release(peer.ip());
                    // Share-group records acquired over this connection go back at once.
                    groups.connection_closed(id);
                    open.fetch_sub(1, Ordering::Relaxed);
                    metrics.connection_closed();
                    drop(running);
                });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut conn: ConnInfo,
    tls: Option<tls::TlsListener>,
    sasl: bool,
    limits: &Limits,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let accepted = tokio::time::Instant::now();
    let handshake = std::time::Duration::from_millis(
        broker.config.connections_handshake_timeout_ms.max(1) as u64,
    );
    let sasl = sasl.then(|| sasl::SaslConn::new(&broker, &conn.listener));
    let limits = Conn {
        limits,
        handshake_deadline: accepted + handshake,
    };
    let Some(tls) = tls else {
        let (rd, wr) = stream.into_split();
        return serve_connection(broker, rd, Writer::Plain(wr), conn, sasl, limits, shutdown).await;
    };
    let stream = match tls.handshake(stream, handshake).await {
        Ok((stream, principal)) => {
            conn.principal = Arc::new(principal);
            stream
        }
        Err(e) => {
            tracing::info!(peer = %conn.peer, listener = %conn.listener, error = %e, "TLS connection refused");
            if e.is_failure() {
                broker.metrics.failed_authentication();
            }
            return Ok(());
        }
    };
    tracing::debug!(peer = %conn.peer, listener = %conn.listener, principal = %conn.principal, "TLS connection established");
    let (rd, wr) = tokio::io::split(stream);
    serve_connection(broker, rd, Writer::Tls(wr), conn, sasl, limits, shutdown).await
}

/// A connection's view of the [`Limits`].
struct Conn<'a> {
    limits: &'a Limits,
    /// On SASL listeners, authentication must be done by then.
    handshake_deadline: tokio::time::Instant,
}

async fn serve_connection<R: AsyncRead + Unpin + Send>(
    broker: Arc<Broker>,
    rd: R,
    wr: Writer,
    mut conn: ConnInfo,
    sasl: Option<sasl::SaslConn>,
    limits: Conn<'_>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Outcome>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(wr, rx, conn.peer));
    let read = read_requests(
        Arc::clone(&broker),
        rd,
        &mut conn,
        sasl,
        limits,
        shutdown,
        tx,
    )
    .await;
    // The writer finishes the answers already queued, then ends.
    let written = writer
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    read.and(written)
}

/// The sending half of a connection.
enum Writer {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<tls::TlsStream>),
}

/// Bytes of a stored range read per step when it cannot be `sendfile`d (TLS).
const TLS_FILE_CHUNK: usize = 256 * 1024;

impl Writer {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Plain(w) => w.write_all(b).await,
            Writer::Tls(w) => w.write_all(b).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Plain(w) => w.flush().await,
            Writer::Tls(w) => w.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Plain(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
        }
    }

    /// A stored range: `sendfile` on plain TCP; read and encrypted in
    /// [`TLS_FILE_CHUNK`] steps under TLS.
    ///
    /// Errors: socket or file errors; `UnexpectedEof` if the file is shorter than the range.
    async fn send_file(&mut self, slice: &shoal_log::FileSlice) -> std::io::Result<()> {
        match self {
            Writer::Plain(w) => send_file(w, slice).await,
            Writer::Tls(w) => {
                let mut pos = slice.position;
                let end = slice.position + slice.len as u64;
                while pos < end {
                    let n = usize::try_from(end - pos)
                        .unwrap_or(TLS_FILE_CHUNK)
                        .min(TLS_FILE_CHUNK);
                    let file = Arc::clone(&slice.file);
                    let chunk = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; n];
                        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, pos)?;
                        Ok::<_, std::io::Error>(buf)
                    })
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??;
                    w.write_all(&chunk).await?;
                    pos += n as u64;
                }
                Ok(())
            }
        }
    }
}

/// Writes each answer in order, waiting for deferred ones; stops at a `Close` or a write
/// error (dropping `rx`, which stops the reader).
async fn write_responses(
    mut wr: Writer,
    mut rx: tokio::sync::mpsc::Receiver<Outcome>,
    peer: SocketAddr,
) -> std::io::Result<()> {
    while let Some(mut outcome) = rx.recv().await {
        if let Outcome::Deferred(fut) = outcome {
            outcome = fut.await;
        }
        match outcome {
            Outcome::Respond(resp) => {
                wr.write_all(&resp).await?;
                // TLS keeps records it could not write yet; plain TCP has nothing to flush.
                wr.flush().await?;
            }
            Outcome::RespondParts(parts) => {
                for part in parts {
                    match part {
                        handlers::Part::Bytes(b) => wr.write_all(&b).await?,
                        handlers::Part::File(f) => wr.send_file(&f).await?,
                    }
                }
                wr.flush().await?;
            }
            Outcome::NoResponse | Outcome::Deferred(_) => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                let _ = wr.shutdown().await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads from `rd` into `buf` until it holds at least `want` bytes, growing the buffer with
/// the bytes that arrive (at most doubling what is already there, from 64 KiB) rather than
/// with a length the client claims. `Ok(false)`: the peer closed the connection, or the
/// bytes did not arrive before `deadline`, or the broker is shutting down.
async fn fill<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    want: usize,
    deadline: tokio::time::Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<bool> {
    while buf.len() < want {
        let missing = want - buf.len();
        buf.reserve(missing.min(buf.len().max(READ_CHUNK)));
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, rd.read_buf(buf)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(false),
            },
            _ = shutdown.changed() => return Ok(false),
        };
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Smallest read-buffer growth step (bytes).
const READ_CHUNK: usize = 64 * 1024;

/// Sends a range of a segment file with `sendfile(2)`: from the page cache to the socket,
/// never through the broker's memory.
///
/// Errors: socket errors; `UnexpectedEof` if the file is shorter than the range (cannot
/// happen: stored batches never shrink while a handle is open), which closes the connection
/// rather than send a short frame.
async fn send_file(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    slice: &shoal_log::FileSlice,
) -> std::io::Result<()> {
    // Whatever was written before goes first.
    wr.flush().await?;
    let sock: &TcpStream = wr.as_ref();
    let mut pos = slice.position;
    let end = slice.position + slice.len as u64;
    while pos < end {
        sock.writable().await?;
        let want = usize::try_from(end - pos).unwrap_or(usize::MAX);
        let sent = sock.try_io(tokio::io::Interest::WRITABLE, || {
            rustix::fs::sendfile(sock, &*slice.file, Some(&mut pos), want).map_err(Into::into)
        });
        match sent {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_requests<R: AsyncRead + Unpin>(
    broker: Arc<Broker>,
    mut rd: R,
    conn: &mut ConnInfo,
    mut sasl: Option<sasl::SaslConn>,
    limits: Conn<'_>,
    mut shutdown: watch::Receiver<bool>,
    tx: tokio::sync::mpsc::Sender<Outcome>,
) -> std::io::Result<()> {
    // One buffer per connection: frames are split off it without copying, and once a
    // frame's bytes are dropped (a Produce drops them as soon as its batches are written)
    // `reserve` reuses the same allocation for the next ones.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let max = broker.config.socket_request_max_bytes;
    let idle =
        std::time::Duration::from_millis(broker.config.connections_max_idle_ms.max(1) as u64);
    loop {
        // Shutting down: no new request, even one already in the buffer.
        if *shutdown.borrow() {
            return Ok(());
        }
        // Until a SASL connection has authenticated, the handshake deadline applies too.
        let authenticating = sasl.as_ref().is_some_and(|s| !s.is_authenticated());
        let bound = |deadline: tokio::time::Instant| {
            if authenticating {
                deadline.min(limits.handshake_deadline)
            } else {
                deadline
            }
        };
        let deadline = bound(tokio::time::Instant::now() + idle);
        if !fill(&mut rd, &mut buf, 4, deadline, &mut shutdown).await? {
            if authenticating && tokio::time::Instant::now() >= limits.handshake_deadline {
                tracing::info!(peer = %conn.peer, "SASL authentication not done within connections.handshake.timeout.ms; closing");
                broker.metrics.connection_refused("handshake.timeout");
                return Ok(());
            }
            if !buf.is_empty() {
                tracing::debug!(peer = %conn.peer, "connection closed or idle mid-frame");
            }
            return Ok(());
        }
        let len = buf
            .get(0..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i32::from_be_bytes);
        // Before authentication, `sasl.server.max.receive.size` bounds frames; a v0 raw SASL
        // token has no request header, so it may be shorter than one.
        let (min, max) = match sasl.as_ref() {
            Some(s) if !s.is_authenticated() => (
                if s.expects_raw_token() { 0 } else { MIN_FRAME },
                max.min(broker.config.sasl_server_max_receive_size),
            ),
            _ => (MIN_FRAME, max),
        };
        if !(min..=max).contains(&len) {
            tracing::warn!(peer = %conn.peer, frame_bytes = len, max_bytes = max, "request frame size out of bounds; closing connection");
            return Ok(());
        }
        // A frame must arrive within the idle timeout.
        let deadline = bound(tokio::time::Instant::now() + idle);
        if !fill(&mut rd, &mut buf, 4 + len as usize, deadline, &mut shutdown).await? {
            tracing::warn!(peer = %conn.peer, frame_bytes = len, "request frame not received within connections.max.idle.ms; closing");
            return Ok(());
        }
        // `queued.max.request.bytes`: room for this frame among those read and not yet
        // handled (taken once it has arrived, so a client sending slowly holds none).
        let _queued = match &limits.limits.queued {
            Some(sem) => {
                let want = u32::try_from(len)
                    .unwrap_or(u32::MAX)
                    .min(limits.limits.queued_max);
                tokio::select! {
                    p = Arc::clone(sem).acquire_many_owned(want) => p.ok(),
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            None => None,
        };
        buf.advance(4);
        let frame = buf.split_to(len as usize).freeze();
        if let Some(s) = sasl.as_mut() {
            if let sasl::Intercept::Answer { outcomes, close } = s.intercept(&broker, &frame, conn)
            {
                for o in outcomes {
                    if tx.send(o).await.is_err() {
                        return Ok(());
                    }
                }
                if close {
                    return Ok(());
                }
                continue;
            }
        }
        let api = frame
            .get(0..2)
            .and_then(|b| b.try_into().ok())
            .map(i16::from_be_bytes)
            .and_then(|k| kafka_protocol::messages::ApiKey::try_from(k).ok())
            .map(|k| format!("{k:?}"));
        let started = std::time::Instant::now();
        let outcome = match handlers::dispatch(&broker, frame, conn).await {
            Outcome::Deferred(fut) => {
                let metrics = Arc::clone(&broker.metrics);
                Outcome::Deferred(Box::pin(async move {
                    let o = fut.await;
                    if let Some(api) = api {
                        metrics.request(&api, started.elapsed());
                    }
                    o
                }))
            }
            other => {
                if let Some(api) = api {
                    broker.metrics.request(&api, started.elapsed());
                }
                other
            }
        };
        let closing = matches!(outcome, Outcome::Close(_));
        if tx.send(outcome).await.is_err() || closing {
            return Ok(()); // the writer stopped (write error or close)
        }
        // A client quota throttled the request: read nothing more from this client for that
        // long (KIP-219); its next requests wait in the socket.
        let mute = conn.mute_ms.swap(0, Ordering::Relaxed);
        if mute > 0 {
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(mute);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
