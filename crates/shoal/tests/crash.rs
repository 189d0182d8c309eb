//! Durability under SIGKILL: the broker is killed during acks=all load 50 times in a row
//! (`SHOAL_CRASH_ROUNDS` to change), at a different moment each time, and restarted on the
//! same data; every record acknowledged before a kill is there, at its acknowledged offset,
//! at the end.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{create_topic, group_consumer, Shoal};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

type Acked = Arc<Mutex<Vec<(i32, i64, String)>>>;

/// Produces continuously with acks=all from a thread until `stop`; records every acknowledged
/// `(partition, offset, value)`.
fn load(
    broker: &Shoal,
    topic: &'static str,
    round: usize,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let producer: FutureProducer = broker
        .client()
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "1000")
        .set("retries", "0")
        .create()
        .expect("producer");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // 50 in flight at a time, so the kill lands between and inside fsyncs.
                let mut pending = Vec::new();
                for _ in 0..50 {
                    let v = format!("r{round}-{i}");
                    i += 1;
                    if let Ok(f) = producer.send_result(FutureRecord::to(topic).key(&v).payload(&v))
                    {
                        pending.push((v, f));
                    }
                }
                for (v, f) in pending {
                    if let Ok(Ok(d)) = f.await {
                        acked.lock().expect("lock").push((d.partition, d.offset, v));
                    }
                }
                // Bounded load (about 10k records/s) so verification stays quick.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    })
}

#[test]
fn records_acknowledged_with_acks_all_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = Shoal::start(&data, &[]);
    create_topic(&broker, "durable", 3);
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let rounds: usize = std::env::var("SHOAL_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let t = load(
            &broker,
            "durable",
            round,
            Arc::clone(&acked),
            Arc::clone(&stop),
        );
        // Kill at a different point of the load each round (300-800 ms in).
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 137) % 500));
        let addr = broker.addr.clone();
        broker.kill();
        stop.store(true, Ordering::Relaxed);
        let _ = t.join();
        broker = Shoal::start_on(&data, &addr, &[]);
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 100 * rounds.min(3),
        "the load acknowledged records ({})",
        acked.len()
    );
    let consumer = group_consumer(&broker, "verifier", &[]);
    consumer.subscribe(&["durable"]).expect("subscribe");
    // Read every partition up to its high watermark (the log may also hold records whose
    // acknowledgement the kill prevented; those are not checked).
    let mut high: HashMap<i32, i64> = HashMap::new();
    for p in 0..3 {
        let (_, hw) = consumer
            .fetch_watermarks("durable", p, Duration::from_secs(10))
            .expect("watermarks");
        high.insert(p, hw);
    }
    let mut stored: HashMap<(i32, i64), String> = HashMap::new();
    let mut next: HashMap<i32, i64> = (0..3).map(|p| (p, 0)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, n)| *n < high[p]) && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            next.insert(m.partition(), m.offset() + 1);
            stored.insert(
                (m.partition(), m.offset()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
            );
        }
    }
    for (p, off, _) in &acked {
        assert!(
            *off < high[p],
            "acknowledged offset {p}/{off} is beyond the recovered high watermark {}",
            high[p]
        );
    }
    for (p, off, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *off)),
            Some(v),
            "acknowledged record {v} at {p}/{off} lost after SIGKILL ({} acked)",
            acked.len()
        );
    }
}
