//! Listeners as Kafka configures them: `listeners`, `advertised.listeners` and
//! `listener.security.protocol.map` (Kafka's `KafkaConfig` / `EndPoint`).
//!
//! `listeners` is a comma-separated list of `NAME://host:port`, one port per entry; an empty
//! host binds every interface, port 0 a free port. Each name maps to a security protocol
//! through `listener.security.protocol.map` (default `PLAINTEXT:PLAINTEXT,SSL:SSL,
//! SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL`; setting it replaces the whole map, as in
//! Kafka). `advertised.listeners` gives, per listener name, the address Metadata and
//! FindCoordinator return to clients that connected through that listener; a listener it does
//! not name is advertised with its own address. An advertised wildcard host becomes this
//! machine's host name, as Kafka does.

use std::collections::BTreeMap;

/// Kafka's `SecurityProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses Kafka's names (case-insensitive, as Kafka's `SecurityProtocol.forName`).
    ///
    /// Errors: any other name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            other => Err(format!(
                "unknown security protocol `{other}` (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
            )),
        }
    }

    /// Kafka's name (`SASL_SSL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are wrapped in TLS (SSL, SASL_SSL).
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients must authenticate with SASL (SASL_PLAINTEXT, SASL_SSL).
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// One `NAME://host:port` entry. `name` is upper case (Kafka's `ListenerName.normalised`);
/// `host` is empty for every interface; IPv6 hosts are kept without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// Parses a `listeners` / `advertised.listeners` value. An empty value is an empty list.
///
/// Errors: an entry that is not `NAME://host:port`, a port outside 0-65535, a name used
/// twice (Kafka: "Each listener must have a different name").
pub fn parse_endpoints(value: &str) -> Result<Vec<Endpoint>, String> {
    let mut out: Vec<Endpoint> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("listener `{entry}` is not NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("listener `{entry}` has an invalid name `{name}`"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r
                .split_once("]:")
                .ok_or_else(|| format!("listener `{entry}` is not NAME://[ipv6]:port"))?;
            (h, p)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| format!("listener `{entry}` has no port"))?
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("listener `{entry}` has an invalid port `{port}`"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|e| e.name == name) {
            return Err(format!(
                "listener name {name} is used twice: each listener must have a different name"
            ));
        }
        out.push(Endpoint {
            name,
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
///
/// Errors: an entry without `:`, an unknown protocol, a name mapped twice.
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| format!("`{entry}` is not NAME:PROTOCOL"))?;
        let name = name.trim().to_ascii_uppercase();
        if out
            .insert(name.clone(), SecurityProtocol::parse(proto)?)
            .is_some()
        {
            return Err(format!("listener name {name} is mapped twice"));
        }
    }
    Ok(out)
}

/// Kafka's default `listener.security.protocol.map`.
pub fn default_protocol_map() -> BTreeMap<String, SecurityProtocol> {
    [
        ("PLAINTEXT", SecurityProtocol::Plaintext),
        ("SSL", SecurityProtocol::Ssl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
        ("SASL_SSL", SecurityProtocol::SaslSsl),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect()
}

/// This machine's host name (advertised for a wildcard listener), or `localhost`.
pub fn local_host_name() -> String {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    if name.is_empty() {
        "localhost".into()
    } else {
        name.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_as_kafka_writes_them() {
        let l =
            parse_endpoints("PLAINTEXT://:9092, ssl://localhost:9093,EXTERNAL://[::1]:0").unwrap();
        assert_eq!(
            l,
            vec![
                Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "".into(),
                    port: 9092
                },
                Endpoint {
                    name: "SSL".into(),
                    host: "localhost".into(),
                    port: 9093
                },
                Endpoint {
                    name: "EXTERNAL".into(),
                    host: "::1".into(),
                    port: 0
                },
            ]
        );
        assert_eq!(l[2].to_string(), "EXTERNAL://[::1]:0");
        assert!(parse_endpoints("PLAINTEXT://:9092,PLAINTEXT://:9093").is_err());
        assert!(parse_endpoints("localhost:9092").is_err());
        assert!(parse_endpoints("PLAINTEXT://host:99999").is_err());
        assert!(parse_endpoints("PLAINTEXT://host").is_err());
        let m = parse_protocol_map("INTERNAL:SSL,external:sasl_ssl").unwrap();
        assert_eq!(m["EXTERNAL"], SecurityProtocol::SaslSsl);
        assert!(parse_protocol_map("A:TLS").is_err());
        assert!(parse_protocol_map("A").is_err());
        assert!(!local_host_name().is_empty());
    }
}
