//! A small Kafka protocol client for the CLI verbs: one TCP connection to one broker, one
//! request at a time, message types from `kafka-protocol`. At connect it asks ApiVersions and
//! each call uses the highest version both sides support (up to the version the CLI was
//! written for), so the CLI works against Kafka and Redpanda as well as Shoal.
//!
//! Errors: connection failures, a broker that does not support an API the CLI needs, and
//! malformed frames are `anyhow` errors with a message saying what failed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame accepted (bytes).
const MAX_FRAME: usize = 64 << 20;

/// One connection to a broker.
pub(crate) struct Client {
    stream: TcpStream,
    correlation_id: i32,
    /// API key -> (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    /// `host:port` (for messages).
    pub(crate) addr: String,
}

impl Client {
    /// Connects to the first reachable address of `bootstrap` (`host:port[,host:port...]`)
    /// and reads its API versions. Times out after 10 s per address.
    pub(crate) async fn connect(bootstrap: &str) -> anyhow::Result<Client> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let mut c = Client {
                        stream,
                        correlation_id: 0,
                        versions: HashMap::new(),
                        addr: addr.to_string(),
                    };
                    let resp: ApiVersionsResponse = c
                        .call_at(ApiVersionsRequest::default(), 0)
                        .await
                        .with_context(|| format!("ApiVersions to {addr}"))?;
                    c.versions = resp
                        .api_keys
                        .iter()
                        .map(|k| (k.api_key, (k.min_version, k.max_version)))
                        .collect();
                    return Ok(c);
                }
                Ok(Err(e)) => last = Some(anyhow!("cannot connect to {addr}: {e}")),
                Err(_) => last = Some(anyhow!("cannot connect to {addr}: timed out after 10 s")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no bootstrap server given")))
            .context("is the broker running? check --bootstrap-server")
    }

    /// Authenticates with SASL (`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`): SaslHandshake v1,
    /// then SaslAuthenticate until the exchange ends (KIP-152), through rsasl's client.
    ///
    /// Errors: the broker refuses the mechanism (with its list) or the credentials (with its
    /// message), or the connection fails.
    pub(crate) async fn authenticate(
        &mut self,
        mechanism: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};
        let (hs, _) = self
            .call(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.to_string())),
                1,
            )
            .await?;
        if hs.error_code != 0 {
            let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
            bail!(
                "{} refuses SASL mechanism {mechanism} (it offers {})",
                self.addr,
                offered.join(", ")
            );
        }
        let config = SASLConfig::with_credentials(None, user.to_string(), password.to_string())
            .map_err(|e| anyhow!("SASL client: {e}"))?;
        let name = Mechname::parse(mechanism.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|e| anyhow!("SASL client: {e}"))?;
        let mut input: Option<Vec<u8>> = None;
        loop {
            let mut out = std::io::Cursor::new(Vec::new());
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|e| anyhow!("SASL {mechanism}: {e}"))?;
            let finished = matches!(state, State::Finished(_));
            if finished && out.get_ref().is_empty() && input.is_some() {
                return Ok(());
            }
            let (resp, _) = self
                .call(
                    SaslAuthenticateRequest::default()
                        .with_auth_bytes(Bytes::from(out.into_inner())),
                    2,
                )
                .await?;
            if resp.error_code != 0 {
                bail!(
                    "SASL authentication as {user} failed: {}",
                    resp.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_default()
                );
            }
            if finished {
                return Ok(());
            }
            input = Some(resp.auth_bytes.to_vec());
        }
    }

    /// The version to use for `R`: the highest both the broker and the CLI (`ours`) support.
    fn version<R: Request>(&self, ours: i16) -> anyhow::Result<i16> {
        let Some((min, max)) = self.versions.get(&R::KEY).copied() else {
            bail!(
                "the broker at {} does not support {:?}",
                self.addr,
                ApiKey::try_from(R::KEY)
                    .map_or_else(|_| format!("API {}", R::KEY), |k| format!("{k:?}"))
            );
        };
        let v = ours.min(max);
        if v < min {
            bail!(
                "the broker at {} needs {:?} v{min}+, the CLI speaks up to v{ours}",
                self.addr,
                R::KEY
            );
        }
        Ok(v)
    }

    /// Sends `req` at the best common version (at most `ours`); returns the response and the
    /// version used.
    pub(crate) async fn call<R>(&mut self, req: R, ours: i16) -> anyhow::Result<(R::Response, i16)>
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
        let v = self.version::<R>(ours)?;
        Ok((self.call_at(req, v).await?, v))
    }

    async fn call_at<R>(&mut self, req: R, version: i16) -> anyhow::Result<R::Response>
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("shoal-cli")))
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| anyhow!("encoding {key:?} header: {e}"))?;
        req.encode(&mut buf, version)
            .map_err(|e| anyhow!("encoding {key:?} v{version}: {e}"))?;
        let len = i32::try_from(buf.len() - 4)?;
        if let Some(head) = buf.get_mut(0..4) {
            head.copy_from_slice(&len.to_be_bytes());
        }
        self.stream
            .write_all(&buf)
            .await
            .with_context(|| format!("sending {key:?} to {}", self.addr))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .await
            .with_context(|| format!("reading the {key:?} response from {}", self.addr))?;
        let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            bail!("{key:?} response of {len} bytes is larger than {MAX_FRAME}");
        }
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame).await?;
        let mut body = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| anyhow!("malformed {key:?} response header: {e}"))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "{key:?} response has correlation id {}, expected {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        let resp = R::Response::decode(&mut body, version)
            .map_err(|e| anyhow!("malformed {key:?} v{version} response: {e}"))?;
        if body.has_remaining() {
            tracing::debug!(api = ?key, left = body.remaining(), "bytes left after the response");
        }
        Ok(resp)
    }
}
