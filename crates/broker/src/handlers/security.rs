//! SCRAM credential management (KIP-554): AlterUserScramCredentials and
//! DescribeUserScramCredentials v0, with Kafka's checks and errors (its
//! `ScramControlManager`):
//! - the same user and mechanism twice in one request (deletion or upsertion):
//!   DUPLICATE_RESOURCE for that user, and none of its alterations is applied;
//! - an unknown mechanism type: UNSUPPORTED_SASL_MECHANISM;
//! - an empty user name, iterations outside 4096..=16384, an empty salt or salted password:
//!   UNACCEPTABLE_CREDENTIAL;
//! - deleting or describing a credential that does not exist: RESOURCE_NOT_FOUND;
//! - a credential that cannot be written: KAFKA_STORAGE_ERROR (nothing changes).
//!
//! The client sends the salt and SaltedPassword; Shoal keeps salt, StoredKey, ServerKey and
//! iterations ([`crate::auth::scram`]), never a password.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::code;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::state::Broker;

fn s(v: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(v.into()))
}

enum Change {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

/// AlterUserScramCredentials: one result per user named.
pub fn alter_user_scram_credentials(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for key in req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *seen.entry(key).or_default() += 1;
    }
    let mut outcome: BTreeMap<String, (i16, Option<String>)> = BTreeMap::new();
    let mut changes: Vec<(String, Change)> = Vec::new();
    for ((name, _), count) in &seen {
        if *count > 1 {
            outcome.insert(
                name.clone(),
                (
                    code::DUPLICATE_RESOURCE,
                    Some("A user credential cannot be altered twice in the same request".into()),
                ),
            );
        }
    }
    for d in &req.deletions {
        let name = d.name.to_string();
        if outcome.contains_key(&name) {
            continue;
        }
        let checked = if name.is_empty() {
            Err((code::UNACCEPTABLE_CREDENTIAL, "Username must not be empty"))
        } else {
            match ScramMechanism::from_wire_type(d.mechanism) {
                None => Err((code::UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")),
                Some(m) if broker.credentials.get(&name, m).is_none() => Err((
                    code::RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist",
                )),
                Some(m) => Ok(m),
            }
        };
        match checked {
            Ok(m) => changes.push((name, Change::Delete(m))),
            Err((c, msg)) => {
                outcome.insert(name, (c, Some(msg.into())));
            }
        }
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        if outcome.contains_key(&name) {
            continue;
        }
        let checked = if name.is_empty() {
            Err((
                code::UNACCEPTABLE_CREDENTIAL,
                "Username must not be empty".to_string(),
            ))
        } else {
            match ScramMechanism::from_wire_type(u.mechanism) {
                None => Err((
                    code::UNSUPPORTED_SASL_MECHANISM,
                    "Unknown SCRAM mechanism".to_string(),
                )),
                Some(_) if u.iterations < ScramMechanism::MIN_ITERATIONS => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "Too few iterations: at least {}",
                        ScramMechanism::MIN_ITERATIONS
                    ),
                )),
                Some(_) if u.iterations > ScramMechanism::MAX_ITERATIONS => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "Too many iterations: at most {}",
                        ScramMechanism::MAX_ITERATIONS
                    ),
                )),
                Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    "Salt and salted password must not be empty".to_string(),
                )),
                Some(m) => Ok(m),
            }
        };
        match checked {
            Ok(m) => {
                let c = ScramCredential::from_salted_password(
                    m,
                    &u.salt,
                    &u.salted_password,
                    u.iterations as u32,
                );
                changes.push((name, Change::Upsert(m, c)));
            }
            Err((c, msg)) => {
                outcome.insert(name, (c, Some(msg)));
            }
        }
    }
    // A user with any refused alteration gets none applied (one result per user).
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|(name, _)| !outcome.contains_key(name))
        .collect();
    for (name, change) in changes {
        let (m, cred) = match change {
            Change::Delete(m) => (m, None),
            Change::Upsert(m, c) => (m, Some(c)),
        };
        let r = broker.credentials.put(&broker.topics, &name, m, cred);
        let result = match r {
            Ok(()) => {
                tracing::info!(user = %name, mechanism = m.name(), "SCRAM credential altered");
                (code::NONE, None)
            }
            Err(e) => (code::KAFKA_STORAGE_ERROR, Some(e)),
        };
        // A storage error on one mechanism is the user's result.
        if result.0 != code::NONE || !outcome.contains_key(&name) {
            outcome.insert(name, result);
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(
        outcome
            .into_iter()
            .map(|(user, (error_code, message))| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user))
                    .with_error_code(error_code)
                    .with_error_message(message.and_then(s))
            })
            .collect(),
    )
}

/// DescribeUserScramCredentials: the mechanisms and iterations of the users named (every user
/// with a credential when `users` is null or empty).
pub fn describe_user_scram_credentials(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let all = broker.credentials.list();
    let info = |creds: &Vec<(ScramMechanism, u32)>| {
        creds
            .iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(m.wire_type())
                    .with_iterations(*i as i32)
            })
            .collect::<Vec<_>>()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => all
            .iter()
            .map(|(user, creds)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(info(creds))
            })
            .collect(),
        Some(users) => {
            let mut count: BTreeMap<String, usize> = BTreeMap::new();
            for u in &users {
                *count.entry(u.name.to_string()).or_default() += 1;
            }
            let mut done = BTreeSet::new();
            users
                .iter()
                .filter(|u| done.insert(u.name.to_string()))
                .map(|u| {
                    let name = u.name.to_string();
                    let r = DescribeUserScramCredentialsResult::default()
                        .with_user(u.name.clone());
                    if count.get(&name).copied().unwrap_or(0) > 1 {
                        r.with_error_code(code::DUPLICATE_RESOURCE).with_error_message(s(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        ))
                    } else {
                        match all.get(&name) {
                            Some(creds) => r.with_credential_infos(info(creds)),
                            None => r.with_error_code(code::RESOURCE_NOT_FOUND).with_error_message(s(
                                "Attempt to describe a user credential that does not exist",
                            )),
                        }
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
