//! TLS for SSL and SASL_SSL listeners, configured with Kafka's `ssl.*` names (KIP-651 PEM
//! stores), through rustls (TLS 1.2 and 1.3 only).
//!
//! Settings (each may also be given per listener as `listener.name.<name>.ssl.*`):
//! - `ssl.keystore.type`: `PEM` (the only type; Kafka's JKS and PKCS12 are refused).
//! - `ssl.keystore.location`: a PEM file holding the private key and the certificate chain,
//!   or `ssl.keystore.certificate.chain` and `ssl.keystore.key`: the same as PEM text.
//! - `ssl.key.password`: decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2).
//!   `ssl.keystore.password` and `ssl.truststore.password` are refused with PEM, as Kafka does.
//! - `ssl.truststore.type` (`PEM`), `ssl.truststore.location` (a PEM file of CA
//!   certificates) or `ssl.truststore.certificates` (PEM text): who may sign client
//!   certificates.
//! - `ssl.client.auth`: `none` (default), `requested` (a certificate is verified if sent),
//!   `required` (mTLS). The principal is the certificate subject mapped by
//!   `ssl.principal.mapping.rules` ([`crate::auth::principal`]).
//! - `ssl.enabled.protocols` (default `TLSv1.2,TLSv1.3`; older versions are refused),
//!   `ssl.protocol` (default `TLSv1.3`), `ssl.cipher.suites` (IANA names; default: rustls'
//!   suites).
//! - Accepted and without effect (they name Java's machinery): `ssl.keymanager.algorithm`,
//!   `ssl.trustmanager.algorithm`, `ssl.secure.random.implementation`,
//!   `ssl.endpoint.identification.algorithm` (a broker verifies no server name).
//!
//! Errors are reported at start-up with the setting's name; nothing here reads input from
//! clients.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls;

use crate::auth::principal::SslPrincipalMapper;

/// Every `ssl.*` setting Shoal knows.
pub const SETTINGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.cipher.suites",
    "ssl.principal.mapping.rules",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "ssl.endpoint.identification.algorithm",
];

