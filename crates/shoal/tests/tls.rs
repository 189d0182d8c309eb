//! SSL listeners with librdkafka: a PLAINTEXT and an SSL listener side by side, mTLS
//! (`ssl.client.auth=required`) with the principal mapped from the certificate subject, and
//! the failures a client must see: no certificate, an expired one, one from another CA, one
//! whose subject no `ssl.principal.mapping.rules` rule maps, bad TLS settings at start-up.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pki::{Ca, Issued};
use common::Shoal;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn ssl_client(addr: &str, ca: &Path, client: Option<&Issued>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.to_str().unwrap())
        // Fail fast: a refused handshake is retried, not fatal, in librdkafka.
        .set("reconnect.backoff.ms", "100");
    if let Some(i) = client {
        c.set("ssl.certificate.location", i.cert_file.to_str().unwrap())
            .set("ssl.key.location", i.key_file.to_str().unwrap());
    }
    c
}

/// The port librdkafka learns from Metadata for the broker, or the error it got.
fn metadata_port(cfg: &ClientConfig) -> Result<i32, String> {
    let consumer: BaseConsumer = cfg.create().map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(4))
        .map_err(|e| e.to_string())?;
    Ok(md.brokers().first().map(|b| b.port()).unwrap_or(-1))
}

fn port_of(addr: &str) -> i32 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn ssl_listener_beside_plaintext_with_mtls_and_mapped_principals() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "Shoal test CA");
    let other_ca = Ca::new(tmp.path(), "Other CA");
    let server = ca.server("server");
    let alice = ca.client("alice", "Alice", "eng", false);
    let ops = ca.client("ops", "bob", "ops", false);
    let expired = ca.client("expired", "carol", "eng", true);
    let stranger = other_ca.client("stranger", "dave", "eng", false);
    let keystore = format!("ssl.keystore.location={}", server.keystore_file.display());
    let truststore = format!("ssl.truststore.location={}", ca.cert_file.display());
    let mut broker = Shoal::start(
        &tmp.path().join("data"),
        &[
            "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            &keystore,
            &truststore,
            "ssl.client.auth=required",
            // Only OU=eng subjects get a principal, named by their lower-cased CN.
            "ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=eng,.*$/$1/L",
        ],
    );
    broker.allowed_errors.push("TLS");
    let ssl = broker.listener("SSL").to_string();
    assert_ne!(port_of(&ssl), port_of(&broker.addr));

    // Each listener advertises itself: librdkafka then connects to the port Metadata names.
    assert_eq!(metadata_port(&broker.client()), Ok(port_of(&broker.addr)));
    assert_eq!(
        metadata_port(&ssl_client(&ssl, &ca.cert_file, Some(&alice))),
        Ok(port_of(&ssl)),
        "{}",
        broker.log()
    );

    // Produce and consume over TLS (Fetch's stored batches go through the TLS stream).
    let records: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{i}"), format!("value-{i}-{}", "x".repeat(i % 97))))
        .collect();
    let mut overrides: Vec<(String, String)> = Vec::new();
    for (k, v) in ssl_client(&ssl, &ca.cert_file, Some(&alice))
        .config_map()
        .iter()
    {
        overrides.push((k.to_string(), v.to_string()));
    }
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("compression.type", "lz4"), ("linger.ms", "5")])
        .collect();
    let delivered = common::produce(&broker, "tls-topic", &records, &overrides);
    assert_eq!(delivered.len(), 200);
    let mut cfg = ssl_client(&ssl, &ca.cert_file, Some(&alice));
    cfg.set("group.id", "tls-group")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "1048576");
    let consumer: BaseConsumer = cfg.create().unwrap();
    consumer.subscribe(&["tls-topic"]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 200 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    let want: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(got, want, "every record back over TLS, in order");
    drop(consumer);

    // Refused: no certificate, an expired one, another CA's, a subject no rule maps (side by
    // side: each waits out librdkafka's metadata timeout).
    let refused: Vec<_> = [
        ("no certificate", None),
        ("expired", Some(&expired)),
        ("other CA", Some(&stranger)),
        ("unmapped subject", Some(&ops)),
    ]
    .into_iter()
    .map(|(who, client)| {
        let cfg = ssl_client(&ssl, &ca.cert_file, client);
        (who, std::thread::spawn(move || metadata_port(&cfg)))
    })
    .collect();
    for (who, r) in refused {
        let r = r.join().unwrap();
        assert!(r.is_err(), "{who}: {r:?}");
    }
    // A PLAINTEXT client on the SSL port gets no answer either.
    assert!(metadata_port(&ClientConfig::new().set("bootstrap.servers", &ssl).clone()).is_err());
    let log = broker.log();
    assert!(log.contains("maps to no principal"), "{log}");
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(log.contains("TLS connection refused"), "{log}");
    let (_, metrics) = common::http_get(&broker, "/metrics");
    let failed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_failed_authentication_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(failed >= 4.0, "failed authentications counted: {failed}");
    // The good client still works after all that.
    assert_eq!(
        metadata_port(&ssl_client(&ssl, &ca.cert_file, Some(&alice))),
        Ok(port_of(&ssl))
    );
    assert!(broker.terminate(), "clean shutdown with TLS connections");
}

