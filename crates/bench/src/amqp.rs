//! AMQP 0-9-1 throughput and latency (works against any AMQP 0-9-1 broker: Shoal,
//! RabbitMQ): one publisher with publisher confirms (a window of unconfirmed messages)
//! sends persistent messages to a durable queue while N consumers with manual
//! acknowledgements and `basic.qos(prefetch)` take them, each message acked on its own.
//!
//! Measured: confirmed-and-acked messages per second (all messages confirmed to the
//! publisher and acked by a consumer, over the time from the first publish to the last of
//! both), and the publish-to-deliver latency percentiles (each body carries its publish
//! time). The client is lean: frames by `amq-protocol`'s codec over tokio, so the client
//! costs little next to the broker on a small machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{channel, confirm, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The broker's AMQP address.
    pub addr: SocketAddr,
    pub user: String,
    pub pass: String,
    /// Messages per run.
    pub messages: u64,
    /// Body size (bytes, at least 8: the publish time).
    pub size: usize,
    pub consumers: usize,
    /// `basic.qos` prefetch per consumer.
    pub prefetch: u16,
    /// Unconfirmed messages the publisher allows itself.
    pub confirm_window: u64,
    /// The whole run must end within this.
    pub timeout: Duration,
}

/// One run's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub size: usize,
    pub consumers: usize,
    pub messages: u64,
    /// Confirmed-and-acked messages per second.
    pub msgs_per_s: f64,
    /// Publish-to-deliver latency percentiles (ms).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

const FRAME_MAX: usize = 131_072;

struct Reader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next frame; errors on end of stream or an undecodable frame.
    async fn frame(&mut self) -> anyhow::Result<AMQPFrame> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]])
                    as usize;
                if size + 8 > FRAME_MAX * 2 {
                    bail!("frame of {size} bytes");
                }
                if self.buf.len() >= size + 8 {
                    let f = match parse_frame(&self.buf[..size + 8]) {
                        Ok((_, f)) => f,
                        Err(e) => bail!("undecodable frame: {e:?}"),
                    };
                    self.buf.advance(size + 8);
                    return Ok(f);
                }
            }
            self.buf.reserve(64 << 10);
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed by the broker");
            }
        }
    }

    /// The next method frame (heartbeats skipped); a `channel.close` or `connection.close`
    /// is an error.
    async fn method(&mut self) -> anyhow::Result<AMQPClass> {
        loop {
            match self.frame().await? {
                AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
                    bail!("channel closed: {} {}", c.reply_code, c.reply_text)
                }
                AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                    bail!("connection closed: {} {}", c.reply_code, c.reply_text)
                }
                AMQPFrame::Method(_, m) => return Ok(m),
                _ => continue,
            }
        }
    }
}

fn put(out: &mut Vec<u8>, f: &AMQPFrame) {
    let buf = std::mem::take(out);
    *out = cookie_factory::gen_simple(gen_frame(f), buf).unwrap_or_default();
}

fn method(out: &mut Vec<u8>, m: AMQPClass) {
    put(out, &AMQPFrame::Method(1, m));
}

/// Connects, negotiates and opens channel 1.
async fn connect(o: &Options) -> anyhow::Result<(Reader, OwnedWriteHalf)> {
    let s = TcpStream::connect(o.addr)
        .await
        .with_context(|| format!("connect {}", o.addr))?;
    s.set_nodelay(true)?;
    let (rd, mut wr) = s.into_split();
    let mut r = Reader {
        rd,
        buf: BytesMut::new(),
    };
    wr.write_all(b"AMQP\x00\x00\x09\x01").await?;
    match r.method().await? {
        AMQPClass::Connection(connection::AMQPMethod::Start(_)) => {}
        m => bail!("expected connection.start, got {m:?}"),
    }
    let mut out = Vec::new();
    put(
        &mut out,
        &AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(format!("\0{}\0{}", o.user, o.pass)),
                locale: "en_US".into(),
            })),
        ),
    );
    wr.write_all(&out).await?;
    let tune = match r.method().await? {
        AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
        m => bail!("expected connection.tune, got {m:?}"),
    };
    let mut out = Vec::new();
    for m in [
        connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: tune.channel_max,
            frame_max: (FRAME_MAX as u32).min(tune.frame_max.max(4096)),
            heartbeat: 0,
        }),
        connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }),
    ] {
        put(&mut out, &AMQPFrame::Method(0, AMQPClass::Connection(m)));
    }
    method(
        &mut out,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    wr.write_all(&out).await?;
    for _ in 0..2 {
        r.method().await?;
    }
    Ok((r, wr))
}

async fn call(r: &mut Reader, wr: &mut OwnedWriteHalf, m: AMQPClass) -> anyhow::Result<AMQPClass> {
    let mut out = Vec::new();
    method(&mut out, m);
    wr.write_all(&out).await?;
    r.method().await
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One run against `o.addr`, on a fresh durable queue.
///
/// Errors: connection or protocol failures, a broker-closed channel, the timeout.
pub fn run(o: &Options) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async { tokio::time::timeout(o.timeout, run_async(o)).await })
        .context("benchmark timed out")?
}

