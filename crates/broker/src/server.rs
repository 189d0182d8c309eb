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
//! `max.connections` are closed at accept; a connection idle for `connections.max.idle.ms`
//! (or that takes that long to send one frame) is closed; a frame's buffer grows with the bytes
//! that arrive, not with the length claimed. Shutdown stops accepting and lets in-flight
//! requests finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::{self, Outcome};

/// Smallest valid request: api_key, api_version, correlation_id, client_id length.
const MIN_FRAME: i32 = 10;

/// Answers that may be pending per connection (pipelined Produce requests).
pub const MAX_IN_FLIGHT: usize = 64;

/// Facts about a connection the handlers need.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
}

/// Accepts connections until `shutdown` becomes true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.load(Ordering::Relaxed) >= broker.config.max_connections {
                    tracing::warn!(%peer, "max.connections reached; closing new connection");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                open.fetch_add(1, Ordering::Relaxed);
                broker.metrics.connection_opened();
                let broker = Arc::clone(&broker);
                let open = Arc::clone(&open);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let metrics = Arc::clone(&broker.metrics);
                    if let Err(e) = connection(broker, stream, ConnInfo { peer }, shutdown).await {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                    metrics.connection_closed();
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

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    conn: ConnInfo,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (rd, wr) = stream.into_split();
    let (tx, rx) = tokio::sync::mpsc::channel::<Outcome>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(wr, rx, conn.peer));
    let read = read_requests(Arc::clone(&broker), rd, &conn, shutdown, tx).await;
    // The writer finishes the answers already queued, then ends.
    let written = writer
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    read.and(written)
}

/// Writes each answer in order, waiting for deferred ones; stops at a `Close` or a write
/// error (dropping `rx`, which stops the reader).
async fn write_responses(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: tokio::sync::mpsc::Receiver<Outcome>,
    peer: SocketAddr,
) -> std::io::Result<()> {
    while let Some(mut outcome) = rx.recv().await {
        if let Outcome::Deferred(fut) = outcome {
            outcome = fut.await;
        }
        match outcome {
            Outcome::Respond(resp) => wr.write_all(&resp).await?,
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

async fn read_requests(
    broker: Arc<Broker>,
    rd: tokio::net::tcp::OwnedReadHalf,
    conn: &ConnInfo,
    mut shutdown: watch::Receiver<bool>,
    tx: tokio::sync::mpsc::Sender<Outcome>,
) -> std::io::Result<()> {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let max = broker.config.socket_request_max_bytes;
    let idle =
        std::time::Duration::from_millis(broker.config.connections_max_idle_ms.max(1) as u64);
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_i32()) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::debug!(peer = %conn.peer, "connections.max.idle.ms elapsed; closing idle connection");
                    return Ok(());
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        if !(MIN_FRAME..=max).contains(&len) {
            tracing::warn!(peer = %conn.peer, frame_bytes = len, max_bytes = max, "request frame size out of bounds; closing connection");
            return Ok(());
        }
        // Memory grows with the bytes that actually arrive, not with the length the client
        // claims, and a frame must arrive within the idle timeout.
        let mut body = Vec::with_capacity((len as usize).min(64 * 1024));
        match tokio::time::timeout(idle, (&mut rd).take(len as u64).read_to_end(&mut body)).await {
            Ok(Ok(n)) if n == len as usize => {}
            Ok(Ok(_)) => return Ok(()), // closed mid-frame
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tracing::warn!(peer = %conn.peer, frame_bytes = len, "request frame not received within connections.max.idle.ms; closing");
                return Ok(());
            }
        }
        let frame = Bytes::from(body);
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
    }
}