#[test]
fn advertised_listeners_are_answered_per_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "Shoal test CA");
    let server = ca.server("server");
    let chain = format!(
        "ssl.keystore.certificate.chain={}",
        std::fs::read_to_string(&server.cert_file).unwrap()
    );
    let key = format!(
        "ssl.keystore.key={}",
        std::fs::read_to_string(&server.key_file).unwrap()
    );
    // Custom listener names mapped to protocols; the EXTERNAL one is advertised under a
    // name clients resolve (localhost), limited to TLS 1.3 and one suite.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let advertised = format!("advertised.listeners=EXTERNAL://localhost:{port}");
    let listeners = format!("listeners=INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:{port}");
    let broker = Shoal::start(
        &tmp.path().join("data"),
        &[
            &listeners,
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:SSL",
            &chain,
            &key,
            &advertised,
            "listener.name.external.ssl.enabled.protocols=TLSv1.3",
            "listener.name.external.ssl.cipher.suites=TLS_AES_256_GCM_SHA384",
        ],
    );
    let external = broker.listener("EXTERNAL").to_string();
    let port = i32::from(port);
    assert_eq!(port_of(&external), port);
    let cfg = ssl_client(&external, &ca.cert_file, None);
    let consumer: BaseConsumer = cfg.create().unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata over the EXTERNAL listener");
    let b = &md.brokers()[0];
    assert_eq!((b.host(), b.port()), ("localhost", port));
    let internal = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create::<BaseConsumer>()
        .unwrap()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata over INTERNAL");
    assert_eq!(internal.brokers()[0].port(), port_of(&broker.addr));
    // librdkafka verifies the advertised name (`localhost`) against the certificate.
    common::produce(
        &broker,
        "adv",
        &[("k".into(), "v".into())],
        &[
            ("bootstrap.servers", &external),
            ("security.protocol", "ssl"),
            ("ssl.ca.location", ca.cert_file.to_str().unwrap()),
        ],
    );
}

fn start_fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("serve")
        .args(["--http-addr", "127.0.0.1:0", "--amqp-addr", ""])
        .arg("--data-dir")
        .arg(tmp.path());
    for a in args {
        cmd.arg("--set").arg(a);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{args:?} must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_listener_and_tls_settings_stop_start_up_with_the_setting_named() {
    let e = start_fails(&["listeners=SSL://127.0.0.1:0"]);
    assert!(e.contains("ssl.keystore.location"), "{e}");
    let e = start_fails(&[
        "listeners=SSL://127.0.0.1:0",
        "ssl.keystore.location=/nonexistent.pem",
    ]);
    assert!(e.contains("/nonexistent.pem"), "{e}");
    let e = start_fails(&["listeners=CUSTOM://127.0.0.1:0"]);
    assert!(
        e.contains("no security protocol is defined for listener CUSTOM"),
        "{e}"
    );
    let e = start_fails(&["listeners=PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"]);
    assert!(e.contains("different name"), "{e}");
    let e = start_fails(&["advertised.listeners=SSL://h:1"]);
    assert!(e.contains("not one of the listeners"), "{e}");
    let e = start_fails(&["ssl.keystore.bogus=1"]);
    assert!(e.contains("unknown broker setting"), "{e}");
    let e = start_fails(&[
        "listeners=SSL://127.0.0.1:0",
        "ssl.enabled.protocols=TLSv1.1",
    ]);
    assert!(e.contains("TLSv1.1"), "{e}");
}
