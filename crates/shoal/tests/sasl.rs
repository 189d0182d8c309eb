//! SASL listeners with librdkafka: SCRAM users made with `shoal user`
//! (AlterUserScramCredentials), PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 over SASL_PLAINTEXT and
//! SASL_SSL, per-listener `sasl.enabled.mechanisms`, wrong passwords and unknown users
//! refused, requests before authentication refused, KIP-368 re-authentication, credentials
//! kept across a restart and gone once deleted.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::pki::Ca;
use common::{wire, Shoal};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn sasl_client(
    addr: &str,
    protocol: &str,
    mech: &str,
    user: &str,
    pw: &str,
    ca: &Ca,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", protocol)
        .set("sasl.mechanism", mech)
        .set("sasl.username", user)
        .set("sasl.password", pw)
        .set("ssl.ca.location", ca.cert_file.to_str().unwrap())
        .set("reconnect.backoff.ms", "100");
    c
}

/// `cfg`'s settings as overrides for `common::produce` (`config_map` hides passwords).
fn pairs(cfg: &ClientConfig) -> Vec<(String, String)> {
    cfg.config_map()
        .keys()
        .map(|k| (k.to_string(), cfg.get(k).unwrap_or_default().to_string()))
        .collect()
}

fn metadata(cfg: &ClientConfig, timeout: Duration) -> Result<i32, String> {
    let consumer: BaseConsumer = cfg.create().map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(None, timeout)
        .map(|m| m.brokers().first().map(|b| b.port()).unwrap_or(-1))
        .map_err(|e| e.to_string())
}

fn port(addr: &str) -> i32 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn start(dir: &std::path::Path, ca: &Ca, addr: &str) -> Shoal {
    let server = ca.server("server");
    let keystore = format!("ssl.keystore.location={}", server.keystore_file.display());
    Shoal::start_on(
        dir,
        addr,
        &[
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            &keystore,
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.connections.max.reauth.ms=2000",
            "connection.failed.authentication.delay.ms=50",
        ],
    )
}