/// Whether `key` is an `ssl.*` setting Shoal knows.
pub fn is_setting(key: &str) -> bool {
    SETTINGS.contains(&key)
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A TLS listener's acceptor and how it names its clients.
#[derive(Clone)]
pub struct TlsListener {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub client_auth: ClientAuth,
    pub principal_mapper: Arc<SslPrincipalMapper>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Why a TLS handshake did not give a connection.
#[derive(Debug)]
pub enum HandshakeError {
    /// The peer closed, or sent nothing, before the handshake ended (a port probe): not an
    /// authentication failure.
    Closed(String),
    /// Refused: a bad or missing certificate, no common version or suite, an unmapped
    /// subject (`failed-authentication` in Kafka's metrics).
    Failed(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

impl HandshakeError {
    /// Whether it counts as a failed authentication.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

/// A TLS session over TCP, as [`TlsListener::handshake`] returns it.
pub type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

impl TlsListener {
    /// Runs the server side of the TLS handshake on `stream`, bounded by `timeout`, and names
    /// the client: the mapped subject of its certificate, or `User:ANONYMOUS` without one.
    ///
    /// Errors: [`HandshakeError::Failed`] for a refused handshake (untrusted, expired or
    /// missing-but-required certificate, no common protocol or suite) or a certificate subject
    /// that no `ssl.principal.mapping.rules` rule maps; [`HandshakeError::Closed`] when the
    /// peer hung up or `timeout` passed first.
    pub async fn handshake(
        &self,
        stream: tokio::net::TcpStream,
        timeout: std::time::Duration,
    ) -> Result<(TlsStream, crate::auth::principal::KafkaPrincipal), HandshakeError> {
        use crate::auth::principal::{subject_dn, KafkaPrincipal};
        let stream = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(HandshakeError::Closed(format!(
                    "TLS handshake: peer closed ({e})"
                )))
            }
            Ok(Err(e)) => return Err(HandshakeError::Failed(format!("TLS handshake failed: {e}"))),
            Err(_) => {
                return Err(HandshakeError::Closed(format!(
                    "TLS handshake not done within {} ms",
                    timeout.as_millis()
                )))
            }
        };
        let principal = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(cert) => {
                let name = subject_dn(cert)
                    .and_then(|dn| self.principal_mapper.name(&dn))
                    .map_err(|e| {
                        HandshakeError::Failed(format!(
                            "TLS client certificate maps to no principal: {e}"
                        ))
                    })?;
                KafkaPrincipal::user(name)
            }
            None => KafkaPrincipal::anonymous(),
        };
        Ok((stream, principal))
    }
}

/// Builds the TLS side of listener `listener` from its `ssl.*` settings
/// ([`crate::BrokerConfig::ssl_settings`]).
///
/// Errors: a message naming the setting: a missing or unreadable keystore, a key that does
/// not match or cannot be decrypted, a non-PEM store type, a protocol other than TLS 1.2/1.3,
/// an unknown cipher suite, `ssl.client.auth` other than none/requested/required, client
/// authentication without a truststore, invalid mapping rules.
pub fn build(settings: &BTreeMap<String, String>, listener: &str) -> Result<TlsListener, String> {
    let get = |k: &str| settings.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let ctx = |k: &str, e: String| format!("listener {listener}: {k}: {e}");
    for k in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some(t) = get(k) {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(ctx(
                    k,
                    format!("`{t}` is not supported; Shoal reads PEM only"),
                ));
            }
        }
    }
    let versions = protocol_versions(get("ssl.enabled.protocols"), get("ssl.protocol"))
        .map_err(|e| ctx("ssl.enabled.protocols", e))?;
    if get("ssl.keystore.password").is_some() {
        return Err(ctx(
            "ssl.keystore.password",
            "a key store password cannot be specified with PEM, only ssl.key.password".into(),
        ));
    }
    if get("ssl.truststore.password").is_some() {
        return Err(ctx(
            "ssl.truststore.password",
            "a trust store password cannot be specified with PEM".into(),
        ));
    }
    let (chain_pem, key_pem, key_source) = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
    ) {
        (Some(path), None, None) => {
            let pem = std::fs::read(path)
                .map_err(|e| ctx("ssl.keystore.location", format!("cannot read {path}: {e}")))?;
            (pem.clone(), pem, "ssl.keystore.location")
        }
        (None, Some(chain), Some(key)) => (
            chain.as_bytes().to_vec(),
            key.as_bytes().to_vec(),
            "ssl.keystore.key",
        ),
        (None, None, None) => {
            return Err(ctx(
                "ssl.keystore.location",
                "an SSL listener needs a key and certificate: set ssl.keystore.location (PEM) or ssl.keystore.certificate.chain and ssl.keystore.key".into(),
            ))
        }
        _ => {
            return Err(ctx(
                "ssl.keystore.location",
                "set either ssl.keystore.location or both ssl.keystore.certificate.chain and ssl.keystore.key".into(),
            ))
        }
    };
    let chain = certificates(&chain_pem).map_err(|e| ctx(key_source, e))?;
    if chain.is_empty() {
        return Err(ctx(key_source, "no CERTIFICATE in the PEM".into()));
    }
    let key = private_key(&key_pem, get("ssl.key.password")).map_err(|e| ctx(key_source, e))?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = get("ssl.cipher.suites") {
        provider.cipher_suites = cipher_suites(&provider.cipher_suites, suites)
            .map_err(|e| ctx("ssl.cipher.suites", e))?;
    }
    let provider = Arc::new(provider);

    let client_auth = match get("ssl.client.auth")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => ClientAuth::None,
        Some("requested") => ClientAuth::Requested,
        Some("required") => ClientAuth::Required,
        Some(other) => {
            return Err(ctx(
                "ssl.client.auth",
                format!("`{other}` is not one of none, requested, required"),
            ))
        }
    };
    let roots = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ctx(
                "ssl.truststore.location",
                "set ssl.truststore.location or ssl.truststore.certificates, not both".into(),
            ))
        }
        (Some(path), None) => {
            let pem = std::fs::read(path).map_err(|e| {
                ctx(
                    "ssl.truststore.location",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            Some(certificates(&pem).map_err(|e| ctx("ssl.truststore.location", e))?)
        }
        (None, Some(pem)) => {
            Some(certificates(pem.as_bytes()).map_err(|e| ctx("ssl.truststore.certificates", e))?)
        }
        (None, None) => None,
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| ctx("ssl.enabled.protocols", e.to_string()))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let certs = roots.ok_or_else(|| {
                ctx(
                    "ssl.client.auth",
                    "client authentication needs ssl.truststore.location or ssl.truststore.certificates".into(),
                )
            })?;
            let mut store = rustls::RootCertStore::empty();
            for c in certs {
                store.add(c).map_err(|e| {
                    ctx(
                        "ssl.truststore.location",
                        format!("bad CA certificate: {e}"),
                    )
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(store),
                provider,
            );
            let verifier = if client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| ctx("ssl.truststore.location", e.to_string()))?,
            )
        }
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| ctx(key_source, format!("key and certificate do not fit: {e}")))?;
    // Kafka's wire has no ALPN; a TLS session is one connection.
    server.alpn_protocols.clear();
    let principal_mapper =
        SslPrincipalMapper::parse(get("ssl.principal.mapping.rules").unwrap_or("DEFAULT"))
            .map_err(|e| ctx("ssl.principal.mapping.rules", e))?;
    Ok(TlsListener {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        client_auth,
        principal_mapper: Arc::new(principal_mapper),
    })
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))
}

