//! SASL on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's `SaslServerAuthenticator` does it
//! (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate, KIP-368 re-authentication).
//!
//! Before a connection authenticates, only ApiVersions, SaslHandshake and SaslAuthenticate
//! are served; any other request closes it ("Unexpected Kafka request ... during SASL
//! handshake"). SaslHandshake names the mechanism: one not in `sasl.enabled.mechanisms`
//! gets UNSUPPORTED_SASL_MECHANISM with the enabled list, then the connection closes. After a
//! v1 handshake the client's tokens come in SaslAuthenticate requests; after a v0 handshake
//! they come as raw length-prefixed frames without a request header, and are answered the same
//! way. A failed exchange is answered SASL_AUTHENTICATION_FAILED (v1) with Kafka's message,
//! held back `connection.failed.authentication.delay.ms`, and the connection is closed.
//!
//! With `connections.max.reauth.ms` > 0, SaslAuthenticate v1+ answers `session_lifetime_ms`
//! and the client must re-authenticate (a new SaslHandshake v1 + SaslAuthenticate on the same
//! connection, same principal) before it ends; a request other than those after the end closes
//! the connection. A credential with an end (an OAUTHBEARER token's `exp`) ends the session
//! then, whether or not `connections.max.reauth.ms` is set, as in Kafka.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::auth::principal::KafkaPrincipal;
use crate::auth::sasl::{Exchange, Step};
use crate::handlers::{self, code, ConnInfo, Outcome};
use crate::state::Broker;

/// A connection's SASL state.
#[derive(Debug)]
pub struct SaslConn {
    mechanisms: Vec<String>,
    reauth_ms: i64,
    state: State,
    /// The user it authenticated as (kept through re-authentication).
    user: Option<String>,
    /// When the session ends (`connections.max.reauth.ms`).
    session_end: Option<tokio::time::Instant>,
}

#[derive(Debug)]
enum State {
    /// No exchange running.
    Idle,
    /// After SaslHandshake v1: tokens come in SaslAuthenticate.
    Authenticate(Exchange),
    /// After SaslHandshake v0: tokens come as raw frames.
    RawTokens(Exchange),
}

/// What the server does with a frame.
pub enum Intercept {
    /// Not SASL's business: dispatch it.
    Pass,
    /// Answer with these (in order); close afterwards when `close`.
    Answer { outcomes: Vec<Outcome>, close: bool },
}

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

impl SaslConn {
    /// The state of a new connection on `listener`.
    pub fn new(broker: &Broker, listener: &str) -> Self {
        Self {
            mechanisms: broker.config.sasl_mechanisms_for(listener),
            reauth_ms: broker.config.reauth_ms_for(listener),
            state: State::Idle,
            user: None,
            session_end: None,
        }
    }