async fn run_async(o: &Options) -> anyhow::Result<Outcome> {
    let qname = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let (mut r, mut wr) = connect(o).await?;
    call(
        &mut r,
        &mut wr,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: qname.as_str().into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await?;
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for i in 0..o.consumers.max(1) {
        let (mut cr, mut cw) = connect(o).await?;
        call(
            &mut cr,
            &mut cw,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: o.prefetch,
                global: false,
            })),
        )
        .await?;
        call(
            &mut cr,
            &mut cw,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: qname.as_str().into(),
                consumer_tag: format!("c{i}").into(),
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await?;
        let received = Arc::clone(&received);
        let total = o.messages;
        consumers.push(tokio::spawn(async move {
            consume(cr, cw, received, total, start).await
        }));
    }
    // The publisher: confirm mode, at most `confirm_window` unconfirmed.
    call(
        &mut r,
        &mut wr,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await?;
    let confirmed = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let acks = {
        let confirmed = Arc::clone(&confirmed);
        let notify = Arc::clone(&notify);
        let total = o.messages;
        tokio::spawn(async move {
            let mut done = 0u64;
            while done < total {
                match r.method().await? {
                    AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                        done = if a.multiple { a.delivery_tag } else { done + 1 };
                        confirmed.store(done, Ordering::Release);
                        notify.notify_one();
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                        bail!("message {} nacked by the broker", n.delivery_tag)
                    }
                    _ => {}
                }
            }
            anyhow::Ok(Instant::now())
        })
    };
    let props = AMQPProperties::default().with_delivery_mode(2);
    let mut sent = 0u64;
    let mut body = vec![b'x'; o.size.max(8)];
    while sent < o.messages {
        let unconfirmed = sent - confirmed.load(Ordering::Acquire);
        if unconfirmed >= o.confirm_window {
            notify.notified().await;
            continue;
        }
        let n = (o.confirm_window - unconfirmed)
            .min(o.messages - sent)
            .min(256);
        let mut out = Vec::with_capacity(n as usize * (o.size + 64));
        for _ in 0..n {
            let t = start.elapsed().as_nanos() as u64;
            body[..8].copy_from_slice(&t.to_be_bytes());
            method(
                &mut out,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: "".into(),
                    routing_key: qname.as_str().into(),
                    mandatory: false,
                    immediate: false,
                })),
            );
            put(
                &mut out,
                &AMQPFrame::Header(
                    1,
                    AMQPContentHeader {
                        class_id: 60,
                        body_size: body.len() as u64,
                        properties: props.clone(),
                    },
                ),
            );
            put(&mut out, &AMQPFrame::Body(1, body.clone()));
        }
        wr.write_all(&out).await?;
        sent += n;
    }
    let confirmed_at = acks.await??;
    let mut latencies = Vec::with_capacity(o.messages as usize);
    let mut acked_at = start;
    for c in consumers {
        let (lat, at) = c.await??;
        latencies.extend(lat);
        acked_at = acked_at.max(at);
    }
    let end = confirmed_at.max(acked_at);
    latencies.sort_by(|a, b| a.total_cmp(b));
    // Leave no queue behind.
    if let Ok((mut r2, mut w2)) = connect(o).await {
        let _ = call(
            &mut r2,
            &mut w2,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: qname.as_str().into(),
                if_unused: false,
                if_empty: false,
                nowait: false,
            })),
        )
        .await;
    }
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    Ok(Outcome {
        size: o.size,
        consumers: o.consumers,
        messages: o.messages,
        msgs_per_s: o.messages as f64 / secs,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}

/// A consumer: acks every delivery on its own; stops when `total` messages arrived across
/// all consumers. Returns the latencies (ms) it saw and when it acked its last.
async fn consume(
    mut r: Reader,
    mut w: OwnedWriteHalf,
    received: Arc<AtomicU64>,
    total: u64,
    start: Instant,
) -> anyhow::Result<(Vec<f64>, Instant)> {
    let mut lat = Vec::new();
    let mut last = start;
    let mut tag = 0u64;
    let mut out = Vec::new();
    loop {
        if received.load(Ordering::Acquire) >= total {
            return Ok((lat, last));
        }
        let f = tokio::select! {
            f = r.frame() => f?,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if !out.is_empty() {
                    w.write_all(&out).await?;
                    out.clear();
                    last = Instant::now();
                }
                continue;
            }
        };
        match f {
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                tag = d.delivery_tag;
            }
            AMQPFrame::Body(_, b) => {
                if b.len() >= 8 {
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&b[..8]);
                    let sent = Duration::from_nanos(u64::from_be_bytes(t));
                    lat.push((start.elapsed().saturating_sub(sent)).as_secs_f64() * 1000.0);
                }
                method(
                    &mut out,
                    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: tag,
                        multiple: false,
                    })),
                );
                received.fetch_add(1, Ordering::AcqRel);
                // Acks of one read burst go out together.
                if r.buf.len() < 8 || received.load(Ordering::Acquire) >= total {
                    w.write_all(&out).await?;
                    out.clear();
                    last = Instant::now();
                }
            }
            AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
                bail!("consumer channel closed: {} {}", c.reply_code, c.reply_text)
            }
            _ => {}
        }
    }
}

/// The table header of [`table_row`].
pub fn table_header() -> String {
    format!(
        "{:>6} {:>9} {:>9} {:>12} {:>9} {:>9} {:>9}",
        "size", "consumers", "messages", "msgs/s", "p50_ms", "p99_ms", "max_ms"
    )
}

/// One outcome as a table row.
pub fn table_row(o: &Outcome) -> String {
    format!(
        "{:>6} {:>9} {:>9} {:>12.0} {:>9.2} {:>9.2} {:>9.2}",
        o.size, o.consumers, o.messages, o.msgs_per_s, o.p50_ms, o.p99_ms, o.max_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
