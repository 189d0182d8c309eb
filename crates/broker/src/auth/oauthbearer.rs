//! SASL/OAUTHBEARER (RFC 7628) as Kafka serves it (KIP-255 `OAuthBearerSaslServer`, KIP-768
//! `OAuthBearerValidatorCallbackHandler`).
//!
//! The client's only message is its initial response (RFC 7628 §3.1):
//! `n,[a=<authzid>],\x01auth=Bearer <token>\x01[<key>=<value>\x01]*\x01`. The token is checked
//! by one of two validators:
//!
//! - [`Validator::Unsecured`] (Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`, its
//!   default and not for production): an unsigned JWS (`alg` = `none`, empty signature) whose
//!   claims must hold `exp` (seconds since the epoch, not passed) and the principal claim;
//!   `iat`, when present, not in the future and before `exp`; the required scopes, if any.
//! - [`Validator::Jwks`] (KIP-768): a signed JWT (RS*, PS*, ES*, EdDSA; never `none` or HS*)
//!   verified with a key of a JWKS file (`sasl.oauthbearer.jwks.endpoint.url`, a `file:` URL
//!   or a path, re-read when it changes), `exp` and `iat` required, `iat`/`nbf` checked with
//!   `sasl.oauthbearer.clock.skew.seconds`, `aud`/`iss` against
//!   `sasl.oauthbearer.expected.audience` / `sasl.oauthbearer.expected.issuer` when set.
//!
//! A token that fails is answered, as Kafka does, with an RFC 7628 §3.2.2 error challenge
//! (`{"status":"invalid_token"}`, or `insufficient_scope` with the `scope` needed); the
//! client answers `\x01` and the exchange fails with that JSON as the message. A token that
//! passes authenticates `User:<principal claim>` and its `exp` ends the session (the
//! broker's session lifetime is the smaller of it and `connections.max.reauth.ms`, KIP-368).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::Value;

/// What the client sent first (RFC 7628 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInitialResponse {
    /// The GS2 `a=` authorization id, unescaped (`=2C` → `,`, `=3D` → `=`); empty if absent.
    pub authzid: String,
    /// The bearer token (the compact JWS/JWT).
    pub token: String,
    /// SASL extensions (every key/value pair but `auth`), Kafka's `SaslExtensions`.
    pub extensions: BTreeMap<String, String>,
}

impl ClientInitialResponse {
    /// Parses `msg`.
    ///
    /// Errors (Kafka's `SaslException` texts): not a GS2 header `n,...,` (channel binding
    /// is refused), a malformed key/value pair, no `auth` pair, a scheme other than `Bearer`.
    pub fn parse(msg: &[u8]) -> Result<Self, String> {
        let invalid = || {
            format!(
                "Invalid OAUTHBEARER client first message: {}",
                String::from_utf8_lossy(msg)
            )
        };
        let text = std::str::from_utf8(msg).map_err(|_| invalid())?;
        let rest = text.strip_prefix("n,").ok_or_else(invalid)?;
        let (gs2_authz, rest) = rest.split_once(',').ok_or_else(invalid)?;
        let authzid = match gs2_authz {
            "" => String::new(),
            a => {
                let name = a.strip_prefix("a=").ok_or_else(invalid)?;
                unescape_saslname(name).ok_or_else(invalid)?
            }
        };
        // `\x01` kvpair* `\x01`, each kvpair ending in `\x01`.
        let body = rest.strip_prefix('\x01').ok_or_else(invalid)?;
        let body = body.strip_suffix('\x01').ok_or_else(invalid)?;
        let mut token = None;
        let mut extensions = BTreeMap::new();
        if !body.is_empty() {
            let pairs = body.strip_suffix('\x01').ok_or_else(invalid)?;
            for pair in pairs.split('\x01') {
                let (key, value) = pair.split_once('=').ok_or_else(invalid)?;
                let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
                let value_ok = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b));
                if !key_ok || !value_ok {
                    return Err(invalid());
                }
                if key == "auth" {
                    token = Some(value.to_string());
                } else {
                    extensions.insert(key.to_string(), value.to_string());
                }
            }
        }
        let auth = token.ok_or_else(|| {
            "Invalid OAUTHBEARER client first message: 'auth' not specified".to_string()
        })?;
        let (scheme, token) = auth
            .split_once(' ')
            .map(|(s, t)| (s, t.trim_start_matches(' ')))
            .ok_or_else(|| format!("Invalid OAuth token: {auth}"))?;
        let token_ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !scheme.eq_ignore_ascii_case("bearer") || !token_ok {
            return Err(format!("Invalid OAuth token: {auth}"));
        }
        Ok(Self {
            authzid,
            token: token.to_string(),
            extensions,
        })
    }
}

