//! Connection limits under a flood: 2,000 idle connections and slow-loris clients (a frame
//! dribbled a byte at a time) do not stop a librdkafka producer and consumer;
//! `max.connections.per.ip.overrides` caps one address and leaves others alone; a SASL
//! connection that never authenticates is closed after `connections.handshake.timeout.ms`;
//! `queued.max.request.bytes` smaller than a request still serves it; with security on, the
//! admin HTTP API refuses requests without `http.auth.token`.

mod common;

use std::time::{Duration, Instant};

use common::{http_get, Shoal};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The value of an unlabelled metric, or the sum of a family's samples with `label`.
fn metric(broker: &Shoal, name: &str, label: &str) -> f64 {
    let (_, body) = http_get(broker, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn connect_from(source: &str, to: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(to.parse().unwrap()).await
}

/// Whether the broker closed `s` within `within` (EOF or reset), rather than keeping it open.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1];
    match tokio::time::timeout(within, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

fn round_trip(broker: &Shoal, topic: &str, n: usize) -> Duration {
    let started = Instant::now();
    let records: Vec<(String, String)> =
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
    common::produce(broker, topic, &records, &[]);
    let c: BaseConsumer = broker
        .client()
        .set(
            "group.id",
            format!("flood-{n}-{}", started.elapsed().as_nanos()),
        )
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got = 0;
    while got < n && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            assert_eq!(m.payload(), Some(format!("v{got}").as_bytes()));
            got += 1;
        }
    }
    assert_eq!(got, n, "consumed {got} of {n} records");
    started.elapsed()
}

#[test]
fn flood_of_idle_and_slow_connections_leaves_clients_working() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Shoal::start(
        &dir.path().join("data"),
        &[
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "max.connections.per.ip.overrides=127.0.0.2:50",
            "connections.handshake.timeout.ms=1000",
            "queued.max.request.bytes=4096",
        ],
    );
    common::create_topic(&broker, "flood", 1);
    let baseline = round_trip(&broker, "flood", 500);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = broker.addr.clone();
    // 2,000 idle connections from 127.0.0.1.
    let idle: Vec<TcpStream> = rt.block_on(async {
        let mut v = Vec::with_capacity(2000);
        for _ in 0..2000 {
            v.push(TcpStream::connect(&addr).await.expect("idle connection"));
        }
        v
    });
    // 50 slow-loris clients: a frame claiming 1 MiB, then a byte every 100 ms, in the
    // background for the rest of the test.
    let slow_addr = addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_slow = std::sync::Arc::clone(&stop);
    let slow = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut conns = Vec::new();
            for _ in 0..50 {
                let mut s = TcpStream::connect(&slow_addr).await.unwrap();
                s.write_all(&(1i32 << 20).to_be_bytes()).await.unwrap();
                conns.push(s);
            }
            let until = Instant::now() + Duration::from_secs(60);
            while !stop_slow.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                for s in &mut conns {
                    let _ = s.write_all(&[0]).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    assert!(
        common::wait_until(Duration::from_secs(20), || metric(
            &broker,
            "shoal_connections ",
            ""
        ) >= 2050.0),
        "the broker holds the idle and slow connections"
    );
    // Clients still produce and consume, through the flood.
    let flooded = round_trip(&broker, "flood", 500);
    eprintln!("round trip of 500 records: {baseline:?} before the flood, {flooded:?} during it");

    // One address capped at 50 by the override; 127.0.0.1 (2,050 open) is not.
    rt.block_on(async {
        let mut capped = Vec::new();
        for _ in 0..60 {
            capped.push(connect_from("127.0.0.2", &addr).await.expect("connect"));
        }
        let mut closed = 0;
        for s in &mut capped {
            if closed_within(s, Duration::from_millis(300)).await {
                closed += 1;
            }
        }
        assert_eq!(closed, 10, "60 connections from 127.0.0.2, 50 allowed");
        let mut another = TcpStream::connect(&addr).await.unwrap();
        assert!(!closed_within(&mut another, Duration::from_millis(300)).await);
    });
    assert_eq!(
        metric(
            &broker,
            "shoal_connections_refused_total",
            "reason=\"max.connections.per.ip\""
        ),
        10.0
    );

    // A SASL connection that never authenticates is closed after the handshake timeout.
    let sasl = broker.listener("SASL_PLAINTEXT").to_string();
    rt.block_on(async {
        let mut s = TcpStream::connect(&sasl).await.unwrap();
        let started = Instant::now();
        assert!(closed_within(&mut s, Duration::from_secs(10)).await);
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(5),
            "closed after {after:?}"
        );
    });
    assert_eq!(
        metric(
            &broker,
            "shoal_connections_refused_total",
            "reason=\"handshake.timeout\""
        ),
        1.0
    );

    // Security is on (a SASL listener): the admin HTTP API needs `http.auth.token`.
    let (status, body) = common::http_get_with(&broker, "/api/v1/cluster", "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    let (status, _) = common::http_get_with(&broker, "/metrics", "Authorization: Bearer nope\r\n");
    assert_eq!(status, 401);
    assert_eq!(http_get(&broker, "/api/v1/cluster").0, 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.join().unwrap();
    drop(idle);
}
