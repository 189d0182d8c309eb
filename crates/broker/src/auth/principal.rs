//! Principals, as Kafka names them (`KafkaPrincipal`, `User:<name>`), and the TLS subject
//! mapping of KIP-371 (`ssl.principal.mapping.rules`, Kafka's `SslPrincipalMapper`).
//!
//! A TLS client certificate's subject is written as an RFC 2253 distinguished name, the way
//! Java's `X500Principal.getName()` writes it (most specific RDN first, `CN=client,OU=eng,
//! O=Acme,C=US`), then the rules are tried in order: `DEFAULT` keeps the DN,
//! `RULE:pattern/replacement/[LU]` applies when `pattern` matches the whole DN and replaces
//! with `$1`-style groups, optionally lower- or upper-casing the result. When no rule applies
//! the connection is refused, as in Kafka. A connection without a certificate (PLAINTEXT, or
//! TLS with `ssl.client.auth` none/requested and no certificate sent) is `User:ANONYMOUS`.
//!
//! Differences: patterns are Rust `regex` syntax (no look-around or back-references), which
//! covers the rules Kafka documents.

use std::fmt;

/// `User:<name>` (Kafka's `KafkaPrincipal` with type `User`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    /// `User` for every principal Shoal builds.
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: "User".into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: a connection that proved no identity.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: regex::Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// `ssl.principal.mapping.rules` (default `DEFAULT`), parsed.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
    source: String,
}

impl SslPrincipalMapper {
    /// Parses Kafka's rule list: `DEFAULT` and `RULE:pattern/replacement/[LU]` entries
    /// separated by commas or newlines; `\/` inside a pattern or replacement is a `/`.
    ///
    /// Errors: a message naming the entry that is neither, or a pattern that does not
    /// compile.
    pub fn parse(rules: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) = until_slash(r).ok_or_else(|| {
                    format!("rule `{}` has no `/` after its pattern", rest.trim())
                })?;
                let (replacement, r) = until_slash(r).ok_or_else(|| {
                    format!("rule `{}` has no `/` after its replacement", rest.trim())
                })?;
                let (case, r) = match r.chars().next() {
                    Some('L') => (Case::Lower, &r[1..]),
                    Some('U') => (Case::Upper, &r[1..]),
                    _ => (Case::Keep, r),
                };
                let anchored = format!("^(?:{pattern})$");
                let pattern = regex::Regex::new(&anchored)
                    .map_err(|e| format!("rule pattern `{pattern}` is invalid: {e}"))?;
                out.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = r;
            } else {
                return Err(format!(
                    "invalid rule `{}`: expected DEFAULT or RULE:pattern/replacement/[LU]",
                    rest.trim()
                ));
            }
            // Anything up to the separator (Kafka ignores it too), then the separator.
            rest = match rest.find([',', '\n']) {
                Some(i) => rest[i + 1..].trim_start(),
                None => "",
            };
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(Self {
            rules: out,
            source: rules.to_string(),
        })
    }

    /// The principal name for `dn` (an RFC 2253 subject): the first rule that applies.
    ///
    /// Errors: no rule applies (the connection's authentication fails, as in Kafka).
    pub fn name(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let s = pattern.replace(dn, replacement.as_str()).into_owned();
                        return Ok(match case {
                            Case::Keep => s,
                            Case::Lower => s.to_lowercase(),
                            Case::Upper => s.to_uppercase(),
                        });
                    }
                }
            }
        }
        Err(format!("no rules apply to {dn}, rules {}", self.source))
    }
}

impl Default for SslPrincipalMapper {
    fn default() -> Self {
        Self {
            rules: vec![Rule::Default],
            source: "DEFAULT".into(),
        }
    }
}

/// Splits at the first `/` not preceded by a backslash; `\/` becomes `/`, other escapes are
/// kept for the regex.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` in a replacement is Rust's `${1}` (Rust would read `$1a` as a group named
/// `1a`); `$` not followed by a digit is literal.
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The subject of a DER certificate as RFC 2253 text, as Java's `X500Principal.getName()`
/// writes it: RDNs in reverse of their encoded order, `CN`, `C`, `L`, `ST`, `O`, `OU`,
/// `STREET`, `DC` and `UID` by keyword, other attributes as `<dotted OID>=#<hex DER>`,
/// multi-valued RDNs joined by `+`, special characters escaped with `\`.
///
/// Errors: the certificate does not parse.
pub fn subject_dn(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("client certificate does not parse: {e}"))?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|ava| {
                    let oid = ava.attr_type().to_id_string();
                    let keyword = match oid.as_str() {
                        "2.5.4.3" => Some("CN"),
                        "2.5.4.6" => Some("C"),
                        "2.5.4.7" => Some("L"),
                        "2.5.4.8" => Some("ST"),
                        "2.5.4.9" => Some("STREET"),
                        "2.5.4.10" => Some("O"),
                        "2.5.4.11" => Some("OU"),
                        "0.9.2342.19200300.100.1.25" => Some("DC"),
                        "0.9.2342.19200300.100.1.1" => Some("UID"),
                        _ => None,
                    };
                    match (keyword, ava.as_str()) {
                        (Some(k), Ok(v)) => format!("{k}={}", escape_rfc2253(v)),
                        (k, _) => {
                            let value = ava.attr_value();
                            let mut der = vec![value.tag().0 as u8];
                            let data = value.as_bytes();
                            push_der_len(&mut der, data.len());
                            der.extend_from_slice(data);
                            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                            format!("{}=#{hex}", k.map(str::to_string).unwrap_or(oid))
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Result<String, String> {
        SslPrincipalMapper::parse(rules)?.name(dn)
    }

    // The cases of Kafka's SslPrincipalMapperTest.
    #[test]
    fn kafka_mapping_rules() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT";
        assert_eq!(
            map(rules, "CN=Duke,OU=ServiceUsers,O=Org,C=US").unwrap(),
            "Duke"
        );
        assert_eq!(
            map(rules, "CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US").unwrap(),
            "duke@sme"
        );
        assert_eq!(
            map(rules, "cn=duke,ou=JavaSoft,o=Sun Microsystems").unwrap(),
            "duke"
        );
        assert_eq!(
            map(rules, "OU=JavaSoft,O=Sun Microsystems,C=US").unwrap(),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
        assert_eq!(
            map("RULE:^CN=(.*),OU=(.*)$/$1\\/$2/U", "CN=a,OU=b").unwrap(),
            "A/B"
        );
        assert!(
            map("RULE:^CN=(.*?)$/$1/", "OU=x").is_err(),
            "no rule applies"
        );
        assert!(SslPrincipalMapper::parse("DEFAULTS").is_ok()); // Kafka ignores trailing text
        assert!(SslPrincipalMapper::parse("RULE:abc").is_err());
        assert!(SslPrincipalMapper::parse("nonsense").is_err());
        assert_eq!(map("DEFAULT", "CN=x").unwrap(), "CN=x");
        assert_eq!(
            map("  RULE:^CN=(.*)$/$1x/ ,\n DEFAULT", "CN=a").unwrap(),
            "ax"
        );
    }

    #[test]
    fn subject_in_rfc2253_order() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "client-1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).unwrap(),
            "CN=client-1,OU=eng,O=Acme\\, Inc,C=US"
        );
        assert!(subject_dn(b"not a certificate").is_err());
    }
}
