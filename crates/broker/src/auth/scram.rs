//! SCRAM credentials (RFC 5802, RFC 7677) as Kafka keeps them (`ScramCredential`: salt,
//! StoredKey, ServerKey, iterations; never the password), and the store every listener
//! authenticates against.
//!
//! Credentials are records in `__shoal_metadata` under `ext/scram/<mechanism>/<user>`
//! (tombstone = deleted), replayed at start: what Kafka writes as `UserScramCredentialRecord`
//! in its metadata log. Values are JSON `{"iterations":N,"salt":hex,"stored_key":hex,
//! "server_key":hex}`. They are managed with AlterUserScramCredentials /
//! DescribeUserScramCredentials (KIP-554) and `shoal user`.
//!
//! PLAIN is checked against the same credentials (the password is salted and hashed as
//! SCRAM would, and compared with StoredKey), so no plain-text password is ever stored.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use sha2::{Digest, Sha256, Sha512};

use crate::topics::TopicManager;

/// Kafka's `ScramMechanism` (the type numbers are the wire values of KIP-554).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// `SCRAM-SHA-256` / `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// By SASL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// KIP-554's type: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
    pub fn wire_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// By KIP-554 type.
    pub fn from_wire_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.wire_type() == t)
    }

    /// Kafka's bounds on iterations (`ScramMechanism.minIterations()` = 4096; 16384 max).
    pub const MIN_ITERATIONS: i32 = 4096;
    pub const MAX_ITERATIONS: i32 = 16384;
}

/// One user's credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub iterations: u32,
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From a SaltedPassword (`Hi(password, salt, i)`), as AlterUserScramCredentials sends it.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let (stored_key, server_key) = match mechanism {
            ScramMechanism::Sha256 => {
                let (client, server) = derive_keys::<Sha256>(salted_password);
                (Sha256::digest(client).to_vec(), server.to_vec())
            }
            ScramMechanism::Sha512 => {
                let (client, server) = derive_keys::<Sha512>(salted_password);
                (Sha512::digest(client).to_vec(), server.to_vec())
            }
        };
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// SaltedPassword of `password` for `salt` and `iterations` (PBKDF2-HMAC, RFC 5802 `Hi`).
    pub fn salted_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        match mechanism {
            ScramMechanism::Sha256 => {
                let mut out = Default::default();
                hash_password::<Sha256>(password, iterations, salt, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = Default::default();
                hash_password::<Sha512>(password, iterations, salt, &mut out);
                out.to_vec()
            }
        }
    }

    /// A credential for `password` with a fresh random 32-byte salt.
    ///
    /// Errors: the system's random source fails.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, String> {
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
        let salted = Self::salted_password(mechanism, password.as_bytes(), &salt, iterations);
        Ok(Self::from_salted_password(
            mechanism, &salt, &salted, iterations,
        ))
    }

    /// Whether `password` is this credential's password (PLAIN), compared in constant time.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let salted = Self::salted_password(mechanism, password, &self.salt, self.iterations);
        let other = Self::from_salted_password(mechanism, &self.salt, &salted, self.iterations);
        other.stored_key.len() == self.stored_key.len()
            && other
                .stored_key
                .iter()
                .zip(&self.stored_key)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        if !s.len().is_multiple_of(2) {
            return Err(serde::de::Error::custom("odd-length hex"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("bad hex"))
            })
            .collect()
    }
}

/// Key prefix of credential records in `__shoal_metadata`.
pub const RECORD_PREFIX: &str = "ext/scram/";

/// Every user's SCRAM credentials, persisted in `__shoal_metadata`.
#[derive(Debug, Default)]
pub struct CredentialStore {
    creds: RwLock<BTreeMap<(String, ScramMechanism), ScramCredential>>,
}

impl CredentialStore {
    /// Replays the credential records `topics` holds. A record that does not parse is
    /// skipped with a warning (the user then cannot log in with that mechanism).
    pub fn load(topics: &TopicManager) -> Arc<Self> {
        let store = Self::default();
        {
            let mut creds = store.creds.write().unwrap_or_else(|e| e.into_inner());
            for (key, value) in topics.extensions(RECORD_PREFIX) {
                let parsed = key
                    .strip_prefix(RECORD_PREFIX)
                    .and_then(|k| k.split_once('/'))
                    .and_then(|(m, user)| Some((ScramMechanism::from_name(m)?, user.to_string())))
                    .zip(serde_json::from_slice::<ScramCredential>(&value).ok());
                match parsed {
                    Some(((m, user), c)) => {
                        creds.insert((user, m), c);
                    }
                    None => tracing::warn!(%key, "unreadable SCRAM credential record skipped"),
                }
            }
        }
        Arc::new(store)
    }

    /// Sets a credential in memory only (tests).
    #[cfg(test)]
    pub(crate) fn insert_for_test(&self, user: &str, m: ScramMechanism, c: ScramCredential) {
        self.creds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((user.to_string(), m), c);
    }

    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.creds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(user.to_string(), mechanism))
            .cloned()
    }

    /// Every user with their mechanisms and iterations, by user name.
    pub fn list(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        let mut out: BTreeMap<String, Vec<(ScramMechanism, u32)>> = BTreeMap::new();
        for ((user, m), c) in self.creds.read().unwrap_or_else(|e| e.into_inner()).iter() {
            out.entry(user.clone())
                .or_default()
                .push((*m, c.iterations));
        }
        out
    }

    /// Writes (`Some`) or deletes (`None`) a credential durably, then applies it.
    ///
    /// Errors: storage (nothing changes).
    pub fn put(
        &self,
        topics: &TopicManager,
        user: &str,
        mechanism: ScramMechanism,
        credential: Option<ScramCredential>,
    ) -> Result<(), String> {
        let key = format!("{RECORD_PREFIX}{}/{user}", mechanism.name());
        let value = credential
            .as_ref()
            .map(|c| serde_json::to_vec(c).map_err(|e| e.to_string()))
            .transpose()?;
        let mut creds = self.creds.write().unwrap_or_else(|e| e.into_inner());
        topics
            .put_extension(&key, value)
            .map_err(|e| e.to_string())?;
        match credential {
            Some(c) => creds.insert((user.to_string(), mechanism), c),
            None => creds.remove(&(user.to_string(), mechanism)),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The salt of RFC 7677's example (W22ZaJ0SNY7soEsUEjb6gQ==); the full exchange against
    // a SCRAM client is tested in `auth::sasl`.
    #[test]
    fn plain_checks_and_record_round_trip() {
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let salted =
            ScramCredential::salted_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let c = ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, &salted, 4096);
        assert!(c.matches_password(ScramMechanism::Sha256, b"pencil"));
        assert!(!c.matches_password(ScramMechanism::Sha256, b"pencil "));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ScramCredential>(&json).unwrap(), c);
        let fresh = ScramCredential::from_password(ScramMechanism::Sha512, "s3cret", 4096).unwrap();
        assert_eq!(fresh.stored_key.len(), 64);
        assert!(fresh.matches_password(ScramMechanism::Sha512, b"s3cret"));
        assert_ne!(
            ScramCredential::from_password(ScramMechanism::Sha512, "s3cret", 4096)
                .unwrap()
                .salt,
            fresh.salt,
            "salts are random"
        );
    }
}
