//! The Kafka listener: accepts connections and runs one task per connection that reads
//! length-prefixed frames, hands each to [`crate::handlers::dispatch`] and writes responses in
//! request order (Kafka processes one request per connection at a time, and so do we).
//!
//! Bounds: a frame larger than `socket.request.max.bytes` (or negative, or too small to hold a
//! header) closes the connection before anything is allocated for it; connections beyond
//! `max.connections` are closed at accept. Shutdown stops accepting and lets in-flight
//! requests finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::{self, Outcome};

/// Smallest valid request: api_key, api_version, correlation_id, client_id length.
const MIN_FRAME: i32 = 10;

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
                let broker = Arc::clone(&broker);
                let open = Arc::clone(&open);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(broker, stream, ConnInfo { peer }, shutdown).await {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
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
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let max = broker.config.socket_request_max_bytes;
    loop {
        let len = tokio::select! {
            r = rd.read_i32() => match r {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        if !(MIN_FRAME..=max).contains(&len) {
            tracing::warn!(peer = %conn.peer, frame_bytes = len, max_bytes = max, "request frame size out of bounds; closing connection");
            return Ok(());
        }
        let mut frame = BytesMut::zeroed(len as usize);
        rd.read_exact(&mut frame).await?;
        match handlers::dispatch(&broker, frame.freeze(), &conn).await {
            Outcome::Respond(resp) => {
                wr.write_all(&resp).await?;
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::warn!(peer = %conn.peer, %reason, "closing connection");
                return Ok(());
            }
        }
    }
}
