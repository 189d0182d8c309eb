//! Test harness: runs the real `shoal` binary on 127.0.0.1 with a temporary data directory,
//! and small helpers around librdkafka (the `rdkafka` crate).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;

pub mod pki;
pub mod wire;

/// A running `shoal serve` process.
pub struct Shoal {
    child: Option<Child>,
    /// `host:port` of the Kafka listener.
    pub addr: String,
    /// `host:port` of the admin HTTP listener.
    pub http_addr: String,
    /// `(name, host:port)` of each listener after the first (`--set listeners=...`).
    pub listeners: Vec<(String, String)>,
    pub data_dir: PathBuf,
    /// ERROR log lines containing one of these are expected by the test (not a failure).
    pub allowed_errors: Vec<&'static str>,
}

impl Shoal {
    /// Runs the `shoal` CLI with `args` and `--bootstrap-server` this broker's listener.
    /// Returns (exit status was success, stdout followed by stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(args)
            .args(["--bootstrap-server", &self.addr])
            .output()
            .expect("run shoal");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

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
            .arg("--amqp-addr")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg("127.0.0.1:0");
        cmd.arg("--set").arg("group.initial.rebalance.delay.ms=0");
        // Required by the admin HTTP API only while security is on; `http_get` sends it.
        cmd.arg("--set")
            .arg(format!("http.auth.token={ADMIN_TOKEN}"));
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
            let mut listeners = Vec::new();
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.strip_prefix("shoal: kafka listener ") {
                    // `NAME listening on NAME://host:port`
                    if let Some((name, endpoint)) = rest.split_once(" listening on ") {
                        let addr = endpoint.split_once("://").map_or(endpoint, |(_, a)| a);
                        listeners.push((name.to_string(), addr.trim().to_string()));
                    }
                }
                if let Some(a) = line.strip_prefix("shoal: http listening on ") {
                    http = a.trim().to_string();
                }
                if let Some(a) = line.strip_prefix("shoal: kafka listening on ") {
                    let _ = tx.send((a.trim().to_string(), http.clone(), listeners.clone()));
                }
            }
        });
        let (addr, http_addr, listeners) =
            rx.recv_timeout(Duration::from_secs(30))
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
            listeners,
            data_dir: data_dir.to_path_buf(),
            allowed_errors: Vec::new(),
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

    /// Sends SIGTERM (graceful shutdown) without waiting for the exit.
    pub fn signal_term(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Waits up to `timeout` for the process to exit; `Some(success)` when it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A librdkafka client config pointed at this broker.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        c
    }

    /// `host:port` of the listener named `name` (after the first).
    pub fn listener(&self, name: &str) -> &str {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("no listener {name}: {:?}", self.listeners))
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
            .filter(|l| !self.allowed_errors.iter().any(|a| l.contains(a)))
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

/// `GET path` on the broker's admin HTTP API, with the test token; returns (status, body).
pub fn http_get(broker: &Shoal, path: &str) -> (u16, String) {
    http_get_with(
        broker,
        path,
        &format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
    )
}

/// The admin HTTP API's token (`http.auth.token`) every test broker is started with.
pub const ADMIN_TOKEN: &str = "shoal-test-token";

/// `GET path` with `headers` (each line ending in CRLF) and no token unless they carry it;
/// returns (status, body).
pub fn http_get_with(broker: &Shoal, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&broker.http_addr).expect("connect admin API");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
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

/// `(member index, partition, offset, value)` of every record the members consumed.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<(usize, i32, i64, String)>>>;

/// One group member polling in a thread: records what it consumes, its current assignment
/// and the errors it sees. Settings: `group_consumer`'s, auto-commit every 200 ms, then
/// `extra`. Dropping it (or `stop`) unsubscribes and closes the consumer (a clean leave).
pub struct GroupMember {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    assignment: std::sync::Arc<std::sync::Mutex<Vec<i32>>>,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl GroupMember {
    pub fn start(
        id: usize,
        broker: &Shoal,
        group: &str,
        topic: &str,
        extra: &[(&str, &str)],
        seen: Seen,
    ) -> GroupMember {
        use rdkafka::consumer::Consumer;
        use rdkafka::Message;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let mut cfg = vec![
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "200"),
        ];
        cfg.extend_from_slice(extra);
        let consumer = group_consumer(broker, group, &cfg);
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, e) = (
            Arc::clone(&stop),
            Arc::clone(&assignment),
            Arc::clone(&errors),
        );
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(20)) {
                    Some(Ok(m)) => {
                        let v =
                            String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                        seen.lock()
                            .expect("lock")
                            .push((id, m.partition(), m.offset(), v));
                    }
                    Some(Err(err)) => e.lock().expect("lock").push(err.to_string()),
                    None => {}
                }
                let mut parts: Vec<i32> = consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                parts.sort_unstable();
                *a.lock().expect("lock") = parts;
            }
            consumer.unsubscribe();
        });
        GroupMember {
            stop,
            assignment,
            errors,
            handle: Some(handle),
        }
    }

    /// The member's current partitions, sorted.
    pub fn partitions(&self) -> Vec<i32> {
        self.assignment.lock().expect("lock").clone()
    }

    /// Errors the member's polls returned.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("lock").clone()
    }

    /// Stops polling, unsubscribes and closes the consumer.
    pub fn stop(self) {}
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts the `group_member` example as a separate process (so a test can SIGKILL it, a
/// member dying without leaving) in `group` on `topic`; `protocol` is `classic` or
/// `consumer`. Returns the child and its latest assigned partition count.
pub fn spawn_group_member_process(
    broker: &Shoal,
    group: &str,
    topic: &str,
    protocol: &str,
) -> (Child, std::sync::Arc<std::sync::Mutex<usize>>) {
    let exe = std::env::current_exe().expect("exe");
    let member_bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples/group_member"))
        .expect("examples dir");
    let mut child = Command::new(&member_bin)
        .args([broker.addr.as_str(), group, topic, protocol])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e} (`cargo test --workspace` builds it; for a filtered run, `cargo build --example group_member` first)", member_bin.display()));
    let assigned = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let a = std::sync::Arc::clone(&assigned);
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("assigned ") {
                *a.lock().expect("lock") = n.parse().unwrap_or(0);
            }
        }
    });
    (child, assigned)
}