    /// Whether it has authenticated (and may send more than SASL and ApiVersions).
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    /// Whether the next frame is a raw v0 token (no request header).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::RawTokens(_))
    }

    /// Looks at `frame` (without its length prefix) before dispatch; on success updates
    /// `conn.principal`.
    pub fn intercept(&mut self, broker: &Broker, frame: &Bytes, conn: &mut ConnInfo) -> Intercept {
        if let State::RawTokens(_) = self.state {
            return self.raw_token(broker, frame, conn);
        }
        let peek = |at: usize| {
            frame
                .get(at..at + 2)
                .and_then(|b| b.try_into().ok())
                .map(i16::from_be_bytes)
        };
        let (Some(key), Some(version)) = (peek(0), peek(2)) else {
            return Intercept::Pass; // dispatch closes it
        };
        let api = ApiKey::try_from(key).ok();
        match api {
            Some(ApiKey::SaslHandshake) | Some(ApiKey::SaslAuthenticate) => {
                let api = api.unwrap_or(ApiKey::SaslHandshake);
                let mut body = frame.clone();
                let header = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    RequestHeader::decode(&mut body, api.request_header_version(version))
                })) {
                    Ok(Ok(h)) => h,
                    _ => return close("malformed SASL request header"),
                };
                let request = match handlers::decode_request(api, version, &mut body) {
                    Ok(r) => r,
                    Err(e) => return close(e),
                };
                let cid = header.correlation_id;
                match request {
                    RequestKind::SaslHandshake(r) => {
                        self.handshake(broker, version, cid, r.mechanism.as_str(), conn)
                    }
                    RequestKind::SaslAuthenticate(r) => {
                        self.authenticate(broker, version, cid, &r.auth_bytes, conn)
                    }
                    _ => close("unexpected SASL request"),
                }
            }
            Some(ApiKey::ApiVersions) if self.user.is_none() => Intercept::Pass,
            other if self.user.is_none() => close(format!(
                "Unexpected Kafka request of type {} during SASL handshake",
                other.map_or_else(|| key.to_string(), |a| format!("{a:?}"))
            )),
            _ => {
                if self
                    .session_end
                    .is_some_and(|end| tokio::time::Instant::now() >= end)
                {
                    return close(
                        "SASL session expired (connections.max.reauth.ms or the credential's end) without re-authentication",
                    );
                }
                Intercept::Pass
            }
        }
    }

    fn handshake(
        &mut self,
        broker: &Broker,
        version: i16,
        cid: i32,
        mechanism: &str,
        conn: &ConnInfo,
    ) -> Intercept {
        let enabled: Vec<StrBytes> = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let answer = |error_code| {
            handlers::respond(
                ApiKey::SaslHandshake,
                version,
                cid,
                &ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default()
                        .with_error_code(error_code)
                        .with_mechanisms(enabled.clone()),
                ),
            )
        };
        let illegal = !matches!(self.state, State::Idle)
            // Re-authentication (KIP-368) needs the v1 exchange.
            || (self.user.is_some() && version < 1);
        if illegal {
            return Intercept::Answer {
                outcomes: vec![answer(code::ILLEGAL_SASL_STATE)],
                close: true,
            };
        }
        // Kafka's UnsupportedSaslMechanismException is an AuthenticationException: counted,
        // answered after the failed-authentication delay, then the connection closes.
        let exchange = match self
            .mechanisms
            .iter()
            .any(|m| m == mechanism)
            .then(|| broker.sasl.start(mechanism))
        {
            Some(Ok(e)) => e,
            _ => {
                tracing::info!(peer = %conn.peer, listener = %conn.listener, mechanism, "SASL mechanism not enabled; closing");
                return self.failed(broker, answer(code::UNSUPPORTED_SASL_MECHANISM));
            }
        };
        self.state = if version == 0 {
            State::RawTokens(exchange)
        } else {
            State::Authenticate(exchange)
        };
        Intercept::Answer {
            outcomes: vec![answer(code::NONE)],
            close: false,
        }
    }
}

impl SaslConn {
    fn authenticate(
        &mut self,
        broker: &Broker,
        version: i16,
        cid: i32,
        auth_bytes: &Bytes,
        conn: &mut ConnInfo,
    ) -> Intercept {
        let answer =
            |error_code: i16, message: Option<String>, bytes: Vec<u8>, lifetime_ms: i64| {
                handlers::respond(
                    ApiKey::SaslAuthenticate,
                    version,
                    cid,
                    &ResponseKind::SaslAuthenticate(
                        SaslAuthenticateResponse::default()
                            .with_error_code(error_code)
                            .with_error_message(message.and_then(text))
                            .with_auth_bytes(Bytes::from(bytes))
                            .with_session_lifetime_ms(lifetime_ms),
                    ),
                )
            };
        let State::Authenticate(exchange) = &mut self.state else {
            return Intercept::Answer {
                outcomes: vec![answer(
                    code::ILLEGAL_SASL_STATE,
                    Some("SaslAuthenticate request received before SaslHandshake".into()),
                    Vec::new(),
                    0,
                )],
                close: true,
            };
        };
        let mechanism = exchange.mechanism().to_string();
        match exchange.step(auth_bytes) {
            Step::Continue(bytes) => Intercept::Answer {
                outcomes: vec![answer(code::NONE, None, bytes, 0)],
                close: false,
            },
            Step::Done {
                user,
                response,
                expires_ms,
            } => {
                let lifetime = match self.authenticated(conn, &user, &mechanism, expires_ms) {
                    Ok(lifetime) => lifetime,
                    Err(why) => {
                        return self.failed(
                            broker,
                            answer(code::SASL_AUTHENTICATION_FAILED, Some(why), Vec::new(), 0),
                        )
                    }
                };
                let lifetime = if version >= 1 { lifetime } else { 0 };
                Intercept::Answer {
                    outcomes: vec![answer(code::NONE, None, response, lifetime)],
                    close: false,
                }
            }
            Step::Failed(why) => {
                tracing::info!(peer = %conn.peer, listener = %conn.listener, %mechanism, reason = %why, "SASL authentication failed");
                self.failed(
                    broker,
                    answer(code::SASL_AUTHENTICATION_FAILED, Some(why), Vec::new(), 0),
                )
            }
        }
    }

