//! The server side of SASL exchanges: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 through `rsasl`
//! against the [`CredentialStore`], and OAUTHBEARER through [`super::oauthbearer`]. Wire
//! framing (SaslHandshake / SaslAuthenticate) is in [`crate::server::sasl`].
//!
//! - PLAIN (RFC 4616): `authzid\0authcid\0password`; the password is checked against the
//!   user's SCRAM-SHA-512, else SCRAM-SHA-256, credential. An authzid other than empty or the
//!   user is refused, as Kafka's `PlainSaslServer` does.
//! - SCRAM (RFC 5802/7677): rsasl runs the exchange with the stored salt, StoredKey,
//!   ServerKey and iterations. An unknown user fails like a wrong password.
//! - OAUTHBEARER (RFC 7628, KIP-255/768): the bearer token is checked by the broker's
//!   [`Validator`]; the token's `exp` bounds the session.

use std::io::Cursor;
use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::prelude::{Mechname, SASLConfig, SASLServer, Session, SessionError, State, Validation};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, ValidationError};

use super::oauthbearer::{OAuthExchange, OAuthStep, Validator};
use super::scram::{CredentialStore, ScramMechanism};

/// Mechanisms Shoal serves, by SASL name.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// The validated user name, or why it was refused.
struct ShoalValidation;
impl Validation for ShoalValidation {
    type Value = Result<String, String>;
}

struct Callback {
    store: Arc<CredentialStore>,
}

impl Callback {
    fn check(&self, data: &SessionData, ctx: &Context) -> Result<String, String> {
        let user = ctx.get_ref::<AuthId>().ok_or("no user name")?;
        if let Some(authz) = ctx.get_ref::<AuthzId>() {
            if !authz.is_empty() && authz != user {
                return Err(
                    "Authentication failed: Client requested an authorization id that is different from username"
                        .into(),
                );
            }
        }
        if data.mechanism().mechanism.as_str() == "PLAIN" {
            let password = ctx.get_ref::<Password>().ok_or("no password")?;
            let ok = [ScramMechanism::Sha512, ScramMechanism::Sha256]
                .into_iter()
                .find_map(|m| {
                    self.store
                        .get(user, m)
                        .map(|c| c.matches_password(m, password))
                })
                .unwrap_or(false);
            if !ok {
                return Err("Authentication failed: Invalid username or password".into());
            }
        }
        Ok(user.to_string())
    }
}

impl SessionCallback for Callback {
    fn callback(
        &self,
        data: &SessionData,
        ctx: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        let Some(m) = ScramMechanism::from_name(data.mechanism().mechanism) else {
            return Ok(());
        };
        if let Some(c) = ctx.get_ref::<AuthId>().and_then(|u| self.store.get(u, m)) {
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                c.iterations,
                &c.salt,
                &c.stored_key,
                &c.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        data: &SessionData,
        ctx: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        validate.with::<ShoalValidation, _>(|| Ok(self.check(data, ctx)))?;
        Ok(())
    }
}

/// Starts SASL exchanges for one broker.
#[derive(Clone)]
pub struct SaslAuthenticator {
    config: Arc<SASLConfig>,
    oauth: Arc<Validator>,
}

impl std::fmt::Debug for SaslAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslAuthenticator").finish_non_exhaustive()
    }
}

/// What one step of an exchange gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes; the client answers.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `response` (SCRAM's server-final, empty for PLAIN and
    /// OAUTHBEARER). `expires_ms`: when the credential ends (an OAUTHBEARER token's `exp`,
    /// ms since the epoch), which ends the session too (KIP-368).
    Done {
        user: String,
        response: Vec<u8>,
        expires_ms: Option<i64>,
    },
    /// Refused, with the message Kafka gives the client.
    Failed(String),
}

/// One client's exchange.
pub struct Exchange {
    inner: Inner,
    mechanism: String,
}

enum Inner {
    Rsasl(Box<Session<ShoalValidation>>),
    OAuth(OAuthExchange, Arc<Validator>),
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl SaslAuthenticator {
    /// `oauth` checks OAUTHBEARER tokens.
    ///
    /// Errors: rsasl refuses the configuration (it does not with these mechanisms).
    pub fn new(store: Arc<CredentialStore>, oauth: Validator) -> Result<Self, String> {
        let config = SASLConfig::builder()
            .with_defaults()
            .with_callback(Callback { store })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            oauth: Arc::new(oauth),
        })
    }

    /// Starts an exchange with `mechanism` (one of [`MECHANISMS`]).
    ///
    /// Errors: a mechanism Shoal does not serve.
    pub fn start(&self, mechanism: &str) -> Result<Exchange, String> {
        if !MECHANISMS.contains(&mechanism) {
            return Err(format!("unsupported SASL mechanism {mechanism}"));
        }
        let inner = if mechanism == "OAUTHBEARER" {
            Inner::OAuth(OAuthExchange::default(), Arc::clone(&self.oauth))
        } else {
            let name = Mechname::parse(mechanism.as_bytes()).map_err(|e| e.to_string())?;
            let session = SASLServer::<ShoalValidation>::new(Arc::clone(&self.config))
                .start_suggested(name)
                .map_err(|e| e.to_string())?;
            Inner::Rsasl(Box::new(session))
        };
        Ok(Exchange {
            inner,
            mechanism: mechanism.to_string(),
        })
    }
}