/// RFC 5801 saslname: `=2C` and `=3D` escapes; `None` for a stray `=` or `,`.
fn unescape_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['=', ',']) {
        out.push_str(rest.get(..at)?);
        let tail = rest.get(at..)?;
        if let Some(t) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = t;
        } else {
            return None;
        }
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal claim's value (the `User:` name).
    pub principal: String,
    /// `exp` in ms since the epoch.
    pub expires_ms: i64,
}

/// Why a token failed: an RFC 7628 §3.2.2 error status and, for `insufficient_scope`, the
/// scope needed; `reason` is for the broker's log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// `invalid_token` or `insufficient_scope`.
    pub status: &'static str,
    pub scope: Option<String>,
    pub reason: String,
}

impl TokenError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self {
            status: "invalid_token",
            scope: None,
            reason: reason.into(),
        }
    }

    /// The error challenge sent to the client: `{"status":...}` plus `scope` when set.
    pub fn challenge(&self) -> String {
        let mut o = serde_json::Map::new();
        o.insert("status".into(), Value::from(self.status));
        if let Some(s) = &self.scope {
            o.insert("scope".into(), Value::from(s.clone()));
        }
        Value::Object(o).to_string()
    }
}

/// Validator settings shared by both validators.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// `sasl.oauthbearer.sub.claim.name` (default `sub`): the claim naming the principal.
    pub principal_claim: String,
    /// `sasl.oauthbearer.scope.claim.name` (default `scope`): a space-separated string or
    /// an array of strings.
    pub scope_claim: String,
    /// Scopes a token must hold (Kafka's `unsecuredValidatorRequiredScope`; empty = none).
    pub required_scope: Vec<String>,
    /// `sasl.oauthbearer.clock.skew.seconds` (default 30), in ms.
    pub clock_skew_ms: i64,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 30_000,
        }
    }
}

/// Settings of the KIP-768 validator.
#[derive(Debug, Clone, Default)]
pub struct JwksSettings {
    /// The JWKS file (`file:` URL or path).
    pub path: PathBuf,
    /// `sasl.oauthbearer.expected.audience`: one of these must be in `aud` (empty = not
    /// checked).
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`: `iss` must equal it (empty = not checked).
    pub expected_issuer: String,
}

/// The broker's `sasl.oauthbearer.*` settings.
#[derive(Debug, Clone, Default)]
pub struct OAuthBearerConfig {
    pub rules: ClaimRules,
    /// `sasl.oauthbearer.jwks.endpoint.url` (default empty: the unsecured validator, Kafka's
    /// default). `file:///path` or a path; `http(s)` endpoints are not fetched.
    pub jwks_endpoint_url: String,
    pub expected_audience: Vec<String>,
    pub expected_issuer: String,
}

/// Setting names [`OAuthBearerConfig::set`] takes.
pub const SETTINGS: &[&str] = &[
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.required.scope",
];

