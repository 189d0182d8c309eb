//! Client quotas with librdkafka and `shoal quota`: a producer limited to 1 MB/s sends 1 MB/s
//! ± 10% over 30 s and is told so (`throttle_time_ms`, in librdkafka's statistics), a consumer
//! limited by client-id is throttled while another client-id is not, a request-time quota
//! throttles, and the controller mutation quota refuses CreateTopics v7 with
//! THROTTLING_QUOTA_EXCEEDED once its burst is spent (KIP-599). Quotas outlive a restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http_get, Shoal};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Statistics, TopicPartitionList};

fn quota(broker: &Shoal, args: &[&str]) -> String {
    let (ok, out) = broker.cli(&[&["quota"], args].concat());
    assert!(ok, "shoal quota {args:?}: {out}");
    out
}

/// Sum of a counter family's samples whose labels contain every `labels` pair.
fn metric(broker: &Shoal, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, body) = http_get(broker, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Delivery times and sizes, and the largest broker throttle librdkafka reported.
#[derive(Default)]
struct Seen {
    acked: Mutex<Vec<(Instant, usize)>>,
    max_throttle_ms: Mutex<i64>,
}

#[derive(Clone)]
struct Ctx(Arc<Seen>);

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        let max = s
            .brokers
            .values()
            .filter_map(|b| b.throttle.as_ref().map(|w| w.max))
            .max()
            .unwrap_or(0);
        let mut m = self.0.max_throttle_ms.lock().unwrap();
        *m = (*m).max(max);
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = r {
            let n = m.payload().map_or(0, <[u8]>::len);
            self.0.acked.lock().unwrap().push((Instant::now(), n));
        }
    }
}

/// The measure: a producer with a 1 MiB/s `producer_byte_rate` (default user) that
/// always has data sends 1 MiB/s ± 10% of record bytes over 30 s, once its first allowance
/// (quota × (quota.window.num − 1) windows = 10 s) is spent.
#[test]
fn producer_limited_to_1_mib_s_sends_1_mib_s_over_30_s() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    quota(
        &broker,
        &[
            "alter",
            "--user-default",
            "--add",
            "producer_byte_rate=1048576",
        ],
    );
    let seen = Arc::new(Seen::default());
    let producer: ThreadedProducer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "5")
        .set("statistics.interval.ms", "500")
        .set("queue.buffering.max.kbytes", "4096")
        .create_with_context(Ctx(Arc::clone(&seen)))
        .unwrap();
    let value = vec![b'x'; 4096];
    let started = Instant::now();
    let (warm_up, measured) = (Duration::from_secs(12), Duration::from_secs(30));
    while started.elapsed() < warm_up + measured {
        if producer
            .send(BaseRecord::<(), [u8]>::to("limited").payload(&value))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let from = started + warm_up;
    let to = from + measured;
    let bytes: usize = seen
        .acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, n)| n)
        .sum();
    let rate = bytes as f64 / measured.as_secs_f64();
    let ratio = rate / 1_048_576.0;
    eprintln!("measured {rate:.0} B/s over 30 s: {ratio:.3} of the quota");
    assert!(
        (0.9..=1.1).contains(&ratio),
        "a 1 MiB/s producer sent {rate:.0} B/s ({ratio:.3} of its quota) over 30 s"
    );
    let throttle = *seen.max_throttle_ms.lock().unwrap();
    assert!(throttle > 0, "librdkafka saw no throttle_time_ms");
    assert!(
        metric(
            &broker,
            "shoal_quota_throttled_total",
            &[("quota_type", "Produce"), ("user", "ANONYMOUS")]
        ) > 0.0
    );
}

fn produce_plenty(broker: &Shoal, topic: &str, bytes: usize) {
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let value = vec![b'y'; 16 * 1024];
    for _ in 0..bytes / value.len() {
        while producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(&value))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).unwrap();
}