    /// A v0 exchange's raw token.
    fn raw_token(&mut self, broker: &Broker, frame: &Bytes, conn: &mut ConnInfo) -> Intercept {
        let State::RawTokens(exchange) = &mut self.state else {
            return close("no SASL exchange");
        };
        let mechanism = exchange.mechanism().to_string();
        let raw = |bytes: &[u8]| {
            let mut b = BytesMut::with_capacity(4 + bytes.len());
            b.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            b.extend_from_slice(bytes);
            Outcome::Respond(b)
        };
        match exchange.step(frame) {
            Step::Continue(bytes) => Intercept::Answer {
                outcomes: vec![raw(&bytes)],
                close: false,
            },
            Step::Done {
                user,
                response,
                expires_ms,
            } => match self.authenticated(conn, &user, &mechanism, expires_ms) {
                Ok(_) => Intercept::Answer {
                    outcomes: vec![raw(&response)],
                    close: false,
                },
                Err(why) => {
                    tracing::info!(peer = %conn.peer, reason = %why, "SASL authentication failed");
                    self.failed(broker, Outcome::NoResponse)
                }
            },
            Step::Failed(why) => {
                tracing::info!(peer = %conn.peer, listener = %conn.listener, %mechanism, reason = %why, "SASL authentication failed");
                // v0 has no error frame: the connection just closes.
                self.failed(broker, Outcome::NoResponse)
            }
        }
    }

    /// Records a finished exchange as `user`; returns the session lifetime in ms (0 = no
    /// end). As Kafka's `SaslServerAuthenticator` computes it, the session ends at the
    /// sooner of `connections.max.reauth.ms` (when > 0) and the credential's end
    /// (`expires_ms`, an OAUTHBEARER token's `exp`), even when re-authentication is off.
    ///
    /// Errors: a re-authentication as someone else (Kafka: "Cannot change principals during
    /// re-authentication").
    fn authenticated(
        &mut self,
        conn: &mut ConnInfo,
        user: &str,
        mechanism: &str,
        expires_ms: Option<i64>,
    ) -> Result<i64, String> {
        if let Some(previous) = &self.user {
            if previous != user {
                return Err(format!(
                    "Cannot change principals during re-authentication from User:{previous} to User:{user}"
                ));
            }
        }
        if self.user.is_some() {
            tracing::info!(peer = %conn.peer, listener = %conn.listener, user, %mechanism, "SASL re-authenticated (KIP-368)");
        }
        self.user = Some(user.to_string());
        self.state = State::Idle;
        // At least 1 ms: 0 would tell the client its session never ends (KIP-368).
        let credential_ms = expires_ms.map(|exp| (exp - crate::clock::now_ms()).max(1));
        let lifetime = match (credential_ms, self.reauth_ms > 0) {
            (None, false) => None,
            (None, true) => Some(self.reauth_ms),
            (Some(c), false) => Some(c),
            (Some(c), true) => Some(c.min(self.reauth_ms)),
        };
        // A zero lifetime still ends the session, at the next request.
        self.session_end = lifetime
            .map(|ms| tokio::time::Instant::now() + std::time::Duration::from_millis(ms as u64));
        conn.principal = std::sync::Arc::new(KafkaPrincipal::user(user));
        tracing::debug!(peer = %conn.peer, listener = %conn.listener, principal = %conn.principal, %mechanism, "SASL authenticated");
        Ok(lifetime.unwrap_or(0))
    }

    /// Answers a failure after `connection.failed.authentication.delay.ms`, then closes.
    fn failed(&mut self, broker: &Broker, answer: Outcome) -> Intercept {
        broker.metrics.failed_authentication();
        self.state = State::Idle;
        let delay = std::time::Duration::from_millis(
            broker
                .config
                .connection_failed_authentication_delay_ms
                .max(0) as u64,
        );
        let delayed = Outcome::Deferred(Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        }));
        // The reader stops; the writer sends the delayed answer, then the connection closes
        // (logged at INFO by the caller, as Kafka logs failed authentications).
        Intercept::Answer {
            outcomes: vec![delayed],
            close: true,
        }
    }
}

fn close(reason: impl Into<String>) -> Intercept {
    Intercept::Answer {
        outcomes: vec![Outcome::Close(reason.into())],
        close: true,
    }
}