impl OAuthBearerConfig {
    /// Sets one of [`SETTINGS`]; `None` if `key` is not one.
    ///
    /// Errors: a clock skew that is not a non-negative integer (seconds); a JWKS URL with a
    /// scheme other than `file:`; an empty claim name.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let list = |v: &str| -> Vec<String> {
            v.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let value = value.trim();
        let r = match key {
            "sasl.oauthbearer.jwks.endpoint.url" => {
                if value.contains("://") && !value.starts_with("file://") {
                    Err("Shoal reads the JWKS from a file (file:///path or a path); it does not fetch http(s) endpoints".to_string())
                } else {
                    self.jwks_endpoint_url = value.to_string();
                    Ok(())
                }
            }
            "sasl.oauthbearer.expected.audience" => {
                self.expected_audience = list(value);
                Ok(())
            }
            "sasl.oauthbearer.expected.issuer" => {
                self.expected_issuer = value.to_string();
                Ok(())
            }
            "sasl.oauthbearer.sub.claim.name" | "sasl.oauthbearer.scope.claim.name"
                if value.is_empty() =>
            {
                Err("a claim name cannot be empty".to_string())
            }
            "sasl.oauthbearer.sub.claim.name" => {
                self.rules.principal_claim = value.to_string();
                Ok(())
            }
            "sasl.oauthbearer.scope.claim.name" => {
                self.rules.scope_claim = value.to_string();
                Ok(())
            }
            "sasl.oauthbearer.clock.skew.seconds" => match value.parse::<u32>() {
                Ok(s) => {
                    self.rules.clock_skew_ms = i64::from(s) * 1000;
                    Ok(())
                }
                Err(_) => Err("a number of seconds (0 or more)".to_string()),
            },
            "sasl.oauthbearer.required.scope" => {
                self.rules.required_scope = list(value);
                Ok(())
            }
            _ => return None,
        };
        Some(r)
    }

    /// The validator these settings describe.
    ///
    /// Errors: the JWKS file cannot be read or parsed.
    pub fn validator(&self) -> Result<Validator, String> {
        if self.jwks_endpoint_url.is_empty() {
            return Ok(Validator::Unsecured(self.rules.clone()));
        }
        let path = self
            .jwks_endpoint_url
            .strip_prefix("file://")
            .unwrap_or(&self.jwks_endpoint_url);
        Ok(Validator::Jwks(
            self.rules.clone(),
            JwksValidator::new(JwksSettings {
                path: PathBuf::from(path),
                expected_audience: self.expected_audience.clone(),
                expected_issuer: self.expected_issuer.clone(),
            })?,
        ))
    }
}

/// The token validator one broker uses.
#[derive(Debug)]
pub enum Validator {
    Unsecured(ClaimRules),
    Jwks(ClaimRules, JwksValidator),
}

/// KIP-768's validator over a JWKS file, re-read when its modification time changes.
#[derive(Debug)]
pub struct JwksValidator {
    settings: JwksSettings,
    cache: Mutex<Option<(SystemTime, jsonwebtoken::jwk::JwkSet)>>,
}

const SIGNED_ALGORITHMS: &[jsonwebtoken::Algorithm] = {
    use jsonwebtoken::Algorithm::*;
    &[
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ]
};

impl JwksValidator {
    /// Errors: the JWKS file cannot be read or is not a JWK set (so a broker does not start
    /// with a validator that refuses everyone).
    pub fn new(settings: JwksSettings) -> Result<Self, String> {
        let v = Self {
            settings,
            cache: Mutex::new(None),
        };
        v.keys()?;
        Ok(v)
    }