impl Exchange {
    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// Feeds the client's next message.
    pub fn step(&mut self, input: &[u8]) -> Step {
        let failed = || {
            Step::Failed(format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                self.mechanism
            ))
        };
        let session = match &mut self.inner {
            Inner::Rsasl(session) => session,
            Inner::OAuth(exchange, validator) => {
                return match exchange.step(validator, input, crate::clock::now_ms()) {
                    OAuthStep::Challenge(json) => Step::Continue(json.into_bytes()),
                    OAuthStep::Done(token) => Step::Done {
                        user: token.principal,
                        response: Vec::new(),
                        expires_ms: Some(token.expires_ms),
                    },
                    OAuthStep::Failed(why) => Step::Failed(why),
                };
            }
        };
        let mut out = Cursor::new(Vec::new());
        match session.step(Some(input), &mut out) {
            Ok(State::Running) => Step::Continue(out.into_inner()),
            Ok(State::Finished(_)) => match session.validation() {
                Some(Ok(user)) => Step::Done {
                    user,
                    response: out.into_inner(),
                    expires_ms: None,
                },
                Some(Err(why)) => Step::Failed(why),
                None => failed(),
            },
            Err(e) => {
                tracing::debug!(mechanism = %self.mechanism, error = %e, "SASL exchange failed");
                if self.mechanism == "PLAIN" {
                    Step::Failed("Authentication failed: Invalid username or password".into())
                } else {
                    failed()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramCredential;
    use rsasl::prelude::SASLClient;

    fn store() -> Arc<CredentialStore> {
        let s = CredentialStore::default();
        s.insert_for_test(
            "alice",
            ScramMechanism::Sha256,
            ScramCredential::from_password(ScramMechanism::Sha256, "alice-secret", 4096).unwrap(),
        );
        s.insert_for_test(
            "alice",
            ScramMechanism::Sha512,
            ScramCredential::from_password(ScramMechanism::Sha512, "alice-secret", 4096).unwrap(),
        );
        Arc::new(s)
    }

    /// Runs rsasl's client against the server; the server's last step.
    fn exchange(auth: &SaslAuthenticator, mech: &str, user: &str, password: &str) -> Step {
        let client = SASLClient::new(
            SASLConfig::with_credentials(None, user.into(), password.into()).unwrap(),
        );
        let name = Mechname::parse(mech.as_bytes()).unwrap();
        let mut c = client.start_suggested(&[name]).unwrap();
        let mut s = auth.start(mech).unwrap();
        let mut to_server = Cursor::new(Vec::new());
        c.step(None, &mut to_server).unwrap();
        loop {
            match s.step(to_server.get_ref()) {
                Step::Continue(msg) => {
                    to_server = Cursor::new(Vec::new());
                    c.step(Some(&msg), &mut to_server).unwrap();
                }
                done => return done,
            }
        }
    }

    #[test]
    fn plain_and_scram_against_stored_credentials() {
        let auth = SaslAuthenticator::new(
            store(),
            Validator::Unsecured(crate::auth::oauthbearer::ClaimRules::default()),
        )
        .unwrap();
        for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
            assert!(
                matches!(exchange(&auth, mech, "alice", "alice-secret"), Step::Done { ref user, .. } if user == "alice"),
                "{mech}"
            );
            for (user, pw) in [("alice", "wrong"), ("mallory", "alice-secret")] {
                let r = exchange(&auth, mech, user, pw);
                assert!(
                    matches!(&r, Step::Failed(m) if m.starts_with("Authentication failed")),
                    "{mech} {user}: {r:?}"
                );
            }
        }
        let mut plain = auth.start("PLAIN").unwrap();
        assert!(
            matches!(plain.step(b"bob\0alice\0alice-secret"), Step::Failed(m) if m.contains("authorization id"))
        );
        let mut plain = auth.start("PLAIN").unwrap();
        assert!(matches!(plain.step(b"garbage"), Step::Failed(_)));
        assert!(auth.start("GSSAPI").is_err());
    }
}