#[test]
fn scram_and_plain_over_sasl_listeners_with_users_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "Shoal test CA");
    let data = tmp.path().join("data");
    let mut broker = start(&data, &ca, "127.0.0.1:0");
    broker.allowed_errors.push("authentication");
    let (ok, out) = broker.cli(&["user", "create", "alice", "--password", "alice-secret"]);
    assert!(ok, "{out}");
    let (ok, out) = broker.cli(&[
        "user",
        "create",
        "bob",
        "--password",
        "bob-secret",
        "--mechanism",
        "SCRAM-SHA-512",
        "--iterations",
        "4096",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = broker.cli(&[
        "user",
        "create",
        "carol",
        "--password",
        "x",
        "--iterations",
        "100",
    ]);
    assert!(!ok && out.contains("UnacceptableCredential"), "{out}");
    let (ok, out) = broker.cli(&["user", "list", "--output", "json"]);
    assert!(ok, "{out}");
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["user"], "alice");
    assert_eq!(users[0]["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(users[1]["user"], "bob");
    assert_eq!(users[1]["credentials"][0]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(users[1]["credentials"][0]["iterations"], 4096);
    assert!(!out.contains("secret"), "no password is ever shown");

    let plain = broker.listener("SASL_PLAINTEXT").to_string();
    let tls = broker.listener("SASL_SSL").to_string();
    // Every mechanism each listener enables, produce then consume.
    let cases = [
        (&plain, "sasl_plaintext", "PLAIN"),
        (&plain, "sasl_plaintext", "SCRAM-SHA-512"),
        (&tls, "sasl_ssl", "PLAIN"),
        (&tls, "sasl_ssl", "SCRAM-SHA-256"),
        (&tls, "sasl_ssl", "SCRAM-SHA-512"),
    ];
    for (i, (addr, proto, mech)) in cases.iter().enumerate() {
        let cfg = sasl_client(addr, proto, mech, "alice", "alice-secret", &ca);
        assert_eq!(
            metadata(&cfg, Duration::from_secs(10)),
            Ok(port(addr)),
            "{proto} {mech}"
        );
        let topic = format!("sasl-{i}");
        let overrides = pairs(&cfg);
        let overrides: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let produced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            common::produce(
                &broker,
                &topic,
                &[("k".into(), format!("{proto} {mech}"))],
                &overrides,
            )
        }));
        assert!(produced.is_ok(), "{proto} {mech}: {}", broker.log());
        let mut c = cfg.clone();
        c.set("group.id", &topic)
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = c.create().unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got = m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
            }
        }
        assert_eq!(got.as_deref(), Some(format!("{proto} {mech}").as_str()));
    }

    // Refused: a wrong password, an unknown user, a mechanism the listener does not enable,
    // bob's missing SCRAM-SHA-256 credential (side by side: each waits out a timeout).
    let refused: Vec<_> = [
        (&tls, "sasl_ssl", "SCRAM-SHA-256", "alice", "wrong"),
        (&tls, "sasl_ssl", "PLAIN", "alice", "wrong"),
        (
            &plain,
            "sasl_plaintext",
            "SCRAM-SHA-512",
            "mallory",
            "alice-secret",
        ),
        (
            &plain,
            "sasl_plaintext",
            "SCRAM-SHA-256",
            "alice",
            "alice-secret",
        ),
        (&tls, "sasl_ssl", "SCRAM-SHA-256", "bob", "bob-secret"),
    ]
    .into_iter()
    .map(|(addr, proto, mech, user, pw)| {
        let cfg = sasl_client(addr, proto, mech, user, pw, &ca);
        let what = format!("{proto} {mech} {user}/{pw}");
        (
            what,
            std::thread::spawn(move || metadata(&cfg, Duration::from_secs(4))),
        )
    })
    .collect();
    for (what, r) in refused {
        let r = r.join().unwrap();
        assert!(r.is_err(), "{what}: {r:?}");
    }
    let log = broker.log();
    assert!(log.contains("SASL authentication failed"), "{log}");
    assert!(log.contains("SASL mechanism not enabled"), "{log}");
    assert!(
        !log.contains("alice-secret") && !log.contains("bob-secret"),
        "passwords never logged"
    );

    // KIP-368: the SASL_SSL listener's sessions last 2 s; a producer that keeps going
    // re-authenticates on its connection instead of being cut off.
    let cfg = sasl_client(
        &tls,
        "sasl_ssl",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
        &ca,
    );
    let overrides = pairs(&cfg);
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    {
        use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
        let mut pc = broker.client();
        for (k, v) in &overrides {
            pc.set(*k, *v);
        }
        let producer: ThreadedProducer<DefaultProducerContext> = pc.create().unwrap();
        for i in 0..25 {
            producer
                .send(BaseRecord::to("reauth").key("k").payload(&format!("m{i}")))
                .map_err(|(e, _)| e)
                .unwrap();
            producer.flush(Duration::from_secs(10)).unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let log = broker.log();
    assert!(log.contains("SASL re-authenticated"), "{log}");
    assert!(!log.contains("SASL session expired"), "{log}");

    // Credentials survive a restart; a deleted user is refused afterwards.
    assert!(broker.terminate());
    let broker = start(&data, &ca, &broker.addr.clone());
    let tls = broker.listener("SASL_SSL").to_string();
    let cfg = sasl_client(
        &tls,
        "sasl_ssl",
        "SCRAM-SHA-256",
        "alice",
        "alice-secret",
        &ca,
    );
    assert_eq!(
        metadata(&cfg, Duration::from_secs(10)),
        Ok(port(&tls)),
        "after restart"
    );
    let (ok, out) = broker.cli(&["user", "delete", "alice"]);
    assert!(ok, "{out}");
    assert!(
        metadata(&cfg, Duration::from_secs(4)).is_err(),
        "deleted user refused"
    );
    let (ok, out) = broker.cli(&["user", "list", "alice"]);
    assert!(!ok && out.contains("ResourceNotFound"), "{out}");
}

#[test]
fn before_authentication_only_sasl_and_api_versions_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "Shoal test CA");
    let mut broker = start(&tmp.path().join("data"), &ca, "127.0.0.1:0");
    broker.allowed_errors.push("authentication");
    let plain = broker.listener("SASL_PLAINTEXT").to_string();
    let connect = || {
        let s = TcpStream::connect(&plain).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    // ApiVersions is answered and lists the SASL APIs.
    let mut s = connect();
    let v: ApiVersionsResponse = wire::request(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let has = |k: ApiKey| v.api_keys.iter().any(|a| a.api_key == k as i16);
    assert!(has(ApiKey::SaslHandshake) && has(ApiKey::SaslAuthenticate));
    // Anything else closes the connection.
    wire::send_request(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default());
    assert!(
        wire::read_frame(&mut s).is_none(),
        "Metadata before authentication closes"
    );
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled list, then closed.
    let mut s = connect();
    let h: SaslHandshakeResponse = wire::request(
        &mut s,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    );
    assert_eq!(h.error_code, 33);
    let listed: Vec<String> = h.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        listed,
        ["PLAIN", "SCRAM-SHA-512"],
        "the listener's own list"
    );
    assert!(wire::read_frame(&mut s).is_none());
    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE.
    let mut s = connect();
    let a: SaslAuthenticateResponse = wire::request(
        &mut s,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default(),
    );
    assert_eq!(a.error_code, 34);
    // PLAIN with a wrong password: SASL_AUTHENTICATION_FAILED with Kafka's message.
    let mut s = connect();
    let h: SaslHandshakeResponse = wire::request(
        &mut s,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(h.error_code, 0);
    let a: SaslAuthenticateResponse = wire::request(
        &mut s,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"\0nobody\0pw")),
    );
    assert_eq!(a.error_code, 58);
    assert_eq!(
        a.error_message.as_deref(),
        Some("Authentication failed: Invalid username or password")
    );
    assert!(
        wire::read_frame(&mut s).is_none(),
        "closed after the failure"
    );
    // A frame above sasl.server.max.receive.size before authentication closes at once.
    let mut s = connect();
    use std::io::Write;
    s.write_all(&(1_000_000i32).to_be_bytes()).unwrap();
    assert!(wire::read_frame(&mut s).is_none());
    // On the PLAINTEXT listener SASL requests get ILLEGAL_SASL_STATE (as KafkaApis answers).
    let mut s = wire::connect(&broker);
    let h: SaslHandshakeResponse = wire::request(
        &mut s,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(h.error_code, 34);
}