    fn keys(&self) -> Result<jsonwebtoken::jwk::JwkSet, String> {
        let path = &self.settings.path;
        let read_err = |e: std::io::Error| format!("JWKS file {}: {e}", path.display());
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(read_err)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, set)) = cache.as_ref() {
            if *at == modified {
                return Ok(set.clone());
            }
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
            .map_err(|e| format!("JWKS file {} is not a JWK set: {e}", path.display()))?;
        *cache = Some((modified, set.clone()));
        Ok(set)
    }

    fn claims(&self, token: &str, rules: &ClaimRules) -> Result<Value, TokenError> {
        use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
        let header = decode_header(token)
            .map_err(|e| TokenError::invalid(format!("malformed JWT header: {e}")))?;
        if !SIGNED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let set = self.keys().map_err(TokenError::invalid)?;
        let candidates: Vec<&jsonwebtoken::jwk::Jwk> = match &header.kid {
            Some(kid) => set.find(kid).into_iter().collect(),
            None => set.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(TokenError::invalid(format!(
                "no key in the JWKS for kid {:?}",
                header.kid
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = u64::try_from(rules.clock_skew_ms / 1000).unwrap_or(0);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        if self.settings.expected_audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.expected_audience);
        }
        if !self.settings.expected_issuer.is_empty() {
            validation.set_issuer(&[&self.settings.expected_issuer]);
        }
        let mut last = String::from("no usable key");
        for jwk in candidates {
            let key = match DecodingKey::from_jwk(jwk) {
                Ok(k) => k,
                Err(e) => {
                    last = format!("unusable JWK: {e}");
                    continue;
                }
            };
            match decode::<Value>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(TokenError::invalid(last))
    }
}

impl Validator {
    /// Checks `token` at `now_ms` (ms since the epoch).
    ///
    /// Errors: [`TokenError`] with `invalid_token` (malformed, unsigned where a signature is
    /// needed, bad signature, expired, issued in the future, no principal claim, wrong
    /// audience or issuer) or `insufficient_scope`.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenError> {
        let (rules, claims) = match self {
            Self::Unsecured(rules) => (rules, unsecured_claims(token)?),
            Self::Jwks(rules, jwks) => {
                let claims = jwks.claims(token, rules)?;
                // KIP-768's validator requires `iat` as well as `exp`.
                if date_ms(&claims, "iat")?.is_none() {
                    return Err(TokenError::invalid("no iat claim"));
                }
                (rules, claims)
            }
        };
        check_claims(&claims, rules, now_ms)
    }
}

/// The claims of an unsecured JWS (`alg` = `none`, empty signature).
fn unsecured_claims(token: &str) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::invalid(
            "an unsecured JWS has three dot-separated parts",
        ));
    };
    if !signature.is_empty() {
        return Err(TokenError::invalid(
            "an unsecured JWS has an empty signature",
        ));
    }
    let decode = |part: &str, what: &str| -> Result<Value, TokenError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| TokenError::invalid(format!("{what} is not Base64URL: {e}")))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(TokenError::invalid(format!("{what} is not a JSON object"))),
        }
    };
    let header = decode(header, "the JOSE header")?;
    if header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err(TokenError::invalid(
            "the unsecured validator takes only alg \"none\"",
        ));
    }
    decode(payload, "the claims")
}

/// A NumericDate claim (seconds, maybe fractional) in ms.
fn date_ms(claims: &Value, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite())
            .map(|s| Some((s * 1000.0) as i64))
            .ok_or_else(|| TokenError::invalid(format!("claim {name} is not a number"))),
    }
}

fn check_claims(claims: &Value, rules: &ClaimRules, now_ms: i64) -> Result<ValidToken, TokenError> {
    let exp = date_ms(claims, "exp")?.ok_or_else(|| TokenError::invalid("no exp claim"))?;
    let iat = date_ms(claims, "iat")?;
    if let Some(iat) = iat {
        if iat > now_ms.saturating_add(rules.clock_skew_ms) {
            return Err(TokenError::invalid(format!(
                "issued in the future (iat {iat} ms, now {now_ms} ms)"
            )));
        }
        if exp <= iat {
            return Err(TokenError::invalid("exp is not after iat"));
        }
    }
    if now_ms >= exp.saturating_add(rules.clock_skew_ms) {
        return Err(TokenError::invalid(format!(
            "expired (exp {exp} ms, now {now_ms} ms)"
        )));
    }
    let principal = match claims.get(&rules.principal_claim) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(TokenError::invalid(format!(
                "no principal claim {}",
                rules.principal_claim
            )))
        }
    };
    if !rules.required_scope.is_empty() {
        let held: Vec<&str> = match claims.get(&rules.scope_claim) {
            Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if rules
            .required_scope
            .iter()
            .any(|r| !held.contains(&r.as_str()))
        {
            return Err(TokenError {
                status: "insufficient_scope",
                scope: Some(rules.required_scope.join(" ")),
                reason: format!("the token's scope {held:?} lacks a required scope"),
            });
        }
    }
    Ok(ValidToken {
        principal,
        expires_ms: exp,
    })
}

/// What one step of an OAUTHBEARER exchange gives.
#[derive(Debug, PartialEq, Eq)]
pub enum OAuthStep {
    /// Send this error challenge; the client answers `\x01`.
    Challenge(String),
    /// Authenticated.
    Done(ValidToken),
    /// Refused with this message.
    Failed(String),
}

