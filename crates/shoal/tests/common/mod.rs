//! Test harness: runs the real `shoal` binary on 127.0.0.1 with a temporary data directory,
//! and small helpers around librdkafka (the `rdkafka` crate).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;

/// A running `shoal serve` process.
pub struct Shoal {
    child: Option<Child>,
    /// `host:port` of the Kafka listener.
    pub addr: String,
    /// `host:port` of the admin HTTP listener.
    pub http_addr: String,
    pub data_dir: PathBuf,
}

impl Shoal {
    /// Starts a broker on an ephemeral port with `extra` `--set` settings.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Shoal {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a broker on `addr` (use a previous broker's `addr` to restart in place).
    pub fn start_on(data_dir: &Path, addr: &str, extra: &[&str]) -> Shoal {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("broker.log"))
            .expect("broker log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("serve")
            .arg("--kafka-addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg("127.0.0.1:0");
        cmd.arg("--set").arg("group.initial.rebalance.delay.ms=0");
        for s in extra {
            cmd.arg("--set").arg(s);
        }
        cmd.env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn shoal");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut http = String::new();
            while let Some(Ok(line)) = lines.next() {
                if let Some(a) = line.strip_prefix("shoal: http listening on ") {
                    http = a.trim().to_string();
                }
                if let Some(a) = line.strip_prefix("shoal: kafka listening on ") {
                    let _ = tx.send((a.trim().to_string(), http.clone()));
                }
            }
        });
        let (addr, http_addr) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let log = std::fs::read_to_string(data_dir.with_extension("broker.log"))
                    .unwrap_or_default();
                panic!("shoal did not start; its log:\n{log}");
            });
        Shoal {
            child: Some(child),
            addr,
            http_addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGKILL: no shutdown, no final fsync.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let pid = c.id() as i32;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        false
    }

    /// A librdkafka client config pointed at this broker.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        c
    }

    /// The broker's stderr log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("broker.log")).unwrap_or_default()
    }
}

impl Drop for Shoal {
    /// Kills the broker; then fails the test if the broker logged an ERROR (a silent failure
    /// behind an apparently passing client, such as a refused internal append).
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            return;
        }
        let errors: Vec<String> = self
            .log()
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .map(str::to_string)
            .collect();
        assert!(
            errors.is_empty(),
            "the broker logged errors:\n{}",
            errors.join("\n")
        );
    }
}

/// A consumer in `group` that starts from the earliest offset and commits only when told
/// (`extra` overrides any setting).
pub fn group_consumer(
    broker: &Shoal,
    group: &str,
    extra: &[(&str, &str)],
) -> rdkafka::consumer::BaseConsumer {
    let mut cfg = broker.client();
    cfg.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Creates a topic through the Kafka admin API (CreateTopics).
pub fn create_topic(broker: &Shoal, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = broker.client().create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create_topics request");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating {t} failed: {e}"));
    }
}

/// Produces `records` (key, value) with `config` overrides, waiting for every delivery;
/// returns `(partition, offset)` per record.
pub fn produce(
    broker: &Shoal,
    topic: &str,
    records: &[(String, String)],
    overrides: &[(&str, &str)],
) -> Vec<(i32, i64)> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut cfg = broker.client();
    cfg.set("message.timeout.ms", "30000");
    for (k, v) in overrides {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().expect("producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let futures: Vec<_> = records
            .iter()
            .map(|(k, v)| {
                producer
                    .send_result(FutureRecord::to(topic).key(k).payload(v))
                    .expect("enqueue")
            })
            .collect();
        let mut out = Vec::with_capacity(futures.len());
        for f in futures {
            let delivery = f
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
            out.push((delivery.partition, delivery.offset));
        }
        out
    })
}

/// `GET path` on the broker's admin HTTP API; returns (status, body).
pub fn http_get(broker: &Shoal, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&broker.http_addr).expect("connect admin API");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        broker.http_addr
    )
    .expect("write request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}
