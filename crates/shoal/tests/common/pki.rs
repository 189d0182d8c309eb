//! Test certificates (rcgen): a CA, a server certificate for 127.0.0.1/localhost, client
//! certificates by subject, written as PEM files the broker and librdkafka read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority that signs the certificates below.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub dir: PathBuf,
    /// The CA certificate (PEM file).
    pub cert_file: PathBuf,
}

/// PEM files of one issued certificate.
pub struct Issued {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Certificate and key in one file (Kafka's PEM `ssl.keystore.location`).
    pub keystore_file: PathBuf,
}

impl Ca {
    /// A new CA named `cn`, its files in `dir`.
    pub fn new(dir: &Path, cn: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA cert");
        let cert_file = dir.join(format!("{}.ca.pem", cn.replace(' ', "_")));
        std::fs::write(&cert_file, cert.pem()).expect("write CA");
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
            cert_file,
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server(&self, name: &str) -> Issued {
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, p)
    }

    /// A client certificate with subject `CN=<cn>,OU=<ou>,O=Shoal` (RFC 2253 order);
    /// `expired` makes it valid only in 2020.
    pub fn client(&self, name: &str, cn: &str, ou: &str, expired: bool) -> Issued {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("client params");
        // rcgen starts with a CN; the subject must be encoded C..CN in this order.
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "Shoal");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        self.issue(name, p)
    }

    fn issue(&self, name: &str, p: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        let cert_file = self.dir.join(format!("{name}.pem"));
        let key_file = self.dir.join(format!("{name}.key"));
        let keystore_file = self.dir.join(format!("{name}.keystore.pem"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        std::fs::write(
            &keystore_file,
            format!("{}{}", key.serialize_pem(), cert.pem()),
        )
        .expect("write keystore");
        Issued {
            cert_file,
            key_file,
            keystore_file,
        }
    }
}
