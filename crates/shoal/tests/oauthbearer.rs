//! SASL/OAUTHBEARER with Kafka's default (unsecured) validator: librdkafka with unsigned
//! tokens, the token's `exp` bounding the session
//! with `connections.max.reauth.ms` unset (librdkafka re-authenticates before it ends, KIP-368),
//! and on the wire the RFC 7628 error challenge, the `\x01` answer and the end of a session that
//! is not renewed. Signed tokens against a JWKS file are tested with kafka-python,
//! confluent-kafka and kafkajs in tests/compat/test_security_oauth.py.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use common::{wire, Shoal};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::OAuthToken;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

/// Hands librdkafka an unsecured token for `alice` that lives [`TOKEN_LIFE`], renewed
/// whenever librdkafka asks (at 80% of its life). rust-rdkafka serves librdkafka's refresh
/// event only through this callback, so librdkafka's built-in unsecured-JWT builder
/// (`enable.sasl.oauthbearer.unsecure.jwt`) would never renew its first token here.
struct RenewingTokens;

const TOKEN_LIFE: Duration = Duration::from_secs(3);

impl ClientContext for RenewingTokens {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let now = now_s();
        let exp = now + TOKEN_LIFE.as_secs_f64();
        Ok(OAuthToken {
            token: unsecured(
                serde_json::json!({"sub":"alice","iat":now,"exp":exp,"scope":["produce"]}),
            ),
            principal_name: "alice".into(),
            lifetime_ms: (exp * 1000.0) as i64,
        })
    }
}

impl ProducerContext for RenewingTokens {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

fn start(dir: &std::path::Path) -> Shoal {
    let mut b = Shoal::start(
        dir,
        &[
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms=OAUTHBEARER",
            "connection.failed.authentication.delay.ms=50",
            "sasl.oauthbearer.clock.skew.seconds=0",
        ],
    );
    b.allowed_errors.push("authentication");
    b
}

fn unsecured(claims: serde_json::Value) -> String {
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.",
        enc(serde_json::json!({"alg":"none"})),
        enc(claims)
    )
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// SaslHandshake v1 OAUTHBEARER, then SaslAuthenticate v2 with `msg`.
fn authenticate(s: &mut TcpStream, msg: &[u8]) -> SaslAuthenticateResponse {
    let h: SaslHandshakeResponse = wire::request(
        s,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
    );
    assert_eq!(h.error_code, 0);
    step(s, msg)
}

fn step(s: &mut TcpStream, msg: &[u8]) -> SaslAuthenticateResponse {
    wire::request(
        s,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(msg)),
    )
}

fn first_message(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

#[test]
fn librdkafka_unsecured_tokens_and_sessions_that_end_at_exp() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start(tmp.path());
    let sasl = broker.listener("SASL_PLAINTEXT").to_string();
    let connect = || {
        let s = TcpStream::connect(&sasl).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };

    // Each token lives 3 s; with connections.max.reauth.ms unset the session still ends at
    // the token's exp, and librdkafka takes a new token and re-authenticates on the same
    // connection (KIP-368) while it keeps producing.
    let mut pc = broker.client();
    pc.set("bootstrap.servers", &sasl)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "OAUTHBEARER");
    let producer: ThreadedProducer<RenewingTokens> =
        pc.create_with_context(RenewingTokens).unwrap();
    let started = Instant::now();
    let mut sent = 0i64;
    while started.elapsed() < Duration::from_secs(7) {
        producer
            .send(
                BaseRecord::to("oauth")
                    .key("k")
                    .payload(&format!("m{sent}")),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        if let Err(e) = producer.flush(Duration::from_secs(10)) {
            panic!("flush after {sent} records: {e}\n{}", broker.log());
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(producer);
    let log = broker.log();
    assert!(log.contains("SASL re-authenticated"), "{log}");
    assert!(!log.contains("SASL session expired"), "{log}");
    assert!(sent >= 20, "sent {sent}");
    let consumer: BaseConsumer = broker.client().create().unwrap();
    let (_, high) = consumer
        .fetch_watermarks("oauth", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        high, sent,
        "every record produced across re-authentications"
    );

    // A valid token: authenticated, and session_lifetime_ms is the time to its exp.
    let exp = now_s() + 2.0;
    let mut s = connect();
    let a = authenticate(
        &mut s,
        &first_message(&unsecured(serde_json::json!({"sub":"bob","exp":exp}))),
    );
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert!(
        (1_000..=2_000).contains(&a.session_lifetime_ms),
        "{}",
        a.session_lifetime_ms
    );
    let m: MetadataResponse =
        wire::request(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default());
    assert!(!m.brokers.is_empty());
    // Not renewed: after exp the next request closes the connection.
    std::thread::sleep(Duration::from_millis(2_300));
    wire::send_request(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default());
    assert!(wire::read_frame(&mut s).is_none(), "expired session closed");

    // An expired token: the RFC 7628 error challenge, then after the client's \x01
    // SASL_AUTHENTICATION_FAILED with it as the message, and the connection closes.
    let mut s = connect();
    let a = authenticate(
        &mut s,
        &first_message(&unsecured(
            serde_json::json!({"sub":"bob","exp":now_s() - 60.0}),
        )),
    );
    assert_eq!(a.error_code, 0);
    assert_eq!(&a.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let a = step(&mut s, b"\x01");
    assert_eq!(a.error_code, 58);
    assert_eq!(
        a.error_message.as_deref(),
        Some(r#"{"status":"invalid_token"}"#)
    );
    assert!(wire::read_frame(&mut s).is_none());

    // A malformed client message and a mismatched authorization id fail at once.
    let mut s = connect();
    let a = authenticate(&mut s, b"n,,auth=Bearer x");
    assert_eq!(a.error_code, 58);
    assert!(wire::read_frame(&mut s).is_none());
    let mut s = connect();
    let token = unsecured(serde_json::json!({"sub":"bob","exp":now_s() + 60.0}));
    let a = authenticate(
        &mut s,
        format!("n,a=carol,\x01auth=Bearer {token}\x01\x01").as_bytes(),
    );
    assert_eq!(a.error_code, 58);
    assert!(
        a.error_message
            .as_deref()
            .is_some_and(|m| m.contains("authorization id (carol)")),
        "{:?}",
        a.error_message
    );
    let log = broker.log();
    assert!(log.contains("unsecured token validator"), "{log}");
}