/// One connection's OAUTHBEARER exchange (Kafka's `OAuthBearerSaslServer`).
#[derive(Debug, Default)]
pub struct OAuthExchange {
    /// The error challenge already sent, awaiting the client's `\x01`.
    error: Option<String>,
}

impl OAuthExchange {
    /// Feeds the client's message.
    pub fn step(&mut self, validator: &Validator, msg: &[u8], now_ms: i64) -> OAuthStep {
        if let Some(error) = self.error.take() {
            // The client acknowledges the challenge with `\x01` (RFC 7628 §3.2.3); anything
            // else fails too.
            return OAuthStep::Failed(error);
        }
        let first = match ClientInitialResponse::parse(msg) {
            Ok(f) => f,
            Err(e) => {
                // Kafka answers a SaslException with its generic text; the reason is logged.
                tracing::info!(reason = %e, "OAUTHBEARER client message refused");
                return OAuthStep::Failed(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER".into(),
                );
            }
        };
        match validator.validate(&first.token, now_ms) {
            Err(e) => {
                tracing::info!(status = e.status, reason = %e.reason, "OAUTHBEARER token refused");
                let challenge = e.challenge();
                self.error = Some(challenge.clone());
                OAuthStep::Challenge(challenge)
            }
            Ok(t) if !first.authzid.is_empty() && first.authzid != t.principal => {
                OAuthStep::Failed(format!(
                    "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
                    first.authzid, t.principal
                ))
            }
            Ok(t) => OAuthStep::Done(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn unsecured(claims: Value) -> String {
        format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg":"none"})),
            b64(&claims)
        )
    }

    fn first(token: &str, authz: &str) -> Vec<u8> {
        let a = if authz.is_empty() {
            String::new()
        } else {
            format!("a={authz}")
        };
        format!("n,{a},\x01auth=Bearer {token}\x01traceId=abc\x01\x01").into_bytes()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn parses_rfc7628_initial_responses() {
        let r = ClientInitialResponse::parse(
            b"n,a=us=3Der=2C1,\x01auth=Bearer abc.def.\x01k=v 1\x01\x01",
        )
        .unwrap();
        assert_eq!(r.authzid, "us=er,1");
        assert_eq!(r.token, "abc.def.");
        assert_eq!(r.extensions.get("k").map(String::as_str), Some("v 1"));
        for bad in [
            &b"y,,\x01auth=Bearer t\x01\x01"[..],
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01\x01",
            b"n,a=x=y,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01k1=v\x01\x01",
            b"n,,\x01auth=Bearer t!\x01\x01",
            b"\xff",
            b"",
        ] {
            assert!(ClientInitialResponse::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsecured_validator_checks_what_kafka_checks() {
        let v = Validator::Unsecured(ClaimRules {
            required_scope: vec!["kafka".into()],
            clock_skew_ms: 0,
            ..ClaimRules::default()
        });
        let exp = NOW / 1000 + 60;
        let good = unsecured(
            serde_json::json!({"sub":"alice","exp":exp,"iat":NOW/1000,"scope":"a kafka"}),
        );
        assert_eq!(
            v.validate(&good, NOW),
            Ok(ValidToken {
                principal: "alice".into(),
                expires_ms: exp * 1000
            })
        );
        let arr = unsecured(serde_json::json!({"sub":"bob","exp":exp,"scope":["kafka"]}));
        assert!(v.validate(&arr, NOW).is_ok());
        let status = |t: &str| v.validate(t, NOW).map_err(|e| e.status);
        for bad in [
            unsecured(serde_json::json!({"sub":"alice","exp":NOW/1000 - 1,"scope":"kafka"})),
            unsecured(serde_json::json!({"sub":"alice","scope":"kafka"})),
            unsecured(serde_json::json!({"exp":exp,"scope":"kafka"})),
            unsecured(
                serde_json::json!({"sub":"alice","exp":exp,"iat":exp - 10 + 3600,"scope":"kafka"}),
            ),
            format!(
                "{}x",
                unsecured(serde_json::json!({"sub":"a","exp":exp,"scope":"kafka"}))
            ),
            format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg":"HS256"})),
                b64(&serde_json::json!({"sub":"a","exp":exp,"scope":"kafka"}))
            ),
            "not-a-token".into(),
        ] {
            assert_eq!(status(&bad), Err("invalid_token"), "{bad}");
        }
        let no_scope = unsecured(serde_json::json!({"sub":"alice","exp":exp,"scope":"other"}));
        let e = v.validate(&no_scope, NOW).unwrap_err();
        assert_eq!(
            e.challenge(),
            r#"{"scope":"kafka","status":"insufficient_scope"}"#
        );
    }

    #[test]
    fn exchange_sends_the_error_challenge_then_fails() {
        let v = Validator::Unsecured(ClaimRules::default());
        let exp = NOW / 1000 + 60;
        let good = unsecured(serde_json::json!({"sub":"alice","exp":exp}));
        let mut x = OAuthExchange::default();
        assert!(
            matches!(x.step(&v, &first(&good, ""), NOW), OAuthStep::Done(t) if t.principal == "alice")
        );
        let mut x = OAuthExchange::default();
        assert!(
            matches!(x.step(&v, &first(&good, "bob"), NOW), OAuthStep::Failed(m) if m.contains("authorization id (bob)"))
        );
        let expired = unsecured(serde_json::json!({"sub":"alice","exp":NOW/1000 - 60}));
        let mut x = OAuthExchange::default();
        assert_eq!(
            x.step(&v, &first(&expired, ""), NOW),
            OAuthStep::Challenge(r#"{"status":"invalid_token"}"#.into())
        );
        assert_eq!(
            x.step(&v, b"\x01", NOW),
            OAuthStep::Failed(r#"{"status":"invalid_token"}"#.into())
        );
    }

    #[test]
    fn jwks_validator_verifies_signatures_audience_and_issuer() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = key.public_key_raw();
        let (x, y) = (&raw[1..33], &raw[33..65]);
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({"keys":[{"kty":"EC","crv":"P-256","x":enc(x),"y":enc(y),"kid":"k1","alg":"ES256","use":"sig"}]});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let v = Validator::Jwks(
            ClaimRules::default(),
            JwksValidator::new(JwksSettings {
                path: path.clone(),
                expected_audience: vec!["shoal".into()],
                expected_issuer: "https://idp.example".into(),
            })
            .unwrap(),
        );
        let signing = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let sign = |claims: Value, kid: &str| {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, &claims, &signing).unwrap()
        };
        let now = now_s * 1000;
        let claims = serde_json::json!({"sub":"carol","exp":now_s+300,"iat":now_s,"aud":"shoal","iss":"https://idp.example"});
        assert_eq!(
            v.validate(&sign(claims.clone(), "k1"), now)
                .map(|t| t.principal),
            Ok("carol".into())
        );
        let mut wrong_aud = claims.clone();
        wrong_aud["aud"] = "other".into();
        let mut wrong_iss = claims.clone();
        wrong_iss["iss"] = "https://evil.example".into();
        let mut no_iat = claims.clone();
        no_iat.as_object_mut().unwrap().remove("iat");
        let mut expired = claims.clone();
        expired["exp"] = (now_s - 600).into();
        let unsigned = unsecured(claims.clone());
        let mut tampered = sign(claims.clone(), "k1");
        tampered.push('A');
        for bad in [
            sign(wrong_aud, "k1"),
            sign(wrong_iss, "k1"),
            sign(expired, "k1"),
            sign(no_iat, "k1"),
            sign(claims.clone(), "k2"),
            unsigned,
            tampered,
        ] {
            assert_eq!(
                v.validate(&bad, now).map_err(|e| e.status),
                Err("invalid_token"),
                "{bad}"
            );
        }
        // A rotated key set is picked up without a restart.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = other.public_key_raw();
        let jwks = serde_json::json!({"keys":[{"kty":"EC","crv":"P-256","x":enc(&raw[1..33]),"y":enc(&raw[33..65]),"kid":"k2","alg":"ES256"}]});
        std::fs::write(&path, jwks.to_string()).unwrap();
        assert!(v.validate(&sign(claims, "k1"), now).is_err());
    }
}