/// Bytes `client_id` reads from `topic` in `for_`.
fn consume_for(broker: &Shoal, topic: &str, client_id: &str, for_: Duration) -> usize {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("client.id", client_id)
        .set("group.id", format!("g-{client_id}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut got = 0;
    while started.elapsed() < for_ {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got += m.payload().map_or(0, <[u8]>::len);
        }
    }
    got
}

/// A `consumer_byte_rate` on one client-id throttles that client only; the quota and its
/// matching follow Kafka's resolution; quotas are kept across a restart; Kafka's validation.
#[test]
fn consumer_quota_by_client_id_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Shoal::start(&data, &["quota.window.num=2"]);
    produce_plenty(&broker, "reads", 8 << 20);
    // 256 KiB/s, one window of allowance: the limited client gets about 1.25 MiB in 4 s.
    quota(
        &broker,
        &[
            "alter",
            "--client-id",
            "slow",
            "--add",
            "consumer_byte_rate=262144",
        ],
    );
    let slow = consume_for(&broker, "reads", "slow", Duration::from_secs(4));
    let fast = consume_for(&broker, "reads", "fast", Duration::from_secs(4));
    assert_eq!(fast, 8 << 20, "the unlimited client reads everything");
    assert!(
        slow < 3 << 20,
        "the limited client read {slow} bytes in 4 s at 256 KiB/s"
    );
    assert!(
        metric(
            &broker,
            "shoal_quota_throttled_total",
            &[("quota_type", "Fetch"), ("client_id", "slow")]
        ) > 0.0
    );
    assert_eq!(
        metric(
            &broker,
            "shoal_quota_throttled_total",
            &[("client_id", "fast")]
        ),
        0.0
    );

    // Describe and its filters.
    quota(
        &broker,
        &[
            "alter",
            "--user",
            "alice",
            "--client-id-default",
            "--add",
            "request_percentage=25.5,producer_byte_rate=1000",
        ],
    );
    let all = quota(&broker, &["describe"]);
    assert!(
        all.contains("client-id 'slow' are consumer_byte_rate=262144.0"),
        "{all}"
    );
    assert!(
        all.contains("user-principal 'alice', the default client-id are producer_byte_rate=1000.0, request_percentage=25.5"),
        "{all}"
    );
    let alice = quota(
        &broker,
        &["describe", "--user", "alice", "--output", "json"],
    );
    let rows: serde_json::Value = serde_json::from_str(&alice).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{alice}");
    assert_eq!(rows[0]["quotas"]["request_percentage"], 25.5);
    // Kafka's validation: each refused with INVALID_REQUEST and why.
    for (args, why) in [
        (
            &["--user", "bob", "--add", "producer_byte_rate=1.5"][..],
            "whole number",
        ),
        (
            &["--user", "bob", "--add", "producer_byte_rate=0"][..],
            "must be positive",
        ),
        (
            &["--user", "bob", "--add", "bogus_rate=10"][..],
            "Invalid configuration key",
        ),
        (
            &["--ip", "10.0.0.1", "--add", "producer_byte_rate=10"][..],
            "ip entity",
        ),
        (
            &[
                "--ip",
                "10.0.0.1",
                "--user",
                "bob",
                "--add",
                "connection_creation_rate=10",
            ][..],
            "ip may not be combined",
        ),
    ] {
        let (ok, out) = broker.cli(&[&["quota", "alter"], args].concat());
        assert!(
            !ok && out.contains("InvalidRequest") && out.contains(why),
            "{args:?}: {out}"
        );
    }
    // Removing: the entity goes when its last key does.
    quota(
        &broker,
        &[
            "alter",
            "--user",
            "alice",
            "--client-id-default",
            "--delete",
            "request_percentage",
        ],
    );
    let alice = quota(
        &broker,
        &["describe", "--user", "alice", "--client-id-default"],
    );
    assert!(
        alice.contains("producer_byte_rate=1000.0") && !alice.contains("request_percentage"),
        "{alice}"
    );

    // Kept across a restart.
    let addr = broker.addr.clone();
    drop(broker);
    let broker = Shoal::start_on(&data, &addr, &["quota.window.num=2"]);
    let all = quota(&broker, &["describe"]);
    assert!(
        all.contains("client-id 'slow' are consumer_byte_rate=262144.0"),
        "{all}"
    );
    quota(
        &broker,
        &[
            "alter",
            "--user",
            "alice",
            "--client-id-default",
            "--delete",
            "producer_byte_rate",
        ],
    );
    let all = quota(&broker, &["describe"]);
    assert!(!all.contains("alice"), "{all}");
}

/// `request_percentage` throttles a client whose requests use more handler time than its
/// share; `controller_mutation_rate` refuses CreateTopics v7 once its burst is spent (KIP-599)
/// while another user's client-id is unaffected.
#[test]
fn request_and_controller_mutation_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Shoal::start(&dir.path().join("data"), &["quota.window.num=2"]);
    // 0.001 % of a thread: a microsecond per second.
    quota(
        &broker,
        &[
            "alter",
            "--client-id",
            "busy",
            "--add",
            "request_percentage=0.001",
        ],
    );
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("client.id", "busy")
        .create()
        .unwrap();
    for _ in 0..20 {
        let _ = c.fetch_metadata(None, Duration::from_secs(5));
    }
    assert!(
        metric(
            &broker,
            "shoal_quota_throttled_total",
            &[("quota_type", "Request"), ("client_id", "busy")]
        ) > 0.0
    );

    // Burst: 1 partition/s × 2 windows of 1 s = 2 tokens; the first request may overdraw.
    quota(
        &broker,
        &[
            "alter",
            "--user-default",
            "--add",
            "controller_mutation_rate=1",
        ],
    );
    let (ok, out) = broker.cli(&["topic", "create", "m1", "--partitions", "4"]);
    assert!(ok, "{out}");
    let (ok, out) = broker.cli(&["topic", "create", "m2", "--partitions", "1"]);
    assert!(!ok && out.contains("ThrottlingQuotaExceeded"), "{out}");
    assert!(
        metric(
            &broker,
            "shoal_quota_throttled_total",
            &[("quota_type", "ControllerMutation")]
        ) > 0.0
    );
    // It refills at 1 partition/s: 4 tokens owed, then the allowance of 2 windows.
    std::thread::sleep(Duration::from_millis(2_600));
    let (ok, out) = broker.cli(&["topic", "create", "m2", "--partitions", "1"]);
    assert!(ok, "{out}");
}