const ENCRYPTED_KEY_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(ENCRYPTED_KEY_LABEL) {
        let password =
            password.ok_or("the private key is encrypted: set ssl.key.password".to_string())?;
        let end_label = "-----END ENCRYPTED PRIVATE KEY-----";
        let end = text[start..]
            .find(end_label)
            .map(|i| start + i + end_label.len())
            .ok_or("unterminated ENCRYPTED PRIVATE KEY")?;
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text[start..end])
            .map_err(|e| format!("malformed ENCRYPTED PRIVATE KEY: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("malformed ENCRYPTED PRIVATE KEY: {e}"))?;
        let plain = info
            .decrypt(password)
            .map_err(|e| format!("cannot decrypt the private key with ssl.key.password: {e}"))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key in the PEM: {e}"))
}

fn protocol_versions(
    enabled: Option<&str>,
    protocol: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    if let Some(p) = protocol {
        if !matches!(p, "TLS" | "TLSv1.2" | "TLSv1.3") {
            return Err(format!(
                "ssl.protocol `{p}` is not supported (TLSv1.2 or TLSv1.3)"
            ));
        }
    }
    let mut out = Vec::new();
    for v in enabled
        .unwrap_or("TLSv1.2,TLSv1.3")
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let version = match v {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            other => {
                return Err(format!(
                    "`{other}` is not supported: Shoal speaks TLSv1.2 and TLSv1.3 only"
                ))
            }
        };
        if !out
            .iter()
            .any(|x: &&rustls::SupportedProtocolVersion| x.version == version.version)
        {
            out.push(version);
        }
    }
    if out.is_empty() {
        return Err("no protocol is enabled".into());
    }
    Ok(out)
}

/// Keeps the suites named in `list` (IANA names, e.g. `TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`), in the order given.
fn cipher_suites(
    all: &[rustls::SupportedCipherSuite],
    list: &str,
) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    let iana = |s: &rustls::SupportedCipherSuite| {
        let name = s.suite().as_str().unwrap_or("");
        name.replacen("TLS13_", "TLS_", 1)
    };
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            all.iter()
                .find(|s| iana(s) == name)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "unknown cipher suite `{name}` (known: {})",
                        all.iter().map(iana).collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pems() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let (cert, key) = pems();
        let ok = settings(&[
            ("ssl.keystore.certificate.chain", &cert),
            ("ssl.keystore.key", &key),
        ]);
        assert!(build(&ok, "SSL").is_ok());
        let err = |extra: &[(&str, &str)]| {
            let mut s = ok.clone();
            s.extend(settings(extra));
            build(&s, "SSL").expect_err("refused")
        };
        assert!(err(&[("ssl.keystore.type", "JKS")]).contains("ssl.keystore.type"));
        assert!(err(&[("ssl.enabled.protocols", "TLSv1.1")]).contains("TLSv1.1"));
        assert!(err(&[("ssl.client.auth", "required")]).contains("truststore"));
        assert!(err(&[("ssl.client.auth", "maybe")]).contains("ssl.client.auth"));
        assert!(err(&[("ssl.cipher.suites", "TLS_NULL")]).contains("TLS_AES_128_GCM_SHA256"));
        assert!(err(&[("ssl.keystore.password", "x")]).contains("ssl.key.password"));
        assert!(err(&[("ssl.keystore.location", "/nonexistent")]).contains("either"));
        assert!(build(
            &settings(&[("ssl.keystore.location", "/nonexistent/k.pem")]),
            "SSL"
        )
        .expect_err("missing file")
        .contains("/nonexistent/k.pem"));
        assert!(build(&BTreeMap::new(), "SSL")
            .expect_err("no key")
            .contains("ssl.keystore.location"));
        let mut s = ok.clone();
        s.insert("ssl.cipher.suites".into(), "TLS_AES_256_GCM_SHA384".into());
        s.insert("ssl.enabled.protocols".into(), "TLSv1.3".into());
        assert!(build(&s, "SSL").is_ok());
        let (other_cert, _) = pems();
        let mut s = ok;
        s.insert("ssl.keystore.certificate.chain".into(), other_cert);
        assert!(build(&s, "SSL")
            .expect_err("mismatch")
            .contains("do not fit"));
    }

    #[test]
    fn encrypted_keys_need_ssl_key_password() {
        use pkcs8::der::pem::LineEnding;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = key.serialize_der();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], &[9u8; 16])
                .unwrap();
        let encrypted = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
            .unwrap()
            .encrypt_with_params(params, "s3cret")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap();
        let mut s = settings(&[
            ("ssl.keystore.certificate.chain", &cert.pem()),
            ("ssl.keystore.key", &encrypted),
        ]);
        assert!(build(&s, "SSL")
            .expect_err("no password")
            .contains("ssl.key.password"));
        s.insert("ssl.key.password".into(), "wrong".into());
        assert!(build(&s, "SSL")
            .expect_err("wrong password")
            .contains("cannot decrypt"));
        s.insert("ssl.key.password".into(), "s3cret".into());
        build(&s, "SSL").expect("decrypted key");
    }
}
